"""One proxied WebSocket: two pumps and the close handshake between them.

Both legs run with ``autoping=False, autoclose=False`` so that pings, pongs and
closes travel through instead of being answered here. A close frame is
forwarded with ``send_frame`` (which does not wait) and the peer's reply comes
back through the other pump the same way; only when a close has gone each way
on both legs are the TCP connections closed. Calling ``ws.close()`` instead
would wait for a reply that the other pump consumes, and the client would sit
out its close timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from sentinel_ws_proxy.events import ClosedBy, Direction, Event, Frame, SessionClosed, whole_frame
from sentinel_ws_proxy.protocol import (
    ABNORMAL,
    GOING_AWAY,
    NO_STATUS,
    close_code_name,
    close_payload,
)
from sentinel_ws_proxy.proxy.upstream import UpstreamSocket
from sentinel_ws_proxy.recording.writer import RecordingWriter

if TYPE_CHECKING:
    from sentinel_ws_proxy.faults.engine import FaultEngine

Side = Literal["client", "server"]
CLIENT: Side = "client"
SERVER: Side = "server"
_OTHER: dict[Side, Side] = {CLIENT: SERVER, SERVER: CLIENT}
# Frames read from a side travel in this direction; frames sent to it, the opposite.
_FROM: dict[Side, Direction] = {CLIENT: "c2s", SERVER: "s2c"}
_TO: dict[Side, Direction] = {CLIENT: "s2c", SERVER: "c2s"}

_OPCODES = {
    WSMsgType.TEXT: "text",
    WSMsgType.BINARY: "binary",
    WSMsgType.PING: "ping",
    WSMsgType.PONG: "pong",
}


class Relay:
    """Pumps frames between a client and the upstream until both legs are closed."""

    def __init__(
        self,
        session_id: int,
        request: web.Request,
        client_ws: web.WebSocketResponse,
        upstream: UpstreamSocket,
        emit: Callable[[Event], None],
        *,
        close_timeout: float,
        recorder: RecordingWriter | None = None,
        faults: FaultEngine | None = None,
    ):
        self.session_id = session_id
        self.client_addr = request.remote or ""
        self.path = request.path
        self.opened_at = time.time()
        self.last_activity = self.opened_at
        self.last_frame_at: float | None = None  # last non-close frame: what "idle" means
        self.frames: dict[Direction, int] = {"c2s": 0, "s2c": 0}
        self.bytes: dict[Direction, int] = {"c2s": 0, "s2c": 0}
        self._request = request
        self._ws = {CLIENT: client_ws, SERVER: upstream.ws}
        self._upstream = upstream
        self._emit = emit
        self._close_timeout = close_timeout
        self._recorder = recorder
        self._max_payload = recorder.max_payload if recorder is not None else 1 << 62
        self._faults = faults
        self.watch_messages = False  # a fault waits for a number of messages
        self.stalled: dict[Direction, int] = {}  # direction -> the fault holding it back
        self.fault_id: int | None = None  # the fault that ended the session
        self._sent_close: set[Side] = set()
        self._got_close: set[Side] = set()
        self._outcome: tuple[int, str, ClosedBy] | None = None
        self._clean = False
        self._unclean = False  # a leg ended without a close reply we saw
        self._finished = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Future] = set()

    async def run(self) -> SessionClosed:
        pumps = [
            asyncio.ensure_future(self._pump(CLIENT)),
            asyncio.ensure_future(self._pump(SERVER)),
        ]
        try:
            await self._finished.wait()
        finally:
            self._teardown()
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        code, reason, closed_by = self._outcome or (ABNORMAL, "", "proxy")
        return SessionClosed(
            self.session_id,
            time.time(),
            code,
            reason,
            closed_by,
            self._clean,
            self.frames["c2s"],
            self.frames["s2c"],
            self.bytes["c2s"],
            self.bytes["s2c"],
            self.last_frame_at,
            self.fault_id,
        )

    async def close_from_proxy(
        self, code: int = GOING_AWAY, reason: str = "", *, upstream_code: int | None = None
    ) -> None:
        """Close both legs with close frames of our own (shutdown, faults)."""
        if self._outcome is None:
            self._set_outcome(code, reason, "proxy")
        await self._send_close(CLIENT, code, reason, record=True)
        if upstream_code is None:
            await self._send_close(SERVER, code, reason, record=True)
        else:
            await self._send_close(SERVER, upstream_code, "sentinel-ws fault", record=True)
        self._check_complete()
        await self._finished.wait()

    # -- faults act through these -----------------------------------------------

    def inject_close(self, code: int, reason: str, fault_id: int | None) -> None:
        """As a server crash looks to a browser: the client gets `code`, the upstream 1001."""
        if self._outcome is None:
            self.fault_id = fault_id
        self.stalled.clear()
        task = asyncio.ensure_future(self.close_from_proxy(code, reason, upstream_code=GOING_AWAY))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def inject_abort(self, fault_id: int | None) -> None:
        """Both TCP connections cut with no close frame: each side sees 1006."""
        if self._finished.is_set():
            return
        if self._outcome is None:
            self.fault_id = fault_id
            self._set_outcome(ABNORMAL, "", "proxy")
        self._clean = False
        self._finished.set()

    def stall(self, direction: str, fault_id: int) -> None:
        """Stop forwarding in a direction, TCP left open: a stale connection."""
        for d in ("c2s", "s2c"):
            if direction in ("both", d):
                self.stalled[d] = fault_id  # type: ignore[index]

    async def _pump(self, side: Side) -> None:
        source = self._ws[side]
        sink = self._ws[_OTHER[side]]
        direction = _FROM[side]
        emit, recorder, faults = self._emit, self._recorder, self._faults
        while True:
            msg = await source.receive()
            opcode = _OPCODES.get(msg.type)
            if opcode is not None:
                data: bytes = msg.data
                now = time.time()
                if faults is not None and (faults.message_faults or self.stalled):
                    if await self._faulted(direction, opcode, data, now):
                        continue
                else:
                    emit(self._frame(direction, opcode, data, now))
                self.frames[direction] += 1
                self.bytes[direction] += len(data)
                self.last_activity = self.last_frame_at = now
                if self.watch_messages and faults is not None:
                    faults.on_message(self)
                if _OTHER[side] not in self._sent_close:
                    try:
                        await sink.send_frame(data, msg.type)
                    except ConnectionError:
                        pass  # the other pump sees that leg end and finishes the session
                if recorder is not None and recorder.backlog() > recorder.backlog_high:
                    await recorder.catch_up()
                continue
            if msg.type is WSMsgType.CLOSE:
                await self._on_close(side, msg.data, msg.extra or "")
            elif msg.type is WSMsgType.ERROR and isinstance(msg.data, WebSocketError):
                await self._on_protocol_error(side, msg.data)
            else:
                self._on_lost(side)
            return

    async def _faulted(self, direction: Direction, opcode: str, data: bytes, now: float) -> bool:
        """Record the frame as a fault touched it; True when it must not be forwarded."""
        stalled_by = self.stalled.get(direction)
        if stalled_by is not None:
            frame = self._frame(direction, opcode, data, now)
            self._emit(frame._replace(fault_id=stalled_by, fault_action="stalled"))
            self._count(direction, data, now)
            return True
        decision = self._faults.on_frame(self, direction, data) if self._faults else None
        if decision is None:
            self._emit(self._frame(direction, opcode, data, now))
            return False
        action, fault_id, delay = decision
        kind = "dropped" if action == "drop" else "delayed"
        frame = self._frame(direction, opcode, data, now)
        self._emit(frame._replace(fault_id=fault_id, fault_action=kind))
        if action == "drop":
            self._count(direction, data, now)
            return True
        await asyncio.sleep(delay)  # later frames wait behind it, as on a slow link
        return False

    def _frame(
        self,
        direction: Direction,
        opcode: str,
        data: bytes,
        now: float,
        code: int | None = None,
        reason: str | None = None,
    ) -> Frame:
        return whole_frame(
            self.session_id,
            now,
            direction,
            opcode,
            data,
            max_payload=self._max_payload,
            close_code=code,
            close_reason=reason,
        )

    def _count(self, direction: Direction, data: bytes, now: float) -> None:
        self.frames[direction] += 1
        self.bytes[direction] += len(data)
        self.last_activity = self.last_frame_at = now

    async def _on_close(self, side: Side, raw_code: int, reason: str) -> None:
        code = raw_code or NO_STATUS
        self._record(_FROM[side], code, reason)
        self._got_close.add(side)
        if self._outcome is None:
            self._set_outcome(code, reason, side)
        await self._send_close(_OTHER[side], code, reason, record=False)
        self._check_complete()

    async def _on_protocol_error(self, side: Side, exc: WebSocketError) -> None:
        # aiohttp has already sent this leg a close with exc.code (1009 for a
        # message over --max-message, 1002/1007 for broken frames) and, its
        # parser being broken, closed the TCP connection without reading a
        # reply: the leg is over, but not cleanly.
        reason = str(exc)
        self._record(_TO[side], exc.code, "", "proxy")  # aiohttp sends the code alone
        self._sent_close.add(side)
        self._got_close.add(side)
        self._unclean = True
        if self._outcome is None:
            self._set_outcome(exc.code, reason, "proxy")
        note = f"sentinel-ws: {side} leg closed {exc.code} {close_code_name(exc.code)}"
        await self._send_close(_OTHER[side], GOING_AWAY, note, record=True)
        self._check_complete()

    def _on_lost(self, side: Side) -> None:
        """The side's TCP connection ended without a close frame."""
        if self._finished.is_set():
            return
        if self._outcome is None:
            self._set_outcome(ABNORMAL, "", side)
        self._clean = False
        self._finished.set()

    async def _send_close(self, side: Side, code: int, reason: str, *, record: bool) -> None:
        if side in self._sent_close:
            return
        self._sent_close.add(side)
        if record:
            self._record(_TO[side], code, reason, "proxy")
        try:
            await self._ws[side].send_frame(close_payload(code, reason), WSMsgType.CLOSE)
        except ConnectionError:
            self._on_lost(side)

    def _record(
        self, direction: Direction, code: int, reason: str, source: str | None = None
    ) -> None:
        payload = close_payload(code, reason)
        now = time.time()
        frame = self._frame(direction, "close", payload, now, code, reason)
        self._emit(frame._replace(source=source) if source else frame)
        self.frames[direction] += 1
        self.bytes[direction] += len(payload)
        self.last_activity = now

    def _set_outcome(self, code: int, reason: str, closed_by: ClosedBy) -> None:
        self._outcome = (code, reason, closed_by)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._close_timeout, self._give_up)

    def _give_up(self) -> None:
        # A side that never answers our close frame: drop both, not clean.
        self._clean = False
        self._finished.set()

    def _check_complete(self) -> None:
        if len(self._sent_close) == 2 and len(self._got_close) == 2 and not self._finished.is_set():
            self._clean = not self._unclean
            self._finished.set()

    def _teardown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in self._tasks:
            task.cancel()
        # The server side of a WebSocket closes TCP first (RFC 6455 section 7.1.1);
        # after an abrupt loss this is also how the loss reaches the other side.
        self._upstream.drop()
        transport = self._request.transport
        if transport is not None:
            transport.close()
