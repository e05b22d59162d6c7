"""The sentinel-ws command as users run it: options, errors, signals."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import websockets
from click.testing import CliRunner

from sentinel_ws_proxy import __version__
from sentinel_ws_proxy.cli import cli
from tests.conftest import STEP, rows, within, ws_url


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_version():
    result = run_cli("--version")
    assert result.exit_code == 0
    assert __version__ in result.output


def test_every_command_is_found_where_the_group_looks_for_it():
    """Commands load with their module: the group's list must name each one's module."""
    import importlib
    import pkgutil

    import sentinel_ws_proxy.cli as package
    from sentinel_ws_proxy.cli.app import COMMAND_MODULES

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"sentinel_ws_proxy.cli.{info.name}")
    declared = {name: c.callback.__module__.rsplit(".", 1)[-1] for name, c in cli.commands.items()}
    assert declared == COMMAND_MODULES


def test_a_read_command_does_not_load_the_proxy():
    code = (
        "import sys; from sentinel_ws_proxy.cli import cli; "
        "cli.main(['sql', '--help'], standalone_mode=False); "
        "print(sorted(m for m in ('aiohttp', 'sentinel_ws_proxy.proxy.server', "
        "'sentinel_ws_proxy.demo.server') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("[]"), done.stdout


def test_proxy_help_explains_the_defaults():
    result = run_cli("proxy", "--help")
    assert result.exit_code == 0
    for text in ("127.0.0.1:8002", "http://localhost:8001", "recordings/sentinel.db", "1009"):
        assert text in result.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--upstream", "ftp://x"], "expected http://HOST"),
        (["--upstream", "http://localhost:8001/api"], "give only the origin"),
    ],
)
def test_bad_options_get_one_line_and_status_2(args, message, tmp_path):
    result = run_cli("proxy", "--db", str(tmp_path / "r.db"), *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["--listen", "nonsense"], "Invalid value for '--listen': expected HOST:PORT"),
        (["--listen", "127.0.0.1:99999"], "port must be a number"),
        (["--max-message", "lots"], "Invalid value for '--max-message': expected a size"),
        (["--close-timeout", "soon"], "Invalid value for '--close-timeout': 'soon' is not a"),
        (["--fault", "close cod=1"], "close has no setting 'cod'"),
    ],
)
def test_bad_values_are_usage_errors_as_click_prints_them(args, message, tmp_path):
    """A shared parameter type: the same words for the same mistake on every command."""
    result = run_cli("proxy", "--db", str(tmp_path / "r.db"), *args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith("Usage: ") and message in result.output


def test_the_shared_types_take_every_form(tmp_path):
    from sentinel_ws_proxy.cli.params import Duration, HostPort, Size

    assert HostPort().convert("http://127.0.0.1:8003/x", None, None) == ("127.0.0.1", 8003)
    assert HostPort().convert("[::1]:8002", None, None) == ("::1", 8002)
    assert HostPort().convert("9000", None, None) == ("127.0.0.1", 9000)
    assert Size().convert("16M", None, None) == 16 * 1024 * 1024
    assert [Duration().convert(v, None, None) for v in ("5", "500ms", "2m", 1.5)] == [
        5.0, 0.5, 120.0, 1.5,
    ]  # fmt: skip


def test_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_cli("proxy", "--listen", f"127.0.0.1:{port}", "--db", str(tmp_path / "r.db"))
    assert result.exit_code == 2
    assert "already in use" in result.output
    assert not (tmp_path / "r.db").exists()


def test_recording_path_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("proxy", "--listen", "127.0.0.1:0", "--db", str(blocker / "r.db"))
    assert result.exit_code == 2
    assert "cannot open" in result.output
    assert "Traceback" not in result.output


def test_file_that_is_not_sqlite(tmp_path):
    notes = tmp_path / "notes.db"
    notes.write_text("hello, not a database\n" * 100)
    result = run_cli("proxy", "--listen", "127.0.0.1:0", "--db", str(notes))
    assert result.exit_code == 2
    assert "is not a SQLite database" in result.output
    assert notes.read_text().startswith("hello")


def test_sqlite_file_that_is_not_ours(tmp_path):
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    result = run_cli("proxy", "--listen", "127.0.0.1:0", "--db", str(other))
    assert result.exit_code == 2
    assert "not a sentinel-ws recording" in result.output


async def cli_process(*args: str, merge_stderr: bool = False) -> asyncio.subprocess.Process:
    """The real command in a subprocess, as a user runs it."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sentinel_ws_proxy",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merge_stderr else asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def printed_url(
    process: asyncio.subprocess.Process, pattern: str, seconds: float = STEP
) -> str:
    """Read the command's output until a line matches pattern; its first group."""
    while True:
        line = (await within(process.stdout.readline(), seconds)).decode()
        assert line, "exited early: " + (await process.stderr.read()).decode()
        found = re.search(pattern, line)
        if found:
            return found.group(1)


