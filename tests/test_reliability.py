"""The recording never dies silently and a killed proxy's sessions end (issue 12)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest
import websockets
from click.testing import CliRunner

from sentinel_ws_proxy.cli import cli
from sentinel_ws_proxy.events import HttpRequest, SessionOpened, whole_frame
from sentinel_ws_proxy.recording.redact import Redactor
from sentinel_ws_proxy.recording.writer import RecordingWriter
from tests.conftest import recorded, rows, running_proxy, within, ws_url
from tests.test_cli import cli_process, start_cli_proxy

T0 = 1_800_000_000.0


def writer(db: Path, **options) -> RecordingWriter:
    w = RecordingWriter(
        db, redactor=Redactor(), max_payload=1024, listen="test", upstream="x", **options
    )
    w.open()
    return w


def test_a_value_sqlite_refuses_costs_a_repair_not_the_recording(tmp_path, capfd):
    db = tmp_path / "r.db"
    w = writer(db)
    # A path with a byte that was not UTF-8, as aiohttp hands it on (surrogateescape).
    w.handle(HttpRequest(T0, "127.0.0.1", "GET", "/caf\udce9", "", 200, 1.0))
    w.handle(HttpRequest(T0 + 1, "127.0.0.1", "GET", "/after", "", 200, 1.0))
    headers = (("User-Agent", "old browser \udcff"),)
    w.handle(SessionOpened(1, T0 + 2, "127.0.0.1", "/ws", "", "ws://x/ws", headers, 101))
    w.handle(whole_frame(1, T0 + 3, "c2s", "text", b"still recording"))
    stats = w.close()
    assert stats.dropped == 0 and stats.repaired == 2
    paths = [r[0] for r in rows(db, "SELECT path FROM http_requests ORDER BY id")]
    assert paths == ["/caf\xe9".encode("latin-1"), "/after"]  # the byte itself, as a BLOB
    (session,) = rows(db, "SELECT user_agent, request_headers FROM sessions")
    assert session["user_agent"] == b"old browser \xff"
    assert rows(db, "SELECT payload FROM frames")[0][0] == "still recording"
    assert "stored as bytes" in capfd.readouterr().err


async def test_latin1_header_and_reason_phrase_are_recorded_and_recording_goes_on(db):
    """A raw client sends a Latin-1 User-Agent; a raw server refuses with a Latin-1 reason."""

    async def refuse(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 403 Interdit \xe0 vous\r\nX-Why: r\xe8gle\r\nContent-Length: 2\r\n\r\nno"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, running_proxy(f"http://127.0.0.1:{port}", db) as proxy:
        host = proxy.url.removeprefix("http://")
        for agent in (b"Navigateur \xe9t\xe9", b"second"):
            reader, writer = await asyncio.open_connection(*host.rsplit(":", 1))
            writer.write(
                b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                b"User-Agent: " + agent + b"\r\n\r\n"
            )
            answer = await within(reader.read())
            assert answer.startswith(b"HTTP/1.1 403 Interdit \xe0 vous\r\n")  # as sent
            writer.close()
        await proxy.stop_once()
        assert proxy.recorder.stats.dropped == 0
    found = rows(db, "SELECT user_agent, response_line, response_headers FROM sessions ORDER BY id")
    assert [r["user_agent"] for r in found] == ["Navigateur été", "second"]
    assert found[0]["response_line"] == "HTTP/1.1 403 Interdit à vous"
    assert json.loads(found[0]["response_headers"])["x-why"] == "règle"


def full_disk(made: list[sqlite3.Connection]):
    """The writer's connection on a disk that is full: SQLite's own SQLITE_FULL, through a
    page limit the file has already reached (raising the limit is space coming back)."""

    def connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        made.append(conn)
        return conn

    return connect


def paused_writer(db: Path, made: list) -> RecordingWriter:
    w = writer(db, connect=full_disk(made))
    for i in range(20):
        w.handle(whole_frame(1, time.time(), "c2s", "binary", bytes([i]) * 4000))
    deadline = time.monotonic() + 10
    while w.stats.paused_since is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert w.stats.paused_since is not None, "the full disk was not noticed"
    return w


def test_a_full_disk_pauses_recording_and_it_resumes_when_space_returns(tmp_path, capfd):
    db = tmp_path / "r.db"
    made: list[sqlite3.Connection] = []
    w = paused_writer(db, made)
    time.sleep(0.3)
    assert w.stats.dropped == 0 and w.backlog() == 20 * 4000  # held, not lost
    made[0].execute("PRAGMA max_page_count = 1000000")  # space comes back
    stats = w.close()
    assert stats.dropped == 0
    assert rows(db, "SELECT count(*) FROM frames")[0][0] == 20
    err = capfd.readouterr().err
    assert "paused: database or disk is full" in err and "recording resumed after" in err


def test_a_stopping_proxy_gives_up_on_a_full_disk_and_counts_the_loss(tmp_path, capfd):
    db = tmp_path / "r.db"
    w = paused_writer(db, [])
    stats = w.close(give_up_after=0.5)
    assert stats.dropped == 20 and "the disk refused them" in " ".join(stats.lost)
    assert "gave up on 20 events" in capfd.readouterr().err
    assert w.backlog() == 0  # taken off the backlog: relays are not held forever


async def test_a_killed_proxy_sessions_end_in_readers_and_in_the_next_run(tmp_path, echo_upstream):
    db = tmp_path / "rec.db"
    process, url, _ = await start_cli_proxy(echo_upstream, db)
    ws = await within(websockets.connect(ws_url(url, "/ws")))
    await ws.send("before the kill")
    assert await within(ws.recv()) == "before the kill"
    await recorded(db, "SELECT count(*) FROM frames", 2)  # both ways, committed
    process.send_signal(signal.SIGKILL)
    await within(process.wait())
    before = db.read_bytes()
    result = CliRunner().invoke(cli, ["sessions", "--json", "--db", str(db)])
    assert result.exit_code == 0, result.output
    (shown,) = json.loads(result.output)
    assert shown["closed_by"] == "proxy" and "crashed or was killed" in shown["error"]
    assert shown["category"] == "proxy_shutdown" and shown["ended_at"] is not None
    assert db.read_bytes() == before  # the reader changed nothing
    # The next proxy on the file closes the run and its session for good.
    process, url, _ = await start_cli_proxy(echo_upstream, db)
    process.send_signal(signal.SIGINT)
    assert await within(process.wait(), 20) == 0
    first = rows(db, "SELECT * FROM sessions WHERE id = 1")[0]
    assert first["ended_at"] is not None and first["closed_by"] == "proxy"
    assert first["frames_c2s"] == 1 and first["frames_s2c"] == 1
    assert all(r["ended_at"] is not None for r in rows(db, "SELECT ended_at FROM runs"))
    await ws.close()


async def test_a_second_signal_drops_open_sessions_and_keeps_every_received_frame(tmp_path):
    db = tmp_path / "rec.db"
    upstream_got: list[str] = []

    async def echo(ws) -> None:
        async for message in ws:
            upstream_got.append(message)
            await ws.send(message)

    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        process, url, _ = await start_cli_proxy(f"http://127.0.0.1:{port}", db)
        clients_got: list[str] = []
        # A client that never answers a close frame: a plain stop would wait for it.
        host = url.removeprefix("http://")
        _, mute = await asyncio.open_connection(*host.rsplit(":", 1))
        mute.write(
            b"GET /mute HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )

        async def stream(index: int) -> None:
            async with websockets.connect(ws_url(url, f"/ws?c={index}")) as ws:
                i = 0
                try:
                    while True:
                        await ws.send(f"{index}:{i}")
                        clients_got.append(await within(ws.recv()))
                        i += 1
                except websockets.ConnectionClosed:
                    pass

        streams = [asyncio.ensure_future(stream(i)) for i in range(4)]
        while len(clients_got) < 400:
            await asyncio.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        line = (await within(process.stderr.readline())).decode()
        assert "closing 5 open sessions" in line, line
        process.send_signal(signal.SIGTERM)
        assert await within(process.wait(), 20) == 0
        rest = (await process.stderr.read()).decode()
        assert "dropping" in rest, rest
        await within(asyncio.gather(*streams), 20)
        mute.close()

    recorded_c2s = {r[0] for r in rows(db, "SELECT payload FROM frames WHERE direction='c2s'")}
    recorded_s2c = {r[0] for r in rows(db, "SELECT payload FROM frames WHERE direction='s2c'")}
    assert set(upstream_got) <= recorded_c2s
    assert set(clients_got) <= recorded_s2c
    assert all(r[0] is not None for r in rows(db, "SELECT ended_at FROM sessions"))
    assert rows(db, "SELECT ended_at FROM runs")[0][0] is not None


async def test_an_http_upstream_that_never_answers_is_a_504(db):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts TCP, never answers
    port = silent.getsockname()[1]
    try:
        async with (
            running_proxy(f"http://127.0.0.1:{port}", db, upstream_timeout=0.5) as proxy,
            aiohttp.ClientSession() as http,
        ):
            started = time.monotonic()
            async with http.get(f"{proxy.url}/api/slow") as response:
                assert response.status == 504
                assert "did not start answering within 0.5 s" in await response.text()
            assert time.monotonic() - started < 5
            await proxy.stop_once()
    finally:
        silent.close()
    (request,) = rows(db, "SELECT status, error FROM http_requests")
    assert request["status"] == 504 and "0.5 s" in request["error"]


async def test_silent_and_slowloris_clients_are_let_go(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db, head_timeout=0.5) as proxy:
        host, port = proxy.url.removeprefix("http://").rsplit(":", 1)
        silent_r, silent_w = await asyncio.open_connection(host, port)
        slow_r, slow_w = await asyncio.open_connection(host, port)
        started = time.monotonic()
        try:
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\n":  # a byte at a time, never done
                slow_w.write(bytes([byte]))
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass  # let go while still sending: what should happen
        for reader in (silent_r, slow_r):
            try:
                assert await within(reader.read()) == b""
            except ConnectionError:
                pass  # closed under a write: as good as an end
        assert time.monotonic() - started < 3
        assert proxy.proxy.slow_clients == 2
        silent_w.close()
        slow_w.close()


async def test_connections_past_max_connections_get_503(echo_upstream, db):
    async with running_proxy(echo_upstream, db, max_connections=2) as proxy:
        first = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        second = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        with pytest.raises(websockets.InvalidStatus) as refused:
            await within(websockets.connect(ws_url(proxy.url, "/ws")))
        assert refused.value.response.status_code == 503
        await first.close()
        await asyncio.sleep(0.1)
        third = await within(websockets.connect(ws_url(proxy.url, "/ws")))  # room again
        for ws in (second, third):
            await ws.close()
        assert proxy.proxy.refused_connections == 1


async def test_malformed_requests_are_one_line_each_without_traceback(tmp_path, echo_upstream):
    process, url, _ = await start_cli_proxy(echo_upstream, tmp_path / "rec.db")
    host, port = url.removeprefix("http://").rsplit(":", 1)
    for _ in range(20):
        _, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n")
        await writer.drain()
        writer.close()
    await asyncio.sleep(0.3)
    process.send_signal(signal.SIGINT)
    assert await within(process.wait(), 20) == 0
    err = (await process.stderr.read()).decode()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "Error handling request" in line]
    assert 1 <= len(lines) <= 3, err  # a line a second, with a count of the rest


def test_a_write_to_a_deleted_file_goes_to_the_new_one(tmp_path, monkeypatch, capfd):
    """SQLite writes on into a deleted file; the next batch must go to a new one."""
    from sentinel_ws_proxy.recording import writer as writer_module

    monkeypatch.setattr(writer_module, "FILE_CHECK", 3600.0)  # the idle check cannot help
    db = tmp_path / "r.db"
    w = writer(db)
    w.handle(SessionOpened(1, T0, "127.0.0.1", "/ws", "", "ws://x/ws", (), 101))
    w.handle(whole_frame(1, T0 + 1, "c2s", "text", b"before"))
    deadline = time.monotonic() + 10
    while w.stats.rows_written < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink()
    w.handle(whole_frame(1, T0 + 2, "s2c", "text", b"after"))
    started = time.monotonic()
    stats = w.close()
    assert time.monotonic() - started < 5  # not paused as if the disk were full
    assert stats.dropped == 0 and stats.recreated == 1 and stats.errors == 0
    assert [r[0] for r in rows(db, "SELECT payload FROM frames")] == ["after"]
    assert "was deleted or replaced while recording" in capfd.readouterr().err


@pytest.mark.parametrize("wal_first", [False, True])
def test_a_file_deleted_before_the_writer_thread_looked_is_still_noticed(
    tmp_path, capfd, wal_first
):
    """The thread may start late, after the file went: the gap is not its own file."""
    db = tmp_path / "r.db"
    connects = []

    def connect_then_lose_the_file(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=30.0)
        if wal_first:  # the file goes after the connection is set up, not during
            conn.execute("PRAGMA journal_mode=WAL")
        connects.append(path)
        if len(connects) == 1:  # the thread's first connection; not the new file's
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return conn

    w = writer(db, connect=connect_then_lose_the_file)
    w.handle(SessionOpened(1, T0, "127.0.0.1", "/ws", "", "ws://x/ws", (), 101))
    w.handle(whole_frame(1, T0 + 1, "c2s", "text", b"kept"))
    stats = w.close()
    assert stats.recreated == 1 and stats.dropped == 0, stats
    assert [r[0] for r in rows(db, "SELECT payload FROM frames")] == ["kept"]
    assert "was deleted or replaced while recording" in capfd.readouterr().err


async def test_a_recording_deleted_under_the_proxy_is_made_anew_and_said_loudly(
    tmp_path, echo_upstream
):
    db = tmp_path / "rec.db"
    process, url, _ = await start_cli_proxy(echo_upstream, db)
    ws = await within(websockets.connect(ws_url(url, "/ws")))
    await ws.send("before")
    await within(ws.recv())
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    deadline = time.monotonic() + 5
    while not db.exists() and time.monotonic() < deadline:  # the writer looks twice a second
        await asyncio.sleep(0.05)
    if not db.exists():
        process.send_signal(signal.SIGINT)
        await within(process.wait(), 20)
        err = (await process.stderr.read()).decode()
        files = sorted(p.name for p in tmp_path.iterdir())
        raise AssertionError(f"not made anew within 5 s; files {files}; stderr:\n{err}")
    await ws.send("after")
    assert await within(ws.recv()) == "after"
    await ws.close()
    process.send_signal(signal.SIGINT)
    status = await within(process.wait(), 20)
    err = (await process.stderr.read()).decode()
    out = (await process.stdout.read()).decode()
    said = f"exit {status}\nstdout:\n{out}\nstderr:\n{err}"  # for a failure's report
    assert status == 0, said
    assert "was deleted or replaced while recording" in err, said
    payloads = [r[0] for r in rows(db, "SELECT payload FROM frames WHERE opcode = 'text'")]
    # "before" rows the writer had not committed when the file went land in the new one.
    assert payloads[-2:] == ["after", "after"], (payloads, said)
    assert set(payloads) <= {"before", "after"}, (payloads, said)
    (run,) = rows(db, "SELECT ended_at FROM runs")
    assert run[0] is not None, said


async def test_demo_will_not_replace_a_recording_a_proxy_is_writing(tmp_path, echo_upstream):
    db = tmp_path / "demo.db"
    process, _, _ = await start_cli_proxy(echo_upstream, db)
    try:
        demo = await cli_process("demo", "--db", str(db), merge_stderr=True)
        out, _ = await within(demo.communicate(), 30)
        assert demo.returncode == 2
        assert "is being written by a running proxy" in out.decode()
        assert db.exists()
    finally:
        process.send_signal(signal.SIGINT)
        assert await within(process.wait(), 20) == 0


async def test_the_proxy_outlives_whoever_reads_its_log(tmp_path, echo_upstream):
    """`sentinel-ws proxy | head -n 3`: the pipe closes; relaying and recording go on."""
    db = tmp_path / "rec.db"
    process, url, _ = await start_cli_proxy(echo_upstream, db)
    process.stdout.feed_eof()
    process._transport.get_pipe_transport(1).close()  # the reader of stdout goes away
    for i in range(5):
        ws = await within(websockets.connect(ws_url(url, "/ws")))
        await ws.send(f"m{i}")
        assert await within(ws.recv()) == f"m{i}"
        await ws.close()
    process.send_signal(signal.SIGINT)
    assert await within(process.wait(), 20) == 0
    assert "Traceback" not in (await process.stderr.read()).decode()
    assert rows(db, "SELECT count(*) FROM sessions")[0][0] == 5


async def test_a_third_signal_exits_at_once_and_says_what_was_lost(tmp_path, echo_upstream):
    db = tmp_path / "rec.db"
    process, url, _ = await start_cli_proxy(echo_upstream, db)
    blocker = sqlite3.connect(db, timeout=10)
    blocker.execute("BEGIN IMMEDIATE")  # the disk "hangs": rows wait
    try:
        ws = await within(websockets.connect(ws_url(url, "/ws")))
        for i in range(50):
            await ws.send(f"m{i}")
            await within(ws.recv())
        for _ in range(3):
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.2)
        assert await within(process.wait(), 20) == 3
        err = (await process.stderr.read()).decode()
        assert "third signal: exiting now" in err and "were not written" in err
    finally:
        blocker.rollback()
        blocker.close()
