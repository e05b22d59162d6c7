"""The sentinel-ws command: a thin click layer over the library."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from pathlib import Path

import click
from rich.console import Console

from sentinel_ws_proxy import __version__
from sentinel_ws_proxy.analysis.classify import DEFAULT_IDLE_TIMEOUT, DEFAULT_RECONNECT_WINDOW
from sentinel_ws_proxy.analysis.report import (
    Window,
    classify_recording,
    failure_report,
    select_sessions,
)
from sentinel_ws_proxy.demo.run import DEMO_DB
from sentinel_ws_proxy.proxy.config import (
    DEFAULT_DB,
    DEFAULT_LISTEN,
    DEFAULT_UPSTREAM,
    ConfigError,
    ProxyConfig,
    parse_listen,
    parse_size,
    parse_upstream,
)
from sentinel_ws_proxy.recording.har import export_har, export_jsonl, import_har
from sentinel_ws_proxy.recording.reader import Recording
from sentinel_ws_proxy.recording.redact import Redactor
from sentinel_ws_proxy.recording.schema import RecordingError
from sentinel_ws_proxy.recording.sql import run_query
from sentinel_ws_proxy.render import (
    failures_report,
    frame_json,
    health_report,
    jsonable,
    result_table,
    retest_report,
    session_json,
    sessions_table,
    show_session,
    test_report,
)
from sentinel_ws_proxy.timefmt import parse_time

USAGE_ERROR = 2


def fail(message: str) -> None:
    """A one-line error and exit status 2: bad input never earns a traceback."""
    click.echo(f"sentinel-ws: error: {message}", err=True)
    sys.exit(USAGE_ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="sentinel-ws")
def cli() -> None:
    """Record-and-replay WebSocket proxy for debugging real-time web apps.

    Put `sentinel-ws proxy` between your frontend and its server: every
    handshake, frame and close is forwarded unchanged and recorded to SQLite.
    """


@cli.command()
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="Where to accept browsers. Loopback unless you say otherwise; port 0 picks a free one.",
)
@click.option(
    "--upstream",
    default=DEFAULT_UPSTREAM,
    show_default=True,
    metavar="URL",
    help="The real server (http:// or https:// origin). The proxy connects to nothing else.",
)
@click.option(
    "--db",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite recording to append to (created with its folder if missing).",
)
@click.option("--no-record", is_flag=True, help="Forward only; write no recording.")
@click.option(
    "--max-message",
    default="16M",
    show_default=True,
    metavar="SIZE",
    help="Largest message relayed; a bigger one closes that side with 1009.",
)
@click.option(
    "--max-payload",
    default="64K",
    show_default=True,
    metavar="SIZE",
    help="Bytes of each frame's payload kept in the recording (the full size is always kept).",
)
@click.option(
    "--no-redact",
    is_flag=True,
    help="Record Cookie, Authorization and token-like query values as sent.",
)
@click.option(
    "--redact-header",
    multiple=True,
    metavar="NAME",
    help="Also redact this header's value in recordings (repeatable).",
)
@click.option(
    "--close-timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds a side may take to answer a close frame before both are dropped.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print no line per session.")
def proxy(
    listen: str,
    upstream: str,
    db: Path,
    no_record: bool,
    max_message: str,
    max_payload: str,
    no_redact: bool,
    redact_header: tuple[str, ...],
    close_timeout: float,
    quiet: bool,
) -> None:
    """Relay HTTP and WebSocket traffic to UPSTREAM and record every session.

    One port serves everything: WebSocket upgrades on any path are relayed to
    the same path upstream, other requests are passed through, so a frontend
    that builds its WebSocket URL from the page's host works unchanged. The
    proxy's own status lives under /_sentinel/. Stop with Ctrl-C (or SIGTERM):
    open sessions are closed and every recorded row is flushed.

    \b
    Example:
      sentinel-ws proxy --upstream http://localhost:8001
      # then open http://127.0.0.1:8002 instead of http://localhost:8001
    """
    from sentinel_ws_proxy.proxy.log import SessionLog
    from sentinel_ws_proxy.proxy.server import ProxyServer, serve_until_signalled

    try:
        host, port = parse_listen(listen)
        config = ProxyConfig(
            listen_host=host,
            listen_port=port,
            upstream=parse_upstream(upstream),
            db_path=None if no_record else db,
            max_message=parse_size(max_message, "--max-message"),
            max_payload=parse_size(max_payload, "--max-payload"),
            redact=not no_redact,
            redact_headers=redact_header,
            close_timeout=close_timeout,
        )
    except ConfigError as exc:
        fail(str(exc))
        return

    def announce(server: ProxyServer) -> None:
        click.echo(f"sentinel-ws proxy {__version__}")
        click.echo(f"  listening on  {server.url}")
        click.echo(f"  upstream      {config.upstream}")
        click.echo(f"  recording to  {config.db_path or '(not recording)'}")
        if not config.is_loopback:
            click.echo(
                f"  warning: listening on {config.listen_host}, reachable from other machines",
                err=True,
            )
        click.echo(f"Point your frontend at {server.url} (Ctrl-C to stop)")

    sinks = [] if quiet else [SessionLog(lambda line: click.echo(line))]
    try:
        server = asyncio.run(serve_until_signalled(config, sinks=sinks, on_ready=announce))
    except (ConfigError, RecordingError) as exc:
        fail(str(exc))
        return
    except KeyboardInterrupt:
        return
    if server.recorder is not None:
        stats = server.recorder.stats
        click.echo(
            f"Stopped. Recorded {stats.rows_written} rows to {config.db_path}"
            + (f"; {stats.dropped} events could not be written" if stats.dropped else "")
        )


# -- reading recordings ------------------------------------------------------

db_option = click.option(
    "--db",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The recording to read (opened read-only).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
since_option = click.option(
    "--since",
    metavar="TIME",
    help="Only sessions started at or after TIME (ISO-8601, or 10m, 2h, 1d ago).",
)
until_option = click.option("--until", metavar="TIME", help="Only sessions started before TIME.")
window_options = [
    click.option(
        "--reconnect-window",
        default=DEFAULT_RECONNECT_WINDOW,
        show_default=True,
        type=click.FloatRange(min=0),
        metavar="SECONDS",
        help="A client that reconnects within this time after going away counts as a navigation.",
    ),
    click.option(
        "--idle-timeout",
        default=DEFAULT_IDLE_TIMEOUT,
        show_default=True,
        type=click.FloatRange(min=0),
        metavar="SECONDS",
        help="A server close after this long without frames counts as an idle timeout.",
    ),
]


def with_options(options):
    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def console() -> Console:
    # Piped output is for reading later or grepping: do not squeeze it to 80 columns.
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def open_recording(path: Path) -> Recording:
    try:
        return Recording(path)
    except RecordingError as exc:
        fail(str(exc))
        raise  # unreachable: fail() exits


def make_window(
    since: str | None,
    until: str | None,
    run_id: int | None = None,
    reconnect_window: float = DEFAULT_RECONNECT_WINDOW,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
) -> Window:
    try:
        return Window(
            since=parse_time(since) if since else None,
            until=parse_time(until) if until else None,
            run_id=run_id,
            reconnect_window=reconnect_window,
            idle_timeout=idle_timeout,
        )
    except ValueError as exc:
        fail(f"--since/--until: {exc}")
        raise


def print_json(value: object) -> None:
    # Indented for a person at a terminal; compact when piped, where json's C
    # encoder is about five times faster on a large recording.
    indent = 2 if sys.stdout.isatty() else None
    click.echo(json.dumps(value, indent=indent, ensure_ascii=False, default=jsonable))


@cli.command()
@db_option
@click.option("--failed", is_flag=True, help="Only sessions whose verdict is a failure.")
@click.option(
    "--close-code",
    "close_codes",
    type=int,
    multiple=True,
    metavar="N",
    help="Only this close code (repeatable).",
)
@click.option("--path", "path_glob", metavar="GLOB", help="Only paths matching GLOB, e.g. '/ws/*'.")
@click.option("--client", metavar="ADDR", help="Only sessions from this client address.")
@since_option
@until_option
@click.option("--run", "run_id", type=int, metavar="ID", help="Only sessions of this proxy run.")
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(min=0),
    help="Show the most recent N matching sessions; 0 for all.",
)
@with_options(window_options)
@json_option
def sessions(
    db: Path,
    failed: bool,
    close_codes: tuple[int, ...],
    path_glob: str | None,
    client: str | None,
    since: str | None,
    until: str | None,
    run_id: int | None,
    limit: int,
    reconnect_window: float,
    idle_timeout: float,
    as_json: bool,
) -> None:
    """List recorded sessions, one line each, with their verdict.

    The verdict is the session's failure category (see `sentinel-ws failures`).
    """
    window = make_window(since, until, run_id, reconnect_window, idle_timeout)
    with open_recording(db) as recording:
        classified = classify_recording(recording, window)
        matching = select_sessions(
            classified,
            failed=failed,
            close_codes=close_codes,
            path_glob=path_glob,
            client=client,
        )
        shown = matching[-limit:] if limit else matching
        rows = recording.session_rows(s.id for s, _ in shown)
    if as_json:
        print_json([session_json(rows[s.id], v) for s, v in shown])
        return
    out = console()
    if not shown:
        out.print(f"No matching sessions in {db}.")
        return
    sessions_table(out, shown, {i: (r["bytes_c2s"], r["bytes_s2c"]) for i, r in rows.items()})
    if len(shown) < len(matching):
        out.print(
            f"[dim]Showing the last {len(shown)} of {len(matching)} matching sessions; "
            "--limit 0 shows all.[/dim]"
        )


@cli.command()
@click.argument("session_id", type=int)
@db_option
@click.option("--payloads", is_flag=True, help="Show whole payloads (JSON pretty-printed).")
@with_options(window_options)
@json_option
def show(
    session_id: int,
    db: Path,
    payloads: bool,
    reconnect_window: float,
    idle_timeout: float,
    as_json: bool,
) -> None:
    """Show one session: handshake, frame timeline, close and verdict."""
    window = make_window(None, None, None, reconnect_window, idle_timeout)
    with open_recording(db) as recording:
        try:
            row = recording.session_row(session_id)
        except RecordingError as exc:
            fail(str(exc))
        frames = recording.frame_rows(session_id)
        classified = classify_recording(recording, window)
    verdict = next(v for v in classified.verdicts if v.session_id == session_id)
    if as_json:
        print_json(
            {
                "session": session_json(row, verdict),
                "frames": [frame_json(f) for f in frames],
            }
        )
        return
    show_session(console(), row, frames, verdict, payloads=payloads)


@cli.command()
@db_option
@since_option
@until_option
@with_options(window_options)
@json_option
def failures(
    db: Path,
    since: str | None,
    until: str | None,
    reconnect_window: float,
    idle_timeout: float,
    as_json: bool,
) -> None:
    """Classify every session, count the failures, and say what to fix.

    Each session falls in exactly one category: clean, navigation, client_gone,
    server_drop, server_error, rejected, not_found, upstream_unreachable,
    idle_timeout, too_big, protocol_error, proxy_shutdown, open or other.
    """
    window = make_window(since, until, None, reconnect_window, idle_timeout)
    with open_recording(db) as recording:
        report = failure_report(recording, window)
    if as_json:
        print_json(report.as_json())
        return
    total = len(report.classified.summaries)
    failures_report(
        console(), report, f"{total} sessions in {db}, {report.failures} of them failures"
    )


@cli.command()
@click.argument("query")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print rows as a JSON list of objects.")
@click.option("--csv", "as_csv", is_flag=True, help="Print rows as CSV with a header line.")
def sql(query: str, db: Path, as_json: bool, as_csv: bool) -> None:
    """Run one read-only SQL statement over a recording.

    The file is opened read-only: statements that would write fail and change
    nothing. Tables: meta, runs, sessions, frames, http_requests (see README).

    \b
    Example:
      sentinel-ws sql "SELECT close_code, count(*) FROM sessions GROUP BY 1"
    """
    if as_json and as_csv:
        fail("--json and --csv: choose one")
    try:
        columns, rows = run_query(db, query)
    except RecordingError as exc:
        fail(str(exc))
        return
    if as_json:
        print_json([dict(zip(columns, row, strict=False)) for row in rows])
    elif as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([[jsonable(v) for v in row] for row in rows])
    else:
        result_table(console(), columns, rows)


@cli.command()
@click.argument("session_ids", type=int, nargs=-1, required=True, metavar="SESSION_ID...")
@db_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["har", "jsonl"]),
    default="har",
    show_default=True,
    help="har opens in Chrome DevTools (Network panel, Import HAR); jsonl is one row per line.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here, not stdout.",
)
def export(session_ids: tuple[int, ...], db: Path, fmt: str, output: Path | None) -> None:
    """Export sessions as HAR (with WebSocket messages) or JSONL."""
    with open_recording(db) as recording:
        try:
            if fmt == "har":
                text = json.dumps(export_har(recording, session_ids), indent=2, ensure_ascii=False)
            else:
                text = "\n".join(export_jsonl(recording, session_ids))
        except RecordingError as exc:
            fail(str(exc))
    if output is None:
        click.echo(text)
        return
    try:
        output.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    click.echo(f"Wrote {len(session_ids)} sessions to {output}", err=True)


@cli.command("import")
@click.argument("har_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--db",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The recording to append to (created if missing).",
)
@click.option("--no-redact", is_flag=True, help="Keep Cookie, Authorization and token values.")
@click.option("--max-payload", default="64K", show_default=True, metavar="SIZE")
def import_(har_file: Path, db: Path, no_redact: bool, max_payload: str) -> None:
    """Import the WebSocket entries of a HAR file (from Chrome DevTools or our export).

    Each entry becomes a session with its frames, so every other command works
    on a capture made in the browser. Credentials are redacted as in the proxy.
    """
    try:
        run_id, count, frames = import_har(
            har_file,
            db,
            redactor=Redactor.build(not no_redact),
            max_payload=parse_size(max_payload, "--max-payload"),
        )
    except (RecordingError, ConfigError) as exc:
        fail(str(exc))
        return
    click.echo(f"Imported {count} WebSocket sessions ({frames} frames) into {db} as run {run_id}")


# -- replay and the test client ----------------------------------------------


@cli.command()
@click.option(
    "--db",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The recording to replay (opened read-only).",
)
@click.option(
    "--session",
    "session_ids",
    type=int,
    multiple=True,
    metavar="ID",
    help="Session to replay; repeatable, and '--session 3 4 5' works too.",
)
@click.argument("more_ids", type=int, nargs=-1, metavar="")
@click.option("--run", "run_id", type=int, metavar="ID", help="Replay every session of a run.")
@click.option("--listen", default="127.0.0.1:8003", show_default=True, metavar="HOST:PORT")
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Divide the recorded gaps by this; 0 sends as fast as possible.",
)
@click.option(
    "--mode",
    type=click.Choice(["pure", "sync"]),
    default="pure",
    show_default=True,
    help="pure ignores the client; sync waits for the client's frames and reports differences.",
)
@click.option("--loop", is_flag=True, help="Start again after the last session.")
def replay(
    db: Path,
    session_ids: tuple[int, ...],
    more_ids: tuple[int, ...],
    run_id: int | None,
    listen: str,
    speed: float,
    mode: str,
    loop: bool,
) -> None:
    """Serve recorded sessions as a stand-in server, with the original timing.

    Each new WebSocket connection gets the next session (default: every
    session of the latest run): its handshake status and body, subprotocol,
    server frames at the recorded gaps, and its ending (the recorded close
    frame, or a dropped connection). Point your frontend at it to reproduce a
    bug with no backend running. Without --loop it exits once every session
    was played; the exit status is 1 if sync mode saw a client frame that
    differs from the recording.
    """
    from sentinel_ws_proxy.replay.recorded import choose_sessions
    from sentinel_ws_proxy.replay.server import ReplayServer, serve_replay

    try:
        host, port = parse_listen(listen)
    except ConfigError as exc:
        fail(str(exc))
        return
    with open_recording(db) as recording:
        try:
            sessions = choose_sessions(recording, session_ids + more_ids, run_id)
        except RecordingError as exc:
            fail(str(exc))
            return
    server = ReplayServer(
        sessions,
        source=str(db),
        speed=speed,
        sync=mode == "sync",
        loop=loop,
        report=lambda line: click.echo(line),
    )

    def announce(url: str) -> None:
        paths = sorted({s.path for s in sessions})
        ids = " ".join(str(s.id) for s in sessions)
        click.echo(f"Replaying {len(sessions)} session(s) from {db}: {ids}")
        click.echo(f"  mode {mode}, speed {speed:g}{', looping' if loop else ''}")
        for path in paths:
            click.echo(f"  ws{url.removeprefix('http')}{path}")
        click.echo(f"Point your frontend at {url} (status: {url}/_sentinel/status; Ctrl-C to stop)")

    try:
        asyncio.run(serve_replay(server, host, port, announce))
    except ConfigError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass
    mismatches = server.mismatches
    click.echo(
        f"Played {len(server.played)} session(s); "
        + (f"{len(mismatches)} client frame(s) differed" if server.sync else "mode pure")
    )
    sys.exit(1 if mismatches else 0)


@cli.command("test")
@click.argument("url", required=False)
@click.option("--host", default="localhost", show_default=True)
@click.option("--port", default=8001, show_default=True, type=click.IntRange(1, 65535))
@click.option("--path", default="ws/mission-updates", show_default=True)
@click.option("--origin", help="Send this Origin header.")
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
@click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Seconds to wait for the handshake, and to listen for messages.",
)
@click.option("--verbose", "-v", is_flag=True, help="Show headers and every message in full.")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Re-send a recorded session's client frames instead (with --session).",
)
@click.option("--session", "session_id", type=int, metavar="ID", help="With --db: the session.")
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="With --db: divide the recorded gaps by this (0: no waiting).",
)
@click.option(
    "--mode",
    type=click.Choice(["timed", "sync"]),
    default="timed",
    show_default=True,
    help="With --db: recorded timing, or send each frame once the recorded replies came.",
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
    --timeout, what was sent, and the close. Exit 0 when the connection
    opened and closed cleanly, 1 when it failed, 2 for usage errors.

    With --db and --session: re-sends that session's client frames to the
    recorded path on URL's host (or to the recorded upstream) and compares
    the server's answers with the recorded ones. Exit 0 when they match, 1
    when they differ.
    """
    from sentinel_ws_proxy.diagnostics.test_client import (
        UsageError,
        build_url,
        parse_headers,
        run_test,
    )

    try:
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
                origin=origin,
                headers=extra,
                subprotocols=list(subprotocols),
                send=list(send),
                timeout=timeout,
            )
        )
    except UsageError as exc:
        fail(str(exc))
        return
    if as_json:
        print_json(live.as_json())
    else:
        test_report(console(), live, verbose=verbose)
    sys.exit(0 if live.ok else 1)


