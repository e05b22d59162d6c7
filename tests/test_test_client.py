"""`sentinel-ws test`, live against real servers and from a recording."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import websockets

from sentinel_ws_proxy.demo.server import Behaviour, start_demo_server
from tests.conftest import running_proxy, within
from tests.test_cli import cli_process


async def run(*args: str) -> tuple[int, str]:
    process = await cli_process("test", *args, merge_stderr=True)
    out, _ = await within(process.communicate(), 30)
    return process.returncode, out.decode()


@pytest.fixture
async def demo():
    runner, backend, port = await start_demo_server(Behaviour())
    try:
        yield port, backend
    finally:
        await runner.cleanup()


async def test_success_with_defaults_style_options(demo):
    port, _ = demo
    code, out = await run(
        "--port", str(port), "--send", '{"type": "health_check"}', "--timeout", "0.5"
    )  # fmt: skip
    assert code == 0, out
    assert f"Connecting to ws://localhost:{port}/ws/mission-updates" in out
    assert "✓ Connected in" in out and "(101)" in out
    assert 'Sent: {"type": "health_check"}' in out
    assert "Received 2 messages" in out and '"event_type": "health_check_response"' in out
    assert "Closed by client: 1000 normal closure, close handshake" in out
    assert "Result: OK" in out


async def test_json_output(demo):
    port, _ = demo
    code, out = await run(
        f"http://127.0.0.1:{port}/ws/mission-updates", "--json", "--timeout", "0.3"
    )
    assert code == 0
    result = json.loads(out)
    assert result["ok"] is True and result["status"] == 101
    assert result["received"][0]["kind"] == "text"
    assert result["closed_by"] == "client" and result["close_code"] == 1000


async def test_rejection_shows_status_and_body(demo):
    port, _ = demo
    code, out = await run(
        "--port", str(port), "--host", "127.0.0.1", "--origin", "http://evil.example"
    )  # fmt: skip
    assert code == 1
    assert "handshake refused with 403 Forbidden" in out
    assert "Origin not allowed" in out and "Result: FAILED" in out


async def test_server_close_that_is_not_clean_fails(demo):
    port, backend = demo
    backend.behaviour = Behaviour(mode="close_1011", after=0.1)
    code, out = await run(f"ws://127.0.0.1:{port}/ws/mission-updates", "--timeout", "2")
    assert code == 1
    assert "Closed by server: 1011 internal error 'internal error'" in out


async def test_refused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out = await run("--host", "127.0.0.1", "--port", str(port))
    assert code == 1 and f"connection refused: nothing is listening on 127.0.0.1:{port}" in out


async def test_timeout_on_a_server_that_never_answers():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    try:
        code, out = await run(f"ws://127.0.0.1:{silent.getsockname()[1]}/ws", "--timeout", "0.5")
    finally:
        silent.close()
    assert code == 1 and "no WebSocket handshake from" in out and "within 0.5 s" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["ftp://x/y"], "expected a ws://"),
        (["--header", "nocolon"], "expected NAME:VALUE"),
        (["--db", "x.db"], "--db and --session go together"),
    ],
)
async def test_usage_errors(args, message):
    code, out = await run(*args)
    assert code == 2 and message in out


async def record_health_check(db: Path, port: int) -> None:
    async with running_proxy(f"http://127.0.0.1:{port}", db) as proxy:
        ws = await within(
            websockets.connect(proxy.url.replace("http", "ws") + "/ws/mission-updates")
        )
        await within(ws.recv())
        await ws.send(json.dumps({"type": "health_check"}))
        await within(ws.recv())
        await ws.close()
        await proxy.stop_once()


async def test_resend_recorded_session_matches_unchanged_server(demo, tmp_path):
    port, _ = demo
    db = tmp_path / "rec.db"
    await record_health_check(db, port)
    base = ["--db", str(db), "--session", "1", "--speed", "0", "--timeout", "1"]
    # Timestamps and connection ids differ on every connection...
    code, out = await run(f"ws://127.0.0.1:{port}", *base)
    assert code == 1 and "Differs" in out
    # ...so leave them out, as a user would.
    ignore = ["--ignore-json-keys", "timestamp,connection_id", "--ignore-json-keys", "received"]
    code, out = await run(f"ws://127.0.0.1:{port}", *base, *ignore)
    assert code == 0, out
    assert "Match: 2 server frames as recorded" in out
    # Without a URL, the recorded upstream is used (it is the same server).
    code, out = await run(*base, *ignore, "--mode", "sync", "--json")
    assert code == 0, out
    assert json.loads(out)["matches"] is True


async def test_resend_recorded_session_reports_a_changed_server(demo, tmp_path):
    port, backend = demo
    db = tmp_path / "rec.db"
    await record_health_check(db, port)
    backend.behaviour = Behaviour(mode="stale")  # now it stops answering health checks
    ignore = ["--ignore-json-keys", "timestamp,connection_id,received"]
    code, out = await run(
        f"ws://127.0.0.1:{port}", "--db", str(db), "--session", "1", "--speed", "0",
        "--timeout", "0.5", *ignore,
    )  # fmt: skip
    assert code == 1
    assert "Differs: 1 of 2 server frames" in out
    assert "health_check_response" in out and "(none)" in out


async def test_resend_needs_an_accepted_session(demo, tmp_path):
    port, _ = demo
    db = tmp_path / "rec.db"
    async with running_proxy(f"http://127.0.0.1:{port}", db) as proxy:
        with pytest.raises(websockets.InvalidStatus):
            await within(
                websockets.connect(
                    proxy.url.replace("http", "ws") + "/ws/mission-updates",
                    origin="http://evil.example",
                )
            )
        await proxy.stop_once()
    code, out = await run("--db", str(db), "--session", "1")
    assert code == 1 and "was refused (403)" in out
    code, out = await run("--db", str(db), "--session", "7")
    assert code == 2 and "no session 7" in out


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("ws://localhost:8001/ws/mission-updates", "http://localhost:8001"),
        ("wss://app.example/socket", "https://app.example"),
        ("wss://app.example:443/socket", "https://app.example"),
        ("ws://app.example:80/", "http://app.example"),
        ("ws://[::1]:9000/ws", "http://[::1]:9000"),
    ],
)
def test_own_origin_is_what_the_servers_own_page_would_send(url, origin):
    from sentinel_ws_proxy.diagnostics.test_client import own_origin

    assert own_origin(url) == origin
