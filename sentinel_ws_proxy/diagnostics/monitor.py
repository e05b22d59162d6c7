"""`sentinel-ws monitor`: a terminal dashboard, live against a server, following a recording
as the proxy writes it, or replaying a recording at Nx speed.

Each source keeps a small state object; one renderer per kind of state draws
it, for the rich Live dashboard and for the plain `--once` snapshot alike.
"""

from __future__ import annotations

import asyncio
import heapq
import io
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import websockets
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from websockets.asyncio.client import ClientConnection

from sentinel_ws_proxy.analysis.classify import classify_all
from sentinel_ws_proxy.analysis.report import Window, classify_recording
from sentinel_ws_proxy.cli.render import CATEGORY_STYLE
from sentinel_ws_proxy.diagnostics.health import (
    DIAGNOSTICS_PATH,
    MISSIONS_PATH,
    STATUS_PATH,
    Target,
    count_listed,
)
from sentinel_ws_proxy.diagnostics.test_client import USER_AGENT, describe_failure
from sentinel_ws_proxy.protocol import close_code_name
from sentinel_ws_proxy.recording.reader import Recording
from sentinel_ws_proxy.recording.schema import SessionRow
from sentinel_ws_proxy.timefmt import clock, seconds, size

RECENT = 12


def hhmmss(ts: float | None) -> str:
    return "-" if ts is None else clock(ts)[11:19]


# -- live against a server ---------------------------------------------------------


@dataclass
class LiveState:
    target: str
    ws_url: str
    origin: str | None = None
    server: str = "checking…"
    missions: int | None = None
    websocket: str = "connecting…"
    active_connections: Any = "?"
    events_broadcast: Any = "?"
    last_event: str | None = None
    events: deque = field(default_factory=lambda: deque(maxlen=RECENT))
    errors: deque = field(default_factory=lambda: deque(maxlen=6))
    reconnects: int = 0
    updated: float = field(default_factory=time.time)


def event_details(event: dict) -> str:
    parts = []
    if "mission_id" in event:
        parts.append(f"mission {event['mission_id']}")
    if "message" in event:
        parts.append(str(event["message"]))
    if "connection_id" in event and not parts:
        parts.append(str(event["connection_id"]))
    return ": ".join(parts)


