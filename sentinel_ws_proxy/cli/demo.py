"""sentinel-ws demo and sentinel-ws demo-server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from sentinel_ws_proxy.cli.app import (
    cli,
    console,
    fail,
)
from sentinel_ws_proxy.cli.params import Duration, HostPort
from sentinel_ws_proxy.proxy.config import (
    DEFAULT_LISTEN,
    DEMO_DB,
)


@cli.command()
@click.option("--serve", is_flag=True, help="Keep the demo server and proxy running for a browser.")
@click.option(
    "--db",
    default=str(DEMO_DB),
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Recording to write (replaced by each scripted demo run).",
)
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    type=HostPort(),
    help="With --serve: where the proxy listens.",
)
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
@click.option(
    "--heartbeat",
    default=15.0,
    show_default=True,
    type=Duration(0.01),
    help="Interval of heartbeat events.",
)
@click.option(
    "--events-every",
    default=5.0,
    show_default=True,
    type=Duration(0),
    help="Broadcast a mission event this often (0: only on POST).",
)
@click.option(
    "--idle-timeout",
    default=300.0,
    show_default=True,
    type=Duration(0.01),
    help="Close connections silent for this long.",
)
@click.option(
    "--ping-interval",
    default=0.0,
    show_default=True,
    type=Duration(0),
    help="Send WebSocket pings this often; a client whose pong takes longer than half "
    "of it is dropped (0: no pings).",
)
@click.option(
    "--allow-origin",
    multiple=True,
    metavar="ORIGIN",
    help="Accept this Origin besides loopback ones (repeatable).",
)
@click.option("--reject-all", is_flag=True, help="Answer every WebSocket handshake with 403.")
@click.option(
    "--drop-after",
    type=Duration(0),
    help="Drop each connection's TCP without a close frame after this long.",
)
@click.option(
    "--close-1011-after",
    type=Duration(0),
    help="Close each connection with 1011 (internal error) after this long.",
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
