"""`sentinel-ws test --db`: re-send a recorded session's client frames to a live server and
compare what it answers with what it answered then. Regression tests from real traffic."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection

from sentinel_ws_proxy.diagnostics.test_client import USER_AGENT, UsageError, describe_failure
from sentinel_ws_proxy.present import pick
from sentinel_ws_proxy.recording.redact import REDACTED
from sentinel_ws_proxy.replay.recorded import RecordedFrame, RecordedSession


def target_url(session: RecordedSession, url: str | None) -> str:
    """The recorded path and query on URL's host, or the recorded upstream URL."""
    if url is None:
        if not session.upstream_url:
            raise UsageError(f"session {session.id} has no recorded upstream URL; give a URL")
        return session.upstream_url
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise UsageError(f"{url!r}: expected a ws://, wss://, http:// or https:// URL")
    query = f"?{session.query}" if session.query else ""
    return f"{scheme}://{parts.netloc}{session.path}{query}"


def without_keys(value: Any, ignored: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: without_keys(v, ignored) for k, v in value.items() if k not in ignored}
    if isinstance(value, list):
        return [without_keys(v, ignored) for v in value]
    return value


def comparable(kind: str, payload: bytes, ignored: frozenset[str]) -> Any:
    """What to compare: JSON values without the ignored keys, else the raw bytes."""
    if kind == "text":
        try:
            return ("json", without_keys(json.loads(payload), ignored))
        except ValueError:
            pass
    return (kind, payload)


@dataclass
class Line:
    index: int
    recorded: str | None
    received: str | None
    same: bool


@dataclass
class RetestResult:
    session_id: int
    url: str
    error: str | None = None
    lines: list[Line] = field(default_factory=list)
    sent: int = 0
    close_code: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return self.error is None and all(line.same for line in self.lines)

    def as_json(self) -> dict[str, Any]:
        found = pick(self, "session_id", "url", "matches", "error", "sent", "close_code", "notes")
        return {**found, "frames": [line.__dict__ for line in self.lines]}


def show(kind: str, payload: bytes) -> str:
    return payload.decode("utf-8", "replace") if kind == "text" else f"<binary {payload.hex()}>"


async def retest(
    session: RecordedSession,
    url: str,
    *,
    speed: float = 1.0,
    sync: bool = False,
    timeout: float = 5.0,
    ignore_keys: frozenset[str] = frozenset(),
    headers: list[tuple[str, str]] | None = None,
) -> RetestResult:
    result = RetestResult(session.id, url)
    if session.handshake_status != 101:
        result.error = f"session {session.id} was refused ({session.handshake_status}): no frames"
        return result
    if REDACTED in url:
        result.notes.append("the recorded query had redacted values; they are sent as recorded")
    if any(f.truncated for f in session.frames):
        result.notes.append("some recorded payloads were cut at --max-payload; compared as cut")
    try:
        ws = await websockets.connect(
            url,
            origin=session.request_headers.get("origin"),  # type: ignore[arg-type]
            subprotocols=[session.subprotocol] if session.subprotocol else None,  # type: ignore[list-item]
            additional_headers=headers or [],
            user_agent_header=USER_AGENT,
            open_timeout=timeout,
            max_size=None,
        )
    except websockets.InvalidStatus as exc:
        result.error = f"handshake refused with {exc.response.status_code}"
        return result
    except Exception as exc:
        result.error = describe_failure(exc, url, timeout)[1]
        return result
    received: list[tuple[str, bytes]] = []
    arrived = asyncio.Event()
    reader = asyncio.ensure_future(_collect(ws, received, arrived))
    try:
        await _send_recorded(
            ws, session, received, arrived, speed=speed, sync=sync, timeout=timeout
        )
        result.sent = len(session.sent_by("c2s"))
        expected = [f for f in session.sent_by("s2c") if f.opcode in ("text", "binary")]
        await _wait_for(received, arrived, len(expected), timeout)
    finally:
        client_close = next(
            (f for f in session.frames if f.opcode == "close" and f.direction == "c2s"), None
        )
        if not reader.done():
            code = client_close.close_code if client_close and client_close.close_code else 1000
            await ws.close(code, (client_close.close_reason or "") if client_close else "")
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    result.close_code = ws.close_code
    result.lines = _diff(expected, received, ignore_keys)
    return result


async def _collect(
    ws: ClientConnection, received: list[tuple[str, bytes]], arrived: asyncio.Event
) -> None:
    try:
        async for message in ws:
            if isinstance(message, str):
                received.append(("text", message.encode("utf-8")))
            else:
                received.append(("binary", bytes(message)))
            arrived.set()
    except websockets.ConnectionClosed:
        pass
    arrived.set()


async def _wait_for(received: list, arrived: asyncio.Event, count: int, timeout: float) -> None:
    """Until `count` messages arrived, or none came for `timeout` seconds."""
    while len(received) < count:
        arrived.clear()
        try:
            await asyncio.wait_for(arrived.wait(), timeout)
        except asyncio.TimeoutError:
            return


async def _send_recorded(
    ws: ClientConnection,
    session: RecordedSession,
    received: list,
    arrived: asyncio.Event,
    *,
    speed: float,
    sync: bool,
    timeout: float,
) -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    seen_s2c = 0
    for frame in session.frames:
        if frame.opcode == "close":
            break
        if frame.direction == "s2c":
            if frame.opcode in ("text", "binary"):
                seen_s2c += 1
            continue
        if sync:
            await _wait_for(received, arrived, seen_s2c, timeout)
        elif speed > 0:
            await asyncio.sleep(max(0.0, t0 + frame.offset / speed - loop.time()))
        await _send(ws, frame)


async def _send(ws: ClientConnection, frame: RecordedFrame) -> None:
    if frame.opcode == "text":
        await ws.send(frame.text)
    elif frame.opcode == "binary":
        await ws.send(frame.payload)
    elif frame.opcode == "ping":
        await ws.ping(frame.payload)
    elif frame.opcode == "pong":
        await ws.pong(frame.payload)


def _diff(
    expected: list[RecordedFrame], received: list[tuple[str, bytes]], ignored: frozenset[str]
) -> list[Line]:
    lines = []
    for index in range(max(len(expected), len(received))):
        then = expected[index] if index < len(expected) else None
        now = received[index] if index < len(received) else None
        same = (
            then is not None
            and now is not None
            and comparable(then.opcode, then.payload, ignored) == comparable(*now, ignored)
        )
        lines.append(
            Line(
                index,
                show(then.opcode, then.payload) if then else None,
                show(*now) if now else None,
                same,
            )
        )
    return lines
