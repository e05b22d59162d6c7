"""Live counters: a sink that the /_sentinel/ endpoints read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sentinel_ws_proxy.events import Event, Frame, HttpRequest, SessionClosed, SessionOpened


@dataclass
class LiveStats:
    sessions: int = 0
    handshake_failures: int = 0
    frames: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    # The Sentinel diagnostics call server-to-client messages "events broadcast".
    events_broadcast: int = 0
    last_event_time: float | None = None
    close_codes: Counter[int] = field(default_factory=Counter)
    http_requests: int = 0

    def handle(self, event: Event) -> None:
        if isinstance(event, Frame):
            self.frames[event.direction] += 1
            self.bytes[event.direction] += event.size
            if event.direction == "s2c" and event.opcode in ("text", "binary"):
                self.events_broadcast += 1
                self.last_event_time = event.ts
        elif isinstance(event, SessionOpened):
            self.sessions += 1
            if event.handshake_status != 101:
                self.handshake_failures += 1
        elif isinstance(event, SessionClosed):
            if event.close_code is not None:
                self.close_codes[event.close_code] += 1
        elif isinstance(event, HttpRequest):
            self.http_requests += 1
