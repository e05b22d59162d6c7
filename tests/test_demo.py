"""The embedded Sentinel-like server, `sentinel-ws demo`, and `demo --serve`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import websockets

from sentinel_ws_proxy.demo.scenarios import SCENARIOS
from sentinel_ws_proxy.demo.server import Behaviour, start_demo_server
from tests.conftest import within
from tests.test_cli import cli_process, printed_url


@contextlib.asynccontextmanager
async def demo_server(**behaviour):
    runner, backend, port = await start_demo_server(Behaviour(**behaviour))
    try:
        yield f"127.0.0.1:{port}", backend
    finally:
        await runner.cleanup()


async def next_event(ws, event_type: str) -> dict:
    while True:
        event = json.loads(await within(ws.recv()))
        if event["event_type"] == event_type:
            return event


async def test_http_endpoints():
    async with demo_server() as (host, _), aiohttp.ClientSession() as http:
        async with http.get(f"http://{host}/api/system/status") as r:
            status = await r.json()
            assert status["status"] == "ok"
        async with http.get(f"http://{host}/api/missions") as r:
            missions = await r.json()
            assert len(missions) == 3 and {"id", "name", "status"} <= set(missions[0])
        async with http.get(f"http://{host}/") as r:
            page = await r.text()
            assert "/missions/1" in page and "ws/mission-updates" in page
        async with http.get(f"http://{host}/missions/2") as r:
            assert "Relay calibration" in await r.text() and 'href="/"' in await r.text()
        async with http.get(f"http://{host}/missions/99") as r:
            assert r.status == 404


async def test_websocket_greets_answers_broadcasts_and_is_diagnosed():
    async with demo_server(heartbeat=0.1) as (host, _), aiohttp.ClientSession() as http:
        ws = await within(websockets.connect(f"ws://{host}/ws/mission-updates"))
        hello = json.loads(await within(ws.recv()))
        assert hello["event_type"] == "connection_established"
        assert hello["connection_id"].startswith("conn-")
        await ws.send(json.dumps({"type": "health_check"}))
        reply = await next_event(ws, "health_check_response")
        assert reply["status"] == "healthy"
        await next_event(ws, "heartbeat")
        async with http.post(f"http://{host}/api/missions", json={"name": "Tide"}) as r:
            assert r.status == 201
            created = await r.json()
        event = await next_event(ws, "mission_created")
        assert event["mission_id"] == created["id"] and "Tide" in event["message"]
        async with http.get(f"http://{host}/api/system/diagnostics/websockets") as r:
            diag = await r.json()
        assert diag["active_connections"] == 1
        assert diag["events_broadcast"] == 1
        assert diag["last_event_time"]
        (info,) = diag["connection_info"]
        assert info["client_info"] == "127.0.0.1"
        assert info["connected_at"] and info["last_activity"]
        async with http.post(f"http://{host}/api/system/websockets/restart") as r:
            assert (await r.json())["closed_connections"] == 1
        with pytest.raises(websockets.ConnectionClosed):
            await next_event(ws, "never")
        assert ws.close_code == 1012


async def test_periodic_mission_events():
    async with demo_server(events_every=0.1) as (host, _):
        ws = await within(websockets.connect(f"ws://{host}/ws/mission-updates"))
        event = await next_event(ws, "mission_updated")
        assert event["mission_id"] and event["message"]
        await ws.close()


async def test_foreign_origin_is_refused_with_a_json_403():
    async with demo_server() as (host, _):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await within(
                websockets.connect(f"ws://{host}/ws/mission-updates", origin="http://evil.example")
            )
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body)["detail"] == "Origin not allowed"
        ws = await within(
            websockets.connect(f"ws://{host}/ws/mission-updates", origin="http://localhost:3000")
        )
        await ws.close()
    async with demo_server(allowed_origins=("http://evil.example",)) as (host, _):
        ws = await within(
            websockets.connect(f"ws://{host}/ws/mission-updates", origin="http://evil.example")
        )
        await ws.close()


async def test_idle_connections_are_closed():
    async with demo_server(idle_timeout=0.3) as (host, _):
        ws = await within(websockets.connect(f"ws://{host}/ws/mission-updates"))
        with pytest.raises(websockets.ConnectionClosed):
            await next_event(ws, "never")
        assert (ws.close_code, ws.close_reason) == (1000, "idle timeout")


@pytest.mark.parametrize(
    "mode,check",
    [
        ("drop", lambda ws: ws.close_code == 1006),
        ("close_1011", lambda ws: ws.close_code == 1011),
    ],
)
async def test_misbehaving_connections(mode, check):
    async with demo_server(mode=mode, after=0.1) as (host, _):
        ws = await within(websockets.connect(f"ws://{host}/ws/mission-updates"))
        with pytest.raises(websockets.ConnectionClosed):
            await next_event(ws, "never")
        assert check(ws)


async def test_reject_all_and_stale():
    async with demo_server(mode="reject") as (host, _):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await within(websockets.connect(f"ws://{host}/ws/mission-updates"))
        assert refused.value.response.status_code == 403
    async with demo_server(mode="stale", heartbeat=0.05) as (host, _):
        ws = await within(websockets.connect(f"ws://{host}/ws/mission-updates"))
        assert json.loads(await within(ws.recv()))["event_type"] == "connection_established"
        await ws.send(json.dumps({"type": "health_check"}))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.5)  # no answer, no heartbeat: stale
        await ws.close()


@pytest.mark.timeout(60)
async def test_demo_command_records_and_classifies_every_scenario(tmp_path):
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sentinel_ws_proxy",
        "demo",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await within(process.communicate(), 50)
    text = out.decode()
    print(f"sentinel-ws demo took {time.perf_counter() - started:.1f} s")
    assert process.returncode == 0, text
    for scenario in SCENARIOS:
        assert re.search(rf"{scenario.name}\s.*{scenario.expected}\s.*✓", text), scenario.name
    assert "Next, try" in text and "sentinel-ws demo --serve" in text
    assert (tmp_path / "recordings" / "demo.db").exists()
    # A second run replaces the recording instead of piling up.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sentinel_ws_proxy",
        "demo",
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await within(process.wait(), 50) == 0


@pytest.mark.timeout(60)
async def test_demo_serve_until_ctrl_c(tmp_path):
    db = tmp_path / "served.db"
    process = await cli_process("demo", "--serve", "--listen", "127.0.0.1:0", "--db", str(db))
    try:
        url = await printed_url(process, r"Open (http://127\.0\.0\.1:\d+)/")
        async with aiohttp.ClientSession() as http, http.get(url + "/") as r:
            assert "Sentinel Dashboard" in await r.text()
        ws = await within(websockets.connect(url.replace("http", "ws") + "/ws/mission-updates"))
        await within(ws.recv())
        await ws.close()
    finally:
        process.send_signal(signal.SIGINT)
        assert await within(process.wait(), 20) == 0
    assert Path(db).exists()


async def test_demo_server_command(tmp_path):
    process = await cli_process("demo-server", "--port", "0", "--heartbeat", "0.1")
    try:
        line = (await within(process.stdout.readline())).decode()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        async with aiohttp.ClientSession() as http, http.get(url + "/api/system/status") as r:
            assert (await r.json())["status"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        assert await within(process.wait(), 20) == 0
    bad = await cli_process("demo-server", "--stale", "--reject-all", merge_stderr=True)
    out, _ = await within(bad.communicate())
    assert bad.returncode == 2 and b"choose one way to misbehave" in out
