"""Live counters for the /_sentinel/ endpoints.

Sessions, handshakes and HTTP requests are counted as their events pass.
Frames are not: each relay already counts its own (proxy/frames.py), so the
totals are the ended sessions' counts, added when each ends, plus the open
ones' counts, read when asked. The relay's path per frame stays free of
bookkeeping.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sentinel_ws_proxy.events import Event, HttpRequest, SessionClosed, SessionOpened

if TYPE_CHECKING:
    from sentinel_ws_proxy.proxy.relay import Relay


@dataclass
class LiveStats:
    sessions: int = 0
    handshake_failures: int = 0
    close_codes: Counter[int] = field(default_factory=Counter)
    http_requests: int = 0
    # What ended sessions carried, per direction.
    ended_frames: Counter[str] = field(default_factory=Counter)
    ended_bytes: Counter[str] = field(default_factory=Counter)
    # The Sentinel diagnostics call server-to-client messages "events broadcast".
    ended_broadcasts: int = 0
    ended_last_event: float | None = None

    def handle(self, event: Event) -> None:
        if isinstance(event, SessionOpened):
            self.sessions += 1
            if event.handshake_status != 101:
                self.handshake_failures += 1
        elif isinstance(event, SessionClosed):
            if event.close_code is not None:
                self.close_codes[event.close_code] += 1
        elif isinstance(event, HttpRequest):
            self.http_requests += 1

    def relay_ended(self, relay: Relay) -> None:
        for direction, n in relay.frames.items():
            self.ended_frames[direction] += n
        for direction, n in relay.bytes.items():
            self.ended_bytes[direction] += n
        self.ended_broadcasts += relay.s2c.parser.data_messages
        self.ended_last_event = _latest(self.ended_last_event, relay.s2c.parser.last_message_at)

    def frames(self, relays: Iterable[Relay]) -> dict[str, int]:
        out = Counter(self.ended_frames)
        for relay in relays:
            out.update(relay.frames)
        return {"c2s": out["c2s"], "s2c": out["s2c"]}

    def bytes(self, relays: Iterable[Relay]) -> dict[str, int]:
        out = Counter(self.ended_bytes)
        for relay in relays:
            out.update(relay.bytes)
        return {"c2s": out["c2s"], "s2c": out["s2c"]}

    def events_broadcast(self, relays: Iterable[Relay]) -> int:
        return self.ended_broadcasts + sum(r.s2c.parser.data_messages for r in relays)

    def last_event_time(self, relays: Iterable[Relay]) -> float | None:
        last = self.ended_last_event
        for relay in relays:
            last = _latest(last, relay.s2c.parser.last_message_at)
        return last


def _latest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)
