"""sentinel-ws web."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from sentinel_ws_proxy.cli.app import cli, make_window, open_recording
from sentinel_ws_proxy.cli.options import db_option, listen_option, window_options, with_options
from sentinel_ws_proxy.settings import DEFAULT_WEB_LISTEN, format_hostport, is_loopback_host


@cli.command()
@db_option()
@listen_option(
    DEFAULT_WEB_LISTEN, "Where to serve the app (loopback clients only, whatever the address)."
)
@with_options(window_options)
def web(
    db: Path, listen: tuple[str, int], reconnect_window: float | None, idle_timeout: float | None
) -> None:
    """See a recording in the browser: sessions, timelines, reconnect chains, search.

    Serves a local web app over the recording (read-only; nothing is loaded
    from the internet) at http://HOST:PORT/_sentinel/ui/ and follows it while
    a proxy writes it. For the recording a proxy is writing, `sentinel-ws proxy
    --web` serves the same app on the proxy's own port.

    \b
    Example:
      sentinel-ws web --db recordings/demo.db
    """
    from sentinel_ws_proxy.serving import serve_app
    from sentinel_ws_proxy.web.app import PREFIX, standalone
    from sentinel_ws_proxy.web.view import RecordingView

    host, port = listen
    open_recording(db).close()  # a missing or foreign file is a one-line error now
    window = make_window(None, None, None, reconnect_window, idle_timeout, db=db)
    view = RecordingView(db, window)

    def announce(url: str) -> None:
        click.echo(f"sentinel-ws web: {db}")
        click.echo(f"Open {url}{PREFIX}/ (Ctrl-C to stop)")
        if not is_loopback_host(host):
            click.echo(
                f"  note: listening on {format_hostport(host, port)}, but only this machine's "
                "own clients are answered",
                err=True,
            )

    try:
        asyncio.run(serve_app(standalone(view), host, port, announce))
    except KeyboardInterrupt:
        pass
