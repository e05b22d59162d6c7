from sentinel_ws_proxy.cli import main

main()
