"""Verdicts on stacks nobody on this project wrote: Django Channels under daphne, python-socketio
under uvicorn, and Chromium driven by Playwright, all through the proxy.

Each scenario asserts the category, the side blamed, the recovery time (within 0.5 s of
what the test measured) and the key words of the advice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import websockets
from click.testing import CliRunner

from sentinel_ws_proxy.analysis.report import Window, failure_report
from sentinel_ws_proxy.cli import cli
from sentinel_ws_proxy.demo.server import Behaviour, start_demo_server
from sentinel_ws_proxy.recording.reader import Recording
from tests.conftest import CHROMIUM_FLAGS, chromium_path, running_proxy, within

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("daphne", reason="the test extra installs daphne (pip install -e '.[test]')")
pytest.importorskip("socketio", reason="the test extra installs python-socketio")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {output_of(process)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A server whose output goes to a file: a pipe nobody reads blocks it once full."""
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by stop())
    process = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
    )
    process.log = log  # type: ignore[attr-defined]
    return process


def output_of(process: subprocess.Popen) -> str:
    process.log.seek(0)  # type: ignore[attr-defined]
    return process.log.read()  # type: ignore[attr-defined]


def start_daphne(port: int) -> subprocess.Popen:
    """The Channels app, pinging clients every second and dropping them after 2 s of silence."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.stacks.channels_app.settings"}
    process = spawn(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "--ping-interval", "1", "--ping-timeout", "2",
         "tests.stacks.channels_app.asgi:application"], env,
    )  # fmt: skip
    wait_listening(port, process)
    return process


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    process.log.close()  # type: ignore[attr-defined]


@contextlib.contextmanager
def daphne() -> Iterator[tuple[int, list[subprocess.Popen]]]:
    port = free_port()
    processes = [start_daphne(port)]
    try:
        yield port, processes
    finally:
        for process in processes:
            stop(process)


def report_of(db: Path, **window):
    with Recording(db) as recording:
        return failure_report(recording, Window(**window))


def verdicts(report) -> dict[int, object]:
    return {v.session_id: v for v in report.classified.verdicts}


@contextlib.asynccontextmanager
async def browser(async_playwright) -> AsyncIterator[object]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_FLAGS, timeout=30_000
        )
        try:
            context = await launched.new_context()
            yield context
        finally:
            await launched.close()


async def opens(page) -> int:
    return int(await page.evaluate("+(document.body.dataset.opens || 0)"))


async def wait_opens(page, n: int) -> None:
    await page.wait_for_function(f"+(document.body.dataset.opens || 0) >= {n}")


# -- Channels under daphne, in Chromium ------------------------------------------------


async def test_navigation_and_a_tab_closed_for_good(tmp_path, async_playwright):
    db = tmp_path / "rec.db"
    with daphne() as (port, _):
        async with (
            running_proxy(f"http://127.0.0.1:{port}", db) as proxy,
            browser(async_playwright) as context,
        ):
            first = await context.new_page()
            first.set_default_timeout(15_000)
            await first.goto(proxy.url + "/")
            await wait_opens(first, 1)
            second = await context.new_page()  # a second tab of the same browser
            second.set_default_timeout(15_000)
            await second.goto(proxy.url + "/")
            await wait_opens(second, 1)
            clicked = time.time()
            await first.click("#next")  # navigation: close 1001, the next page reconnects
            await first.wait_for_url("**/two/")
            await wait_opens(first, 1)
            navigated_in = time.time() - clicked
            await first.close()  # this tab is closed for good; the second stays open
            await asyncio.sleep(0.5)
            await proxy.stop_once()
    report = report_of(db)
    found = verdicts(report)
    by_category = {}
    for s in report.classified.summaries:
        by_category.setdefault(found[s.id].category, []).append(s)
    assert len(by_category["navigation"]) == 1, {k: len(v) for k, v in by_category.items()}
    nav = found[by_category["navigation"][0].id]
    assert 0 <= nav.reconnect_gap <= navigated_in + 0.5
    # The closed tab is client_gone, not a navigation matched to the other tab's socket.
    (gone,) = by_category["client_gone"]
    assert found[gone.id].reconnect_gap is None and gone.closed_by == "client"
    assert report.failures == 0  # the browser working as designed is not a failure
    assert report.expected["navigation"] == 1 and report.expected["client_gone"] == 1


async def test_a_frozen_client_is_not_blamed_on_the_server(tmp_path):
    """A client that stops answering pings: daphne drops it; the verdict says who froze."""
    db = tmp_path / "rec.db"
    with daphne() as (port, _):
        async with running_proxy(f"http://127.0.0.1:{port}", db) as proxy:
            host, proxy_port = proxy.url.removeprefix("http://").rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, proxy_port)
            writer.write(
                b"GET /ws/mission-updates/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\nOrigin: " + proxy.url.encode() + b"\r\n\r\n"
            )
            started = time.monotonic()
            # Read everything, answer nothing: the server's pings go unanswered.
            with contextlib.suppress(ConnectionError):
                while await within(reader.read(4096), 20):
                    pass
            assert time.monotonic() - started < 15
            writer.close()
            await proxy.stop_once()
    report = report_of(db)
    (verdict,) = report.classified.verdicts
    (session,) = report.classified.summaries
    assert verdict.category == "client_unresponsive", verdict
    assert session.closed_by == "server"
    assert "pinged and nothing came back from the client" in verdict.explanation
    assert "unanswered" in verdict.evidence[0]
    assert "froze" in " ".join(report.as_json()["advice"]["client_unresponsive"]["causes"])


async def test_a_server_killed_and_restarted_is_an_outage_with_its_recovery(
    tmp_path, async_playwright
):
    db = tmp_path / "rec.db"
    with daphne() as (port, processes):
        async with (
            running_proxy(f"http://127.0.0.1:{port}", db) as proxy,
            browser(async_playwright) as context,
        ):
            page = await context.new_page()
            page.set_default_timeout(20_000)
            await page.goto(proxy.url + "/")
            await wait_opens(page, 1)
            killed = time.time()
            processes[0].send_signal(signal.SIGKILL)  # daphne dies without a close frame
            processes[0].wait(10)
            await asyncio.sleep(2.0)  # the page retries meanwhile: the proxy answers 502
            processes.append(await asyncio.to_thread(start_daphne, port))
            await wait_opens(page, 2)
            measured = time.time() - killed
            await proxy.stop_once()
    report = report_of(db)
    found = verdicts(report)
    first = report.classified.summaries[0]
    assert found[first.id].category == "server_restart", found[first.id]
    assert first.closed_by == "server" and first.close_code == 1006
    (disruption,) = [d for d in report.classified.disruptions if d.session_id == first.id]
    assert disruption.recovered_at is not None
    assert abs(disruption.recovery - measured) <= 0.5, (disruption.recovery, measured)
    assert {status for _, status in disruption.retries} == {502}
    (incident,) = report.incidents
    assert incident["refused_retries"]["502"] == len(disruption.retries) >= 1
    assert incident["recovered"] and abs(incident["seconds"] - measured) <= 0.5
    assert report.recovery_summary["recovered"] >= 1


async def test_refused_origin_anonymous_user_and_a_path_without_its_slash(tmp_path):
    db = tmp_path / "rec.db"
    with daphne() as (port, _):
        async with running_proxy(f"http://127.0.0.1:{port}", db) as proxy:
            base, origin = proxy.url.replace("http", "ws"), proxy.url
            for _ in range(3):  # what works, for the evidence to compare against
                ws = await within(websockets.connect(base + "/ws/mission-updates/", origin=origin))
                await within(ws.recv())
                await ws.close()
            refusals = {
                "origin": ("/ws/mission-updates/", "http://evil.example", 403),
                "anonymous": ("/ws/private/", origin, 403),
                "slash": ("/ws/mission-updates", origin, 500),
            }
            for path, sent_origin, status in refusals.values():
                with pytest.raises(websockets.InvalidStatus) as refused:
                    await within(websockets.connect(base + path, origin=sent_origin))
                assert refused.value.response.status_code == status
            await proxy.stop_once()
    report = report_of(db)
    found = verdicts(report)
    sessions = report.classified.summaries
    origin_v, anonymous_v, slash_v = (found[s.id] for s in sessions[3:])
    assert origin_v.category == "rejected"
    assert (
        f"Origin http://evil.example was refused; the 3 accepted sessions came from {origin}"
        in (origin_v.explanation)
    )
    assert anonymous_v.category == "rejected"
    assert "no session was ever accepted on /ws/private/" in anonymous_v.explanation
    assert slash_v.category == "server_error"
    assert (
        "path /ws/mission-updates answered 500 while /ws/mission-updates/ was accepted 3 times"
        in slash_v.explanation
    )
    assert "trailing slash" in slash_v.explanation
    advice = report.as_json()["advice"]
    assert any("Origin http://evil.example" in e for e in advice["rejected"]["evidence"])
    assert all(s.closed_by == "server" for s in sessions[3:])  # the upstream refused them


async def sentinel_ws(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sentinel_ws_proxy", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    out, _ = await within(process.communicate(), 60)
    return process.returncode, out.decode()


async def test_live_tools_pass_the_origin_validator_and_fix_finds_what_works():
    """test/health/monitor against Channels' AllowedHostsOriginValidator, with no --origin."""
    with daphne() as (port, _):
        where = ("--host", "127.0.0.1", "--port", str(port))
        code, out = await sentinel_ws("test", *where, "--path", "ws/mission-updates/",
                                      "--timeout", "0.5", "--json")  # fmt: skip
        result = json.loads(out)
        assert code == 0 and result["status"] == 101, out
        assert result["origin"] == f"http://127.0.0.1:{port}"

        code, out = await sentinel_ws(
            "test", *where, "--path", "ws/mission-updates/", "--no-origin"
        )
        assert code == 1 and "handshake refused with 403" in out and "refused this client" in out

        code, out = await sentinel_ws("health", *where, "--fix", "--json")  # the path, no slash
        assert code == 2
        report = json.loads(out)
        assert (
            "refused with 500" in report["reason"] and "no route for the path" in report["reason"]
        )
        fix = report["fixes"][0]["detail"]
        assert "/ws/mission-updates/ answers 101 where /ws/mission-updates answered 500" in fix
        assert "the route wants the trailing slash" in fix and "refuses no Origin (403)" in fix

        code, out = await sentinel_ws("health", *where, "--path", "ws/private/", "--fix", "--json")
        fix = json.loads(out)["fixes"][0]["detail"]
        assert "/ws/private/ refused (403) with every Origin tried" in fix
        assert "logged-in user" in fix and "Cookie" in fix

        code, out = await sentinel_ws(
            "monitor", *where, "--path", "ws/mission-updates/", "--once", "--interval", "0.2"
        )
        assert code == 0 and "connected  ws://" in out and "connection_established" in out
        assert "no /api/system/status: 404" in out


