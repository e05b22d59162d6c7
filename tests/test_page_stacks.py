"""Pages on real stacks, in Chromium through the proxy (issue 19): a Vite dev server whose
page holds its hot-reload socket beside one or two app sockets (through Vite's own
proxy to a backend), and an app that sets a fresh CSRF cookie on every answer.

The stack and its scenario drivers live in tests/stacks/pages/ (vite pinned by its
lockfile, npm ci on first use).
"""

from __future__ import annotations

import asyncio

import pytest

from sentinel_ws_proxy.analysis.report import Window, failure_report
from sentinel_ws_proxy.recording.reader import Recording
from tests.conftest import missing, recorded, running_proxy
from tests.stacks import pages as P

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def stack_ready():
    reason = P.missing_tools()
    if reason is not None:
        missing(reason)
    P.ensure_node_modules()


def verdicts(db, *, last_page: bool = False) -> tuple[dict[str, list[str]], object]:
    """Each socket path's categories, in order; without `last_page`, leaving out the last
    page's sockets (the browser closing at the end of the test ends them: a tab closed)."""
    with Recording(db) as recording:
        report = failure_report(recording, Window())
    pages = report.classified.pages
    last = pages.pages[-1].id if pages.pages else None
    found: dict[str, list[str]] = {}
    for s, v in report.classified.pairs():
        shown = last_page or pages.of_session.get(s.id) != last
        if s.accepted and s.ended_at is not None and shown:
            found.setdefault(s.path, []).append(v.category)
    return found, report


async def run_scenario(tmp_path, upstream_url: str, scenario, **options):
    from playwright.async_api import async_playwright

    db = tmp_path / "pages.db"
    async with running_proxy(upstream_url, db) as proxy, async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=P.chromium_executable(), args=P.CHROMIUM_FLAGS
        )
        try:
            truth = await asyncio.wait_for(scenario(browser, proxy.url, **options), 60)
            await recorded(db, "SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL")
        finally:
            await browser.close()
    return db, truth


@pytest.mark.parametrize("n", [0, 1, 2], ids=["1-socket", "2-sockets", "3-sockets"])
@pytest.mark.parametrize("how,loads", [("navigate", 3), ("reload", 2)])
async def test_navigation_on_a_vite_page_is_a_navigation_for_every_socket(
    tmp_path, stack_ready, n, how, loads
):
    backend = P.start_backend()
    vite = P.Vite.start(backend.url)
    try:
        db, _ = await run_scenario(tmp_path, vite.url, getattr(P, how), n=n)
    finally:
        vite.stop()
        backend.stop()
    found, report = verdicts(db)
    assert len(found) == n + 1, found  # the hot-reload socket and each app socket
    for path, categories in found.items():
        assert set(categories) == {"navigation"}, (path, categories)
    assert report.failures == 0
    # index, other, index; or the page and its reload
    assert len(report.classified.pages.pages) == loads
    # The headline, the navigation line and the table agree: one page left each time.
    assert report.pages_in("navigation") == loads - 1
    reconnects = report.classified.reconnects.as_dict()
    assert reconnects["pages"] == loads - 1 and reconnects["reconnected"] == (n + 1) * (loads - 1)
    # The page loads went through the proxy: the pages are the documents.
    assert all(p.loaded for p in report.classified.pages.pages), report.classified.pages


async def test_a_cookie_rotated_on_every_answer_changes_no_verdict(tmp_path, stack_ready):
    backend = P.start_backend(rotate_cookie=True)
    try:
        db, _ = await run_scenario(tmp_path, backend.url, P.navigate, n=2)
    finally:
        backend.stop()
    found, report = verdicts(db)
    with Recording(db) as recording:
        cookies = {s.cookie_hash for s in recording.summaries()}
    assert len(cookies) > 1  # the cookie did change between handshakes
    assert found and all(set(c) == {"navigation"} for c in found.values()), found
    assert report.failures == 0


async def test_a_closed_tab_is_one_tab(tmp_path, stack_ready):
    backend = P.start_backend()
    vite = P.Vite.start(backend.url)
    try:
        db, _ = await run_scenario(tmp_path, vite.url, P.close_tab, n=2)
    finally:
        vite.stop()
        backend.stop()
    found, report = verdicts(db, last_page=True)
    assert all(set(c) == {"client_gone"} for c in found.values()), found
    assert report.pages_in("client_gone") == 1


def disruptions_by_path(report) -> dict[str, list]:
    found: dict[str, list] = {}
    for d in report.classified.disruptions:
        if d.kind != "navigation":
            found.setdefault(d.path, []).append(d)
    return found


@pytest.mark.parametrize("n", [1, 2], ids=["2-sockets", "3-sockets"])
async def test_a_backend_restart_is_one_incident_recovered_per_socket_path(
    tmp_path, stack_ready, n
):
    backend = P.start_backend()
    vite = P.Vite.start(backend.url)
    try:
        db, truth = await run_scenario(tmp_path, vite.url, P.backend_restart, backend=backend, n=n)
    finally:
        vite.stop()
        backend.stop()
    _, report = verdicts(db)
    app_paths = {"/ws/app", "/ws/events"} if n == 2 else {"/ws/app"}
    by_path = disruptions_by_path(report)
    assert set(by_path) == app_paths, by_path  # the hot-reload socket was never disrupted
    killed = next(a["t"] for a in truth.actions if a["action"] == "kill backend")
    for path in app_paths:
        (first, *_) = by_path[path]
        assert first.kind in ("server_restart", "server_drop"), first
        assert first.recovered_at is not None, first
        # Back when that path's socket was back, as the page saw it, not at another's.
        reopened = [s["opened"] for s in truth.sockets if s["path"] == path and s["opened"]
                    and s["opened"] > killed]  # fmt: skip
        assert reopened and abs(first.recovered_at - min(reopened)) < 0.5, (first, reopened)
    # The page's refused retries belong to the outage: one incident, not a failure each.
    assert len(report.incidents) == 1
    assert report.failures == len(app_paths), report.as_json()["sessions"]


async def test_a_dev_server_restart_is_recovered_for_every_socket(tmp_path, stack_ready):
    backend = P.start_backend()
    vite = P.Vite.start(backend.url)
    try:
        db, _ = await run_scenario(tmp_path, vite.url, P.dev_server_restart, vite=vite, n=2,
                                   down_for=1.5)  # fmt: skip
    finally:
        vite.stop()
        backend.stop()
    _, report = verdicts(db)
    dropped = [d for d in report.classified.disruptions if d.kind != "navigation"]
    assert {d.path for d in dropped} >= {"/ws/app", "/ws/events"}, dropped
    # Each socket came back: on its own path, or by the reload Vite's client makes.
    assert all(d.recovered_at is not None for d in dropped), [d.as_json() for d in dropped]
    assert len(report.incidents) == 1
