"""A recording followed while the proxy writes it: read again at each tick."""

from __future__ import annotations

import time
from pathlib import Path

from sentinel_ws_proxy.analysis.classify import classify_all
from sentinel_ws_proxy.analysis.report import Window
from sentinel_ws_proxy.diagnostics.monitor.state import (
    RECENT,
    OpenConnection,
    RecordingState,
    close_row,
)
from sentinel_ws_proxy.recording.reader import Recording


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

    def catch_up(self) -> None:
        """A snapshot shows the recording as it is now."""
        self.poll()

    def tick(self, real_seconds: float) -> None:
        self.poll()

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
            self.state.closes.append(close_row(s, category[s.id]))

    def close(self) -> None:
        self._recording.close()
