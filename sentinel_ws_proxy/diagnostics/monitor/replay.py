"""A recording replayed at Nx speed: its sessions and frames applied in recorded order."""

from __future__ import annotations

import heapq
import time
from pathlib import Path

from sentinel_ws_proxy.analysis.report import Window, classify_recording
from sentinel_ws_proxy.diagnostics.monitor.state import OpenConnection, RecordingState, close_row
from sentinel_ws_proxy.recording.reader import Recording
from sentinel_ws_proxy.recording.schema import SessionRow


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
        start = window.since
        if start is None and self._sessions:
            start = self._sessions[0].started_at
        self.state.clock = start or time.time()
        self._frames = self._recording.frame_clock(self.state.clock)
        self._pending: tuple | None = next(self._frames, None)
        self._last_event = self.state.clock

    def catch_up(self) -> None:
        """A snapshot shows the recording's end."""
        while not self.state.finished:
            self.advance(3600.0)

    def tick(self, real_seconds: float) -> None:
        if not self.state.finished:
            self.advance(real_seconds * self.speed)

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
        if summary.ended_at is not None:
            heapq.heappush(self._ends, (summary.ended_at, summary.id))

    def _close(self, session_id: int) -> None:
        summary = self._summary[session_id]
        self.state.open.pop(session_id, None)
        self.state.closes.appendleft(close_row(summary, self._category[summary.id]))

    def close(self) -> None:
        self._frames.close()
        self._recording.close()
