"""Credentials inside messages, redacted before they are recorded.

Headers and query strings are not the only place credentials travel: graphql-ws
sends them in connection_init's payload, Socket.IO in its CONNECT's auth, STOMP
in CONNECT's passcode, MQTT in CONNECT's password. A session's decoder (chosen
by its subprotocol and path when it opens, decoders/) names those fields; the
recorder asks it about a session's first client messages only, where every one
of these protocols sends them, so that a long session costs nothing.

MQTT clients may write one CONNECT in a dozen WebSocket messages (mqtt.js writes
field by field): for such a protocol (a decoder with ``secret_ranges``) the
session's first client messages are held here until the CONNECT is whole, and
the secret bytes are masked with ``*`` in place, so that every message keeps its
length and the packet still parses. They are held by the recorder only, never
by the relay, and let go (as they are) when the session ends or the CONNECT is
not whole within HOLD_LIMIT bytes.

Pure bookkeeping over events: the writer thread calls it, nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType

from sentinel_ws_proxy.decoders import choose
from sentinel_ws_proxy.events import Event, Frame, SessionClosed, SessionOpened

FIRST_MESSAGES = 8  # client messages of a session looked at
HOLD_LIMIT = 64 * 1024  # bytes held for a packet split over messages
MASK = 0x2A  # "*"


@dataclass
class _Watch:
    decoder: ModuleType
    seen: int = 0  # client messages looked at
    held: list[Frame] = field(default_factory=list)
    held_bytes: int = 0
    streaming: bool = True  # still joining messages into the first packet


@dataclass
class PayloadSecrets:
    enabled: bool = True
    redacted: int = 0  # fields redacted so far
    _watched: dict[int, _Watch] = field(default_factory=dict)

    def filter(self, batch: Iterable[Event]) -> Iterator[Event]:
        """The batch as it should be stored: secrets redacted, split packets held back
        until they are whole (then let go in their place, before what followed them)."""
        for event in batch:
            kind = type(event)
            if kind is Frame:
                yield from self._frame(event)  # type: ignore[arg-type]
            elif kind is SessionOpened:
                self._opened(event)  # type: ignore[arg-type]
                yield event
            elif kind is SessionClosed:
                yield from self.release(event.session_id)  # type: ignore[union-attr]
                yield event
            else:
                yield event

    def release(self, session_id: int | None = None) -> list[Frame]:
        """Frames held for one session (None: every session, when the recorder stops)."""
        ids = list(self._watched) if session_id is None else [session_id]
        out: list[Frame] = []
        for sid in ids:
            watch = self._watched.pop(sid, None)
            if watch is not None:
                out += watch.held
        return out

    def _opened(self, s: SessionOpened) -> None:
        if not self.enabled or s.handshake_status != 101:
            return
        decoder = choose(s.subprotocol, s.path, s.query, ())
        if decoder is not None and (
            hasattr(decoder, "redact") or hasattr(decoder, "secret_ranges")
        ):
            self._watched[s.session_id] = _Watch(decoder)

    def _frame(self, f: Frame) -> list[Frame]:
        watch = self._watched.get(f.session_id)
        if (
            watch is None
            or f.direction != "c2s"
            or f.opcode not in ("text", "binary", "continuation")
        ):
            if watch is not None and watch.held and f.direction == "c2s":
                return [*self._let_go(f.session_id, watch), f]
            return [f]
        if hasattr(watch.decoder, "secret_ranges") and watch.streaming:
            return self._stream(f, watch)
        if f.fin != 1 or f.opcode == "continuation":
            return [f]  # a fragmented message: only whole one-frame messages are read
        watch.seen += 1
        if watch.seen > FIRST_MESSAGES:
            del self._watched[f.session_id]
            return [f]
        return [self._redacted(f, watch.decoder)]

    def _redacted(self, f: Frame, decoder: ModuleType) -> Frame:
        try:
            found = decoder.redact(f.payload, "c2s") if hasattr(decoder, "redact") else None
        except Exception:  # a decoder's bug must not cost the recording a row
            found = None
        if not found or not found[1]:
            return f
        payload, count = found
        self.redacted += count
        return f._replace(payload=payload)

    def _stream(self, f: Frame, watch: _Watch) -> list[Frame]:
        """Join the first client messages until the first packet is whole, then mask."""
        watch.held.append(f)
        watch.held_bytes += len(f.payload) if f.payload is not None else 0
        joined = b"".join(_bytes(h.payload) for h in watch.held)
        ranges = watch.decoder.secret_ranges(joined)
        if ranges is None and watch.held_bytes <= HOLD_LIMIT and not f.truncated:
            return []  # not whole yet: wait for the next piece
        watch.streaming = False
        held, watch.held, watch.held_bytes = watch.held, [], 0
        if ranges:
            held = self._mask(held, ranges)
        return held

    def _mask(self, frames: list[Frame], ranges: list[tuple[int, int]]) -> list[Frame]:
        out, offset = [], 0
        for f in frames:
            data = _bytes(f.payload)
            end = offset + len(data)
            cut = bytearray(data)
            for start, stop in ranges:
                lo, hi = max(start, offset), min(stop, end)
                if lo < hi:
                    cut[lo - offset : hi - offset] = bytes([MASK]) * (hi - lo)
            if cut != data:
                f = f._replace(payload=bytes(cut))
            out.append(f)
            offset = end
        self.redacted += len(ranges)
        return out

    def _let_go(self, session_id: int, watch: _Watch) -> list[Frame]:
        held, watch.held, watch.held_bytes, watch.streaming = watch.held, [], 0, False
        return held


def _bytes(payload: str | bytes | None) -> bytes:
    if payload is None:
        return b""
    return payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