def _retest(db, session_id, url, speed, mode, timeout, ignore, extra):
    from sentinel_ws_proxy.replay.recorded import load_session
    from sentinel_ws_proxy.replay.retest import retest, target_url

    with open_recording(db) as recording:
        try:
            session = load_session(recording, session_id)
        except RecordingError as exc:
            fail(str(exc))
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


# -- health and monitor -------------------------------------------------------

target_options = [
    click.option("--host", default="localhost", show_default=True),
    click.option("--port", default=8001, show_default=True, type=click.IntRange(1, 65535)),
    click.option("--path", default="ws/mission-updates", show_default=True),
]


@cli.command()
@with_options(target_options)
@click.option("--full", is_flag=True, help="Add the diagnostics detail (every connection).")
@click.option("--fix", is_flag=True, help="Try safe repairs, check again, report each problem.")
@click.option("--origin", help="Probe with this Origin (your frontend's), as a browser would.")
@click.option("--timeout", default=5.0, show_default=True, type=click.FloatRange(min=0.01))
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Judge a recording instead of a live server.",
)
@since_option
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="NAME=WARN[/CRIT]",
    help="With --db: change a limit (see README; e.g. handshake_failures=0.1/0.5).",
)
@with_options(window_options)
@json_option
def health(
    host: str,
    port: int,
    path: str,
    full: bool,
    fix: bool,
    origin: str | None,
    timeout: float,
    db: Path | None,
    since: str | None,
    thresholds: tuple[str, ...],
    reconnect_window: float,
    idle_timeout: float,
    as_json: bool,
) -> None:
    """Check the WebSocket system: OK, WARNING or CRITICAL (exit status 0, 1 or 2).

    Live (the Sentinel check_websocket_health.py, same defaults): the HTTP
    server's status endpoint, the diagnostics endpoint, a WebSocket connection
    with a health_check probe, and the missions API. --fix tries other
    Origins on a 403, other paths on a 404, and the server's WebSocket restart
    endpoint when the socket fails, then checks again. It never changes files.

    With --db: the same verdict from a recording: handshake failure rate,
    abnormal close rate, disconnects that never reconnected, reconnect p95 and
    idle timeouts, against thresholds. Usable as a CI gate.
    """
    from sentinel_ws_proxy.diagnostics.health import (
        Target,
        parse_thresholds,
        recording_health,
        run_health,
    )

    if db is not None:
        try:
            limits = parse_thresholds(thresholds)
        except ValueError as exc:
            fail(str(exc))
            return
        window = make_window(since, None, None, reconnect_window, idle_timeout)
        with open_recording(db) as recording:
            classified = classify_recording(recording, window)
        report = recording_health(classified, str(db), limits)
    else:
        report = asyncio.run(run_health(Target(host, port, path, origin, timeout), fix=fix))
    if as_json:
        print_json(report.as_json())
    else:
        health_report(console(), report, full=full)
    sys.exit(report.exit_status)


