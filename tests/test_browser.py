"""A real browser through the proxy: page navigation closes and reopens the WebSocket.

Drives Debian's Chromium with Playwright for Python (no Playwright browser
download). Skipped, with the reason, where Chromium or Playwright is missing,
unless SENTINEL_REQUIRE_BROWSER=1 (as .ci/run sets), where that is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sentinel_ws_proxy.cli import cli
from sentinel_ws_proxy.demo.server import Behaviour, start_demo_server
from tests.conftest import CHROMIUM_FLAGS, chromium_path, rows, running_proxy, within

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


def readme_fault_example() -> list[list[str]]:
    """The `sentinel-ws fault` commands of the README's worked example, in order."""
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = text[text.index("A worked example with the demo app") :].split("```")[1]
    return [
        shlex.split(line.split("#")[0])[1:]
        for line in block.splitlines()
        if line.startswith("sentinel-ws fault ")
    ]


async def recorded_open_session(db: Path) -> dict:
    """The page's session as `sessions` lists it: the row lands a few ms after the open."""
    deadline = time.monotonic() + 10
    while True:
        listed = CliRunner().invoke(cli, ["sessions", "--json", "--db", str(db)])
        assert listed.exit_code == 0, listed.output
        found = [s for s in json.loads(listed.output) if s["ended_at"] is None]
        if found or time.monotonic() > deadline:
            (session,) = found
            return session
        await asyncio.sleep(0.05)


@pytest.mark.timeout(90)
async def test_the_readme_fault_example_works_as_written(tmp_path, async_playwright):
    """demo --serve, a page in Chromium, then the README's commands in the README's order."""
    import signal

    from tests.test_cli import cli_process, printed_url

    commands = readme_fault_example()
    assert [c[:2] for c in commands] == [["fault", "add"], ["fault", "close"]]
    db = tmp_path / "demo.db"
    demo = await cli_process("demo", "--serve", "--db", str(db), "--listen", "127.0.0.1:0")
    try:
        url = await printed_url(demo, r"Proxy on (http://\S+),", 30)
        executable = chromium_path()
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_FLAGS, timeout=30_000
            )
            try:
                page = await browser.new_page()
                page.set_default_timeout(20_000)
                await page.goto(url + "/")
                await page.wait_for_function(OPEN)
                before = await page.evaluate("document.body.dataset.connectionId")
                open_session = await recorded_open_session(db)
                for command in commands:
                    args = [str(open_session["id"]) if a == "3" else a for a in command]
                    ran = CliRunner().invoke(cli, [*args, "--proxy", url])
                    assert ran.exit_code == 0, ran.output
                await wait_for_new_connection(page, before)
            finally:
                await browser.close()
    finally:
        demo.send_signal(signal.SIGINT)
        await within(demo.wait(), 30)
    report = json.loads(CliRunner().invoke(cli, ["failures", "--json", "--db", str(db)]).output)
    crashed = next(r for r in report["recovery"] if r["session_id"] == open_session["id"])
    assert [r["status"] for r in crashed["retries"]] == [503, 503, 503]
    assert crashed["recovered"] and 6 < crashed["recovered_after"] < 12  # 0.5+1+2+4 s
    print(f"the page was back {crashed['recovered_after']:.1f} s after the injected close")
