"""Rendering for people (rich tables) and for scripts (plain JSON values)."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sentinel_ws_proxy.analysis.advice import ADVICE
from sentinel_ws_proxy.decoders import decode_all, for_session
from sentinel_ws_proxy.protocol import close_code_name, effect_name, status_phrase
from sentinel_ws_proxy.timefmt import clock, seconds, size

if TYPE_CHECKING:  # types only: importing these would load aiohttp at every start-up
    from sentinel_ws_proxy.analysis.classify import Verdict
    from sentinel_ws_proxy.analysis.pages import Page
    from sentinel_ws_proxy.analysis.report import FailureReport
    from sentinel_ws_proxy.diagnostics.health import HealthReport
    from sentinel_ws_proxy.diagnostics.test_client import TestResult
    from sentinel_ws_proxy.recording.reader import Message
    from sentinel_ws_proxy.recording.schema import FrameRow, SessionRow
    from sentinel_ws_proxy.replay.retest import RetestResult

CATEGORY_STYLE = {
    "clean": "green",
    "navigation": "yellow",
    "client_gone": "yellow",
    "idle_timeout": "yellow",
    "proxy_shutdown": "dim",
    "open": "cyan",
    "other": "magenta",
}
ARROW = {"c2s": "→", "s2c": "←"}
PREVIEW = 72


def new_table(**options: Any) -> Table:
    """A table: box drawing at a terminal, plain ASCII when the output goes to a pipe or a
    file, where box characters get in the way of grep, diff and old terminals."""
    if not sys.stdout.isatty():
        options.setdefault("box", box.ASCII2)
    return Table(**options)


def category_text(category: str) -> Text:
    return Text(category, style=CATEGORY_STYLE.get(category, "bold red"))


def jsonable(value: Any) -> Any:
    """Bytes as UTF-8 text when they are, base64 otherwise."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    return value


def _close_cell(s: SessionRow) -> str:
    return "-" if s.close_code is None else str(s.close_code)


