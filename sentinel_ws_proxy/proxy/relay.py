"""One proxied WebSocket as bytes: forward first, look second.

After the 101, each side's bytes are written to the other side as they
arrive, unchanged, and then parsed (proxy/frames.py) for the recording, the
counters and the faults. Nothing is refused or rewritten: fragments, masks,
RSV bits, reserved opcodes, close codes and compressed payloads reach the
other endpoint exactly as they were sent, so its own behaviour on bad input is
what the developer sees.

Only when a direction needs to act on whole frames (a drop, delay or stall
fault, a ``--max-message`` limit, a close frame of the proxy's own going in
between frames) does it parse first and forward frame by frame; it returns
to plain forwarding at the next frame boundary once nothing needs it.

Memory per connection does not grow with message size: reading from a side
pauses while the other side's write buffer is full (``pause_writing``), while
a held-back direction's queue is long, and while the recorder is behind.

This module is the I/O: what happens to a frame is decided by each direction's
FramePolicy (proxy/policy.py), how the session ends by its Closing
(proxy/closing.py); both are sans-I/O, as websockets keeps its protocol apart
from its asyncio layer. The relay feeds them what it sees and does what they say.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from sentinel_ws_proxy.events import Direction, Event, Frame, SessionClosed
from sentinel_ws_proxy.protocol import GOING_AWAY, MESSAGE_TOO_BIG, close_payload
from sentinel_ws_proxy.proxy.closing import (
    CLIENT,
    CLOSE_NOW,
    SERVER,
    WAIT,
    Abort,
    Action,
    Close,
    Closing,
    End,
    Finish,
    PassEof,
    SendClose,
    Side,
    StartTimer,
    other,
)
from sentinel_ws_proxy.proxy.frames import CLOSE, Deflate, FrameHeader, FrameParser, encode_frame
from sentinel_ws_proxy.proxy.policy import (
    DISCARD,
    DISCARDED,
    FORWARD,
    HOLD,
    TOO_BIG,
    FramePolicy,
    Verdict,
)

if TYPE_CHECKING:
    from sentinel_ws_proxy.faults.engine import FaultEngine

# Why a side is not being read (a bit each).
SINK_FULL, RECORDER, QUEUE = 1, 2, 4
QUEUE_HIGH = 256 * 1024  # bytes a held-back direction may queue before its source pauses


class Leg(asyncio.Protocol):
    """One TCP (or TLS) connection: the client's or the upstream's."""

    __slots__ = ("feed", "holds", "lost", "relay", "side", "transport")

    def __init__(self, relay: Relay, side: Side, transport: asyncio.Transport):
        self.relay = relay
        self.side = side
        self.transport = transport
        self.feed: Callable[[bytes], None] = lambda data: None
        self.holds = 0
        self.lost = False

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
        "eof_pending",
        "fast",
        "fault",
        "header",
        "held",
        "injections",
        "kind",
        "message_faults",
        "own_bytes",
        "own_frames",
        "parser",
        "pending",
        "pending_at",
        "policy",
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

    def __init__(
        self, relay: Relay, source: Leg, sink: Leg, parser: FrameParser, policy: FramePolicy
    ):
        self.relay = relay
        self.source = source
        self.sink = sink
        self.parser = parser
        self.policy = policy
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
        self.fault: tuple[int, str] | None = None  # (fault id, effect) acting on this frame
        self.held = bytearray()
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

    def _decide(self, h: FrameHeader, frame: Frame | None = None) -> Verdict:
        """The policy's verdict on a frame, or a discard once the proxy closed the sink."""
        if self.closed_to_sink:
            return DISCARDED
        verdict = self.policy.decide(h, frame, self.release_at, time.time())
        if verdict[0] == TOO_BIG:
            self.relay.too_big(self)
            return DISCARDED
        return verdict

    def _on_header(self, offset: int, h: FrameHeader) -> None:
        self._dispatch(offset)
        self.header = h
        if offset < self.pending_at:
            # Part of this frame went out on the fast path: it goes out whole.
            self.kind, self.fault, self.release_at = FORWARD, None, 0.0
            return
        self.kind, self.fault, self.release_at = self._decide(h)

    def _on_frame(self, frame: Frame) -> None:
        h = self.header
        if h is not None:
            if self.kind == HOLD:
                self.kind, self.fault, self.release_at = self._decide(h, frame)
                held = bytes(self.held)
                self.held.clear()
                if self.kind == FORWARD:
                    self._send(held, self.release_at)
            self._dispatch(h.end)
        self.header = None
        if self.kind == DISCARD or self.fault is not None or not self.sink_open:
            fault_id, effect = self.fault or (None, None)
            frame = frame._replace(
                forwarded=0 if self.kind == DISCARD or not self.sink_open else 1,
                fault_id=fault_id,
                fault_action=effect,
            )
        self.policy.seen(frame)
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

    def end_sink(self) -> None:
        """End the sink's connection once everything queued for it is out."""
        if self.flushed():
            self.sink.transport.close()
        else:
            self.eof_pending = True

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
                    session_id=self.parser.session_id,
                    ts=time.time(),
                    direction=self.direction,
                    source="proxy",
                    message=self.parser.messages,
                    opcode="close",
                    fin=1,
                    rsv=0,
                    masked=1 if mask else 0,
                    compressed=0,
                    size=size,
                    wire_size=size,
                    payload=payload,
                    truncated=0,
                    forwarded=1 if self.sink_open else 0,
                    close_code=code,
                    close_reason=reason,
                )
            )
        self.injections.clear()
        self.closed_to_sink = True
        self.relay.closing.close_sent(self.sink.side)


