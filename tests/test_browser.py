"""A real browser through the proxy: page navigation closes and reopens the WebSocket.

Drives Debian's Chromium with Playwright for Python (no Playwright browser
download). Skipped, with the reason, where Chromium or Playwright is missing,
unless SENTINEL_REQUIRE_BROWSER=1 (as .ci/run sets), where that is a failure.
"""

from __future__ import annotations

import contextlib
import json

import pytest
from click.testing import CliRunner

from sentinel_ws_proxy.cli import cli
from sentinel_ws_proxy.demo.server import Behaviour, start_demo_server
from tests.conftest import CHROMIUM_FLAGS, chromium_path, rows, running_proxy

OPEN = "document.body.dataset.socket === 'open'"


@contextlib.asynccontextmanager
async def demo_in_a_browser(db, async_playwright):
    """The demo server, the proxy in front of it, and a Chromium page: (proxy, page)."""
    executable = chromium_path()
    runner, _backend, port = await start_demo_server(Behaviour())
    try:
        async with (
            running_proxy(f"http://127.0.0.1:{port}", db) as proxy,
            async_playwright() as playwright,
        ):
            browser = await playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_FLAGS, timeout=30_000
            )
            try:
                page = await browser.new_page()
                page.set_default_timeout(15_000)
                await page.goto(proxy.url + "/")
                await page.wait_for_function(OPEN)
                yield proxy, page
            finally:
                await browser.close()
            await proxy.stop_once()
    finally:
        await runner.cleanup()


async def wait_for_new_connection(page, before: str) -> None:
    await page.wait_for_function(
        f"document.body.dataset.socket === 'open' && "
        f"document.body.dataset.connectionId !== {json.dumps(before)}"
    )


@pytest.mark.timeout(90)
async def test_navigation_in_a_real_browser_is_recorded_and_classified(tmp_path, async_playwright):
    db = tmp_path / "browser.db"
    async with demo_in_a_browser(db, async_playwright) as (_proxy, page):
        first_connection = await page.evaluate("document.body.dataset.connectionId")
        await page.click("a[href='/missions/1']")
        await page.wait_for_url("**/missions/1")
        await wait_for_new_connection(page, first_connection)

    sessions = rows(db, "SELECT * FROM sessions ORDER BY id")
    assert len(sessions) == 2, [dict(s) for s in sessions]
    first, second = sessions
    assert first["handshake_status"] == second["handshake_status"] == 101
    assert first["closed_by"] == "client"
    # Chromium says "going away" when a page navigates (or just drops the socket).
    assert first["close_code"] in (1001, 1006)
    assert first["client_addr"] == second["client_addr"]
    assert first["user_agent"] == second["user_agent"] and "Chrome" in first["user_agent"]
    # The new page's socket may open before the old one's close has finished.
    assert first["started_at"] < second["started_at"]
    assert second["started_at"] - first["ended_at"] < 5

    result = CliRunner().invoke(cli, ["failures", "--json", "--db", str(db)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    verdict = next(s for s in report["sessions"] if s["id"] == first["id"])
    assert verdict["category"] == "navigation"
    assert verdict["reconnect_gap"] is not None and 0 <= verdict["reconnect_gap"] < 5
    assert report["reconnects"]["reconnected"] == 1
    print(
        f"navigation: close {first['close_code']}, reconnect gap {verdict['reconnect_gap']:.3f} s"
    )


@pytest.mark.timeout(90)
async def test_demo_frontend_recovers_from_an_injected_crash(tmp_path, async_playwright):
    """A 1011 injected by the proxy: the page's own reconnection logic brings it back."""
    import aiohttp

    db = tmp_path / "browser.db"
    async with (
        demo_in_a_browser(db, async_playwright) as (proxy, page),
        aiohttp.ClientSession() as http,
    ):
        first_connection = await page.evaluate("document.body.dataset.connectionId")
        (session_id,) = proxy.proxy.relays
        crash = f"{proxy.url}/_sentinel/connections/{session_id}/close?code=1011"
        async with http.post(crash, headers={"X-Sentinel-WS": "test"}) as response:
            assert response.status == 202
        await wait_for_new_connection(page, first_connection)
        assert await page.text_content("#socket-status") == "connected"

    first = rows(db, "SELECT * FROM sessions ORDER BY id")[0]
    assert (first["close_code"], first["closed_by"], first["fault_id"]) == (1011, "proxy", 1)
    result = CliRunner().invoke(cli, ["failures", "--json", "--db", str(db)])
    report = json.loads(result.output)
    assert report["sessions"][0]["category"] == "injected"
    (incident,) = report["recovery"]
    # The page waits 0.5 s before its first reconnect.
    assert incident["recovered"] is True and 0.45 <= incident["recovered_after"] < 5
    print(f"the demo page came back {incident['recovered_after']:.3f} s after the injected 1011")
