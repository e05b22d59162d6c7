"""Run the test broker by hand: `python -m tests.stacks.broker` (Ctrl-C stops it).

Prints the WebSocket URLs and credentials, e.g. to try a client through the proxy:
    node tests/stacks/broker/stomp_client.mjs ok ws://127.0.0.1:PROXY/ws sentinel sentinel-secret
"""

import signal
import sys
import tempfile
import threading

from tests.stacks.broker import (
    ensure_node_modules,
    rabbitmq_available,
    start_rabbitmq,
    stop_rabbitmq,
)


def main() -> int:
    reason = rabbitmq_available()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    ensure_node_modules()
    with tempfile.TemporaryDirectory(prefix="sentinel-broker-") as tmp:
        broker = start_rabbitmq(tmp)
        print(f"RabbitMQ {broker.version} up in {broker.startup_seconds:.1f} s")
        print(f"  STOMP over WebSocket  {broker.stomp_ws_url}")
        print(f"  MQTT over WebSocket   {broker.mqtt_ws_url}")
        print(f"  user / password       {broker.user} / {broker.password}")
        print(f"  log                   {broker.log_path}")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop_rabbitmq(broker)
            print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
