"""Reading recordings: sessions, show, failures, sql, export, import."""

from __future__ import annotations

import fnmatch
import json
import sys
from pathlib import Path

import click

from sentinel_ws_proxy import present
from sentinel_ws_proxy.analysis.report import (
    classify_recording,
    failure_report,
    http_failures,
    select_sessions,
)
from sentinel_ws_proxy.cli.app import (
    cli,
    console,
    fail,
    make_window,
    open_recording,
    print_json,
    print_rows,
    reads_whole_recording,
)
from sentinel_ws_proxy.cli.options import (
    db_option,
    file_option,
    limit_option,
    max_payload_option,
    no_redact_option,
    output_options,
    run_option,
    session_option,
    since_option,
    until_option,
    window_options,
    with_options,
)
from sentinel_ws_proxy.cli.render import (
    failures_headline,
    failures_report,
    http_failures_table,
    result_table,
    search_results,
    sessions_table,
    show_session,
)
from sentinel_ws_proxy.decoders import decode_all, for_session
from sentinel_ws_proxy.errors import RecordingError
from sentinel_ws_proxy.recording.har import export_har, import_har
from sentinel_ws_proxy.recording.jsonrows import row_to_json
from sentinel_ws_proxy.recording.redact import Redactor
from sentinel_ws_proxy.recording.sql import run_query
from sentinel_ws_proxy.recording.transfer import (
    append_tables,
    export_tables,
    from_jsonl,
    to_jsonl,
)


@cli.command()
@db_option()
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
@run_option("Only sessions of this proxy run.")
@limit_option(100, 0, "Show the most recent N matching sessions; 0 for all.")
@with_options(window_options)
@output_options
@reads_whole_recording
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
    reconnect_window: float | None,
    idle_timeout: float | None,
    fmt: str,
) -> None:
    """List recorded sessions, one line each, with their verdict.

    The verdict is the session's failure category (see `sentinel-ws failures`).
    Failed HTTP requests on the sockets' paths are listed under the table.
    --json, --nl and --csv give every column of each session, with its
    category, explanation and reconnect gap.

    \b
    Examples:
      sentinel-ws sessions --failed
      sentinel-ws sessions --path '/ws/*' --since 1h --csv > sessions.csv
    """
    window = make_window(since, until, run_id, reconnect_window, idle_timeout, db=db)
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
        rows = recording.with_live_counts(recording.session_rows(s.id for s, _ in shown))
        # HTTP requests have no close code: a --close-code filter leaves them out.
        wanted = fmt == "table" and not close_codes
        http = http_failures(recording, classified.summaries, window) if wanted else []
    if fmt != "table":
        print_rows(fmt, [present.session(rows[s.id], v) for s, v in shown])
        return
    out = console()
    http = [h for h in http if _http_matches(h, path_glob, client)]
    if not shown and not http:
        out.print(f"No matching sessions in {db}.")
        return
    if shown:
        sessions_table(out, [(rows[s.id], v) for s, v in shown])
    if len(shown) < len(matching):
        out.print(
            f"[dim]Showing the last {len(shown)} of {len(matching)} matching sessions; "
            "--limit 0 shows all.[/dim]"
        )
    http_failures_table(out, http, limit or len(http))


def _http_matches(request: dict, path_glob: str | None, client: str | None) -> bool:
    if path_glob and not fnmatch.fnmatchcase(request["path"] or "", path_glob):
        return False
    return not client or request["client_addr"] == client


