"""Classification is a pure function: hand-built sessions for every category."""

from __future__ import annotations

import pytest

from sentinel_ws_proxy.analysis.advice import ADVICE
from sentinel_ws_proxy.analysis.classify import CATEGORIES, classify_all
from sentinel_ws_proxy.events import SessionClosed, SessionOpened, whole_frame
from sentinel_ws_proxy.recording.reader import Recording
from sentinel_ws_proxy.recording.redact import Redactor
from sentinel_ws_proxy.recording.schema import SessionRow
from sentinel_ws_proxy.recording.writer import RecordingWriter

T0 = 1_800_000_000.0


def session(id: int, **fields) -> SessionRow:
    base = {
        "started_at": T0 + id,
        "ended_at": T0 + id + 5,
        "path": "/ws/mission-updates",
        "handshake_status": 101,
        "client_addr": f"10.0.0.{id}",
        "user_agent": "browser",
        "last_frame_at": T0 + id + 4.9,
        "clean": True,
    }
    base.update(fields)
    return SessionRow(id=id, **base)


def verdict_of(*sessions: SessionRow, **options):
    verdicts, stats = classify_all(list(sessions), **options)
    return {v.session_id: v for v in verdicts}, stats


@pytest.mark.parametrize(
    "fields,category",
    [
        ({"close_code": 1000, "closed_by": "client"}, "clean"),
        ({"close_code": 1005, "closed_by": "client"}, "clean"),
        ({"close_code": 1001, "closed_by": "client", "clean": True}, "client_gone"),
        ({"close_code": 1006, "closed_by": "client", "clean": False}, "client_gone"),
        ({"close_code": 1006, "closed_by": "server", "clean": False}, "server_drop"),
        ({"close_code": 1011, "closed_by": "server"}, "server_error"),
        ({"handshake_status": 500, "ended_at": T0 + 3, "closed_by": "server"}, "server_error"),
        ({"handshake_status": 403, "closed_by": "server"}, "rejected"),
        ({"handshake_status": 401, "closed_by": "server"}, "rejected"),
        ({"close_code": 1008, "closed_by": "server"}, "rejected"),
        ({"handshake_status": 404, "closed_by": "server"}, "not_found"),
        (
            {"handshake_status": 502, "closed_by": "proxy", "error": "refused"},
            "upstream_unreachable",
        ),
        ({"handshake_status": 502, "closed_by": "server"}, "server_error"),
        (
            {"close_code": 1000, "closed_by": "server", "last_frame_at": T0 + 4 - 40},
            "idle_timeout",
        ),
        ({"close_code": 1009, "closed_by": "proxy", "clean": False}, "too_big"),
        ({"close_code": 1002, "closed_by": "client"}, "protocol_error"),
        ({"close_code": 1007, "closed_by": "server"}, "protocol_error"),
        ({"close_code": 1001, "closed_by": "proxy"}, "proxy_shutdown"),
        ({"ended_at": None}, "open"),
        ({"close_code": 4000, "closed_by": "server"}, "other"),
        ({"close_code": 1000, "closed_by": "server", "clean": False}, "other"),
        ({"handshake_status": 400, "closed_by": "proxy"}, "other"),
        ({"close_code": None, "closed_by": None, "clean": False}, "other"),
    ],
)
def test_each_category(fields, category):
    verdicts, _ = verdict_of(session(4, **fields))
    assert verdicts[4].category == category
    assert verdicts[4].explanation


def test_every_category_is_covered_and_has_advice():
    assert set(ADVICE) == set(CATEGORIES)


def test_navigation_needs_same_client_same_path_within_window():
    first = session(1, close_code=1001, closed_by="client", ended_at=T0 + 10)
    again = session(2, started_at=T0 + 10.25, client_addr=first.client_addr)
    verdicts, stats = verdict_of(first, again)
    assert verdicts[1].category == "navigation"
    assert verdicts[1].reconnect_gap == pytest.approx(0.25)
    assert "0.250 s later" in verdicts[1].explanation
    assert stats.as_dict()["median_gap"] == pytest.approx(0.25)
    assert stats.never_reconnected == []


def test_drop_without_close_frame_then_reconnect_is_navigation_too():
    first = session(1, close_code=1006, closed_by="client", clean=False, ended_at=T0 + 10)
    again = session(2, started_at=T0 + 10.1, client_addr=first.client_addr)
    verdicts, _ = verdict_of(first, again)
    assert verdicts[1].category == "navigation"


def test_reconnect_after_window_is_client_gone_with_gap():
    first = session(1, close_code=1001, closed_by="client", ended_at=T0 + 10)
    late = session(2, started_at=T0 + 25, client_addr=first.client_addr)
    verdicts, _ = verdict_of(first, late, reconnect_window=10)
    assert verdicts[1].category == "client_gone"
    assert verdicts[1].reconnect_gap == pytest.approx(15)
    assert "outside the 10 s reconnect window" in verdicts[1].explanation
    # A wider window makes it a navigation.
    verdicts, _ = verdict_of(first, late, reconnect_window=20)
    assert verdicts[1].category == "navigation"


