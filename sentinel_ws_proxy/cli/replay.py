"""sentinel-ws replay and sentinel-ws test."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sentinel_ws_proxy.cli.app import cli, console, open_recording, print_json
from sentinel_ws_proxy.cli.options import (
    db_option,
    json_option,
    listen_option,
    mode_option,
    origin_options,
    run_option,
    session_option,
    speed_option,
    target_options,
    timeout_option,
    with_options,
)
from sentinel_ws_proxy.cli.render import retest_report, test_report
from sentinel_ws_proxy.proxy.upstream import Upstream
from sentinel_ws_proxy.settings import DEFAULT_REPLAY_LISTEN, parse_upstream

if TYPE_CHECKING:
    from sentinel_ws_proxy.replay.retest import RetestResult


@cli.command()
@db_option("The recording to replay (opened read-only).")
@session_option("Session to replay; repeatable, and '--session 3 4 5' works too.", multiple=True)
@click.argument("more_ids", type=int, nargs=-1, metavar="")
@run_option("Replay every session of a run.")
@listen_option(DEFAULT_REPLAY_LISTEN)
@speed_option("Divide the recorded gaps by this; 0 sends as fast as possible.")
@mode_option(
    ["timed", "sync", "pure"],
    "timed keeps the recorded timing whatever the client sends (pure is its old name); "
    "sync waits for the client's frames and reports differences.",
)
@click.option("--loop", is_flag=True, help="Start again after the last session.")
@click.option(
    "--http-upstream",
    metavar="URL",
    help="Pass every request that is not a WebSocket handshake to this server (your "
    "frontend or dev server), so the page loads from the replay's own origin.",
)
def replay(
    db: Path,
    session_ids: tuple[int, ...],
    more_ids: tuple[int, ...],
    run_id: int | None,
    listen: tuple[str, int],
    speed: float,
    mode: str,
    loop: bool,
    http_upstream: str | None,
) -> None:
    """Serve recorded sessions as a stand-in server, with the original timing.

    Each new WebSocket connection gets the next session (default: every
    session of the latest run): its handshake status and body, subprotocol,
    server frames at the recorded gaps, and its ending (the recorded close
    frame, or a dropped connection). Point your frontend at it to reproduce a
    bug with no backend running. A same-origin page (one that opens
    ws://its-own-host/...) loads through --http-upstream: pages, scripts and
    API calls go to your frontend or dev server, WebSocket handshakes get the
    recorded sessions. Ctrl-C closes the replayed sockets with 1001 (going
    away). Without --loop it exits once every session was played; the exit
    status is 1 if sync mode saw a client frame that differs from the
    recording.

    \b
    Examples:
      sentinel-ws replay --db recordings/demo.db --session 2 3
      sentinel-ws replay --http-upstream http://localhost:5173 --loop
    """
    from sentinel_ws_proxy.replay.recorded import choose_sessions
    from sentinel_ws_proxy.replay.server import ReplayServer, serve_replay

    host, port = listen
    pages = parse_upstream(http_upstream, "--http-upstream") if http_upstream else None
    with open_recording(db) as recording:
        sessions = choose_sessions(recording, session_ids + more_ids, run_id)
    server = ReplayServer(
        sessions,
        source=str(db),
        speed=speed,
        sync=mode == "sync",
        loop=loop,
        report=lambda line: click.echo(line),
        http_upstream=(Upstream(pages, connect_timeout=10.0, close_timeout=5.0) if pages else None),
    )

    def announce(url: str) -> None:
        paths = sorted({s.path for s in sessions})
        ids = " ".join(str(s.id) for s in sessions)
        click.echo(f"Replaying {len(sessions)} session(s) from {db}: {ids}")
        click.echo(f"  mode {mode}, speed {speed:g}{', looping' if loop else ''}")
        for path in paths:
            click.echo(f"  ws{url.removeprefix('http')}{path}")
        if pages:
            click.echo(f"  everything else from {pages}")
            click.echo(f"Open {url}/ (status: {url}/_sentinel/status; Ctrl-C to stop)")
        else:
            click.echo(
                f"Point your frontend at {url} (status: {url}/_sentinel/status; Ctrl-C to stop)"
            )

    try:
        asyncio.run(serve_replay(server, host, port, announce))
    except KeyboardInterrupt:
        pass
    mismatches = server.mismatches
    click.echo(
        f"Played {len(server.played)} session(s); "
        + (f"{len(mismatches)} client frame(s) differed" if server.sync else "mode timed")
    )
    sys.exit(1 if mismatches else 0)


@cli.command("test")
@click.argument("url", required=False)
@with_options(target_options)
@with_options(origin_options)
@click.option(
    "--header", "headers", multiple=True, metavar="NAME:VALUE", help="Extra header (repeatable)."
)
@click.option(
    "--subprotocol",
    "subprotocols",
    multiple=True,
    metavar="NAME",
    help="Offer this subprotocol (repeatable).",
)
@click.option(
    "--send", "send", multiple=True, metavar="TEXT", help="Send this text message (repeatable)."
)
@timeout_option("Seconds to wait for the handshake, and to listen for messages.")
@click.option("--verbose", "-v", is_flag=True, help="Show headers and every message in full.")
@db_option("Re-send a recorded session's client frames instead (with --session).", default=None)
@session_option("With --db: the session.")
@speed_option("With --db: divide the recorded gaps by this (0: no waiting).")
@mode_option(
    ["timed", "sync"],
    "With --db: recorded timing, or send each frame once the recorded replies came.",
)
@click.option(
    "--ignore-json-keys",
    "ignore",
    multiple=True,
    metavar="K1,K2",
    help="With --db: leave these keys out when comparing JSON messages (repeatable).",
)
@json_option
def test_command(
    url: str | None,
    host: str,
    port: int,
    path: str,
    origin: str | None,
    no_origin: bool,
    headers: tuple[str, ...],
    subprotocols: tuple[str, ...],
    send: tuple[str, ...],
    timeout: float,
    verbose: bool,
    db: Path | None,
    session_id: int | None,
    speed: float,
    mode: str,
    ignore: tuple[str, ...],
    as_json: bool,
) -> None:
    """Test a WebSocket endpoint, live or by re-sending a recorded session.

    Live (the Sentinel test_websocket.py, same defaults): connects to URL or
    ws://HOST:PORT/PATH, reports the handshake, the messages received within
    --timeout, what was sent, and the close. It sends the target's own
    Origin, as a page served by that server would, so servers that check
    Origin answer as they would to their app (--origin, --no-origin change
    that). Exit 0 when the connection opened and closed cleanly, 1 when it
    failed, 2 for usage errors.

    With --db and --session: re-sends that session's client frames to the
    recorded path on URL's host (or to the recorded upstream) and compares
    the server's answers with the recorded ones. Exit 0 when they match, 1
    when they differ.

    \b
    Examples:
      sentinel-ws test
      sentinel-ws test ws://127.0.0.1:8000/ws/mission-updates/ --send '{"type": "ping"}'
      sentinel-ws test --db recordings/sentinel.db --session 12 ws://localhost:8001
    """
    from sentinel_ws_proxy.diagnostics.test_client import (
        UsageError,
        build_url,
        choose_origin,
        parse_headers,
        run_test,
    )

    extra = parse_headers(headers)
    if db is not None or session_id is not None:
        if db is None or session_id is None:
            raise UsageError("--db and --session go together")
        result = _retest(db, session_id, url, speed, mode, timeout, ignore, extra)
        if as_json:
            print_json(result.as_json())
        else:
            retest_report(console(), result)
        sys.exit(0 if result.matches else 1)
    target = build_url(url, host, port, path)
    live = asyncio.run(
        run_test(
            target,
            origin=choose_origin(target, origin, no_origin),
            headers=extra,
            subprotocols=list(subprotocols),
            send=list(send),
            timeout=timeout,
        )
    )
    if as_json:
        print_json(live.as_json())
    else:
        test_report(console(), live, verbose=verbose)
    sys.exit(0 if live.ok else 1)


def _retest(
    db: Path,
    session_id: int,
    url: str | None,
    speed: float,
    mode: str,
    timeout: float,
    ignore: tuple[str, ...],
    extra: list[tuple[str, str]],
) -> RetestResult:
    from sentinel_ws_proxy.replay.recorded import load_session
    from sentinel_ws_proxy.replay.retest import retest, target_url

    with open_recording(db) as recording:
        session = load_session(recording, session_id)
    keys = frozenset(k.strip() for value in ignore for k in value.split(",") if k.strip())
    return asyncio.run(
        retest(
            session,
            target_url(session, url),
            speed=speed,
            sync=mode == "sync",
            timeout=timeout,
            ignore_keys=keys,
            headers=extra,
        )
    )
