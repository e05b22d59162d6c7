"""Pages, not sockets (issue 19): verdicts on pages with several sockets, rotated cookies,
and recovery per socket path. Pure: hand-built sessions as the proxy records them."""

from __future__ import annotations

import re

import pytest

from sentinel_ws_proxy.analysis.classify import classify_all
from sentinel_ws_proxy.analysis.pages import group
from sentinel_ws_proxy.analysis.report import classify_sessions
from sentinel_ws_proxy.recording.schema import SessionRow

T0 = 1_800_000_000.0
ADDR, UA = "127.0.0.1", "Chromium"


def sock(
    id: int,
    path: str,
    start: float,
    end: float | None,
    code: int | None = 1001,
    by: str | None = "client",
    status: int = 101,
    cookie: str = "c",
) -> SessionRow:
    return SessionRow(
        id=id, started_at=T0 + start, ended_at=None if end is None else T0 + end, path=path,
        handshake_status=status, client_addr=ADDR, user_agent=UA, close_code=code,
        closed_by=by, clean=code in (1000, 1001), last_frame_at=T0 + (end or start),
        cookie_hash=cookie,
    )  # fmt: skip


def load(at: float, path: str = "/") -> tuple[float, str, str, str]:
    return (T0 + at, ADDR, path, UA)


@pytest.mark.parametrize("sockets", [1, 2, 3])
@pytest.mark.parametrize("served", [True, False], ids=["page-through-proxy", "sockets-only"])
def test_navigation_of_a_page_is_a_navigation_for_every_socket(sockets, served):
    paths = ["/@vite/hmr", "/ws/app", "/ws/events"][:sockets]
    first = [sock(i + 1, p, 0.1 + i * 0.01, 5.0 + i * 0.002) for i, p in enumerate(paths)]
    # The next page opens its sockets in another order, a few ms after the closes.
    second = [
        sock(10 + i, p, 5.03 + i * 0.01, None, code=None, by=None)
        for i, p in enumerate(reversed(paths))
    ]
    loads = [load(0.0), load(5.02, "/other.html")] if served else []
    classified = classify_sessions(first + second, {}, loads=loads)
    verdicts = {v.session_id: v for v in classified.verdicts}
    for s in first:
        assert verdicts[s.id].category == "navigation", verdicts[s.id]
    pages = classified.pages
    assert len(pages.pages) == 2
    assert {pages.of_session[s.id] for s in first} == {1}
    assert len({pages.of_session[s.id] for s in second}) == 1
    reconnects = classified.reconnects.as_dict()
    assert reconnects["reconnected"] == sockets and reconnects["pages"] == 1
    if served:
        assert "the browser loaded /other.html" in verdicts[1].explanation


def test_a_closed_tab_is_one_page_not_one_per_socket():
    paths = ["/@vite/hmr", "/ws/app", "/ws/events"]
    closed = [sock(i + 1, p, 0.1, 7.0) for i, p in enumerate(paths)]
    classified = classify_sessions(closed, {}, loads=[load(0.0)])
    assert {v.category for v in classified.verdicts} == {"client_gone"}
    assert len(classified.pages.pages) == 1


def test_a_cookie_rotated_on_every_answer_changes_no_verdict():
    before = [sock(1, "/ws/a", 0.1, 5.0, cookie="csrf-1"), sock(2, "/ws/b", 0.1, 5.0,
              cookie="csrf-1")]  # fmt: skip
    after = [sock(3, "/ws/a", 5.05, None, None, None, cookie="csrf-2"),
             sock(4, "/ws/b", 5.06, None, None, None, cookie="csrf-3")]  # fmt: skip
    verdicts, _ = classify_all(before + after)
    assert [v.category for v in verdicts[:2]] == ["navigation", "navigation"]


def test_recovery_is_per_socket_path():
    # A server kill: the page's event socket is back 3.6 s later, its kernel socket never.
    events = sock(1, "/api/events", 0.0, 10.0, code=1006, by="server")
    kernel = sock(2, "/api/kernels/k1/channels", 0.0, 10.0, code=1006, by="server")
    refused = sock(3, "/api/kernels/k1/channels", 11.0, 11.01, code=None, by="server",
                   status=404)  # fmt: skip
    back = sock(4, "/api/events", 13.6, None, code=None, by=None)
    classified = classify_sessions([events, kernel, refused, back], {})
    by_session = {d.session_id: d for d in classified.disruptions}
    assert by_session[1].recovered_at == pytest.approx(T0 + 13.6)
    assert by_session[2].recovered_at is None  # not "recovered after 3.6 s"
    assert [r for r, _ in by_session[2].retries] == [3]


def test_a_reload_recovers_what_its_sockets_did_not():
    kernel = sock(1, "/api/kernels/k1/channels", 0.0, 10.0, code=1006, by="server")
    back = sock(2, "/api/kernels/k2/channels", 20.5, None, code=None, by=None)
    classified = classify_sessions([kernel, back], {}, loads=[load(0.0), load(20.0)])
    (d,) = [d for d in classified.disruptions if d.session_id == 1]
    assert d.recovered_at == pytest.approx(T0 + 20.0)
    assert d.as_json()["recovered_by"] == "page reload"