async def start_cli_proxy(upstream_url: str, db: Path, *extra: str):
    process = await cli_process(
        "proxy", "--listen", "127.0.0.1:0", "--upstream", upstream_url, "--db", str(db), *extra
    )
    banner = []
    while True:
        line = (await within(process.stdout.readline())).decode()
        assert line, "proxy exited early: " + (await process.stderr.read()).decode()
        banner.append(line)
        if line.startswith("Point your frontend at"):
            break
    url = re.search(r"http://127\.0\.0\.1:\d+", banner[-1]).group(0)
    return process, url, "".join(banner)


async def test_sigterm_mid_stream_flushes_every_relayed_frame(tmp_path):
    db = tmp_path / "rec.db"
    upstream_got: list[str] = []

    async def echo(ws) -> None:
        async for message in ws:
            upstream_got.append(message)
            await ws.send(message)

    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        process, url, banner = await start_cli_proxy(f"http://127.0.0.1:{port}", db)
        assert f"upstream      http://127.0.0.1:{port}" in banner
        assert str(db) in banner
        client_got: list[str] = []
        async with websockets.connect(ws_url(url, "/ws")) as ws:

            async def send_forever() -> None:
                i = 0
                while True:
                    await ws.send(f"m{i}")
                    i += 1
                    await asyncio.sleep(0)

            sender = asyncio.create_task(send_forever())
            try:
                while True:
                    client_got.append(await within(ws.recv()))
                    if len(client_got) == 500:
                        process.send_signal(signal.SIGTERM)
            except websockets.ConnectionClosed:
                pass
            finally:
                sender.cancel()
            assert (ws.close_code, ws.close_reason) == (1001, "sentinel-ws proxy shutting down")
        assert await within(process.wait(), 20) == 0
        out = (await process.stdout.read()).decode()
        assert "Stopped. Recorded" in out

    assert len(client_got) >= 500
    recorded_c2s = {r[0] for r in rows(db, "SELECT payload FROM frames WHERE direction='c2s'")}
    recorded_s2c = {r[0] for r in rows(db, "SELECT payload FROM frames WHERE direction='s2c'")}
    # Every frame that crossed the proxy is in the recording.
    assert set(upstream_got) <= recorded_c2s
    assert set(client_got) <= recorded_s2c
    (session,) = rows(db, "SELECT * FROM sessions")
    assert (session["closed_by"], session["close_code"]) == ("proxy", 1001)
    (run,) = rows(db, "SELECT * FROM runs")
    assert run["ended_at"] is not None


async def test_second_proxy_on_the_same_recording_is_refused(tmp_path, echo_upstream):
    db = tmp_path / "rec.db"
    process, _url, _ = await start_cli_proxy(echo_upstream, db)
    try:
        second = await cli_process(
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            echo_upstream,
            "--db",
            str(db),
            merge_stderr=True,
        )
        out, _ = await within(second.communicate(), 20)
        assert second.returncode == 2
        assert "being written by another sentinel-ws proxy" in out.decode()
    finally:
        process.send_signal(signal.SIGINT)
        assert await within(process.wait(), 20) == 0