@cli.command()
@click.argument("session_id", type=int)
@db_option()
@click.option(
    "--payloads",
    "--pretty",
    "payloads",
    is_flag=True,
    help="Show whole payloads, JSON pretty-printed (Socket.IO packets decoded either way).",
)
@click.option(
    "--frames",
    "wire_frames",
    is_flag=True,
    help="List wire frames (fin, RSV bits, masking, fragments) instead of whole messages.",
)
@with_options(window_options)
@output_options
def show(
    session_id: int,
    db: Path,
    payloads: bool,
    wire_frames: bool,
    reconnect_window: float | None,
    idle_timeout: float | None,
    fmt: str,
) -> None:
    """Show one session: handshake, message timeline, close and verdict.

    Fragmented messages are shown joined, with their number of frames;
    --frames lists the wire frames as they crossed the proxy. --json gives
    the session, its messages and its wire frames; --nl and --csv give one
    row per message (per wire frame with --frames).

    \b
    Examples:
      sentinel-ws show 12 --payloads
      sentinel-ws show 12 --frames --csv
    """
    window = make_window(None, None, None, reconnect_window, idle_timeout, db=db)
    with open_recording(db) as recording:
        row = recording.session_row(session_id)
        messages = recording.messages(session_id)
        classified = classify_recording(recording, window)
    verdict = next(v for v in classified.verdicts if v.session_id == session_id)
    found = classified.pages.page(session_id)
    if fmt != "table":
        decoder = for_session(row.subprotocol, row.path, row.query, messages)
        listed = {
            "session": present.session(row, verdict),
            "messages": [
                present.message(m, said)
                for m, said in zip(messages, decode_all(decoder, messages), strict=True)
            ],
            "frames": [row_to_json(f) for m in messages for f in m.frames],
            "page": None if found is None else present.page(found),
        }
        if fmt == "json":
            print_json(listed)
        else:
            print_rows(fmt, listed["frames" if wire_frames else "messages"])
        return
    show_session(
        console(), row, messages, verdict, payloads=payloads, wire_frames=wire_frames, page=found
    )


@cli.command()
@db_option()
@since_option
@until_option
@with_options(window_options)
@output_options
@reads_whole_recording
def failures(
    db: Path,
    since: str | None,
    until: str | None,
    reconnect_window: float | None,
    idle_timeout: float | None,
    fmt: str,
) -> None:
    """Classify every session, count the failures, and say what to fix.

    Each session falls in exactly one category, a failure or an expected
    ending (navigation, client_gone, clean, proxy_shutdown, injected, open):
    see the README's category table. Then the server-side incidents, each
    failure's recovery (when that client was back, its retries and backoff),
    the failed HTTP requests around the sockets, and per category the
    evidence, likely causes and what to try. --json gives all of it; --nl
    and --csv one row per session (id, category, explanation, evidence...).

    \b
    Examples:
      sentinel-ws failures --since 1h
      sentinel-ws failures --json | jq '.recovery_summary'
    """
    window = make_window(since, until, None, reconnect_window, idle_timeout, db=db)
    with open_recording(db) as recording:
        report = failure_report(recording, window)
    if fmt != "table":
        found = report.as_json()
        print_json(found) if fmt == "json" else print_rows(fmt, found["sessions"])
        return
    failures_report(console(), report, failures_headline(report, str(db)))


@cli.command()
@click.argument("query")
@db_option()
@session_option("Only in this session.")
@limit_option(50, 1, "Show the newest N matches.")
@output_options
def search(query: str, db: Path, session_id: int | None, limit: int, fmt: str) -> None:
    """Find messages (and close reasons) by their text, newest first.

    Words match anywhere in a message, whatever their case; AND, OR, NOT,
    "phrases" and prefix* work as in SQLite FTS5. KEY:VALUE matches JSON
    messages (Socket.IO packets too) holding KEY with VALUE at any depth;
    a.b:VALUE names the path. The index is built on first use in a file next
    to the recording (RECORDING.search), then kept up to date; the recording
    itself is only read. Exit status 1 when nothing matches.

    \b
    Examples:
      sentinel-ws search "failed to send"
      sentinel-ws search event_type:mission_updated mission_id:7
      sentinel-ws search "timeout OR refused" --session 12 --json
    """
    from sentinel_ws_proxy.recording.search import SearchIndex

    with open_recording(db) as recording:
        index = SearchIndex(db)
        hits, more = index.search(recording, query, session_id=session_id, limit=limit)
    if fmt == "json":
        print_json({"query": query, "hits": [h.as_json() for h in hits], "more": more})
    elif fmt != "table":
        rows = [{**h.as_json(), "text": h.text} for h in hits]
        print_rows(fmt, [{k: v for k, v in r.items() if k != "snippet"} for r in rows])
    else:
        search_results(console(), query, hits, more, str(db))
    if not hits:
        sys.exit(1)  # as grep does: scripts can tell "found" from "not found"


