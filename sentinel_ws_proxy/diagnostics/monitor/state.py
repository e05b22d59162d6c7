"""The state the monitor's sources fill and its views draw."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from sentinel_ws_proxy.recording.schema import SessionRow

RECENT = 12


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


def close_row(summary: SessionRow, category: str) -> tuple:
    """A row of `RecordingState.closes`: (ended, id, client, path, code, closed by, verdict)."""
    return (
        summary.ended_at,
        summary.id,
        summary.client_addr,
        summary.path,
        summary.close_code,
        summary.closed_by,
        category,
    )


class RecordingSource(Protocol):
    """What the dashboard drives: following a recording or replaying one."""

    state: RecordingState

    def catch_up(self) -> None:
        """Bring the state to what a one-off snapshot shows."""

    def tick(self, real_seconds: float) -> None:
        """Move on after `real_seconds` of the dashboard's time."""

    def close(self) -> None: ...
