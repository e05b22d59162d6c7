"""One proxied WebSocket as bytes: forward first, look second.

After the 101, each side's bytes are written to the other side as they
arrive, unchanged, and then parsed (proxy/frames.py) for the recording, the
counters and the faults. Nothing is refused or rewritten: fragments, masks,
RSV bits, reserved opcodes, close codes and compressed payloads reach the
other endpoint exactly as they were sent, so its own behaviour on bad input is
what the developer sees.

Only when a direction needs to act on whole frames (a drop, latency or stall
fault, a ``--max-message`` limit, a close frame of the proxy's own going in
between frames) does it parse first and forward frame by frame; it returns
to plain forwarding at the next frame boundary once nothing needs it.

Memory per connection does not grow with message size: reading from a side
pauses while the other side's write buffer is full (``pause_writing``), while
a held-back direction's queue is long, and while the recorder is behind.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from sentinel_ws_proxy.events import ClosedBy, Direction, Event, Frame, SessionClosed
from sentinel_ws_proxy.protocol import ABNORMAL, GOING_AWAY, close_payload, payload_bytes
from sentinel_ws_proxy.proxy.frames import CLOSE, Deflate, FrameHeader, FrameParser, encode_frame

if TYPE_CHECKING:
    from sentinel_ws_proxy.faults.engine import FaultEngine

Side = Literal["client", "server"]
CLIENT: Side = "client"
SERVER: Side = "server"

# Why a side is not being read (a bit each).
SINK_FULL, RECORDER, QUEUE = 1, 2, 4
QUEUE_HIGH = 256 * 1024  # bytes a held-back direction may queue before its source pauses
HOLD_LIMIT = 1024 * 1024  # a drop fault with match= looks at frames up to this size

FORWARD, DISCARD, HOLD = 0, 1, 2


class Leg(asyncio.Protocol):
    """One TCP (or TLS) connection: the client's or the upstream's."""

    __slots__ = ("eof", "feed", "holds", "lost", "relay", "side", "transport")

    def __init__(self, relay: Relay, side: Side, transport: asyncio.Transport):
        self.relay = relay
        self.side = side
        self.transport = transport
        self.feed: Callable[[bytes], None] = lambda data: None
        self.holds = 0
        self.lost = False
        self.eof = False

    def data_received(self, data: bytes) -> None:
        self.feed(data)

    def eof_received(self) -> bool:
        return self.relay.on_eof(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.relay.on_lost(self)

    def pause_writing(self) -> None:
        self.relay.towards(self).source.hold(SINK_FULL)

    def resume_writing(self) -> None:
        self.relay.towards(self).source.release(SINK_FULL)

    def hold(self, reason: int) -> None:
        if not self.holds and not self.lost:
            self.transport.pause_reading()
        self.holds |= reason

    def release(self, reason: int) -> None:
        if self.holds & reason:
            self.holds &= ~reason
            if not self.holds and not self.lost:
                self.transport.resume_reading()


class Pipe:
    """One direction: a source leg's bytes to a sink leg, and the frames they carry."""

    __slots__ = (
        "closed_to_sink",
        "direction",
        "dropping",
        "eof_pending",
        "fast",
        "fault",
        "header",
        "held",
        "injections",
        "kind",
        "message_faults",
        "message_size",
        "own_bytes",
        "own_frames",
        "parser",
        "pending",
        "pending_at",
        "queue",
        "queued",
        "relay",
        "release_at",
        "sink",
        "sink_open",
        "source",
        "special",
        "timer",
    )

    def __init__(self, relay: Relay, source: Leg, sink: Leg, parser: FrameParser):
        self.relay = relay
        self.source = source
        self.sink = sink
        self.parser = parser
        self.direction: Direction = parser.direction
        self.sink_open = True  # the sink's connection is up
        self.closed_to_sink = False  # the proxy sent the sink a close of its own
        self.special = False  # something needs frame-by-frame forwarding
        self.fast = True
        self.message_faults = relay.faults.message_faults if relay.faults else []
        # Frame-by-frame state.
        self.pending = bytearray()  # bytes fed and not yet sent, held or dropped
        self.pending_at = 0  # absolute stream offset of pending[0]
        self.header: FrameHeader | None = None
        self.kind = FORWARD
        self.release_at = 0.0
        self.fault: tuple[int, str] | None = None
        self.dropping: tuple[int, str] | None = None  # a dropped message's later fragments
        self.held = bytearray()
        self.message_size = 0  # bytes of the current message's frames so far (--max-message)
        self.queue: deque[tuple[float, bytes]] | None = None  # made when first needed
        self.queued = 0
        self.timer: asyncio.TimerHandle | None = None
        self.injections: list[tuple[bytes, int, str]] = []
        self.own_frames = 0  # frames of the proxy's own sent this way
        self.own_bytes = 0
        self.eof_pending = False
        self._fast_callbacks()

    # -- feeding ---------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self.fast and not self.message_faults and not self.special:
            if self.sink_open:
                self.sink.transport.write(data)
            self.parser.feed(data, time.time())
        else:
            if self.fast:
                self._to_frames()
            self._feed_frames(data)
        after = self.relay.after_feed
        if after is not None:
            after()

    def _fast_callbacks(self) -> None:
        p = self.parser
        p.on_header = None
        p.emit = self.relay.emit
        p.on_close = self._fast_close

    def _fast_close(self, frame: Frame) -> None:
        self.relay.on_close_frame(self, frame)

    def _to_frames(self) -> None:
        """Forward frame by frame from here on; what went out already was forwarded whole."""
        self.fast = False
        p = self.parser
        p.on_header = self._on_header
        p.emit = self._on_frame
        p.on_close = None
        self.pending_at = p.position
        self.header = p.current
        self.kind, self.fault, self.release_at = FORWARD, None, 0.0

    def _maybe_fast(self) -> None:
        if (
            self.special
            or self.message_faults
            or self.queue
            or self.pending
            or self.held
            or self.kind != FORWARD
            or not self.parser.at_boundary
            or self.parser.in_message
        ):
            return
        self.fast = True
        self._fast_callbacks()

    def _feed_frames(self, data: bytes) -> None:
        self.pending += data
        self.parser.feed(data, time.time())
        self._dispatch(self.parser.owned_until)
        self._maybe_fast()

    def _dispatch(self, upto: int) -> None:
        """Send, hold or drop the pending bytes up to an absolute offset, as decided."""
        n = upto - self.pending_at
        if n <= 0:
            return
        chunk = bytes(self.pending[:n])
        del self.pending[:n]
        self.pending_at = upto
        if self.kind == FORWARD:
            self._send(chunk, self.release_at)
        elif self.kind == HOLD:
            self.held += chunk

    def _on_header(self, offset: int, h: FrameHeader) -> None:
        self._dispatch(offset)
        self.header = h
        if offset < self.pending_at:
            # Part of this frame went out on the fast path: it goes out whole.
            self.kind, self.fault, self.release_at = FORWARD, None, 0.0
            return
        self.kind, self.fault, self.release_at = self.relay.decide(self, h)

    def _on_frame(self, frame: Frame) -> None:
        h = self.header
        if h is not None:
            if self.kind == HOLD:
                self.kind, self.fault, self.release_at = self.relay.decide(self, h, frame)
                held = bytes(self.held)
                self.held.clear()
                if self.kind == FORWARD:
                    self._send(held, self.release_at)
            self._dispatch(h.end)
        self.header = None
        if self.kind == DISCARD or self.fault is not None or not self.sink_open:
            fault_id, action = self.fault or (None, None)
            frame = frame._replace(
                forwarded=0 if self.kind == DISCARD or not self.sink_open else 1,
                fault_id=fault_id,
                fault_action=action,
            )
        if frame.opcode == "continuation":
            self.message_size += frame.size
        elif frame.opcode in ("text", "binary"):
            self.message_size = frame.size
        self.relay.emit(frame)
        if frame.opcode == "close":
            self.relay.on_close_frame(self, frame)
        self.relay.on_frame_seen()
        self.kind, self.fault = FORWARD, None
        if self.injections:
            self._inject_now()

    # -- writing ---------------------------------------------------------------------

    def _send(self, chunk: bytes, release_at: float) -> None:
        if not self.sink_open or not chunk:
            return
        if not self.queue and release_at <= time.time():
            self.sink.transport.write(chunk)
            return
        if self.queue is None:
            self.queue = deque()
        self.queue.append((release_at, chunk))
        self.queued += len(chunk)
        if self.queued > QUEUE_HIGH:
            self.source.hold(QUEUE)
        self._schedule()

    def _schedule(self) -> None:
        if self.timer is None and self.queue:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_at(
                loop.time() + max(0.0, self.queue[0][0] - time.time()), self._drain
            )

    def _drain(self) -> None:
        self.timer = None
        now = time.time()
        while self.queue and self.queue[0][0] <= now:
            _, chunk = self.queue.popleft()
            self.queued -= len(chunk)
            if self.sink_open:
                self.sink.transport.write(chunk)
        if self.queued <= QUEUE_HIGH // 4:
            self.source.release(QUEUE)
        if self.queue:
            self._schedule()
        elif self.eof_pending:
            self.relay.pass_eof(self)

    def flushed(self) -> bool:
        return not self.queue

    # -- frames of the proxy's own ---------------------------------------------------

    def inject_close(self, code: int, reason: str) -> None:
        """A close frame of the proxy's own to the sink, at the next frame boundary."""
        if self.closed_to_sink or not self.sink_open or self.parser.closed:
            return  # that side has its close already
        self.injections.append((close_payload(code, reason), code, reason))
        self.special = True
        if self.fast:
            self._to_frames()
        if self.parser.at_boundary and not self.pending:
            self._inject_now()

    def _inject_now(self) -> None:
        for payload, code, reason in self.injections:
            mask = os.urandom(4) if self.direction == "c2s" else None
            self._send(encode_frame(CLOSE, payload, mask=mask), max(self.release_at, time.time()))
            self.parser.messages += 1
            size = len(payload)
            self.own_frames += 1
            self.own_bytes += size
            self.relay.emit(
                Frame(
                    self.parser.session_id,
                    time.time(),
                    self.direction,
                    "proxy",
                    self.parser.messages,
                    "close",
                    1,
                    0,
                    1 if mask else 0,
                    0,
                    size,
                    size,
                    payload,
                    0,
                    1 if self.sink_open else 0,
                    code,
                    reason,
                )
            )
        self.injections.clear()
        self.closed_to_sink = True
        self.relay.sent_close.add(self.sink.side)


