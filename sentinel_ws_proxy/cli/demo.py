"""sentinel-ws demo and sentinel-ws demo-server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from sentinel_ws_proxy.cli.app import cli, console, fail
from sentinel_ws_proxy.cli.options import db_option, listen_option, seconds_option
from sentinel_ws_proxy.settings import DEFAULT_LISTEN, DEMO_DB


@cli.command()
@click.option("--serve", is_flag=True, help="Keep the demo server and proxy running for a browser.")
@db_option("Recording to write (replaced by each scripted demo run).", default=DEMO_DB, envvar=None)
@listen_option(DEFAULT_LISTEN, "With --serve: where the proxy listens.")
def demo(serve: bool, db: Path, listen: tuple[str, int]) -> None:
    """Run the proxy in front of an embedded Sentinel-like server and break things on purpose.

    Without options: records scripted clients through the three Sentinel
    troubleshooting stories and more (clean, navigation, killed tab, wrong
    Origin, wrong path, server drop, server error, idle timeout, a 1012
    restart, a frozen client) to recordings/demo.db, then prints the
    failures report. Needs nothing else running and takes a few seconds.
    Exit status 1 if a scenario was not classified as expected.

    With --serve: keeps the demo server and the proxy running and prints the
    URL to open in a browser, until Ctrl-C.

    \b
    Examples:
      sentinel-ws demo
      sentinel-ws demo --serve
    """
    from sentinel_ws_proxy.demo.run import print_demo_report, run_demo, serve_demo

    out = console()
    if serve:
        try:
            host, port = listen
            asyncio.run(serve_demo(host, port, db, out))
        except KeyboardInterrupt:
            pass
        return
    result = asyncio.run(run_demo(db, out))
    print_demo_report(out, result, db)
    if not result.all_as_expected:
        sys.exit(1)


@cli.command("demo-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535))
@seconds_option("--heartbeat", 15.0, 0.01, "Interval of heartbeat events.")
@seconds_option("--events-every", 5.0, 0, "Broadcast a mission event this often (0: only on POST).")
@seconds_option("--idle-timeout", 300.0, 0.01, "Close connections silent for this long.")
@seconds_option(
    "--ping-interval",
    0.0,
    0,
    "Send WebSocket pings this often; a client whose pong takes longer than half of it is "
    "dropped (0: no pings).",
)
@click.option(
    "--allow-origin",
    multiple=True,
    metavar="ORIGIN",
    help="Accept this Origin besides loopback ones (repeatable).",
)
@click.option("--reject-all", is_flag=True, help="Answer every WebSocket handshake with 403.")
@seconds_option(
    "--drop-after", None, 0, "Drop each connection's TCP without a close frame after this long."
)
@seconds_option(
    "--close-1011-after",
    None,
    0,
    "Close each connection with 1011 (internal error) after this long.",
)
@click.option("--stale", is_flag=True, help="Accept connections, then never answer (stale).")
def demo_server(
    host: str,
    port: int,
    heartbeat: float,
    events_every: float,
    idle_timeout: float,
    ping_interval: float,
    allow_origin: tuple[str, ...],
    reject_all: bool,
    drop_after: float | None,
    close_1011_after: float | None,
    stale: bool,
) -> None:
    """Run the embedded Sentinel-like backend on its own (default port 8001).

    Serves a tiny frontend (/ and /missions/ID), /api/system/status,
    /api/missions, /api/system/diagnostics/websockets,
    POST /api/system/websockets/restart and the WebSocket at
    /ws/mission-updates. Options make it misbehave on purpose.

    \b
    Examples:
      sentinel-ws demo-server
      sentinel-ws demo-server --port 8001 --drop-after 10
    """
    from sentinel_ws_proxy.demo.server import Behaviour, serve_demo_server

    chosen = [
        n
        for n, on in (
            ("--reject-all", reject_all),
            ("--drop-after", drop_after is not None),
            ("--close-1011-after", close_1011_after is not None),
            ("--stale", stale),
        )
        if on
    ]
    if len(chosen) > 1:
        fail(f"choose one way to misbehave, not {' and '.join(chosen)}")
    mode, after = "normal", 5.0
    if reject_all:
        mode = "reject"
    elif drop_after is not None:
        mode, after = "drop", drop_after
    elif close_1011_after is not None:
        mode, after = "close_1011", close_1011_after
    elif stale:
        mode = "stale"
    behaviour = Behaviour(
        heartbeat=heartbeat,
        idle_timeout=idle_timeout,
        ping_interval=ping_interval,
        events_every=events_every,
        allowed_origins=allow_origin,
        mode=mode,
        after=after,
    )

    def announce(url: str) -> None:
        click.echo(f"Sentinel demo server on {url} (WebSocket at {url}/ws/mission-updates)")
        click.echo(f"Behaviour: {mode}; Ctrl-C to stop")

    try:
        asyncio.run(serve_demo_server(behaviour, host, port, announce))
    except KeyboardInterrupt:
        pass
