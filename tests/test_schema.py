"""The schema declared once: README table, derived SQL, and exact HAR/JSONL round trips."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import aiohttp
import pytest
import websockets
from click.testing import CliRunner

from sentinel_ws_proxy.cli import cli
from sentinel_ws_proxy.events import Frame
from sentinel_ws_proxy.faults.spec import parse_spec
from sentinel_ws_proxy.recording.schema import TABLES, schema_markdown
from tests.conftest import UpstreamLog, running_proxy, scripted_upstream, serve_app, ws_url

README = Path(__file__).parent.parent / "README.md"


def test_readme_schema_table_is_the_declaration():
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- schema:start -->") + len("<!-- schema:start -->")
    end = text.index("<!-- schema:end -->")
    assert text[start:end].strip() == schema_markdown(), (
        "README's schema table differs from recording/schema.py; paste the output of "
        "`python -m sentinel_ws_proxy.recording.schema` between the schema markers"
    )


def test_a_frame_event_is_a_frames_row(tmp_path):
    """The frames table is declared once, on events.Frame: every field, with a value
    unlike its usual one, is stored by the writer and read back as it was."""
    columns = [c.name for c in TABLES["frames"] if c.name != "id"]
    assert list(Frame._fields) == columns
    frame = Frame(
        session_id=1, ts=1.8e9, direction="s2c", source="proxy", message=3, opcode="binary",
        fin=0, rsv=4, masked=1, compressed=1, size=7, wire_size=5, payload=b"\x00\x01",
        truncated=1, forwarded=0, close_code=4000, close_reason="why",
        violation="reserved bit", fault_id=9, fault_action="dropped",
    )  # fmt: skip
    from sentinel_ws_proxy.recording.reader import Recording
    from sentinel_ws_proxy.recording.redact import Redactor
    from sentinel_ws_proxy.recording.writer import RecordingWriter

    db = tmp_path / "f.db"
    w = RecordingWriter(db, redactor=Redactor(), max_payload=64, listen="t", upstream="u")
    w.open()
    w.handle(frame)
    w.close()
    with Recording(db) as recording:
        (row,) = recording.frame_rows(1)
    assert tuple(getattr(row, name) for name in Frame._fields) == tuple(frame)


async def record_with_faults(db: Path) -> None:
    """Frames both ways, a fault-ended session, a refused one, a dropped frame, HTTP."""
    log = UpstreamLog()
    specs = ("drop dir=c2s match=secret", "reject status=503 path=/refused count=1")
    async with (
        serve_app(scripted_upstream(log)) as url,
        running_proxy(url, db, faults=tuple(parse_spec(s) for s in specs)) as proxy,
    ):
        ws = await websockets.connect(ws_url(proxy.url, "/ws?token=abc"))
        await ws.send("hello")
        await ws.recv()
        await ws.send("a secret")
        await ws.send(b"\x00\xffbinary")
        await ws.recv()
        proxy.proxy.faults.act(proxy.proxy.relays[1], parse_spec("close code=1011"))
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(ws_url(proxy.url, "/refused"))
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{proxy.url}/api/x?q=1") as response,
        ):
            await response.read()
        await proxy.stop_once()


@pytest.fixture(scope="module")
def faulted(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("faulted") / "rec.db"
    asyncio.run(asyncio.wait_for(record_with_faults(db), 60))
    return db


def every_table(db: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(db)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            for table in TABLES
            if table != "meta"
        }
    finally:
        conn.close()


@pytest.mark.parametrize("fmt", ["har", "jsonl"])
def test_export_then_import_gives_every_table_back(tmp_path, faulted, fmt):
    original = every_table(faulted)
    assert original["faults"] and original["fault_events"] and original["http_requests"]
    assert any(row for row in original["frames"] if row[-1] == "drop")
    out = tmp_path / f"all.{fmt}"
    result = CliRunner().invoke(
        cli, ["export", "--format", fmt, "-o", str(out), "--db", str(faulted)]
    )
    assert result.exit_code == 0, result.output
    copy = tmp_path / "copy.db"
    result = CliRunner().invoke(cli, ["import", str(out), "--db", str(copy)])
    assert result.exit_code == 0, result.output
    assert every_table(copy) == original
    # Appending to a recording that already holds it moves every id past its own.
    result = CliRunner().invoke(cli, ["import", str(out), "--db", str(copy)])
    assert result.exit_code == 0, result.output
    twice = every_table(copy)
    last_session, last_frame = original["sessions"][-1][0], original["frames"][-1][0]
    appended = twice["frames"][len(original["frames"]) :]
    assert [(r[0], r[1]) for r in appended] == [
        (r[0] + last_frame, r[1] + last_session) for r in original["frames"]
    ]
    last_run = original["runs"][-1][0]
    assert [r[1] for r in twice["sessions"][len(original["sessions"]) :]] == [
        r[1] + last_run for r in original["sessions"]
    ]


def test_har_export_opens_as_devtools_expects(tmp_path, faulted):
    result = CliRunner().invoke(cli, ["export", "1", "--db", str(faulted)])
    har = json.loads(result.output)
    (entry,) = har["log"]["entries"]
    assert entry["_resourceType"] == "websocket" and entry["response"]["status"] == 101
    messages = entry["_webSocketMessages"]
    assert {"type", "time", "opcode", "data"} <= set(messages[0])
    texts = [m["data"] for m in messages if m["opcode"] == 1]
    assert texts[:2] == ["hello", "hello"]
    assert [m["opcode"] for m in messages if m["opcode"] == 2]  # binary as base64
    assert har["log"]["_sentinel"]["faults"]  # the fault that ended it comes along


def make_version_1(path: Path) -> None:
    """What a recording of schema version 1 looked like: no wire-frame columns, no view."""
    conn = sqlite3.connect(path)
    for view in ("messages", "sessions_view", "frames_view"):
        conn.execute(f"DROP VIEW {view}")
    for column in ("source", "message", "fin", "rsv", "masked", "compressed", "wire_size",
                   "forwarded", "violation"):  # fmt: skip
        conn.execute(f"ALTER TABLE frames DROP COLUMN {column}")
    conn.execute("ALTER TABLE sessions DROP COLUMN response_line")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


async def test_a_version_1_recording_reads_and_takes_new_runs(tmp_path, faulted):
    old = tmp_path / "v1.db"
    old.write_bytes(faulted.read_bytes())
    make_version_1(old)
    for args in (["show", "1", "--json"], ["failures", "--json"], ["export", "1"]):
        result = CliRunner().invoke(cli, [*args, "--db", str(old)])
        assert result.exit_code == 0, (args, result.output)
    shown = json.loads(CliRunner().invoke(cli, ["show", "1", "--json", "--db", str(old)]).output)
    assert shown["messages"][0]["payload"] == "hello"
    assert shown["frames"][0]["fin"] is None  # a version 1 row: a whole message
    # A proxy appending to it brings the file to version 2, old rows untouched.
    log = UpstreamLog()
    async with serve_app(scripted_upstream(log)) as url, running_proxy(url, old) as proxy:
        ws = await websockets.connect(ws_url(proxy.url, "/ws"))
        await ws.send("new run")
        await ws.recv()
        await ws.close()
        await proxy.stop_once()
    conn = sqlite3.connect(old)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    fins = conn.execute("SELECT fin FROM frames ORDER BY id").fetchall()
    conn.close()
    assert fins[0][0] is None and fins[-1][0] == 1


def test_the_views_read_times_as_people_do(faulted):
    result = CliRunner().invoke(
        cli,
        [
            "sql",
            "SELECT started, ending FROM sessions_view ORDER BY id",
            "--json",
            "--db",
            str(faulted),
        ],
    )
    rows = json.loads(result.output)
    assert rows[0]["started"].startswith("20") and rows[0]["started"][10] == "T"
    assert rows[0]["ending"].startswith("closed 1011 by the proxy")
    assert rows[1]["ending"] == "refused with 503"
    frames = CliRunner().invoke(
        cli,
        ["sql", "SELECT time, payload FROM frames_view LIMIT 1", "--json", "--db", str(faulted)],
    )
    assert json.loads(frames.output)[0]["time"][10] == "T"


async def test_datasette_opens_a_recording_unchanged(faulted, tmp_path):
    """datasette serve --immutable: the tables and views, and not a byte changed."""
    import hashlib
    import shutil
    import sys

    pytest.importorskip("datasette", reason="the test extra installs datasette")
    from tests.test_real_stacks import free_port

    db = tmp_path / "rec.db"
    shutil.copy(faulted, db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "datasette", "serve", "--immutable", str(db), "-p", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"http://127.0.0.1:{port}/rec/sessions_view.json?_shape=array") as r,
                ):
                    rows = await r.json()
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("datasette did not start")
        assert rows and rows[0]["started"][10] == "T" and "ending" in rows[0]
    finally:
        process.terminate()
        await process.wait()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
