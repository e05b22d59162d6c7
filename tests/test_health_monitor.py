"""health, monitor and menu against real servers, recordings and a pseudo-terminal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websockets
from aiohttp import web
from click.testing import CliRunner

from sentinel_ws_proxy.cli import cli
from sentinel_ws_proxy.demo.server import Behaviour, DemoBackend
from sentinel_ws_proxy.events import SessionClosed, SessionOpened, whole_frame
from sentinel_ws_proxy.recording.redact import Redactor
from sentinel_ws_proxy.recording.writer import RecordingWriter
from tests.conftest import recorded, running_proxy, serve_app, within
from tests.test_cli import cli_process


async def run(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sentinel_ws_proxy", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=cwd,
    )  # fmt: skip
    out, _ = await within(process.communicate(), 40)
    return process.returncode, out.decode()


def sentinel_app(backend: DemoBackend, *, ws_path="/ws/mission-updates", diagnostics=True):
    """An aiohttp server with the Sentinel endpoints, some of them broken on request."""

    async def broken(request):
        return web.json_response({"error": "diagnostics unavailable"}, status=500)

    app = web.Application()
    app.router.add_get("/api/system/status", backend.status)
    app.router.add_get(
        "/api/system/diagnostics/websockets", backend.diagnostics if diagnostics else broken
    )
    app.router.add_get("/api/missions", backend.list_missions)
    app.router.add_post("/api/system/websockets/restart", backend.restart)
    app.router.add_get(ws_path, backend.websocket)
    return app


@contextlib.asynccontextmanager
async def server(behaviour: Behaviour | None = None, **options):
    backend = DemoBackend(behaviour or Behaviour())
    async with serve_app(sentinel_app(backend, **options)) as url:
        yield url.rsplit(":", 1)[1], backend


async def test_healthy_server_is_ok():
    async with server() as (port, _):
        code, out = await run("health", "--host", "127.0.0.1", "--port", port, "--full")
    assert code == 0, out
    assert re.search(r"server\s.*OK", out) and re.search(r"websocket\s.*OK", out)
    assert "probe answered" in out and "3 missions" in out
    assert "Diagnostics: 0 active connections" in out
    assert "Verdict: OK (every check passed)" in out


async def test_health_takes_the_server_as_one_url():
    async with server(ws_path="/ws/other") as (port, _):
        code, out = await run("health", f"ws://127.0.0.1:{port}/ws/other", "--json")
    report = json.loads(out)
    assert code == 0, out
    assert report["target"] == f"http://127.0.0.1:{port}"
    assert "/ws/other" in next(c["detail"] for c in report["checks"] if c["name"] == "websocket")


async def test_failing_diagnostics_is_a_warning():
    async with server(diagnostics=False) as (port, _):
        code, out = await run("health", "--host", "127.0.0.1", "--port", port, "--json")
    assert code == 1
    report = json.loads(out)
    assert report["verdict"] == "WARNING"
    assert "diagnostics" in report["reason"] and "500" in report["reason"]


async def test_foreign_origin_is_critical_and_fix_names_the_cause():
    async with server() as (port, _):
        args = ["health", "--host", "127.0.0.1", "--port", port, "--origin", "http://evil.example"]
        code, out = await run(*args)
        assert code == 2 and "handshake refused with 403" in out
        code, out = await run(*args, "--fix", "--json")
    report = json.loads(out)
    (fix,) = report["fixes"]
    assert fix["outcome"] == "MANUAL ACTION REQUIRED"
    assert "accepts no Origin" in fix["detail"]
    assert "refuses Origin http://evil.example" in fix["detail"] and "CORS/Origin" in fix["detail"]


async def test_moved_path_is_found_by_fix():
    async with server(ws_path="/ws") as (port, _):
        code, out = await run("health", "--host", "127.0.0.1", "--port", port, "--fix")
    assert code == 2
    assert "MANUAL ACTION REQUIRED" in out and "/ws answers 101" in out


async def test_status_and_missions_accept_objects_and_say_what_they_looked_for():
    backend = DemoBackend(Behaviour())
    answers = {"status": {"status": "error"}, "missions": {"missions": [{"id": 1}, {"id": 2}]}}

    async def status(request):
        return web.json_response(answers["status"])

    async def missions(request):
        return web.json_response(answers["missions"])

    app = web.Application()
    app.router.add_get("/api/system/status", status)
    app.router.add_get("/api/system/diagnostics/websockets", backend.diagnostics)
    app.router.add_get("/api/missions", missions)
    app.router.add_get("/ws/mission-updates", backend.websocket)
    async with serve_app(app) as url:
        port = url.rsplit(":", 1)[1]
        code, out = await run("health", "--host", "127.0.0.1", "--port", port, "--json")
        checks = {c["name"]: c for c in json.loads(out)["checks"]}
        assert checks["missions"]["status"] == "ok" and checks["missions"]["detail"] == "2 missions"
        assert checks["server"]["status"] == "warning" and "status 'error'" in out
        assert code == 1
        answers.update(status={"uptime": 3}, missions={"count": 2})
        code, out = await run("health", "--host", "127.0.0.1", "--port", port, "--json")
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["server"]["status"] == "ok" and "no JSON object with a status field" in out
    assert checks["missions"]["status"] == "warning"
    assert "looked for a JSON list, or an object with a missions" in checks["missions"]["detail"]


async def test_websocket_check_sends_the_servers_own_origin():
    behaviour = Behaviour(allowed_origins=())
    async with server(behaviour) as (port, backend):
        seen = []
        original = backend.origin_allowed

        def strict(origin):  # a validator that wants an Origin, as Django Channels' does
            seen.append(origin)
            return bool(origin) and original(origin)

        backend.origin_allowed = strict
        code, out = await run("health", "--host", "127.0.0.1", "--port", port)
        assert code == 0, out
        assert seen == [f"http://127.0.0.1:{port}"]
        code, out = await run("health", "--host", "127.0.0.1", "--port", port, "--no-origin")
        assert code == 2 and "handshake refused with 403" in out
        code, out = await run("health", "--port", port, "--origin", "localhost:3000", "--no-origin")
    assert code == 2 and "--origin and --no-origin exclude each other" in out


async def test_server_down_names_a_start_script(tmp_path):
    (tmp_path / "start.sh").write_text("#!/bin/sh\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    code, out = await run("health", "--host", "127.0.0.1", "--port", port, "--fix", cwd=tmp_path)
    assert code == 2
    assert "server down" in out and "found start.sh here" in out
    assert (tmp_path / "start.sh").read_text() == "#!/bin/sh\n"  # never changes files


async def test_stale_websocket_is_fixed_by_the_restart_endpoint():
    async with server(Behaviour(mode="stale")) as (port, backend):
        code, out = await run(
            "health", "--host", "127.0.0.1", "--port", port, "--timeout", "0.5", "--json"
        )
        assert code == 1 and "no message within 0.5 s" in json.loads(out)["reason"]
        code, out = await run(
            "health", "--host", "127.0.0.1", "--port", port, "--timeout", "0.5", "--fix"
        )
    assert code == 0, out
    assert "FIXED" in out and "/api/system/websockets/restart" in out
    assert backend.behaviour.mode == "normal"


def write_recording(db: Path, endings: list[tuple[int, int | None, str | None, bool]]) -> None:
    """Sessions by hand: (handshake status, close code, closed by, clean), one client each."""
    writer = RecordingWriter(db, redactor=Redactor(), max_payload=1024, listen="t", upstream="t")
    writer.open()
    t = time.time() - 1000
    for i, (status, code, by, clean) in enumerate(endings):
        sid = writer.first_session_id + i
        headers = (("User-Agent", f"client-{i}"),)
        writer.handle(
            SessionOpened(sid, t + i, "10.0.0.1", "/ws", "", "ws://u/ws", headers, status)
        )
        if status == 101:
            writer.handle(whole_frame(sid, t + i + 0.1, "s2c", "text", b"hi"))
        writer.handle(
            SessionClosed(sid, t + i + 0.5, code, None, by, clean, 0, 1, 0, 2, t + i + 0.1)
        )
    writer.close()


@pytest.mark.parametrize(
    "mix,verdict,code",
    [
        ([(101, 1000, "client", True)] * 20, "OK", 0),
        ([(101, 1000, "client", True)] * 18 + [(403, None, "server", False)] * 2, "WARNING", 1),
        ([(101, 1000, "client", True)] * 14 + [(101, 1006, "server", False)] * 6, "CRITICAL", 2),
    ],
)
def test_health_from_a_recording(tmp_path, mix, verdict, code):
    db = tmp_path / "r.db"
    write_recording(db, mix)
    result = CliRunner().invoke(cli, ["health", "--db", str(db), "--json"])
    assert result.exit_code == code, result.output
    report = json.loads(result.output)
    assert report["verdict"] == verdict
    assert report["metrics"]["sessions"] == 20


def test_health_thresholds_are_options(tmp_path):
    db = tmp_path / "r.db"
    write_recording(db, [(101, 1000, "client", True)] * 18 + [(403, None, "server", False)] * 2)
    loose = CliRunner().invoke(
        cli, ["health", "--db", str(db), "--threshold", "handshake_failures=0.2/0.5"]
    )
    # The two refused clients never got in: a warning of its own, until it is loosened too.
    assert loose.exit_code == 1 and "never_recovered" in loose.output, loose.output
    looser = CliRunner().invoke(
        cli,
        ["health", "--db", str(db), "--threshold", "handshake_failures=0.2/0.5",
         "--threshold", "never_recovered=1"],
    )  # fmt: skip
    assert looser.exit_code == 0, looser.output
    bad = CliRunner().invoke(cli, ["health", "--db", str(db), "--threshold", "nonsense=1"])
    assert bad.exit_code == 2 and "expected NAME=WARN[/CRIT]" in bad.output


async def test_monitor_once_live():
    async with server() as (port, _):
        code, out = await run("monitor", "--host", "127.0.0.1", "--port", port, "--once")
    assert code == 0, out
    assert "ok (200)" in out and "connected" in out
    assert "connection_established" in out and "Missions            3" in out


async def test_monitor_follow_and_replay_snapshots(tmp_path, echo_upstream):
    db = tmp_path / "r.db"
    async with running_proxy(echo_upstream, db) as proxy:
        url = proxy.url.replace("http", "ws")
        closed = await within(websockets.connect(url + "/ws/gone"))
        await closed.send("x")
        await within(closed.recv())
        await closed.close(1001)
        # Another browser: the same one opening a socket now would be its page coming back.
        open_ws = await within(
            websockets.connect(url + "/ws/still-open", user_agent_header="another browser")
        )
        await open_ws.send("hello")
        await within(open_ws.recv())
        await recorded(db, "SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL")
        await recorded(db, "SELECT count(*) FROM frames WHERE opcode = 'text'", 4)
        code, out = await run("monitor", "--db", str(db), "--follow", "--once")
        assert code == 0, out
        assert re.search(r"/ws/still-open\s.*1/1", out), out
        assert re.search(r"/ws/gone\s.*1001 going away\s.*client\s.*client_gone", out), out
        await open_ws.close()
        await proxy.stop_once()
    code, out = await run("monitor", "--db", str(db), "--replay", "--once")
    assert code == 0, out
    flat = re.sub(r"[│|\s]+", " ", out)  # the header may wrap inside its panel
    assert "replay finished" in flat and "0 open, 2 sessions seen" in flat
    assert re.search(r"/ws/still-open\s.*1000 normal closure\s.*clean", out)
    assert "q quit" not in out and "━" not in out  # a snapshot, plain when piped
    code, alone = await run("monitor", "--db", str(db), "--once")  # --db alone: the end
    assert code == 0 and "replay finished" in re.sub(r"[|\s]+", " ", alone)


async def test_monitor_bad_input(tmp_path):
    for args, message in (
        (["--follow"], "give --db PATH"),
        (["--db", str(tmp_path / "none.db"), "--replay"], "no such recording"),
        (["--db", str(tmp_path / "none.db"), "--follow", "--replay"], "choose --follow"),
    ):
        process = await cli_process("monitor", *args, merge_stderr=True)
        out, _ = await within(process.communicate())
        assert process.returncode == 2 and message in out.decode(), out


def read_screen(fd: int, want: str, timeout: float = 20.0) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while want.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{want!r} never appeared; screen so far: {seen[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen.decode(errors="replace")


@pytest.mark.timeout(60)
async def test_interactive_dashboard_under_a_pseudo_terminal():
    async with server() as (port, _):
        leader, follower = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "-m", "sentinel_ws_proxy", "monitor", "--host", "127.0.0.1",
             "--port", port, "--interval", "0.3"],
            stdin=follower, stdout=follower, stderr=follower, close_fds=True,
            env={**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm"},
        )  # fmt: skip
        os.close(follower)
        try:
            screen = await asyncio.to_thread(read_screen, leader, "connection_established")
            assert "Sentinel WebSocket monitor" in screen and "connected" in screen
            os.write(leader, b"r")
            await asyncio.to_thread(read_screen, leader, "Reconnects")
            os.write(leader, b"q")
            code = await asyncio.to_thread(process.wait, 20)
            assert code == 0
        finally:
            if process.poll() is None:
                process.kill()
            os.close(leader)


async def test_menu_runs_the_chosen_tool():
    async with server() as (port, _):
        # health, then a proxy on a port already taken (an error), then quit.
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            taken = busy.getsockname()[1]
            answers = (
                f"2\n127.0.0.1\n{port}\nws/mission-updates\nn\nn\n"
                f"4\n127.0.0.1:{taken}\nhttp://127.0.0.1:{port}\nrecordings/menu-test.db\nq\n"
            )
            result = await asyncio.to_thread(CliRunner().invoke, cli, ["menu"], input=answers)
    assert result.exit_code == 0, result.output
    assert "1. test" in result.output and "6. replay" in result.output
    assert f"Running: sentinel-ws health --host 127.0.0.1 --port {port}" in result.output
    assert "Verdict: OK" in result.output and "health exited with status 0" in result.output
    assert "sentinel-ws: error:" in result.output and "proxy exited with status 2" in result.output
    assert result.output.count("Sentinel WebSocket tools") == 3  # back after each tool