class Relay:
    """A proxied WebSocket from the 101 on: two legs, two pipes, and how it ends."""

    __slots__ = (
        "_on_finished",
        "_timer",
        "after_feed",
        "c2s",
        "client_addr",
        "close_timeout",
        "closing",
        "done",
        "emit",
        "faults",
        "legs",
        "max_message",
        "opened_at",
        "path",
        "s2c",
        "session_id",
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
        self.closing = Closing()
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
        policy = FramePolicy(
            direction, max_message=self.max_message, faults=self.faults, connection=self
        )
        return Pipe(self, self.legs[source], self.legs[sink], parser, policy)

    def towards(self, leg: Leg) -> Pipe:
        """The pipe whose sink is this leg."""
        return self.s2c if leg.side == CLIENT else self.c2s

    def into(self, side: Side) -> Pipe:
        """The pipe whose sink is that side."""
        return self.s2c if side == CLIENT else self.c2s

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
        for pipe in (self.c2s, self.s2c):
            pipe.policy.unstall()
        closes = ((CLIENT, code, reason), (SERVER, GOING_AWAY, "sentinel-ws fault"))
        self._do(self.closing.proxy_close(code, reason, closes, fault_id))

    def inject_abort(self, fault_id: int | None) -> None:
        """Both TCP connections cut with no close frame: each side sees 1006."""
        self._do(self.closing.abort(fault_id))

    def stall(self, direction: str, fault_id: int) -> None:
        """Stop forwarding in a direction, TCP left open: a stale connection."""
        for pipe in (self.c2s, self.s2c):
            if direction in ("both", pipe.direction):
                pipe.policy.stall(fault_id)
                pipe.special = True

    def close_from_proxy(
        self, code: int = GOING_AWAY, reason: str = "", *, upstream_code: int | None = None
    ) -> asyncio.Future[SessionClosed]:
        """Close both legs with close frames of the proxy's own (shutdown, faults, limits)."""
        upstream = (code, reason) if upstream_code is None else (upstream_code, "sentinel-ws fault")
        closes = ((CLIENT, code, reason), (SERVER, *upstream))
        self._do(self.closing.proxy_close(code, reason, closes))
        return self.done

    def too_big(self, pipe: Pipe) -> None:
        """--max-message: the sender gets 1009 from the proxy, the other side 1001."""
        sender = SERVER if pipe.direction == "s2c" else CLIENT
        note = f"sentinel-ws: {sender} sent a message over --max-message {self.max_message}"
        closes = ((sender, MESSAGE_TOO_BIG, ""), (other(sender), GOING_AWAY, note[:123]))
        self._do(self.closing.proxy_close(MESSAGE_TOO_BIG, "", closes))

    def on_frame_seen(self) -> None:
        if self.watch_messages and self.faults is not None:
            self.faults.on_message(self)

    # -- how it ends: what the wire says goes to self.closing, what it answers is done ------

    def on_close_frame(self, pipe: Pipe, frame: Frame) -> None:
        side = pipe.source.side
        actions = self.closing.close_frame(
            side, frame.close_code, frame.close_reason, bool(frame.forwarded)
        )
        if actions:
            self._do(actions)

    def on_eof(self, leg: Leg) -> bool:
        self._do(self.closing.eof(leg.side))
        return True  # keep writing to it until the other side has finished too

    def on_lost(self, leg: Leg) -> None:
        leg.lost = True
        into = self.towards(leg)
        into.sink_open = False
        into.parser.forwarded = 0
        self._do(self.closing.connection_lost(leg.side))

    def pass_eof(self, pipe: Pipe) -> None:
        """A source's end reaches its sink once everything queued for the sink is out."""
        pipe.eof_pending = False
        sink = pipe.sink
        if sink.lost or not pipe.sink_open:
            return
        how = self.closing.eof_to(sink.side, sink.transport.can_write_eof())
        if how == WAIT:
            return
        pipe.sink_open = False  # nothing more goes this way
        pipe.parser.forwarded = 0
        if how == CLOSE_NOW:
            sink.transport.close()
        else:
            sink.transport.write_eof()

    def _do(self, actions: list[Action]) -> None:
        for action in actions:
            DO[type(action)](self, action)

    def _send_close(self, action: SendClose) -> None:
        self.into(action.side).inject_close(action.code, action.reason)

    def _end(self, action: End) -> None:
        self.into(action.side).end_sink()

    def _pass_eof(self, action: PassEof) -> None:
        pipe = self.into(action.side)
        if pipe.flushed():
            self.pass_eof(pipe)
        else:
            pipe.eof_pending = True

    def _close(self, action: Close) -> None:
        self.legs[action.side].transport.close()

    def _abort(self, action: Abort) -> None:
        self.legs[action.side].transport.abort()

    def _start_timer(self, action: StartTimer) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.close_timeout, self._give_up)

    def _give_up(self) -> None:
        self._timer = None
        self._do(self.closing.timer_fired())

    def _finish(self, action: Finish | None = None) -> None:
        if self.closing.finished:
            return
        outcome = self.closing.finish()
        if self._timer is not None:
            self._timer.cancel()
        for pipe in (self.c2s, self.s2c):
            if pipe.timer is not None:
                pipe.timer.cancel()
            pipe.queue = None
        last = [p.parser.last_data_at for p in (self.c2s, self.s2c) if p.parser.last_data_at]
        closed = SessionClosed(
            session_id=self.session_id,
            ts=time.time(),
            close_code=outcome.close_code,
            close_reason=outcome.close_reason,
            closed_by=outcome.closed_by,
            clean=outcome.clean,
            frames_c2s=self.c2s.parser.frames + self.c2s.own_frames,
            frames_s2c=self.s2c.parser.frames + self.s2c.own_frames,
            bytes_c2s=self.c2s.parser.bytes + self.c2s.own_bytes,
            bytes_s2c=self.s2c.parser.bytes + self.s2c.own_bytes,
            last_frame_at=max(last) if last else None,
            fault_id=outcome.fault_id,
        )
        if self._on_finished is not None:
            self._on_finished(self, closed)
        if not self.done.done():
            self.done.set_result(closed)


# What the relay does for each of its Closing's actions.
DO: dict[type, Callable[[Relay, Any], None]] = {
    SendClose: Relay._send_close,
    End: Relay._end,
    PassEof: Relay._pass_eof,
    Close: Relay._close,
    Abort: Relay._abort,
    StartTimer: Relay._start_timer,
    Finish: Relay._finish,
}