@cli.command()
@with_options(target_options)
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.05),
    help="Seconds between refreshes.",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Watch a recording instead of a server (with --follow or --replay).",
)
@click.option(
    "--follow", is_flag=True, help="With --db: follow the recording as the proxy writes it."
)
@click.option("--replay", "replay_", is_flag=True, help="With --db: play the recording back.")
@click.option(
    "--speed",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="With --replay: recorded seconds per real second.",
)
@since_option
@click.option("--once", is_flag=True, help="Print one plain-text snapshot and exit.")
@with_options(window_options)
def monitor(
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
    reconnect_window: float,
    idle_timeout: float,
) -> None:
    """A live terminal dashboard of a server's WebSocket system, or of a recording.

    \b
    Live (the Sentinel monitor_websockets.py, same defaults): polls the status,
    diagnostics and missions endpoints and holds its own WebSocket, showing
    recent events and errors; it reconnects by itself with backoff.
    --db PATH --follow: open connections, closes with their verdicts, and
    message rates, while the proxy writes the recording.
    --db PATH --replay [--speed 60]: the same dashboard, played back.
    Keys: q quits, r reconnects (live). --once prints one snapshot and exits.
    """
    from sentinel_ws_proxy.diagnostics.health import Target
    from sentinel_ws_proxy.diagnostics.monitor import monitor_follow, monitor_live, monitor_replay

    out = console()
    if db is None:
        if follow or replay_:
            fail("--follow and --replay read a recording: give --db PATH")
        job = monitor_live(Target(host, port, path), interval, out, once=once)
    else:
        if follow == replay_:
            fail("with --db, choose --follow (while the proxy records) or --replay")
        window = make_window(since, None, None, reconnect_window, idle_timeout)
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


