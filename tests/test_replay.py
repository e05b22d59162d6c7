"""Replay: record through the real proxy, stop the upstream, play the sessions back."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
from pathlib import Path

import aiohttp
import pytest
import websockets
from aiohttp import WSMsgType

from sentinel_ws_proxy.recording.reader import Recording
from sentinel_ws_proxy.replay.recorded import choose_sessions
from sentinel_ws_proxy.replay.server import ReplayServer
from tests.conftest import UpstreamLog, running_proxy, scripted_upstream, serve_app, within, ws_url
from tests.test_cli import cli_process, printed_url

# The scripted "sequence": s0, +0.1 s binary, +0.2 s ping, +0.3 s s3, then close 4001.
SEQUENCE = [(WSMsgType.TEXT, "s0"), (WSMsgType.BINARY, b"\x01\x02"), (WSMsgType.PING, b"p"),
            (WSMsgType.TEXT, "s3")]  # fmt: skip
GAPS = [0.1, 0.2, 0.3]


async def record(db: Path) -> None:
    """Session 1: the sequence; 2: an echo conversation; 3: a 403; 4: a server drop."""
    log = UpstreamLog()
    async with serve_app(scripted_upstream(log)) as url, running_proxy(url, db) as proxy:
        async with aiohttp.ClientSession() as http:
            ws = await within(http.ws_connect(ws_url(proxy.url, "/ws/seq"), autoping=False))
            await ws.send_str("sequence")
            while (await within(ws.receive())).type is not WSMsgType.CLOSE:
                pass
            await ws.close()
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws/echo")))
        for text in ("hello", "second"):
            await ws.send(text)
            await within(ws.recv())
        await ws.close(4000, "bye")
        with pytest.raises(websockets.InvalidStatus):
            await within(websockets.connect(ws_url(proxy.url, "/ws/reject")))
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws/drop")))
        await ws.send("drop")
        with pytest.raises(websockets.ConnectionClosed):
            await within(ws.recv())
        await proxy.stop_once()


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("replay") / "rec.db"
    asyncio.run(asyncio.wait_for(record(db), 30))
    return db


@contextlib.asynccontextmanager
async def replaying(db: Path, ids: list[int], **options):
    with Recording(db) as rec:
        sessions = choose_sessions(rec, ids, None)
    server = ReplayServer(sessions, source=str(db), **options)
    runner = aiohttp.web.AppRunner(server.app(), shutdown_timeout=1)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield server, f"ws://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def receive_sequence(url: str) -> tuple[list, list[float], object]:
    async with aiohttp.ClientSession() as http:
        ws = await within(http.ws_connect(url + "/ws/seq", autoping=False, autoclose=False))
        got, times = [], []
        while True:
            msg = await within(ws.receive())
            times.append(time.perf_counter())
            if msg.type is WSMsgType.CLOSE:
                await ws.send_frame(msg.data.to_bytes(2, "big"), WSMsgType.CLOSE)
                return got, [b - a for a, b in itertools.pairwise(times)], (msg.data, msg.extra)
            got.append((msg.type, msg.data))


@pytest.mark.parametrize("speed", [1.0, 10.0])
async def test_frames_order_and_gaps_at_speed(recording, speed):
    async with replaying(recording, [1], speed=speed) as (server, url):
        got, gaps, close = await receive_sequence(url)
    assert got == SEQUENCE
    assert close == (4001, "done")
    for measured, recorded in zip(gaps, GAPS, strict=False):
        assert abs(measured - recorded / speed) < 0.05, (gaps, speed)
    assert server.finished.is_set()


async def test_speed_zero_sends_at_once(recording):
    async with replaying(recording, [1], speed=0) as (_, url):
        got, gaps, _ = await receive_sequence(url)
    assert got == SEQUENCE and sum(gaps) < 0.2


async def test_sync_mode_waits_for_the_client_and_reports_a_wrong_frame(recording):
    async with replaying(recording, [2], sync=True) as (server, url):
        ws = await within(websockets.connect(url + "/ws/echo"))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)  # nothing until the client speaks
        await ws.send("hello")
        assert await within(ws.recv()) == "hello"
        await ws.send("WRONG")
        assert await within(ws.recv()) == "second"  # the recorded answer, all the same
        await ws.close(4000, "bye")
        assert (ws.close_code, ws.close_reason) == (4000, "bye")
    assert len(server.mismatches) == 1
    assert "expected text 'second', got text 'WRONG'" in server.mismatches[0]


async def test_recorded_refusal_and_drop_replay_as_such(recording):
    async with replaying(recording, [3, 4]) as (server, url):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await within(websockets.connect(url + "/ws/reject"))
        assert refused.value.response.status_code == 403
        assert b"Origin not allowed" in refused.value.response.body
        ws = await within(websockets.connect(url + "/ws/drop"))
        with pytest.raises(websockets.ConnectionClosedError):
            await within(ws.recv())
        assert ws.close_code == 1006 and ws.protocol.close_rcvd is None
    assert [p.session_id for p in server.played] == [3, 4]


async def test_successive_connections_get_successive_sessions_and_loop(recording):
    async with replaying(recording, [1, 3], speed=0, loop=True) as (_server, url):
        for _ in range(2):
            got, _, _ = await receive_sequence(url)
            assert got == SEQUENCE
            with pytest.raises(websockets.InvalidStatus):
                await within(websockets.connect(url + "/ws/reject"))
        async with aiohttp.ClientSession() as http:
            async with http.get(url.replace("ws://", "http://") + "/_sentinel/status") as r:
                status = await r.json()
            async with http.get(url.replace("ws://", "http://") + "/index.html") as r:
                assert r.status == 404 and "--http-upstream" in await r.text()
    assert [p["session_id"] for p in status["played"]] == [1, 3, 1, 3]
    assert status["next"] == 1 and status["loop"] is True


async def test_wrong_path_is_refused_without_using_up_the_session(recording):
    async with replaying(recording, [1], speed=0) as (_, url):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await within(websockets.connect(url + "/ws/other"))
        assert b"is on /ws/seq" in refused.value.response.body
        got, _, _ = await receive_sequence(url)
        assert got == SEQUENCE


async def test_replay_command_exits_after_the_last_session_with_mismatch_status(recording):
    process = await cli_process(
        "replay", "--db", str(recording), "--session", "2", "--mode", "sync",
        "--listen", "127.0.0.1:0",
    )  # fmt: skip
    try:
        url = await printed_url(process, r"Point your frontend at (http://\S+)")
        ws = await within(websockets.connect(url.replace("http", "ws") + "/ws/echo"))
        await ws.send("nope")
        await within(ws.recv())
        await ws.send("second")
        await within(ws.recv())
        await ws.close(4000, "bye")
        assert await within(process.wait(), 20) == 1
        out = (await process.stdout.read()).decode()
        assert "mismatch: session 2, frame 0" in out and "1 client frame(s) differed" in out
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()


async def test_replay_command_bad_input(recording):
    for args, message in (
        (["--session", "999"], "no session 999"),
        (["--session", "1", "--run", "1"], "not both"),
        (["--listen", "bogus"], "expected HOST:PORT"),
    ):
        process = await cli_process("replay", "--db", str(recording), *args, merge_stderr=True)
        out, _ = await within(process.communicate())
        assert process.returncode == 2, args
        assert message in out.decode(), out


PAGE = """<!doctype html><html><body><p id="got">waiting</p><script>
const ws = new WebSocket(`ws://${location.host}/ws/seq`);
ws.onmessage = (e) => {
  if (typeof e.data === "string") document.getElementById("got").textContent = e.data;
};
</script></body></html>"""


def frontend() -> aiohttp.web.Application:
    """A dev server: the page, and an API the page might call."""

    async def page(request):
        return aiohttp.web.Response(text=PAGE, content_type="text/html")

    async def api(request):
        return aiohttp.web.json_response({"path": request.path, "method": request.method})

    app = aiohttp.web.Application()
    app.router.add_get("/", page)
    app.router.add_route("*", "/api/{tail:.*}", api)
    return app


async def test_plain_http_says_how_to_serve_the_page_from_the_replay(recording):
    async with (
        replaying(recording, [1], speed=0) as (_, url),
        aiohttp.ClientSession() as http,
        http.get(url.replace("ws", "http", 1) + "/") as response,
    ):
        assert response.status == 404
        assert "--http-upstream" in await response.text()


async def test_http_upstream_serves_the_page_and_the_replay_the_socket(recording):
    from sentinel_ws_proxy.proxy.upstream import Upstream
    from sentinel_ws_proxy.settings import parse_upstream

    async with serve_app(frontend()) as pages:
        upstream = Upstream(parse_upstream(pages), connect_timeout=5, close_timeout=5)
        async with (
            replaying(recording, [1], speed=0, http_upstream=upstream) as (server, url),
            aiohttp.ClientSession() as http,
        ):
            base = url.replace("ws", "http", 1)
            async with http.get(base + "/") as response:
                assert response.status == 200 and "new WebSocket" in await response.text()
            async with http.post(base + "/api/save?x=1", json={"a": 1}) as response:
                assert await response.json() == {"path": "/api/save", "method": "POST"}
            got, _, _ = await receive_sequence(url)
            assert got == SEQUENCE
            assert server.status_json()["http_upstream"] == pages


async def test_a_same_origin_page_in_chromium_gets_the_replayed_socket(recording, async_playwright):
    from sentinel_ws_proxy.proxy.upstream import Upstream
    from sentinel_ws_proxy.settings import parse_upstream
    from tests.conftest import CHROMIUM_FLAGS, chromium_path

    executable = chromium_path()
    async with serve_app(frontend()) as pages:
        upstream = Upstream(parse_upstream(pages), connect_timeout=5, close_timeout=5)
        async with (
            replaying(recording, [1], speed=0, http_upstream=upstream) as (server, url),
            async_playwright() as playwright,
        ):
            browser = await playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_FLAGS, timeout=30_000
            )
            try:
                page = await browser.new_page()
                await page.goto(url.replace("ws", "http", 1) + "/", timeout=15_000)
                await page.wait_for_function(
                    "document.getElementById('got').textContent === 's3'", timeout=15_000
                )
            finally:
                await browser.close()
    assert [p.session_id for p in server.played] == [1]


async def test_ctrl_c_closes_replayed_sockets_with_1001(recording):
    process = await cli_process(
        "replay", "--db", str(recording), "--session", "1", "--speed", "0.01",
        "--listen", "127.0.0.1:0",
    )  # fmt: skip
    try:
        url = await printed_url(process, r"Point your frontend at (http://\S+)")
        ws = await within(websockets.connect(url.replace("http", "ws") + "/ws/seq"))
        assert await within(ws.recv()) == "s0"  # the next frame is 10 s away at this speed
        process.send_signal(signal.SIGINT)
        with pytest.raises(websockets.ConnectionClosedOK):
            await within(ws.recv())
        assert ws.close_code == 1001 and ws.close_reason == "replay stopped"
        assert ws.protocol.close_rcvd_then_sent  # the replay closed first, we replied
        assert await within(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
