"""How `sentinel-ws monitor` looks: one renderer per kind of state, for the rich Live
dashboard and for the plain `--once` snapshot alike."""

from __future__ import annotations

import io
import sys

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sentinel_ws_proxy.cli.render import category_text
from sentinel_ws_proxy.diagnostics.monitor.state import LiveState, RecordingState
from sentinel_ws_proxy.protocol import close_code_name
from sentinel_ws_proxy.timefmt import clock, seconds, size


def hhmmss(ts: float | None) -> str:
    return "-" if ts is None else clock(ts)[11:19]


def render_live(state: LiveState, *, keys: bool = True) -> RenderableType:
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    for label, value in (
        ("Server", f"{state.server}  {state.target}"),
        ("Missions", "-" if state.missions is None else str(state.missions)),
        (
            "WebSocket",
            f"{state.websocket}  {state.ws_url} "
            + (f"(Origin {state.origin})" if state.origin else "(no Origin)"),
        ),
        ("Reconnects", str(state.reconnects)),
        ("Active connections", str(state.active_connections)),
        ("Events broadcast", str(state.events_broadcast)),
        ("Last event", state.last_event or "-"),
    ):
        summary.add_row(label, Text(value))
    events = Table(show_edge=False, header_style="bold", expand=True)
    events.add_column("time")
    events.add_column("event")
    events.add_column("details", overflow="fold")
    for ts, kind, details in state.events:
        events.add_row(hhmmss(ts), Text(kind), Text(details))
    errors = Table(show_edge=False, show_header=False, expand=True)
    errors.add_column("time")
    errors.add_column("error", overflow="fold")
    for ts, text in state.errors:
        errors.add_row(hhmmss(ts), Text(text, style="red"))
    return Group(
        Panel(
            summary, title="Sentinel WebSocket monitor", subtitle=f"updated {hhmmss(state.updated)}"
        ),
        Panel(events, title="Recent events"),
        Panel(errors if state.errors else Text("none", style="dim"), title="Recent errors"),
        *([Text("q quit · r reconnect", style="dim")] if keys else []),
    )


def render_recording(state: RecordingState, *, keys: bool = True) -> RenderableType:
    head = Text(
        f"{state.mode} {state.source}  ·  {hhmmss(state.clock)}  ·  "
        f"{len(state.open)} open, {state.sessions_seen} sessions seen  ·  "
        f"messages/s → {state.rate['c2s']:.1f}  ← {state.rate['s2c']:.1f}"
        + ("  ·  replay finished" if state.finished else "")
    )
    conns = Table(show_edge=False, header_style="bold", expand=True)
    for column in ("id", "client", "path", "age", "frames →/←", "bytes →/←", "last activity"):
        conns.add_column(column)
    for c in sorted(state.open.values(), key=lambda c: c.started_at):
        conns.add_row(
            str(c.id),
            Text(c.client),
            Text(c.path),
            seconds(state.clock - c.started_at),
            f"{c.frames['c2s']}/{c.frames['s2c']}",
            f"{size(c.bytes['c2s'])}/{size(c.bytes['s2c'])}",
            hhmmss(c.last_activity),
        )
    closes = Table(show_edge=False, header_style="bold", expand=True)
    for column in ("time", "id", "client", "path", "close", "by", "verdict"):
        closes.add_column(column)
    for ts, sid, client, path, code, by, category in state.closes:
        closes.add_row(
            hhmmss(ts),
            str(sid),
            Text(client),
            Text(path),
            Text("-" if code is None else f"{code} {close_code_name(code)}"),
            by or "-",
            category_text(category),
        )
    return Group(
        Panel(head, title="Sentinel WebSocket monitor"),
        Panel(conns if state.open else Text("none", style="dim"), title="Open connections"),
        Panel(closes if state.closes else Text("none yet", style="dim"), title="Recent closes"),
        *([Panel(_faults_table(state.faults), title="Recent faults")] if state.faults else []),
        *([Text("q quit", style="dim")] if keys else []),
    )


def _faults_table(faults: list[tuple]) -> Table:
    table = Table(show_edge=False, header_style="bold", expand=True)
    for column in ("time", "action", "fault", "session", "spec", "detail"):
        table.add_column(column, overflow="fold")
    for ts, action, fault_id, session_id, spec, detail in faults:
        table.add_row(
            hhmmss(ts),
            Text(action, style="bold magenta"),
            str(fault_id),
            "-" if session_id is None else str(session_id),
            Text(spec or ""),
            Text(detail or ""),
        )
    return table


# Box drawing as ASCII, for a snapshot that goes to a pipe or a file.
ASCII_BOXES = {c: "-" for c in range(0x2500, 0x2580)}
ASCII_BOXES.update({ord(c): "|" for c in "│┃║╎╏┆┇┊┋"})
ASCII_BOXES.update({ord(c): "=" for c in "━═"})
ASCII_BOXES.update({ord(c): "+" for c in "┌┐└┘├┤┬┴┼╭╮╯╰┏┓┗┛┣┫┳┻╋┡┩╇╈┯┷┿╀╁╂┝┥┠┨┰┸"})


def snapshot(render: RenderableType, width: int = 120) -> str:
    """The dashboard as plain text, for --once: ASCII boxes unless it goes to a terminal."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, force_terminal=False, color_system=None).print(render)
    text = buffer.getvalue()
    return text if sys.stdout.isatty() else text.translate(ASCII_BOXES)