def test_another_client_does_not_count_as_reconnect():
    first = session(1, close_code=1001, closed_by="client", ended_at=T0 + 10)
    stranger = session(2, started_at=T0 + 10.1, client_addr="10.9.9.9")
    other_browser = session(3, started_at=T0 + 10.2, client_addr=first.client_addr, user_agent="x")
    verdicts, stats = verdict_of(first, stranger, other_browser)
    assert verdicts[1].category == "client_gone"
    assert stats.never_reconnected == [1]


def test_a_rotated_cookie_is_the_same_client():
    # Frameworks that set a fresh CSRF cookie on every answer change the Cookie header
    # on every handshake of one tab: that never makes it another client (issue 19).
    first = session(1, close_code=1001, closed_by="client", ended_at=T0 + 10, cookie_hash="a")
    again = session(2, started_at=T0 + 10.2, client_addr=first.client_addr, cookie_hash="b")
    verdicts, stats = verdict_of(first, again)
    assert verdicts[1].category == "navigation"
    assert stats.as_dict()["reconnected"] == 1


def test_rejected_retry_is_not_a_reconnect():
    first = session(1, close_code=1001, closed_by="client", ended_at=T0 + 10)
    refused = session(2, started_at=T0 + 10.1, client_addr=first.client_addr, handshake_status=403)
    verdicts, _ = verdict_of(first, refused)
    assert verdicts[1].category == "client_gone"


def test_reconnect_statistics():
    sessions = []
    gaps = [0.1, 0.2, 0.3, 0.4, 5.0]
    for i, gap in enumerate(gaps):
        addr = f"10.1.0.{i}"
        sessions.append(session(10 * i + 1, client_addr=addr, close_code=1001, closed_by="client"))
        sessions.append(
            session(10 * i + 2, client_addr=addr, started_at=sessions[-1].ended_at + gap)
        )
    sessions.append(session(99, client_addr="10.2.0.1", close_code=1006, closed_by="client"))
    _, stats = verdict_of(*sessions)
    summary = stats.as_dict()
    assert summary["disconnects"] == 6
    assert summary["reconnected"] == 5
    assert summary["median_gap"] == pytest.approx(0.3)
    assert summary["p95_gap"] == pytest.approx(5.0)
    assert summary["max_gap"] == pytest.approx(5.0)
    assert summary["never_reconnected"] == [99]


def test_events_written_and_read_back_classify_the_same(tmp_path):
    opened = SessionOpened(
        1, T0, "10.0.0.7", "/ws", "", "ws://up/ws", (("User-Agent", "ua"), ("Cookie", "c=1")), 101
    )
    frames = [
        whole_frame(1, T0 + 1, "c2s", "text", b"hi"),
        whole_frame(1, T0 + 2, "s2c", "ping", b""),
        whole_frame(1, T0 + 40, "s2c", "close", b"\x0f\xa0idle", close_code=4000),
    ]
    closed = SessionClosed(1, T0 + 40, 4000, "idle", "server", False, 1, 2, 2, 6, T0 + 2)
    writer = RecordingWriter(
        tmp_path / "r.db", redactor=Redactor(), max_payload=100, listen="test", upstream="x"
    )
    writer.open()
    for event in (opened, *frames, closed):
        writer.handle(event)
    writer.close()
    with Recording(tmp_path / "r.db") as recording:
        (summary,) = recording.summaries()
        assert summary.last_frame_at == T0 + 2
        assert summary.user_agent == "ua" and summary.cookie_hash
        assert [m.opcode for m in recording.messages(1)] == ["text", "ping", "close"]
    verdicts, _ = classify_all([summary])
    assert verdicts[0].category == "idle_timeout"
    assert "38.0 s without a frame" in verdicts[0].explanation


def test_two_tabs_dropped_by_one_outage_both_recover():
    """One browser (one client), two tabs; the server dies, refuses retries, comes back."""
    from sentinel_ws_proxy.analysis.recovery import incidents
    from sentinel_ws_proxy.analysis.report import classify_sessions

    browser = {"client_addr": "10.0.0.1", "user_agent": "chromium"}
    drop = {"close_code": 1006, "closed_by": "server", "clean": False}
    rows = [
        session(1, started_at=T0, ended_at=T0 + 10, last_frame_at=T0 + 9, **browser, **drop),
        session(2, started_at=T0 + 1, ended_at=T0 + 10, last_frame_at=T0 + 9, **browser, **drop),
        *(
            session(
                i,
                started_at=T0 + 10 + 0.2 * i,
                ended_at=T0 + 10 + 0.2 * i,
                handshake_status=502,
                closed_by="proxy",
                **browser,
            )
            for i in range(3, 7)
        ),
        session(
            7, started_at=T0 + 13, ended_at=T0 + 20, close_code=1000, closed_by="client", **browser
        ),
        session(
            8,
            started_at=T0 + 13.5,
            ended_at=T0 + 20,
            close_code=1000,
            closed_by="client",
            **browser,
        ),
    ]
    classified = classify_sessions(rows, {})
    categories = {v.session_id: v.category for v in classified.verdicts}
    assert categories[1] == categories[2] == "server_restart"
    first, second = (d for d in classified.disruptions if d.session_id in (1, 2))
    assert first.recovery == second.recovery == 3.0  # the first accepted session after both
    (incident,) = incidents(classified.disruptions)
    assert incident.refused == {502: 4}  # each refused handshake once, not once per tab