# -- a service restart (1012) -----------------------------------------------------------


async def test_a_1012_restart_is_a_server_restart_with_its_recovery(tmp_path):
    db = tmp_path / "rec.db"
    runner, _, port = await start_demo_server(Behaviour())
    try:
        async with running_proxy(f"http://127.0.0.1:{port}", db) as proxy:
            url = proxy.url.replace("http", "ws") + "/ws/mission-updates"
            ws = await within(websockets.connect(url, user_agent_header="restart-client"))
            await within(ws.recv())
            async with aiohttp.ClientSession() as http:
                restart = f"http://127.0.0.1:{port}/api/system/websockets/restart"
                async with http.post(restart) as response:  # every socket closed with 1012
                    assert response.status == 200
            closed_at = time.time()
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await within(ws.recv())
            await asyncio.sleep(0.3)  # the client's backoff
            again = await within(websockets.connect(url, user_agent_header="restart-client"))
            measured = time.time() - closed_at
            await again.close()
            await proxy.stop_once()
    finally:
        await runner.cleanup()
    report = report_of(db)
    first = report.classified.summaries[0]
    verdict = verdicts(report)[first.id]
    assert verdict.category == "server_restart" and first.close_code == 1012
    assert first.closed_by == "server"
    (disruption,) = [d for d in report.classified.disruptions if d.session_id == first.id]
    assert abs(disruption.recovery - measured) <= 0.5
    assert "restart" in report.as_json()["advice"]["server_restart"]["title"]