class Relay:
    """A proxied WebSocket from the 101 on: two legs, two pipes, and how it ends."""

    __slots__ = (
        "_on_finished",
        "_timer",
        "after_feed",
        "c2s",
        "client_addr",
        "close_timeout",
        "done",
        "emit",
        "fault_id",
        "faults",
        "finished",
        "got_close",
        "legs",
        "max_message",
        "opened_at",
        "outcome",
        "path",
        "proxy_closing",
        "s2c",
        "sent_close",
        "session_id",
        "stalled",
        "watch_messages",
    )

    def __init__(
        self,
        session_id: int,
        *,
        client: asyncio.Transport,
        server: asyncio.Transport,
        client_addr: str,
        path: str,
        emit: Callable[[Event], None],
        max_payload: int,
        deflate: Deflate | None,
        close_timeout: float,
        max_message: int = 0,
        faults: FaultEngine | None = None,
        after_feed: Callable[[], None] | None = None,
        on_finished: Callable[[Relay, SessionClosed], None] | None = None,
    ):
        self.session_id = session_id
        self.client_addr = client_addr
        self.path = path
        self.opened_at = time.time()
        self.emit = emit
        self.faults = faults
        self.after_feed = after_feed
        self.max_message = max_message
        self.close_timeout = close_timeout
        self._on_finished = on_finished
        self.watch_messages = False  # a fault waits for a number of messages
        self.stalled: dict[str, int] = {}  # direction -> the fault holding it back
        self.fault_id: int | None = None  # the fault that ended the session
        self.got_close: set[Side] = set()
        self.sent_close: set[Side] = set()
        self.outcome: tuple[int | None, str | None, ClosedBy] | None = None
        self.proxy_closing = False
        self.finished = False
        self.done: asyncio.Future[SessionClosed] = asyncio.get_running_loop().create_future()
        self._timer: asyncio.TimerHandle | None = None
        self.legs = {CLIENT: Leg(self, CLIENT, client), SERVER: Leg(self, SERVER, server)}
        self.c2s = self._pipe(CLIENT, SERVER, "c2s", "client", max_payload, deflate)
        self.s2c = self._pipe(SERVER, CLIENT, "s2c", "server", max_payload, deflate)
        for pipe in (self.c2s, self.s2c):
            pipe.source.feed = pipe.feed
            pipe.special = bool(max_message)
        client.set_protocol(self.legs[CLIENT])
        server.set_protocol(self.legs[SERVER])

    def _pipe(
        self,
        source: Side,
        sink: Side,
        direction: Direction,
        who: Literal["client", "server"],
        max_payload: int,
        deflate: Deflate | None,
    ) -> Pipe:
        parser = FrameParser(
            self.session_id, direction, who, self.emit, max_payload=max_payload, deflate=deflate
        )
        return Pipe(self, self.legs[source], self.legs[sink], parser)

    def towards(self, leg: Leg) -> Pipe:
        """The pipe whose sink is this leg."""
        return self.s2c if leg.side == CLIENT else self.c2s

    def away_from(self, leg: Leg) -> Pipe:
        return self.c2s if leg.side == CLIENT else self.s2c

    # -- what faults and the admin API read and do -----------------------------------

    @property
    def frames(self) -> dict[str, int]:
        return {"c2s": self.c2s.parser.frames, "s2c": self.s2c.parser.frames}

    @property
    def bytes(self) -> dict[str, int]:
        return {"c2s": self.c2s.parser.bytes, "s2c": self.s2c.parser.bytes}

    @property
    def last_activity(self) -> float:
        seen = [p.parser.last_data_at for p in (self.c2s, self.s2c) if p.parser.last_data_at]
        return max(seen, default=self.opened_at)

    def inject_close(self, code: int, reason: str, fault_id: int | None) -> None:
        """As a server crash looks to a browser: the client gets `code`, the upstream 1001."""
        if self.outcome is None:
            self.fault_id = fault_id
        self.stalled.clear()
        self.close_from_proxy(code, reason, upstream_code=GOING_AWAY)

    def inject_abort(self, fault_id: int | None) -> None:
        """Both TCP connections cut with no close frame: each side sees 1006."""
        if self.finished:
            return
        if self.outcome is None:
            self.fault_id = fault_id
            self.outcome = (ABNORMAL, "", "proxy")
        for leg in self.legs.values():
            leg.transport.abort()

    def stall(self, direction: str, fault_id: int) -> None:
        """Stop forwarding in a direction, TCP left open: a stale connection."""
        for pipe in (self.c2s, self.s2c):
            if direction in ("both", pipe.direction):
                self.stalled[pipe.direction] = fault_id
                pipe.special = True

    def close_from_proxy(
        self, code: int = GOING_AWAY, reason: str = "", *, upstream_code: int | None = None
    ) -> asyncio.Future[SessionClosed]:
        """Close both legs with close frames of the proxy's own (shutdown, faults, limits)."""
        if self.outcome is None:
            self.outcome = (code, reason, "proxy")
            self._start_timer()
        self.proxy_closing = True
        self.s2c.inject_close(code, reason)
        if upstream_code is None:
            self.c2s.inject_close(code, reason)
        else:
            self.c2s.inject_close(upstream_code, "sentinel-ws fault")
        self._close_when_answered()
        return self.done

    # -- decisions for frame-by-frame forwarding ----------------------------------------

    def decide(
        self, pipe: Pipe, h: FrameHeader, frame: Frame | None = None
    ) -> tuple[int, tuple[int, str] | None, float]:
        """(FORWARD/DISCARD/HOLD, fault that acted, release time) for a frame."""
        now = time.time()
        if pipe.closed_to_sink:
            return DISCARD, None, 0.0
        opcode = h.opcode
        release = max(pipe.release_at, now)
        if opcode in (0, 1, 2) and self.max_message:
            # The size the application would get: inflated, for a compressed message.
            before = pipe.message_size if opcode == 0 else 0
            if frame is not None:
                size = before + frame.size if h.compressed else 0
            elif h.compressed and h.length <= HOLD_LIMIT:
                return HOLD, None, release  # judged once inflated
            else:
                size = before + h.length
            if size > self.max_message:
                self._too_big(pipe)
                return DISCARD, None, 0.0
        stalled_by = self.stalled.get(pipe.direction)
        if stalled_by is not None and opcode != CLOSE:
            return DISCARD, (stalled_by, "stalled"), 0.0
        if opcode in (1, 2):
            pipe.dropping = None
        elif opcode == 0 and pipe.dropping is not None:
            return DISCARD, pipe.dropping, 0.0
        if not pipe.message_faults or opcode == CLOSE or self.faults is None:
            return FORWARD, None, release
        if frame is None and h.length <= HOLD_LIMIT and self.faults.matches_payload(pipe.direction):
            return HOLD, None, release
        payload = h.prefix if frame is None else payload_bytes(frame.payload)
        found = self.faults.on_frame(self, pipe.direction, payload, h.length)
        if found is None:
            return FORWARD, None, release
        decision, fault_id = found
        if decision.drop:
            if opcode in (1, 2) and not h.fin:
                pipe.dropping = (fault_id, "dropped")
            return DISCARD, (fault_id, "dropped"), 0.0
        return FORWARD, (fault_id, "delayed"), max(pipe.release_at, decision.release_at)

    def _too_big(self, pipe: Pipe) -> None:
        """--max-message: the sender gets 1009 from the proxy, the other side 1001."""
        sender = SERVER if pipe.direction == "s2c" else CLIENT
        if self.outcome is None:
            self.outcome = (1009, "", "proxy")
            self._start_timer()
        self.proxy_closing = True
        note = f"sentinel-ws: {sender} sent a message over --max-message {self.max_message}"
        back = self.s2c if sender == CLIENT else self.c2s
        back.inject_close(1009, "")
        pipe.inject_close(GOING_AWAY, note[:123])
        self._close_when_answered()

    def on_frame_seen(self) -> None:
        if self.watch_messages and self.faults is not None:
            self.faults.on_message(self)

    # -- how it ends -----------------------------------------------------------------

    def on_close_frame(self, pipe: Pipe, frame: Frame) -> None:
        side = pipe.source.side
        self.got_close.add(side)
        if frame.forwarded:
            self.sent_close.add(pipe.sink.side)
        if self.outcome is None:
            code = frame.close_code
            self.outcome = (code, frame.close_reason, side)
            self._start_timer()
        self._close_when_answered()

    def _close_when_answered(self) -> None:
        # Closes of the proxy's own were answered by both sides: as the client's
        # server, the proxy ends the TCP connections itself.
        if self.proxy_closing and self.got_close == {CLIENT, SERVER}:
            for pipe in (self.s2c, self.c2s):
                if pipe.flushed():
                    pipe.sink.transport.close()
                else:
                    pipe.eof_pending = True

    def pass_eof(self, pipe: Pipe) -> None:
        """A source's end reaches its sink once everything queued for the sink is out."""
        pipe.eof_pending = False
        sink = pipe.sink
        if sink.lost or not pipe.sink_open:
            return
        if self.proxy_closing and sink.side not in self.got_close:
            # The proxy's close to that side awaits its answer; closing now would make the
            # kernel reset a connection whose peer is still sending, losing our close frame.
            return
        pipe.sink_open = False  # nothing more goes this way
        pipe.parser.forwarded = 0
        if self.proxy_closing or not sink.transport.can_write_eof() or pipe.source.lost:
            sink.transport.close()
        else:
            sink.transport.write_eof()

    def on_eof(self, leg: Leg) -> bool:
        leg.eof = True
        if self.outcome is None:  # its TCP ended before any close frame
            self.outcome = (ABNORMAL, "", leg.side)
            self._start_timer()
        pipe = self.away_from(leg)
        if pipe.flushed():
            self.pass_eof(pipe)
        else:
            pipe.eof_pending = True
        if all(lg.eof or lg.lost for lg in self.legs.values()):
            for lg in self.legs.values():
                lg.transport.close()
        return True  # keep writing to it until the other side has finished too

    def on_lost(self, leg: Leg) -> None:
        leg.lost = True
        into = self.towards(leg)
        into.sink_open = False
        into.parser.forwarded = 0
        if self.outcome is None:
            self.outcome = (ABNORMAL, "", leg.side)
        other = self.legs[SERVER if leg.side == CLIENT else CLIENT]
        if other.lost:
            self._finish()
            return
        out = self.away_from(leg)
        if out.flushed():
            other.transport.close()
        else:
            out.eof_pending = True
        self._start_timer()

    def _start_timer(self) -> None:
        if self._timer is None and not self.finished:
            self._timer = asyncio.get_running_loop().call_later(self.close_timeout, self._give_up)

    def _give_up(self) -> None:
        # A side that does not finish closing in time: drop both.
        self._timer = None
        for leg in self.legs.values():
            if not leg.lost:
                leg.transport.abort()

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self._timer is not None:
            self._timer.cancel()
        for pipe in (self.c2s, self.s2c):
            if pipe.timer is not None:
                pipe.timer.cancel()
            pipe.queue = None
        code, reason, closed_by = self.outcome or (ABNORMAL, "", "proxy")
        clean = self.got_close == {CLIENT, SERVER} and self.sent_close == {CLIENT, SERVER}
        last = [p.parser.last_data_at for p in (self.c2s, self.s2c) if p.parser.last_data_at]
        closed = SessionClosed(
            self.session_id,
            time.time(),
            code,
            reason,
            closed_by,
            clean,
            self.c2s.parser.frames + self.c2s.own_frames,
            self.s2c.parser.frames + self.s2c.own_frames,
            self.c2s.parser.bytes + self.c2s.own_bytes,
            self.s2c.parser.bytes + self.s2c.own_bytes,
            max(last) if last else None,
            self.fault_id,
        )
        if self._on_finished is not None:
            self._on_finished(self, closed)
        if not self.done.done():
            self.done.set_result(closed)