# -- the menu -------------------------------------------------------------------

HOST = ("--host", "Host", "localhost")
PORT = ("--port", "Port", "8001")
PATH = ("--path", "WebSocket path", "ws/mission-updates")
RECORDING = ("--db", "Recording", DEFAULT_DB)
# command, what it does, options asked for: (flag, prompt, default; a bool default is a yes/no)
MENU: list[tuple[str, str, list[tuple[str, str, str | bool]]]] = [
    ("test", "Test a WebSocket connection", [HOST, PORT, PATH]),
    ("health", "Check the WebSocket system's health",
     [HOST, PORT, PATH, ("--full", "Show detailed diagnostics", False),
      ("--fix", "Attempt to fix common issues", False)]),
    ("monitor", "Watch the WebSocket system live",
     [HOST, PORT, PATH, ("--interval", "Interval (s)", "2")]),
    ("proxy", "Record a frontend's traffic through the proxy",
     [("--listen", "Listen on", DEFAULT_LISTEN),
      ("--upstream", "Upstream server", DEFAULT_UPSTREAM), RECORDING]),
    ("failures", "What went wrong in a recording", [RECORDING]),
    ("replay", "Replay a recording as a stand-in server",
     [RECORDING, ("--listen", "Listen on", "127.0.0.1:8003"), ("--speed", "Speed", "1")]),
]  # fmt: skip