# -- python-socketio under uvicorn -------------------------------------------------------


@contextlib.contextmanager
def socketio_server(allowed: str) -> Iterator[int]:
    port = free_port()
    env = {**os.environ, "SIO_ALLOWED_ORIGINS": allowed}
    process = spawn(
        [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "tests.stacks.socketio_app.app:app"], env,
    )  # fmt: skip
    try:
        wait_listening(port, process)
        yield port
    finally:
        stop(process)


async def test_socketio_refusals_over_http_and_inside_the_messages(tmp_path):
    import socketio

    db = tmp_path / "rec.db"
    proxy_port = free_port()
    own = f"http://127.0.0.1:{proxy_port}"
    with socketio_server(own) as port:
        async with running_proxy(f"http://127.0.0.1:{port}", db, listen_port=proxy_port):
            # A page on another origin: refused on the very first polling request.
            foreign = socketio.AsyncClient(reconnection=False)
            with pytest.raises(socketio.exceptions.ConnectionError):
                await within(
                    foreign.connect(
                        own, headers={"Origin": "http://evil.example"}, auth={"token": "letmein"}
                    )
                )
            # The right origin over a WebSocket, without the token: the app refuses it.
            anonymous = socketio.AsyncClient(reconnection=False)
            with pytest.raises(socketio.exceptions.ConnectionError):  # "namespaces failed"
                await within(
                    anonymous.connect(own, headers={"Origin": own}, transports=["websocket"])
                )
            await asyncio.sleep(0.3)
            # And one that gets in, with its events decoded in the recording.
            member = socketio.AsyncClient(reconnection=False)
            await within(
                member.connect(
                    own,
                    headers={"Origin": own},
                    auth={"token": "letmein"},
                    transports=["websocket"],
                )
            )
            await member.emit("echo", {"mission_id": 7})
            await asyncio.sleep(0.3)
            await member.disconnect()
            await asyncio.sleep(0.3)
    report = report_of(db)
    http = report.http_failures
    assert http and http[0]["status"] == 400 and "/socket.io/" in http[0]["path"]
    assert "http://evil.example is not an accepted origin" in (http[0]["body"] or "")
    listed = CliRunner().invoke(cli, ["sessions", "--failed", "--db", str(db)]).output
    assert "HTTP failures on the sockets' paths" in listed
    assert "GET /socket.io/?" in listed and "not an accepted origin" in listed
    found = verdicts(report)
    refused_ws, member_ws = report.classified.summaries[:2]
    # The app's own refusal, judged by its protocol (issue 20): an authorization refusal.
    assert found[refused_ws.id].category == "rejected", found[refused_ws.id]
    assert found[refused_ws.id].judged_by == "socket.io"
    assert "connect_error on /: authentication failed" in found[refused_ws.id].explanation
    assert found[member_ws.id].category != "rejected"
    with Recording(db) as recording:
        messages = recording.messages(member_ws.id)
    from sentinel_ws_proxy.decoders import decode, for_session

    decoder = for_session(None, member_ws.path, "EIO=4", messages)
    kinds = [d.kind for m in messages if (d := decode(decoder, m.payload, m.direction))]
    assert "EVENT" in kinds and "CONNECT" in kinds
    shown = CliRunner().invoke(cli, ["show", str(member_ws.id), "--db", str(db)]).output
    flat = " ".join(shown.split())
    assert "socket.io decoded" in flat and 'EVENT echo {"mission_id":7}' in flat, shown
    lines = CliRunner().invoke(cli, ["export", "--format", "jsonl", "--db", str(db)]).output
    decoded = [json.loads(line).get("decoded") for line in lines.splitlines()]
    assert {"protocol": "socket.io", "kind": "CONNECT_ERROR"}.items() <= next(
        d for d in decoded if d and d["kind"] == "CONNECT_ERROR"
    ).items()
