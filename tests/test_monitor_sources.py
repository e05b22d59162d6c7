"""The monitor's sources fill their state without a terminal; the terminal (drawing, keys,
the dashboard loop) is the CLI's, and diagnostics/ imports nothing from cli/ (issue 22)."""

from __future__ import annotations

import ast
import time
from pathlib import Path

from sentinel_ws_proxy.analysis.report import Window
from sentinel_ws_proxy.cli.monitor_view import render_recording, snapshot
from sentinel_ws_proxy.diagnostics.monitor.follow import FollowMonitor
from sentinel_ws_proxy.diagnostics.monitor.replay import ReplayMonitor
from sentinel_ws_proxy.diagnostics.monitor.state import OpenConnection, RecordingState
from sentinel_ws_proxy.events import SessionClosed, SessionOpened, whole_frame
from sentinel_ws_proxy.recording.redact import Redactor
from sentinel_ws_proxy.recording.writer import RecordingWriter
from tests.test_composition import PACKAGE, assert_imports_none


def test_diagnostics_imports_nothing_from_the_cli():
    assert_imports_none("diagnostics", "cli")


def test_the_monitor_sources_draw_nothing():
    for path in (PACKAGE / "diagnostics" / "monitor").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in getattr(node, "names", [])]
                assert not any(n.split(".")[0] == "rich" for n in names), path.name


def record(db: Path, start: float) -> None:
    """Session 1 opens, talks and closes cleanly; session 2 opens and stays open."""
    writer = RecordingWriter(db, redactor=Redactor(), max_payload=1024, listen="t", upstream="t")
    writer.open()
    first = writer.first_session_id
    headers = (("User-Agent", "a browser"),)
    writer.handle(SessionOpened(first, start, "10.0.0.1", "/ws/a", "", "ws://u/ws/a", headers, 101))
    writer.handle(whole_frame(first, start + 1, "c2s", "text", b"ping"))
    writer.handle(whole_frame(first, start + 2, "s2c", "text", b"pong!"))
    writer.handle(
        SessionClosed(first, start + 3, 1000, None, "client", True, 1, 1, 4, 5, start + 2)
    )
    second = first + 1
    writer.handle(SessionOpened(second, start + 4, "10.0.0.2", "/ws/b", "", "ws://u/ws/b", (), 101))
    writer.handle(whole_frame(second, start + 5, "s2c", "text", b"hello"))
    writer.close()


def test_replay_ticks_at_its_speed_and_catches_up_to_the_end(tmp_path):
    db, start = tmp_path / "r.db", time.time() - 100
    record(db, start)
    monitor = ReplayMonitor(db, Window(), speed=2.0)
    try:
        s = monitor.state
        assert s.mode == "replay x2" and s.clock == start
        monitor.tick(0.75)  # 1.5 recorded seconds: open, its first message
        assert s.clock == start + 1.5 and s.sessions_seen == 1 and not s.finished
        assert s.open[1].frames == {"c2s": 1, "s2c": 0} and s.open[1].bytes["c2s"] == 4
        assert s.rate == {"c2s": 1 / 1.5, "s2c": 0.0}
        monitor.tick(1.0)  # to start + 3.5: the answer, then the close
        assert list(s.open) == [] and [c[1:] for c in s.closes] == [
            (1, "10.0.0.1", "/ws/a", 1000, "client", "clean")
        ]
        monitor.catch_up()
        assert s.finished and s.clock == start + 5 and list(s.open) == [2]
        monitor.tick(1.0)  # a finished replay stands still
        assert s.clock == start + 5
    finally:
        monitor.close()


def test_follow_catches_up_and_ticks_alike(tmp_path):
    db, start = tmp_path / "f.db", time.time() - 100
    record(db, start)
    monitor = FollowMonitor(db, Window())
    try:
        monitor.catch_up()
        s = monitor.state
        assert s.mode == "follow" and s.sessions_seen == 2 and list(s.open) == [2]
        assert s.open[2].frames == {"c2s": 0, "s2c": 1} and s.open[2].last_activity == start + 5
        assert [c[1:] for c in s.closes] == [(1, "10.0.0.1", "/ws/a", 1000, "client", "clean")]
        assert s.faults == [] and s.rate == {"c2s": 0.0, "s2c": 0.0}
        monitor.tick(0.5)
        assert list(s.open) == [2] and len(s.closes) == 1
    finally:
        monitor.close()


def test_the_view_draws_a_state_from_no_source():
    state = RecordingState("hand.db", "follow", clock=1_000_000.0, sessions_seen=3)
    state.open[7] = OpenConnection(7, "10.0.0.9", "/ws/x", 999_990.0)
    state.closes.append((999_995.0, 6, "10.0.0.9", "/ws/y", 1006, "server", "server_drop"))
    state.faults.append((999_996.0, "drop", 1, 6, "drop:s2c", "frame 2"))
    text = snapshot(render_recording(state, keys=False))
    assert "1 open, 3 sessions seen" in text and "10.0 s" in text
    assert "1006 abnormal closure" in text and "server_drop" in text and "drop:s2c" in text
    assert "q quit" not in text and "q quit" in snapshot(render_recording(state))