@cli.command()
def menu() -> None:
    """Choose a tool from a list and answer its questions (the Sentinel launcher menu)."""
    click.echo("Sentinel WebSocket tools")
    for number, (name, what, _) in enumerate(MENU, 1):
        click.echo(f"  {number}. {name:<9} {what}")
    click.echo("  q. quit")
    choice = click.prompt(
        "Choose",
        type=click.Choice([str(n) for n in range(1, len(MENU) + 1)] + ["q"]),
        show_choices=False,
    )
    if choice == "q":
        return
    name, _, options = MENU[int(choice) - 1]
    argv = [name]
    for flag, question, default in options:
        if isinstance(default, bool):
            if click.confirm(question, default=default):
                argv.append(flag)
        else:
            argv += [flag, click.prompt(question, default=default)]
    click.echo("Running: sentinel-ws " + " ".join(argv))
    cli.main(args=argv, prog_name="sentinel-ws", standalone_mode=False)


# -- the demo ------------------------------------------------------------------


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
    metavar="HOST:PORT",
    help="With --serve: where the proxy listens.",
)
def demo(serve: bool, db: Path, listen: str) -> None:
    """Run the proxy in front of an embedded Sentinel-like server and break things on purpose.

    Without options: records scripted clients through the three Sentinel
    troubleshooting stories and more (clean, navigation, killed tab, wrong
    Origin, wrong path, server drop, server error, idle timeout) to
    recordings/demo.db, then prints the failures report. Needs nothing else
    running and takes a few seconds. Exit status 1 if a scenario was not
    classified as expected.

    With --serve: keeps the demo server and the proxy running and prints the
    URL to open in a browser, until Ctrl-C.
    """
    from sentinel_ws_proxy.demo.run import print_demo_report, run_demo, serve_demo

    out = console()
    if serve:
        try:
            host, port = parse_listen(listen)
            asyncio.run(serve_demo(host, port, db, out))
        except (ConfigError, RecordingError) as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            pass
        return
    try:
        result = asyncio.run(run_demo(db, out))
    except (ConfigError, RecordingError) as exc:
        fail(str(exc))
        return
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
    type=click.FloatRange(min=0.01),
    metavar="SECONDS",
    help="Interval of heartbeat events.",
)
@click.option(
    "--events-every",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Broadcast a mission event this often (0: only on POST).",
)
@click.option(
    "--idle-timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    metavar="SECONDS",
    help="Close connections silent for this long.",
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
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Drop each connection's TCP without a close frame after this long.",
)
@click.option(
    "--close-1011-after",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Close each connection with 1011 (internal error) after this long.",
)
@click.option("--stale", is_flag=True, help="Accept connections, then never answer (stale).")
def demo_server(
    host: str,
    port: int,
    heartbeat: float,
    events_every: float,
    idle_timeout: float,
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
    except ConfigError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass


def main() -> None:
    cli()