def sessions_table(console: Console, pairs: Sequence[tuple[SessionRow, Verdict]]) -> None:
    """One line per session; an open one shows its counts so far and "open"."""
    table = new_table(show_edge=False, header_style="bold")
    for name, justify in (
        ("id", "right"),
        ("started", "left"),
        ("client", "left"),
        ("path", "left"),
        ("status", "right"),
        ("duration", "right"),
        ("frames →/←", "right"),
        ("bytes →/←", "right"),
        ("close", "right"),
        ("by", "left"),
        ("verdict", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=name != "path")  # type: ignore[arg-type]
    for s, v in pairs:
        table.add_row(
            str(s.id),
            clock(s.started_at),
            Text(s.client_addr),
            Text(s.path),
            str(s.handshake_status),
            "open" if s.ended_at is None else seconds(s.duration),
            f"{s.frames_c2s}/{s.frames_s2c}",
            f"{size(s.bytes_c2s)}/{size(s.bytes_s2c)}",
            _close_cell(s),
            s.closed_by or "-",
            category_text(v.category),
        )
    console.print(table)


def _headers_table(title: str, headers_json: str | None) -> Table:
    table = new_table(title=title, title_justify="left", show_header=False, show_edge=False)
    table.add_column("name", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in json.loads(headers_json or "{}").items():
        table.add_row(Text(name), Text(value))
    return table


def preview(opcode: str, payload: str | bytes | None, close: tuple, full: bool) -> str:
    if opcode == "close":
        code, reason = close
        return f"{code} {close_code_name(code)}" + (f" {reason!r}" if reason else "")
    if isinstance(payload, str):
        if full:
            try:
                return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
            except ValueError:
                return payload
        flat = " ".join(payload.split())
        return flat if len(flat) <= PREVIEW else flat[: PREVIEW - 1] + "…"
    data = bytes(payload or b"")
    if full:
        return data.hex(" ")
    shown = data[:24].hex(" ")
    return shown + (" …" if len(data) > 24 else "")


def _marks(source: str | None, forwarded: bool, fault: tuple | None, violation: str | None) -> str:
    """What a message or frame's row says besides its payload: who made it, what touched it."""
    marks = ["sent by the proxy"] if source == "proxy" else []
    if not forwarded:
        marks.append("not forwarded")
    if fault:
        marks.append(f"{fault[1]} by fault {fault[0]}")
    if violation:
        marks.append(f"violation: {violation}")
    return "".join(f"[{m}] " for m in marks)


def _message_rows(
    messages: Sequence[Message], started: float, full: bool, decoder: Any = None
) -> list[list[Any]]:
    out = []
    for m, decoded in zip(messages, decode_all(decoder, messages), strict=True):
        size = f"{m.size}" + (" (cut)" if m.truncated else "")
        opcode = m.opcode + (f" ({len(m.frames)} frames)" if len(m.frames) > 1 else "")
        opcode += ", deflated" if m.compressed else ""
        close = (m.close_code, m.close_reason)
        marks = _marks(m.source, m.forwarded, m.fault, m.violation)
        if decoded is not None and not full:
            text = marks + decoded.summary  # what the app meant, not its framing
        elif decoded is not None:
            shown = _pretty(decoded.text) if decoded.text is not None else ""
            if not shown and decoded.fields.get("data") is not None:
                shown = json.dumps(decoded.fields["data"], indent=2, ensure_ascii=False)
            text = f"{marks}{decoded.protocol} {decoded.kind}\n{shown}".rstrip()
        else:
            text = marks + preview(m.opcode, m.payload, close, full)
        out.append(
            [f"{m.ts - started:.3f}", ARROW.get(m.direction, m.direction), opcode, size, text]
        )
    return out


def _frame_rows(frames: Sequence[FrameRow], started: float, full: bool) -> list[list[Any]]:
    out = []
    for f in frames:
        bits = [f"fin={f.fin}" if f.fin is not None else "", f"rsv={f.rsv}" if f.rsv else ""]
        bits.append("masked" if f.masked else "")
        size = f"{f.size}" + (f"/{f.wire_size} on wire" if f.wire_size != f.size else "")
        size += " (cut)" if f.truncated else ""
        close = (f.close_code, f.close_reason)
        fault = (f.fault_id, effect_name(f.fault_action)) if f.fault_action else None
        marks = _marks(f.source, f.forwarded is None or bool(f.forwarded), fault, f.violation)
        text = marks + preview(f.opcode or "", f.payload, close, full)
        out.append(
            [
                f"{(f.ts or started) - started:.3f}",
                ARROW.get(f.direction or "", f.direction),
                " ".join([f.opcode or "?", *(b for b in bits if b)]),
                size,
                text,
            ]
        )
    return out


def page_words(page: Page, session_id: int) -> str:
    """Which page a session belongs to, and why its sessions are one client's."""
    others = [i for i in page.sessions if i != session_id]
    how = (
        f"loaded {page.document} through the proxy" if page.loaded
        else "not served through the proxy: sockets opened together"
    )  # fmt: skip
    line = f"Page {page.id} ({how})"
    line += f", with sessions {', '.join(map(str, others[:8]))}" if others else ", alone"
    line += " …" if len(others) > 8 else ""
    return line + (
        f"; one client: the same address ({page.client[0]}) and User-Agent, cookies not "
        "compared (frameworks rotate them on every answer)"
    )


def show_session(
    console: Console,
    row: SessionRow,
    messages: Sequence[Message],
    verdict: Verdict,
    *,
    payloads: bool,
    wire_frames: bool = False,
    page: Page | None = None,
) -> None:
    query = f"?{row.query}" if row.query else ""
    console.print(
        f"[bold]Session {row.id}[/bold]  {escape((row.path or '') + query)}"
        f"  from {escape(row.client_addr or '?')}  (run {row.run_id})"
    )
    started = row.started_at or 0.0
    console.print(f"Started {clock(started)}, lasted {seconds(row.duration)}")
    console.print(Text(f"Upstream {row.upstream_url}"))
    if page is not None:
        console.print(Text(page_words(page, row.id or 0)))
    status = row.handshake_status
    said = (row.response_line or "").partition(" ")[2] or f"{status} {status_phrase(status)}"
    line = f"\n[bold]Handshake[/bold]: {escape(said)}"
    if row.subprotocol:
        line += f", subprotocol {escape(row.subprotocol)}"
    if row.error:
        line += f"  [red]{escape(row.error)}[/red]"
    console.print(line)
    console.print(_headers_table("Request headers", row.request_headers))
    console.print(_headers_table("Response headers", row.response_headers))
    if row.handshake_body:
        console.print("Response body:", Text(str(jsonable(row.handshake_body))))

    if messages:
        frames = [f for m in messages for f in m.frames]
        if wire_frames:
            title, body = f"Wire frames ({len(frames)})", _frame_rows(frames, started, payloads)
        else:
            decoder = for_session(row.subprotocol, row.path, row.query, messages)
            title = f"Messages ({len(messages)}, in {plural(len(frames), 'wire frame')})"
            if decoder is not None:
                title += f", {decoder.NAME} decoded"
            body = _message_rows(messages, started, payloads, decoder)
        table = new_table(title=title, title_justify="left", show_edge=False)
        table.add_column("+time", justify="right")
        table.add_column("dir")
        table.add_column("opcode")
        table.add_column("size", justify="right")
        table.add_column("payload", overflow="fold")
        for cells in body:
            table.add_row(*cells[:4], Text(cells[4]))
        console.print()
        console.print(table)
        console.print("[dim]→ client to server, ← server to client[/dim]")

    if row.ended_at is not None and status == 101:
        code = row.close_code
        reason = f" {row.close_reason!r}" if row.close_reason else ""
        how = "clean close handshake" if row.clean else "abrupt (no completed close handshake)"
        console.print(
            f"\n[bold]Close[/bold]: {code} {close_code_name(code)}{escape(reason)}, "
            f"by {row.closed_by}, {how}"
        )
    if row.fault_id:
        console.print(Text(f"Injected: fault {row.fault_id} ended this session", "magenta"))
    console.print(
        Text.assemble(
            ("\nVerdict: ", "bold"), category_text(verdict.category), f": {verdict.explanation}"
        )
    )


EXPECTED_WORDS = {
    "navigation": ("navigation", "navigations"),
    "client_gone": ("tab closed", "tabs closed"),
    "proxy_shutdown": ("closed by the proxy stopping", "closed by the proxy stopping"),
    "injected": ("injected fault", "injected faults"),
    "open": ("still open", "still open"),
}


def failures_headline(report: FailureReport, where: str) -> str:
    """'28 sessions in X: 1 incident (server_restart: 4 sessions failed in it, 10 retries
    refused), 3 failures, 24 expected endings (22 navigations, 2 tabs closed)'

    Incidents come first: the retries a page makes during an outage are the outage's,
    and never outnumber it in the line a user reads first."""
    total = len(report.classified.summaries)
    pages = len(report.classified.pages.pages)
    line = f"{total} sessions" + (f" ({pages} pages)" if pages else "") + f" in {where}: "
    found = report.incidents
    if found:
        failed = sum(len(i["sessions"]) for i in found)
        refused = sum(n for i in found for n in i["refused_retries"].values())
        kinds = sorted({k for i in found for k in i["kinds"]})
        line += (
            f"{plural(len(found), 'incident')} ({'/'.join(kinds)}: "
            f"{plural(failed, 'session')} failed in "
            + ("it" if len(found) == 1 else "them")
            + (f", {plural(refused, 'retry')} refused" if refused else "")
            + "), "
        )
        line += f"{report.failures} failure" + ("" if report.failures == 1 else "s") + " in all"
    else:
        line += f"{report.failures} failure" + ("" if report.failures == 1 else "s")
    if report.retries and not found:
        line += f" (and {plural(len(report.retries), 'refused retry')})"
    expected = report.expected
    if expected:
        # Navigations and closed tabs are counted by page: one page's three sockets
        # closing together are one tab closed, not three.
        paged = {c: report.pages_in(c) for c in ("navigation", "client_gone") if c in expected}
        parts = [
            f"{paged.get(c, n)} {EXPECTED_WORDS[c][0 if paged.get(c, n) == 1 else 1]}"
            + (f" ({n} sockets)" if paged.get(c, n) != n else "")
            for c, n in expected.items()
        ]
        n = sum(expected.values())
        line += f", {n} expected ending" + ("" if n == 1 else "s") + f" ({', '.join(parts)})"
    return line


def _gaps(gaps: Sequence[float]) -> str:
    return " ".join(f"{g:.2f}" for g in gaps[:8]) + (" …" if len(gaps) > 8 else "")


def failures_report(console: Console, report: FailureReport, total_label: str) -> None:
    counts = report.counts
    table = new_table(show_edge=False, header_style="bold")
    table.add_column("category")
    table.add_column("sessions", justify="right")
    table.add_column("kind")
    table.add_column("examples")
    for category, n in counts.items():
        kind = "expected" if category in EXPECTED_WORDS or category == "clean" else "failure"
        retried = sum(v.session_id in report.retries for v in report.by_category[category])
        if retried:
            kind += f" ({plural(retried, 'refused retry')} of a disruption)"
        table.add_row(
            category_text(category),
            str(n),
            kind,
            " ".join(map(str, report.examples(category))),
        )
    console.print(f"[bold]{total_label}[/bold]")
    console.print(table)
    _incidents(console, report)
    _recovery(console, report)
    http_failures_table(console, report.http_failures)
    reconnects = report.classified.reconnects.as_dict()
    if reconnects["reconnected"]:
        console.print(
            f"\n[bold]Navigations[/bold]: {plural(reconnects['reconnected'], 'socket')} of "
            f"{plural(reconnects['pages'] or reconnects['reconnected'], 'page')} came back after "
            f"the browser left the page; gap median {seconds(reconnects['median_gap'])}"
            f", p95 {seconds(reconnects['p95_gap'])}, max {seconds(reconnects['max_gap'])}"
        )
    for category in counts:
        advice = ADVICE[category]
        if not advice.fixes:
            continue
        console.print()
        console.print(Text.assemble(category_text(category), f": {advice.title}"))
        for line in report.evidence(category):
            console.print(Text.assemble(("  evidence: ", "bold"), line))
        for cause in advice.causes:
            console.print(f"  cause: {cause}")
        for fix in advice.fixes:
            console.print(f"  [green]try:[/green] {fix}")
        console.print(f"  see: sentinel-ws show {report.examples(category, 1)[0]}")


def _incidents(console: Console, report: FailureReport) -> None:
    found = report.incidents
    if not found:
        return
    console.print("\n[bold]Server-side incidents[/bold]")
    for i in found:
        refused = ", ".join(f"{n} refused with {status}" for status, n in
                            i["refused_retries"].items())  # fmt: skip
        sessions = len(i["sessions"])
        console.print(
            f"  {clock(i['began'])} - {clock(i['ended'])}, {i['seconds']:.1f} s: "
            f"{'/'.join(i['kinds'])}, {i['clients']} client"
            + ("" if i["clients"] == 1 else "s")
            + (f" ({sessions} sessions)" if sessions != i["clients"] else "")
            + (f", retries {refused}" if refused else "")
            + ("" if i["recovered"] else "; not every client came back")
        )


def _recovery(console: Console, report: FailureReport, shown: int = 20) -> None:
    found, total = report.worst_recoveries(shown)
    if not found:
        return
    summary = report.recovery_summary
    if summary["disruptions"]:
        console.print(
            f"\n[bold]Recovery after failures[/bold]: {summary['disruptions']} disruptions, "
            f"{summary['recovered']} recovered; median {seconds(summary['median_seconds'])}, "
            f"p95 {seconds(summary['p95_seconds'])}, max {seconds(summary['max_seconds'])}"
        )
    table = new_table(show_edge=False, header_style="bold")
    for column in ("session", "what", "client", "came back", "after", "retries", "gaps (s)",
                   "backoff"):  # fmt: skip
        table.add_column(column)
    for i in found:
        backoff = i["pattern"] + (f" at {i['capped_at']:.2f} s" if i["capped_at"] else "")
        came_back = (
            Text("yes", style="green")
            if i["recovered"]
            else Text("not in the recording", style="bold red")
        )
        what = i["kind"] + (f" (fault {i['fault_id']})" if i["fault_id"] else "")
        table.add_row(
            str(i["session_id"]),
            what,
            Text(i["client"]),
            came_back,
            seconds(i["recovered_after"]),
            str(len(i["retries"])),
            _gaps(i["gaps"]),
            backoff,
        )
    console.print(table)
    if total > len(found):
        console.print(
            f"[dim]The {len(found)} that went worst (never back, then slowest) of {total:,}; "
            "failures --json lists every one.[/dim]"
        )


def http_failures_table(console: Console, failures: list[dict], shown: int = 20) -> None:
    """Failed HTTP requests on the sockets' paths (or Socket.IO/SockJS transports)."""
    if not failures:
        return
    table = new_table(title="\nHTTP failures on the sockets' paths", title_justify="left",
                  show_edge=False, header_style="bold")  # fmt: skip
    for column in ("time", "client", "request", "status", "body"):
        table.add_column(column, overflow="fold")
    for h in failures[-shown:]:
        query = f"?{h['query']}" if h["query"] else ""
        table.add_row(
            clock(h["ts"]),
            Text(h["client_addr"] or ""),
            Text(f"{h['method']} {h['path']}{query}"),
            str(h["status"]),
            Text(h["body"] or h["error"] or ""),
        )
    console.print(table)
    if len(failures) > shown:
        console.print(f"[dim]… and {len(failures) - shown} earlier[/dim]")


def search_results(console: Console, query: str, hits: list, more: bool, db: str) -> None:
    if not hits:
        console.print(f"No message in {db} matches {query!r}.")
        return
    table = new_table(show_edge=False, header_style="bold")
    for column in ("time", "session", "dir", "what", "text"):
        table.add_column(column, overflow="fold")
    for hit in hits:
        text = Text()
        for piece, matched in hit.snippet:
            text.append(piece, style="bold reverse" if matched else "")
        table.add_row(
            clock(hit.ts), str(hit.session_id), ARROW.get(hit.direction, hit.direction),
            hit.kind, text,
        )  # fmt: skip
    console.print(table)
    shown = f"the newest {len(hits)}" if more else f"{len(hits)}"
    console.print(
        f"[dim]{shown} match{'es' if len(hits) != 1 else ''}"
        + ("; --limit shows more" if more else "")
        + f"; sentinel-ws show {hits[0].session_id} --db {db} shows the first in its session[/dim]"
    )


def result_table(console: Console, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = new_table(show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        cells = []
        for value in row:
            if value is None:
                cells.append(Text("NULL", style="dim"))
            elif isinstance(value, bytes):
                cells.append(Text(f"<{len(value)} bytes> {value[:16].hex(' ')}"))
            else:
                cells.append(Text(str(value)))
        table.add_row(*cells)
    console.print(table)


def plural(count: int, noun: str) -> str:
    """'1 wire frame', '3 wire frames', '2 retries'."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun[:-1]}ies" if noun.endswith("ry") else f"{count} {noun}s"


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def test_report(console: Console, result: TestResult, *, verbose: bool, shown: int = 5) -> None:
    sent = f"Origin {result.origin}" if result.origin else "no Origin"
    console.print(Text(f"Connecting to {result.url} ({sent})"))
    if result.open_ms is None:
        console.print(Text(f"✗ {result.error}", style="bold red"))
        if result.error_kind == "rejected":
            for name, value in result.response_headers.items():
                console.print(Text(f"  {name}: {value}"))
            if result.body:
                console.print(Text("  body: " + result.body))
        console.print(Text("Result: FAILED", style="bold red"))
        return
    sub = result.subprotocol or "none"
    console.print(
        Text(
            f"✓ Connected in {result.open_ms:.1f} ms ({result.status}), subprotocol: {sub}",
            style="green",
        )
    )
    if verbose:
        for name, value in result.response_headers.items():
            console.print(Text(f"  {name}: {value}", style="dim"))
    for text in result.sent:
        console.print(Text(f"Sent: {text}"))
    count = len(result.received)
    console.print(f"Received {plural(count, 'message')}")
    limit = count if verbose else shown
    for message in result.received[:limit]:
        body = _pretty(message.data) if message.kind == "text" else f"<{message.size} bytes>"
        console.print(Text(f"  +{message.seconds:.3f} s  {body}"))
    if count > limit:
        console.print(Text(f"  … {count - limit} more (--verbose shows all)", style="dim"))
    reason = f" {result.close_reason!r}" if result.close_reason else ""
    handshake = f", close handshake {result.close_ms:.1f} ms" if result.close_ms is not None else ""
    console.print(
        Text(
            f"Closed by {result.closed_by}: {result.close_code} "
            f"{close_code_name(result.close_code)}{reason}{handshake}"
        )
    )
    if result.ok:
        console.print(Text("Result: OK", style="bold green"))
    else:
        console.print(Text(f"Result: FAILED ({result.error})", style="bold red"))


def retest_report(console: Console, result: RetestResult) -> None:
    console.print(Text(f"Session {result.session_id} re-sent to {result.url}"))
    for note in result.notes:
        console.print(Text(f"note: {note}", style="yellow"))
    if result.error:
        console.print(Text(f"✗ {result.error}", style="bold red"))
        return
    table = new_table(show_edge=False, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("recorded server frame", overflow="fold", ratio=1)
    table.add_column("live server frame", overflow="fold", ratio=1)
    table.add_column("")
    for line in result.lines:
        table.add_row(
            str(line.index),
            Text(line.recorded if line.recorded is not None else "(none)"),
            Text(line.received if line.received is not None else "(none)"),
            Text("=", style="green") if line.same else Text("≠", style="bold red"),
        )
    console.print(table)
    differing = sum(not line.same for line in result.lines)
    if result.matches:
        console.print(Text(f"Match: {len(result.lines)} server frames as recorded", style="green"))
    else:
        console.print(
            Text(f"Differs: {differing} of {len(result.lines)} server frames", style="bold red")
        )


HEALTH_STYLE = {"ok": "green", "warning": "yellow", "critical": "bold red", "skipped": "dim"}
VERDICT_STYLE = {"OK": "bold green", "WARNING": "bold yellow", "CRITICAL": "bold red"}
FIX_STYLE = {
    "FIXED": "green",
    "PASSED ON RETRY": "yellow",
    "ATTEMPTED": "yellow",
    "MANUAL ACTION REQUIRED": "bold red",
}


def health_report(console: Console, report: HealthReport, *, full: bool) -> None:
    console.print(Text(f"Sentinel WebSocket health: {report.target}", style="bold"))
    table = new_table(show_edge=False, header_style="bold")
    table.add_column("check")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("detail", overflow="fold")
    for c in report.checks:
        table.add_row(
            c.name,
            Text(c.status.upper(), style=HEALTH_STYLE.get(c.status, "")),
            "-" if c.ms is None else f"{c.ms:.0f} ms",
            Text(c.detail),
        )
    console.print(table)
    if full and report.diagnostics is not None:
        d = report.diagnostics
        console.print(
            Text(
                f"\nDiagnostics: {d.get('active_connections')} active connections, "
                f"{d.get('events_broadcast')} events broadcast, "
                f"last event {d.get('last_event_time') or 'never'}"
            )
        )
        connections = d.get("connection_info") or []
        if connections:
            detail = new_table(show_edge=False, header_style="bold")
            for column in ("client", "connected at", "last activity"):
                detail.add_column(column)
            for info in connections:
                detail.add_row(
                    Text(str(info.get("client_info", ""))),
                    Text(str(info.get("connected_at", ""))),
                    Text(str(info.get("last_activity", ""))),
                )
            console.print(detail)
    if report.fixes:
        console.print("\n[bold]Fixes[/bold]")
        for f in report.fixes:
            console.print(
                Text.assemble(
                    "  ", (f.outcome, FIX_STYLE.get(f.outcome, "")), f"  {f.problem}: {f.detail}"
                )
            )
    console.print(
        Text.assemble(
            "\nVerdict: ", (report.verdict, VERDICT_STYLE[report.verdict]), f" ({report.reason})"
        )
    )