class LiveMonitor:
    """Polls the status endpoints and holds a WebSocket of its own."""

    def __init__(self, target: Target, interval: float):
        self.target = target
        self.interval = interval
        self.state = LiveState(target.http, target.ws(), target.origin)
        self.changed = asyncio.Event()
        self._ws = None
        self._reconnect_now = asyncio.Event()

    def error(self, text: str) -> None:
        self.state.errors.appendleft((time.time(), text))
        self.changed.set()

    async def poll(self, http: aiohttp.ClientSession) -> None:
        s = self.state
        try:
            async with http.get(self.target.http + STATUS_PATH) as r:
                body = await r.json(content_type=None) if r.status < 400 else {}
                s.server = f"up ({r.status})" if r.status < 400 else f"error {r.status}"
                if r.status in (404, 405):
                    s.server = f"up (no {STATUS_PATH}: {r.status})"
                if isinstance(body, dict) and body.get("status"):
                    s.server = f"{body['status']} ({r.status})"
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as exc:
            s.server = "down"
            self.error(f"status: {describe_failure(getattr(exc, 'os_error', exc), s.target, 0)[1]}")
        for path, apply in ((DIAGNOSTICS_PATH, self._diagnostics), (MISSIONS_PATH, self._missions)):
            try:
                async with http.get(self.target.http + path) as r:
                    if r.status == 200:
                        apply(await r.json(content_type=None))
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError):
                pass
        s.updated = time.time()
        self.changed.set()

    def _diagnostics(self, body: Any) -> None:
        if isinstance(body, dict):
            self.state.active_connections = body.get("active_connections", "?")
            self.state.events_broadcast = body.get("events_broadcast", "?")
            self.state.last_event = body.get("last_event_time")

    def _missions(self, body: Any) -> None:
        count = count_listed(body, "missions")
        if count is not None:
            self.state.missions = count

    async def hold_socket(self) -> None:
        """Stay connected; reconnect with backoff (1 s doubling to 30 s) when dropped."""
        delay = 1.0
        while True:
            try:
                self._ws = await websockets.connect(
                    self.state.ws_url,
                    origin=self.target.origin,  # type: ignore[arg-type]
                    open_timeout=self.target.timeout,
                    user_agent_header=USER_AGENT,
                )
            except Exception as exc:
                self.state.websocket = "disconnected"
                self.error(
                    f"websocket: {describe_failure(exc, self.state.ws_url, self.target.timeout)[1]}"
                )
            else:
                delay = 1.0
                self.state.websocket = "connected"
                self.changed.set()
                await self._listen(self._ws)
            self.state.websocket = f"reconnecting in {delay:g} s"
            self.changed.set()
            self._reconnect_now.clear()
            try:
                await asyncio.wait_for(self._reconnect_now.wait(), delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, 30.0)
            self.state.reconnects += 1

    async def _listen(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                try:
                    event = json.loads(message)
                except (ValueError, TypeError):
                    event = {"event_type": "message", "message": str(message)[:80]}
                if not isinstance(event, dict):
                    event = {"event_type": "message", "message": str(event)[:80]}
                self.state.events.appendleft(
                    (time.time(), str(event.get("event_type", "?")), event_details(event))
                )
                self.changed.set()
        except websockets.ConnectionClosed:
            pass
        self.error(f"websocket closed: {ws.close_code} {close_code_name(ws.close_code)}")

    async def reconnect(self) -> None:
        """The `r` key: drop our socket and connect again at once."""
        if self._ws is not None:
            await self._ws.close()
        self._reconnect_now.set()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()


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


# -- from a recording -----------------------------------------------------------------


@dataclass
class OpenConnection:
    id: int
    client: str
    path: str
    started_at: float
    frames: dict[str, int] = field(default_factory=lambda: {"c2s": 0, "s2c": 0})
    bytes: dict[str, int] = field(default_factory=lambda: {"c2s": 0, "s2c": 0})
    last_activity: float | None = None


@dataclass
class RecordingState:
    source: str
    mode: str  # follow or replay
    clock: float = field(default_factory=time.time)
    open: dict[int, OpenConnection] = field(default_factory=dict)
    closes: deque = field(default_factory=lambda: deque(maxlen=RECENT))
    faults: list[tuple] = field(default_factory=list)  # (ts, action, fault, session, spec, detail)
    rate: dict[str, float] = field(default_factory=lambda: {"c2s": 0.0, "s2c": 0.0})
    sessions_seen: int = 0
    finished: bool = False


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
            Text(category, style=CATEGORY_STYLE.get(category, "bold red")),
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


class FollowMonitor:
    """Reads a recording the proxy is writing, each interval."""

    def __init__(self, path: Path, window: Window):
        self.path = path
        self.window = window
        self.state = RecordingState(str(path), "follow")
        self._recording = Recording(path)
        self._last_frame_id = self._max_frame_id()
        self._last_poll = time.time()

    def _max_frame_id(self) -> int:
        return self._recording.max_frame_id()

    def poll(self) -> None:
        recording, s = self._recording, self.state
        now = time.time()
        s.clock = now
        s.sessions_seen = recording.session_span()[0]
        rows = recording.open_sessions(recording.latest_run())
        s.open = {r[0]: OpenConnection(*r) for r in rows}
        for sid, direction, count, total, last in recording.traffic(list(s.open)):
            c = s.open[sid]
            c.frames[direction], c.bytes[direction] = count, total or 0
            c.last_activity = max(c.last_activity or 0, last)
        newest = self._max_frame_id()
        elapsed = max(now - self._last_poll, 1e-6)
        counts = recording.frame_counts_after(self._last_frame_id)
        s.rate = {d: counts.get(d, 0) / elapsed for d in ("c2s", "s2c")}
        self._last_frame_id, self._last_poll = newest, now
        self._refresh_closes()
        s.faults = [
            (e["ts"], e["action"], e["fault_id"], e["session_id"], e["spec"], e["detail"])
            for e in recording.fault_events(newest=RECENT)
        ]

    def _refresh_closes(self) -> None:
        # Verdicts of recent closes are recomputed each time: a client-side
        # disconnect becomes a navigation once the same client is back.
        oldest = self._recording.oldest_start_of_recent_closes(RECENT)
        if oldest is None:
            self.state.closes.clear()
            return
        summaries = self._recording.summaries(since=oldest - self.window.reconnect_window)
        verdicts, _ = classify_all(
            summaries,
            reconnect_window=self.window.reconnect_window,
            idle_timeout=self.window.idle_timeout,
        )
        category = {v.session_id: v.category for v in verdicts}
        ended = sorted((s for s in summaries if s.ended_at is not None), key=lambda s: s.ended_at)
        self.state.closes.clear()
        for s in ended[-RECENT:][::-1]:
            self.state.closes.append(
                (s.ended_at, s.id, s.client_addr, s.path, s.close_code, s.closed_by, category[s.id])
            )

    def close(self) -> None:
        self._recording.close()


class ReplayMonitor:
    """Plays a recording's sessions and frames through the dashboard at Nx speed."""

    def __init__(self, path: Path, window: Window, speed: float):
        self.speed = speed
        self.state = RecordingState(str(path), f"replay x{speed:g}")
        self._recording = Recording(path)
        classified = classify_recording(self._recording, window)
        self._category = {v.session_id: v.category for v in classified.verdicts}
        self._sessions = sorted(classified.summaries, key=lambda s: s.started_at)
        self._next_open = 0
        self._ends: list[tuple[float, int]] = []
        self._summary = {s.id: s for s in self._sessions}
        start = window.since if window.since is not None else None
        if start is None and self._sessions:
            start = self._sessions[0].started_at
        self.state.clock = start or time.time()
        self._frames = self._recording.frame_clock(self.state.clock)
        self._pending: tuple | None = next(self._frames, None)
        self._last_event = self.state.clock

    def advance(self, recorded_seconds: float) -> None:
        """Move the recorded clock forward and apply everything that happened meanwhile."""
        s = self.state
        until = s.clock + recorded_seconds
        counts = {"c2s": 0, "s2c": 0}
        while True:
            t_open = (
                self._sessions[self._next_open].started_at
                if self._next_open < len(self._sessions)
                else float("inf")
            )
            t_end = self._ends[0][0] if self._ends else float("inf")
            t_frame = self._pending[1] if self._pending else float("inf")
            t = min(t_open, t_end, t_frame)
            if t > until:
                break
            if t == t_open:
                self._open(self._sessions[self._next_open])
                self._next_open += 1
            elif t == t_frame:
                sid, ts, direction, length = self._pending  # type: ignore[misc]
                c = s.open.get(sid)
                if c is not None:
                    c.frames[direction] += 1
                    c.bytes[direction] += length
                    c.last_activity = ts
                counts[direction] += 1
                self._pending = next(self._frames, None)
            else:
                _, sid = heapq.heappop(self._ends)
                self._close(sid)
            self._last_event = t
        s.rate = {d: n / max(recorded_seconds, 1e-6) for d, n in counts.items()}
        s.finished = (
            self._next_open >= len(self._sessions) and not self._ends and self._pending is None
        )
        # A finished replay stops its clock at the last thing that happened.
        s.clock = self._last_event if s.finished else until

    def _open(self, summary: SessionRow) -> None:
        s = self.state
        s.sessions_seen += 1
        if summary.accepted:
            s.open[summary.id] = OpenConnection(
                summary.id, summary.client_addr, summary.path, summary.started_at
            )
        ended = summary.ended_at if summary.ended_at is not None else None
        if ended is not None:
            heapq.heappush(self._ends, (ended, summary.id))

    def _close(self, session_id: int) -> None:
        summary = self._summary[session_id]
        self.state.open.pop(session_id, None)
        self.state.closes.appendleft(
            (
                summary.ended_at,
                summary.id,
                summary.client_addr,
                summary.path,
                summary.close_code,
                summary.closed_by,
                self._category[summary.id],
            )
        )

    def run_to_end(self) -> None:
        while not self.state.finished:
            self.advance(3600.0)

    def close(self) -> None:
        self._frames.close()
        self._recording.close()


# -- the dashboard loop -----------------------------------------------------------------


class Keys:
    """Single key presses from a terminal (cbreak mode), as an async queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self._saved: Any = None
        self._fd: int | None = None

    def __enter__(self) -> Keys:
        if not sys.stdin.isatty():
            return self
        import termios
        import tty

        self._fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        asyncio.get_running_loop().add_reader(self._fd, self._read)
        return self

    def _read(self) -> None:
        data = os.read(self._fd, 32).decode(errors="ignore")  # type: ignore[arg-type]
        for key in data:
            self.queue.put_nowait(key.lower())

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            import termios

            asyncio.get_running_loop().remove_reader(self._fd)
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    async def next(self, timeout: float) -> str | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None


def quiet_logging() -> None:
    # Nothing may print into the dashboard: library warnings go nowhere.
    logging.getLogger().addHandler(logging.NullHandler())
    for name in ("aiohttp", "websockets", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


async def dashboard(
    console: Console,
    render: Callable[[], RenderableType],
    tick: Callable[[], Awaitable[None]],
    interval: float,
    on_key: dict[str, Callable[[], Awaitable[None]]] | None = None,
) -> None:
    """Redraw every `interval` seconds until `q` (or Ctrl-C)."""
    quiet_logging()
    with Live(render(), console=console, screen=True, auto_refresh=False) as live, Keys() as keys:
        while True:
            await tick()
            live.update(render(), refresh=True)
            key = await keys.next(interval)
            if key == "q":
                return
            if key and on_key and key in on_key:
                await on_key[key]()


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


async def monitor_live(target: Target, interval: float, console: Console, *, once: bool) -> int:
    monitor = LiveMonitor(target, interval)
    timeout = aiohttp.ClientTimeout(total=target.timeout)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        holder = asyncio.ensure_future(monitor.hold_socket())
        try:
            if once:
                await monitor.poll(http)
                # Give the socket a moment to connect and bring the first events.
                deadline = time.monotonic() + min(max(interval, 0.5), target.timeout)
                while time.monotonic() < deadline and not monitor.state.events:
                    monitor.changed.clear()
                    try:
                        await asyncio.wait_for(monitor.changed.wait(), deadline - time.monotonic())
                    except asyncio.TimeoutError:
                        break
                print(snapshot(render_live(monitor.state, keys=False)), end="")
                return 0 if monitor.state.server != "down" else 1

            last_poll = 0.0

            async def tick() -> None:
                nonlocal last_poll
                if time.monotonic() - last_poll >= interval:
                    last_poll = time.monotonic()
                    await monitor.poll(http)

            await dashboard(
                console,
                lambda: render_live(monitor.state),
                tick,
                min(interval, 0.25),
                {"r": monitor.reconnect},
            )
            return 0
        finally:
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)
            await monitor.close()


async def monitor_follow(
    path: Path, window: Window, interval: float, console: Console, *, once: bool
) -> int:
    monitor = FollowMonitor(path, window)
    try:
        if once:
            monitor.poll()
            print(snapshot(render_recording(monitor.state, keys=False)), end="")
            return 0

        async def tick() -> None:
            monitor.poll()

        await dashboard(console, lambda: render_recording(monitor.state), tick, interval)
        return 0
    finally:
        monitor.close()


async def monitor_replay(
    path: Path, window: Window, speed: float, interval: float, console: Console, *, once: bool
) -> int:
    monitor = ReplayMonitor(path, window, speed)
    try:
        if once:
            monitor.run_to_end()
            print(snapshot(render_recording(monitor.state, keys=False)), end="")
            return 0

        async def tick() -> None:
            if not monitor.state.finished:
                monitor.advance(interval * speed)

        await dashboard(console, lambda: render_recording(monitor.state), tick, interval)
        return 0
    finally:
        monitor.close()