def test_sockets_only_pages_split_when_every_socket_of_the_page_has_ended():
    a = sock(1, "/ws/a", 0.0, 3.0, code=1000)
    b = sock(2, "/ws/b", 0.2, 3.0, code=1000)
    c = sock(3, "/ws/a", 2.0, 2.5, code=1000)  # a reconnect while b is open: same page
    d = sock(4, "/ws/a", 9.0, None, code=None, by=None)  # everything had ended: a new page
    pages = group([a, b, c, d])
    assert pages.of_session == {1: 1, 2: 1, 3: 1, 4: 4}


GAP = re.compile(r"([\d.]+) s later")
WINDOW = re.compile(r"outside the ([\d.]+) s reconnect window")


def test_every_explanation_agrees_with_its_own_numbers():
    """A gap of 0.0 s can never be 'outside the 10 s window' (issue 19 item 5)."""
    paths = ["/@vite/hmr", "/ws/app"]
    sessions = [sock(i + 1, p, 0.1, 5.0) for i, p in enumerate(paths)]
    sessions += [sock(3, "/ws/app", 5.0, None, None, None), sock(4, "/@vite/hmr", 30.0, None,
                 None, None)]  # fmt: skip
    sessions += [sock(5, "/ws/x", 40.0, 41.0), sock(6, "/ws/x", 60.0, None, None, None)]
    verdicts, _ = classify_all(sessions, reconnect_window=10)
    for v in verdicts:
        gap, window = GAP.search(v.explanation), WINDOW.search(v.explanation)
        if gap and window:
            assert float(gap.group(1)) > float(window.group(1)), v
        if v.category == "navigation" and gap:
            assert float(gap.group(1)) <= 10, v
        if v.reconnect_gap is not None and gap:
            assert float(gap.group(1)) == pytest.approx(v.reconnect_gap, abs=0.06), v


def test_two_tabs_of_one_browser_keep_their_own_pages_through_an_outage():
    # One browser (one client), two tabs loaded through the proxy, each with one socket;
    # the server drops both, both come back, then each tab is closed.
    loads = [load(0.0, "/"), load(1.0, "/")]
    tab1 = sock(1, "/ws", 0.1, 10.0, code=1006, by="server")
    tab2 = sock(2, "/ws", 1.1, 10.0, code=1006, by="server")
    retry = sock(3, "/ws", 10.2, 10.21, code=None, by="proxy", status=502)
    back1 = sock(4, "/ws", 11.0, 20.0)
    back2 = sock(5, "/ws", 11.1, 21.0)
    classified = classify_sessions([tab1, tab2, retry, back1, back2], {}, loads=loads)
    pages = classified.pages
    assert len(pages.pages) == 2
    assert pages.of_session[4] != pages.of_session[5]
    assert {pages.of_session[1], pages.of_session[2]} == {pages.of_session[4],
                                                          pages.of_session[5]}  # fmt: skip
    from sentinel_ws_proxy.analysis.report import FailureReport, Window

    report = FailureReport(classified, Window())
    assert report.pages_in("client_gone") == 2  # two tabs closed, not one
    assert report.retries == {3}


def test_health_gates_on_incidents_and_unrecovered_failures_not_on_retries():
    from sentinel_ws_proxy.diagnostics.health import parse_thresholds, recording_health

    # Three clients dropped by one restart; each retries twice into 502s.
    def of(addr: str, *made: SessionRow) -> list[SessionRow]:
        for m in made:
            m.client_addr = addr
        return list(made)

    sessions: list[SessionRow] = []
    for c in range(3):
        addr = f"10.0.0.{c}"
        sessions += of(addr, sock(10 * c + 1, "/ws", 0.0, 10.0, code=1006, by="server"))
        sessions += of(addr, *(sock(10 * c + 2 + i, "/ws", 10.2 + i, 10.21 + i, code=None,
                                    by="proxy", status=502) for i in range(2)))  # fmt: skip
        if c < 2:  # the third never comes back
            sessions += of(addr, sock(10 * c + 5, "/ws", 13.0, None, code=None, by=None))
    limits = parse_thresholds(())
    classified = classify_sessions(sessions, {})
    report = recording_health(classified, "test", limits)
    checks = {c.name: c.status for c in report.checks}
    assert checks["unrecovered_incidents"] == "critical"
    assert checks["handshake_failures"] == "ok"  # the 6 refused retries are the outage's
    # The same outage, every client back: no critical at all.
    sessions += of("10.0.0.2", sock(25, "/ws", 14.0, None, code=None, by=None))
    checks = {c.name: c.status for c in recording_health(classify_sessions(sessions, {}), "t",
                                                         limits).checks}  # fmt: skip
    assert checks["unrecovered_incidents"] == "ok" and checks["abnormal_closes"] == "ok", checks
