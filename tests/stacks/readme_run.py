"""The README's "A real run": Django Channels under daphne, two Chromium tabs, the CLI proxy.

    python -m tests.stacks.readme_run [recordings/sentinel.db]

Tab one navigates three times; daphne is killed (SIGKILL) and started again
2.5 s later while both tabs retry; tab one is closed for good; then a page on
another origin and a path without its trailing slash each try a handshake.
Needs the test extra (daphne, channels, playwright) and Debian's chromium.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import websockets
from playwright.async_api import Page, async_playwright

from tests.conftest import CHROMIUM_FLAGS, chromium_path
from tests.test_real_stacks import (
    free_port,
    output_of,
    spawn,
    start_daphne,
    stop,
    wait_listening,
)


async def opens(page: Page) -> int:
    return int(await page.evaluate("+(document.body.dataset.opens || 0)"))


async def wait_opens(page: Page, n: int) -> None:
    while await opens(page) < n:
        await asyncio.sleep(0.05)


async def browse(url: str, daphnes: list[subprocess.Popen], port: int) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_FLAGS
        )
        context = await browser.new_context()
        one, two = await context.new_page(), await context.new_page()
        for page in (one, two):
            page.set_default_timeout(15_000)
            await page.goto(url + "/")
            await wait_opens(page, 1)
        for _ in range(3):
            await one.click("#next")
            await asyncio.sleep(0.3)
            await wait_opens(one, 1)
        daphnes[0].send_signal(signal.SIGKILL)
        daphnes[0].wait()
        await asyncio.sleep(2.5)
        daphnes.append(await asyncio.to_thread(start_daphne, port))
        await wait_opens(one, 2)
        await wait_opens(two, 2)
        await asyncio.sleep(0.5)
        await one.close()
        for path, origin in (
            ("/ws/mission-updates/", "http://app.example:3000"),
            ("/ws/mission-updates", url),
        ):
            try:
                target = url.replace("http", "ws", 1) + path
                ws = await websockets.connect(target, origin=origin)  # type: ignore[arg-type]
                await ws.close()
            except websockets.InvalidStatus as refused:
                print(f"{path} with Origin {origin}: {refused.response.status_code}")
        await asyncio.sleep(0.5)
        await browser.close()


def main(db: Path) -> None:
    port, proxy_port = free_port(), free_port()
    daphnes = [start_daphne(port)]
    proxy = spawn(
        [sys.executable, "-m", "sentinel_ws_proxy", "proxy", "--upstream",
         f"http://127.0.0.1:{port}", "--listen", f"127.0.0.1:{proxy_port}", "--db", str(db)],
        dict(os.environ),
    )  # fmt: skip
    try:
        wait_listening(proxy_port, proxy)
        asyncio.run(browse(f"http://127.0.0.1:{proxy_port}", daphnes, port))
    finally:
        proxy.send_signal(signal.SIGINT)
        proxy.wait(30)
        print(output_of(proxy))
        for process in [proxy, *daphnes]:
            stop(process)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "recordings/sentinel.db"))
