"""sentinel-ws health and sentinel-ws monitor."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from sentinel_ws_proxy.analysis.report import classify_recording
from sentinel_ws_proxy.cli.app import (
    cli,
    console,
    fail,
    make_window,
    open_recording,
    print_json,
    print_rows,
)
from sentinel_ws_proxy.cli.options import (
    db_option,
    origin_options,
    output_options,
    seconds_option,
    since_option,
    speed_option,
    target_options,
    timeout_option,
    window_options,
    with_options,
)
from sentinel_ws_proxy.cli.render import health_report


@cli.command()
@click.argument("url", required=False)
@with_options(target_options)
@click.option("--full", is_flag=True, help="Add the diagnostics detail (every connection).")
@click.option("--fix", is_flag=True, help="Try safe repairs, check again, report each problem.")
@with_options(origin_options)
@timeout_option("Seconds to wait for each answer.")
@db_option("Judge a recording instead of a live server.", default=None)
@since_option
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="NAME=WARN[/CRIT]",
    help="With --db: change a limit (see README; e.g. handshake_failures=0.1/0.5).",
)
@with_options(window_options)
@output_options
def health(
    url: str | None,
    host: str,
    port: int,
    path: str,
    full: bool,
    fix: bool,
    origin: str | None,
    no_origin: bool,
    timeout: float,
    db: Path | None,
    since: str | None,
    thresholds: tuple[str, ...],
    reconnect_window: float | None,
    idle_timeout: float | None,
    fmt: str,
) -> None:
    """Check the WebSocket system: OK, WARNING or CRITICAL (exit status 0, 1 or 2).

    Live, against the server at URL (ws://host:port/path, wss://, http://,
    https://) or --host/--port/--path (the Sentinel check_websocket_health.py's
    options and defaults): the HTTP server's status endpoint, the diagnostics
    endpoint, a WebSocket connection
    with a health_check probe (sending the server's own Origin unless
    --origin/--no-origin say otherwise), and the missions API.

    --fix, when the handshake is refused (401, 403, 404, 5xx), probes every
    combination of Origin (none, the server's own, common dev servers' and
    --origin) and path (as given, with and without a trailing slash, common
    paths) and reports which one the server accepts; when the socket connects
    but stays silent, it calls the server's WebSocket restart endpoint. Then
    it checks again. It never changes files.

    With --db: the same verdict from a recording: handshake failure rate,
    abnormal close rate, failures never recovered from, recovery p95 and idle
    timeouts, against thresholds. Usable as a CI gate.

    \b
    Examples:
      sentinel-ws health --full
      sentinel-ws health ws://127.0.0.1:8000/ws/mission-updates/ --fix
      sentinel-ws health --db recordings/sentinel.db --threshold recovery_p95=2/10
    """
    from sentinel_ws_proxy.diagnostics.health import (
        Target,
        parse_thresholds,
        recording_health,
        run_health,
    )

    if db is not None:
        limits = parse_thresholds(thresholds)
        window = make_window(since, None, None, reconnect_window, idle_timeout, db=db)
        with open_recording(db) as recording:
            classified = classify_recording(recording, window)
        report = recording_health(classified, str(db), limits)
    else:
        target = Target.choose(url, host, port, path, origin, no_origin, timeout)
        report = asyncio.run(run_health(target, fix=fix))
    if fmt == "json":
        print_json(report.as_json())
    elif fmt != "table":
        print_rows(fmt, report.as_json()["checks"])
    else:
        health_report(console(), report, full=full)
    sys.exit(report.exit_status)


@cli.command()
@click.argument("url", required=False)
@with_options(target_options)
@seconds_option("--interval", 2.0, 0.05, "Seconds between refreshes.")
@db_option("Watch a recording instead of a server (with --follow or --replay).", default=None)
@click.option(
    "--follow", is_flag=True, help="With --db: follow the recording as the proxy writes it."
)
@click.option("--replay", "replay_", is_flag=True, help="With --db: play the recording back.")
@speed_option("With --replay: recorded seconds per real second.", 60.0, 0.001)
@since_option
@click.option("--once", is_flag=True, help="Print one plain-text snapshot and exit.")
@with_options(origin_options)
@with_options(window_options)
def monitor(
    url: str | None,
    host: str,
    port: int,
    path: str,
    interval: float,
    db: Path | None,
    follow: bool,
    replay_: bool,
    speed: float,
    since: str | None,
    once: bool,
    origin: str | None,
    no_origin: bool,
    reconnect_window: float | None,
    idle_timeout: float | None,
) -> None:
    """A live terminal dashboard of a server's WebSocket system, or of a recording.

    \b
    Live, against URL (ws://host:port/path, http://...) or --host/--port/--path
    (the Sentinel monitor_websockets.py's options and defaults): polls the
    status, diagnostics and missions endpoints and holds its own WebSocket,
    showing recent events and errors; it reconnects by itself with backoff.
    Its socket sends the server's own Origin (or --origin, or none with
    --no-origin).
    --db PATH --follow: open connections, closes with their verdicts, and
    message rates, while the proxy writes the recording.
    --db PATH --replay [--speed 60]: the same dashboard, played back.
    --db PATH alone: --follow at a terminal; with --once, the recording's end.
    Keys: q quits, r reconnects (live). --once prints one snapshot and exits
    (plain ASCII when piped).

    \b
    Examples:
      sentinel-ws monitor
      sentinel-ws monitor ws://127.0.0.1:8000/ws/mission-updates/ --once
      sentinel-ws monitor --db recordings/sentinel.db --follow
    """
    from sentinel_ws_proxy.cli.dashboard import monitor_follow, monitor_live, monitor_replay
    from sentinel_ws_proxy.diagnostics.health import Target

    out = console()
    if db is None:
        if follow or replay_:
            fail("--follow and --replay read a recording: give --db PATH")
        target = Target.choose(url, host, port, path, origin, no_origin)
        job = monitor_live(target, interval, out, once=once)
    else:
        if follow and replay_:
            fail("with --db, choose --follow (while the proxy records) or --replay")
        if not follow and not replay_:
            # --db alone: the recording as it ends (--once), or followed as it grows.
            replay_, follow = once, not once
        window = make_window(since, None, None, reconnect_window, idle_timeout, db=db)
        open_recording(db).close()  # a clear error for a missing or foreign file
        if follow:
            job = monitor_follow(db, window, interval, out, once=once)
        else:
            job = monitor_replay(db, window, speed, interval, out, once=once)
    try:
        status = asyncio.run(job)
    except KeyboardInterrupt:
        status = 0
    sys.exit(status)