@cli.command()
@click.argument("query")
@db_option()
@output_options
def sql(query: str, db: Path, fmt: str) -> None:
    """Run one read-only SQL statement over a recording.

    The file is opened read-only: statements that would write fail and change
    nothing. Tables: meta, runs, sessions, frames, http_requests, faults,
    fault_events, and the messages view (see README). BLOBs come out as
    {"$base64": ...} in JSON and CSV.

    \b
    Examples:
      sentinel-ws sql "SELECT close_code, count(*) FROM sessions GROUP BY 1"
      sentinel-ws sql "SELECT * FROM frames WHERE session_id = 12" --nl | jq .payload
    """
    columns, rows = run_query(db, query)
    if fmt == "table":
        result_table(console(), columns, rows)
    else:
        print_rows(fmt, [dict(zip(columns, row, strict=False)) for row in rows], columns)


@cli.command()
@click.argument("session_ids", type=int, nargs=-1, metavar="[SESSION_ID]...")
@db_option()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["har", "jsonl"]),
    default="har",
    show_default=True,
    help="har opens in Chrome DevTools (Network panel, Import HAR); jsonl is one row per line.",
)
@file_option("-o", "--output", help="Write here, not stdout.")
def export(session_ids: tuple[int, ...], db: Path, fmt: str, output: Path | None) -> None:
    """Export sessions (all of them when none is named) as HAR or JSONL.

    Both carry every recorded column, so `sentinel-ws import` of the file gives
    the same recording back; the runs and faults the sessions refer to come
    along (and, for a whole recording, its HTTP requests too).

    \b
    Examples:
      sentinel-ws export 7 -o session7.har       # open it in DevTools: Network, Import HAR
      sentinel-ws export --format jsonl > all.jsonl
    """
    chosen = list(session_ids) or None
    with open_recording(db) as recording:
        if fmt == "har":
            text = json.dumps(export_har(recording, chosen), indent=2, ensure_ascii=False)
        else:
            text = "\n".join(to_jsonl(export_tables(recording, chosen)))
    if output is None:
        click.echo(text)
        return
    try:
        output.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    what = f"{len(session_ids)} sessions" if session_ids else "the whole recording"
    click.echo(f"Wrote {what} to {output}", err=True)


@cli.command("import")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@db_option("The recording to append to (created if missing).")
@no_redact_option
@max_payload_option
def import_(source: Path, db: Path, no_redact: bool, max_payload: int) -> None:
    """Import a HAR file (Chrome DevTools, Playwright, or our export) or our JSONL export.

    A browser's WebSocket entries become sessions with their messages, so
    every other command works on a capture made in the browser; credentials
    are redacted as in the proxy. Our own HAR and JSONL exports come back
    exactly as they were recorded, appended after what the recording holds.

    \b
    Examples:
      sentinel-ws import capture.har              # saved from DevTools' Network panel
      sentinel-ws import export.jsonl --db recordings/merged.db
    """
    if source.suffix.lower() == ".jsonl":
        try:
            lines = source.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordingError(f"cannot read {source}: {exc}") from None
        tables = from_jsonl(lines, str(source))
        append_tables(db, tables)
        count, frames = tables.count("sessions"), tables.count("frames")
    else:
        done = import_har(
            source,
            db,
            redactor=Redactor.build(not no_redact),
            max_payload=max_payload,
        )
        count, frames = done.sessions, done.frames
    click.echo(f"Imported {count} WebSocket sessions ({frames} frames) into {db}")
