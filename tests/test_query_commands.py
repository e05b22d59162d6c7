"""sessions, show, failures, sql, export and import over a recording made through the real proxy."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
import websockets
from click.testing import CliRunner

from sentinel_ws_proxy.cli import cli
from tests.conftest import UpstreamLog, rows, running_proxy, scripted_upstream, serve_app, ws_url

DATA = Path(__file__).parent / "data"

EXPECTED = {
    "clean": 2,
    "navigation": 1,
    "client_gone": 1,
    "server_drop": 1,
    "server_error": 1,
    "rejected": 1,
    "not_found": 1,
    "upstream_unreachable": 1,
    "idle_timeout": 1,
    "too_big": 1,
    "proxy_shutdown": 1,
}


async def connect(proxy, path: str, agent: str, **kw):
    return await asyncio.wait_for(
        websockets.connect(ws_url(proxy.url, path), user_agent_header=agent, **kw), 10
    )


async def expect_closed(ws) -> None:
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 10)


async def record_scenarios(db: Path) -> None:
    """One session (or two) per failure story, each from its own 'browser'."""
    log = UpstreamLog()
    async with (
        serve_app(scripted_upstream(log)) as url,
        running_proxy(url, db, max_message=64 * 1024) as proxy,
    ):
        ws = await connect(proxy, "/ws/mission-updates", "clean")
        await ws.send("hello")
        await ws.recv()
        await ws.close()

        ws = await connect(proxy, "/ws/mission-updates", "navigating")
        await ws.send("page one")
        await ws.recv()
        await ws.close(1001)
        ws = await connect(proxy, "/ws/mission-updates", "navigating")
        await ws.send("page two")
        await ws.recv()
        await ws.close()

        ws = await connect(proxy, "/ws/mission-updates", "killed-tab")
        await ws.send("hello")
        await ws.recv()
        ws.transport.abort()
        await asyncio.wait_for(log.ends.get(), 10)

        for path in ("/ws/reject", "/ws/missing"):
            with pytest.raises(websockets.InvalidStatus):
                await connect(proxy, path, "refused")

        for agent, command in (
            ("dropped", "drop"),
            ("crashed", "close 1011 boom"),
            ("idle", "idle 0.3"),
        ):
            ws = await connect(proxy, "/ws/mission-updates", agent)
            await ws.send(command)
            await expect_closed(ws)

        ws = await connect(proxy, "/ws/mission-updates", "oversize", max_size=None)
        await ws.send(b"x" * (64 * 1024 + 1))
        await expect_closed(ws)

        await connect(proxy, "/ws/mission-updates", "left-open")
        await proxy.stop_once()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    async with running_proxy(f"http://127.0.0.1:{dead}", db) as proxy:
        with pytest.raises(websockets.InvalidStatus):
            await connect(proxy, "/ws/mission-updates", "no-server")


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("rec") / "scenarios.db"
    asyncio.run(asyncio.wait_for(record_scenarios(db), 60))
    return db


def run(*args: str, db: Path | None = None):
    full = list(args) + (["--db", str(db)] if db is not None else [])
    return CliRunner().invoke(cli, full)


def ids_by_agent(db: Path) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for row in rows(db, "SELECT id, user_agent FROM sessions ORDER BY id"):
        found.setdefault(row["user_agent"], []).append(row["id"])
    return found


def test_failures_json_classifies_every_story(recording):
    result = run("failures", "--json", "--idle-timeout", "0.2", db=recording)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["categories"] == EXPECTED
    by_agent = ids_by_agent(recording)
    category = {s["id"]: s["category"] for s in report["sessions"]}
    assert category[by_agent["navigating"][0]] == "navigation"
    assert category[by_agent["killed-tab"][0]] == "client_gone"
    reconnects = report["reconnects"]
    assert (reconnects["disconnects"], reconnects["reconnected"]) == (2, 1)
    assert reconnects["never_reconnected"] == by_agent["killed-tab"]
    assert 0 <= reconnects["median_gap"] < 5
    nav = next(s for s in report["sessions"] if s["category"] == "navigation")
    assert nav["reconnect_gap"] == reconnects["median_gap"]
    assert "CORS" in " ".join(report["advice"]["rejected"]["causes"])


def test_idle_timeout_threshold_is_an_option(recording):
    report = json.loads(run("failures", "--json", db=recording).output)
    assert "idle_timeout" not in report["categories"]
    assert report["categories"]["other"] == 1


def test_failures_report_for_people(recording):
    result = run("failures", "--idle-timeout", "0.2", db=recording)
    assert result.exit_code == 0
    text = result.output
    assert "12 sessions (10 pages)" in text and "7 failures in all, 3 expected endings" in text
    assert "1 incident (" in text.splitlines()[0]  # incidents first (issue 19)
    flat = " ".join(text.split())  # the headline wraps at the terminal's width
    assert "1 navigation, 1 tab closed, 1 closed by the proxy stopping" in flat
    for category in EXPECTED:
        assert category in text
    assert "Store connection state in a service that survives page navigation" in text
    assert "Validate connection state before sending" in text
    assert "CORS/Origin" in text
    assert "evidence: no session was ever accepted on /ws/reject" in text


def test_sessions_filters(recording):
    everything = json.loads(run("sessions", "--json", db=recording).output)
    assert len(everything) == 12
    assert {"id", "close_code", "closed_by", "frames_c2s", "bytes_s2c", "category"} <= set(
        everything[0]
    )
    assert isinstance(everything[0]["request_headers"], dict)
    failed = json.loads(run("sessions", "--json", "--failed", db=recording).output)
    assert {s["category"] for s in failed} & {"clean", "proxy_shutdown"} == set()
    # Failures only: not the navigation or the closed tab; the idle session counts as
    # "other" at the default threshold.
    assert len(failed) == 7
    assert {s["category"] for s in failed} & {"navigation", "client_gone"} == set()
    drops = json.loads(run("sessions", "--json", "--close-code", "1006", db=recording).output)
    assert {s["user_agent"] for s in drops} == {"killed-tab", "dropped"}
    refused = json.loads(run("sessions", "--json", "--path", "/ws/re*", db=recording).output)
    assert [s["handshake_status"] for s in refused] == [403]
    upper = json.loads(run("sessions", "--json", "--path", "/WS/*", db=recording).output)
    assert upper == []  # paths are case-sensitive
    last = json.loads(run("sessions", "--json", "--limit", "2", db=recording).output)
    assert [s["id"] for s in last] == [s["id"] for s in everything[-2:]]
    runs = json.loads(run("sessions", "--json", "--run", "2", db=recording).output)
    assert [s["category"] for s in runs] == ["upstream_unreachable"]
    nobody = json.loads(run("sessions", "--json", "--client", "10.9.9.9", db=recording).output)
    assert nobody == []
    future = json.loads(run("sessions", "--json", "--since", "2099-01-01", db=recording).output)
    assert future == []
    recent = json.loads(run("sessions", "--json", "--since", "1h", db=recording).output)
    assert len(recent) == 12


def test_sessions_table(recording):
    result = run("sessions", db=recording)
    assert result.exit_code == 0
    assert "navigation" in result.output and "server_drop" in result.output
    assert "/ws/mission-updates" in result.output
    assert "Showing the last 3 of 12" in run("sessions", "--limit", "3", db=recording).output


def test_show_a_session(recording):
    nav = ids_by_agent(recording)["navigating"][0]
    result = run("show", str(nav), db=recording)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Handshake: 101 Switching Protocols" in text
    assert "page one" in text and "→" in text and "←" in text
    assert "Close: 1001 going away, by client, clean close handshake" in text
    assert "Verdict: navigation" in text and "reconnected to /ws/mission-updates" in text
    detail = json.loads(run("show", str(nav), "--json", db=recording).output)
    assert detail["session"]["category"] == "navigation"
    assert [f["opcode"] for f in detail["frames"]] == ["text", "text", "close", "close"]
    refused = ids_by_agent(recording)["refused"][0]
    text = run("show", str(refused), db=recording).output
    assert "403 Forbidden" in text and "Origin not allowed" in text


def test_show_pretty_prints_json_payloads(tmp_path, recording):
    db = tmp_path / "copy.db"
    shutil.copy(recording, db)
    sid = ids_by_agent(db)["clean"][0]
    assert "hello" in run("show", str(sid), "--payloads", db=db).output


def test_sql_is_read_only(recording):
    before = recording.read_bytes()
    result = run("sql", "SELECT closed_by, count(*) AS n FROM sessions GROUP BY 1", db=recording)
    assert result.exit_code == 0 and "closed_by" in result.output
    as_json = json.loads(
        run("sql", "SELECT count(*) AS n FROM sessions", "--json", db=recording).output
    )
    assert as_json == [{"n": 12}]
    as_csv = run("sql", "SELECT id, path FROM sessions ORDER BY id LIMIT 1", "--csv", db=recording)
    assert as_csv.output.splitlines()[0] == "id,path"
    for statement in (
        "DELETE FROM sessions",
        "UPDATE sessions SET close_code = 0",
        "CREATE TABLE x (y)",
        f"ATTACH '{recording.parent / 'other.db'}' AS other",
    ):
        result = run("sql", statement, db=recording)
        assert result.exit_code == 2, statement
        assert "Traceback" not in result.output
    assert (
        "read-only: DELETE is not allowed"
        in run("sql", "DELETE FROM sessions", db=recording).output
    )
    assert "ATTACH" in run("sql", "ATTACH 'x' AS x", db=recording).output
    journal = run("sql", "PRAGMA journal_mode=DELETE", db=recording)
    assert "read-only: PRAGMA journal_mode = DELETE is not allowed" in journal.output
    assert "changing the schema" in run("sql", "CREATE TABLE x (y)", db=recording).output
    assert "cid" in run("sql", "PRAGMA table_info(frames)", db=recording).output  # reads pass
    assert recording.read_bytes() == before
    assert not (recording.parent / "other.db").exists()
    bad = run("sql", "SELEKT 1", db=recording)
    assert bad.exit_code == 2 and "syntax error" in bad.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["sessions", "--db", "/nonexistent/x.db"], "no such recording"),
        (["failures", "--db", "/nonexistent/x.db"], "no such recording"),
        (["sql", "SELECT 1", "--db", "/nonexistent/x.db"], "no such recording"),
        (["sessions", "--since", "yesterday-ish"], "is not a time"),
        (["sessions", "--since", "10"], "add a unit"),
    ],
)
def test_bad_input_is_one_line(args, message, recording):
    if "--db" not in args:
        args = [*args, "--db", str(recording)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_session_and_foreign_files(tmp_path, recording):
    result = run("show", "9999", db=recording)
    assert result.exit_code == 2 and "no session 9999" in result.output
    text = tmp_path / "x.db"
    text.write_text("not sqlite" * 50)
    result = run("sessions", db=text)
    assert result.exit_code == 2 and "not a SQLite database" in result.output


def test_har_export_import_round_trip_is_byte_exact(tmp_path, recording):
    ids = [str(r["id"]) for r in rows(recording, "SELECT id FROM sessions ORDER BY id")]
    har = tmp_path / "out.har"
    result = run("export", *ids, "--format", "har", "-o", str(har), db=recording)
    assert result.exit_code == 0, result.output
    exported = json.loads(har.read_text())
    ws_entry = exported["log"]["entries"][0]
    assert ws_entry["_resourceType"] == "websocket"
    assert {m["type"] for m in ws_entry["_webSocketMessages"]} == {"send", "receive"}
    assert ws_entry["request"]["url"].startswith("ws://127.0.0.1:")

    copy = tmp_path / "imported.db"
    result = run("import", str(har), db=copy)
    assert result.exit_code == 0, result.output
    assert "Imported 12 WebSocket sessions" in result.output
    frames_sql = (
        "SELECT session_id, ts, direction, opcode, size, payload, close_code, close_reason"
        " FROM frames ORDER BY id"
    )
    assert [tuple(r) for r in rows(copy, frames_sql)] == [
        tuple(r) for r in rows(recording, frames_sql)
    ]
    session_sql = (
        "SELECT id, started_at, ended_at, path, handshake_status, close_code, closed_by, clean,"
        " frames_c2s, frames_s2c, bytes_c2s, bytes_s2c, last_frame_at, handshake_body"
        " FROM sessions ORDER BY id"
    )
    assert [tuple(r) for r in rows(copy, session_sql)] == [
        tuple(r) for r in rows(recording, session_sql)
    ]
    original = json.loads(run("failures", "--json", db=recording).output)["categories"]
    again = json.loads(run("failures", "--json", db=copy).output)["categories"]
    # Two runs' worth of sessions arrive as one import run; classification is the same.
    assert again == original


def test_jsonl_export(recording, tmp_path):
    sid = ids_by_agent(recording)["clean"][0]
    result = run("export", str(sid), "--format", "jsonl", db=recording)
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["table"] for line in lines] == ["runs", "sessions"] + ["frames"] * 4
    assert lines[1]["id"] == sid and isinstance(lines[1]["request_headers"], dict)
    assert [line["opcode"] for line in lines[2:]] == ["text", "text", "close", "close"]


def test_devtools_har_imports_and_classifies(tmp_path):
    db = tmp_path / "browser.db"
    result = run("import", str(DATA / "devtools-sample.har"), db=db)
    assert result.exit_code == 0, result.output
    assert "Imported 3 WebSocket sessions (6 frames)" in result.output
    found = rows(db, "SELECT * FROM sessions ORDER BY id")
    assert [s["handshake_status"] for s in found] == [101, 403, 101]
    assert found[0]["query"] == "token=[redacted]"
    assert json.loads(found[0]["request_headers"])["cookie"] == "[redacted]"
    frames = rows(db, "SELECT session_id, ts, direction, opcode, payload FROM frames ORDER BY id")
    assert (
        frames[0]["payload"] == '{"event_type": "connection_established", "connection_id": "c-1"}'
    )
    # Playwright's millisecond times come back as seconds.
    assert frames[3]["ts"] == pytest.approx(1795600830.5)
    assert frames[3]["payload"] == bytes([0, 1, 2, 255])
    report = json.loads(run("failures", "--json", db=db).output)
    assert report["categories"] == {"client_gone": 1, "rejected": 1, "other": 1}


def test_import_rejects_what_is_not_a_har(tmp_path):
    bogus = tmp_path / "x.har"
    bogus.write_text("{not json")
    result = run("import", str(bogus), db=tmp_path / "r.db")
    assert result.exit_code == 2 and "is not a HAR file" in result.output
    bogus.write_text(json.dumps({"log": {"entries": [{"_resourceType": "websocket"}]}}))
    result = run("import", str(bogus), db=tmp_path / "r.db")
    assert result.exit_code == 2 and "entry 1 is not a usable WebSocket entry" in result.output
    assert not (tmp_path / "r.db").exists()


def test_a_recording_from_before_an_added_column_still_reads(tmp_path, recording):
    """Additive schema changes: an older file without sessions.fault_id reads it as NULL."""
    import sqlite3

    old = tmp_path / "old.db"
    shutil.copy(recording, old)
    conn = sqlite3.connect(old)
    conn.execute("DROP VIEW sessions_view")  # an older file: no column, no view made of it
    conn.execute("ALTER TABLE sessions DROP COLUMN fault_id")
    conn.execute("DROP TABLE fault_events")
    conn.commit()
    conn.close()
    result = run("failures", "--json", "--idle-timeout", "0.2", db=old)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["categories"] == EXPECTED
    assert run("monitor", "--db", str(old), "--follow", "--once").exit_code == 0


def damaged(recording: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A hand-edited copy (wrong types, NULLs, bytes) and a page-corrupted copy."""
    odd = tmp_path / "odd.db"
    shutil.copy(recording, odd)
    conn = sqlite3.connect(odd)
    conn.execute(
        "UPDATE sessions SET started_at = 'yesterday', path = NULL, handshake_status = 'ok',"
        " close_code = 'x', client_addr = x'ff00' WHERE id = 2"
    )
    conn.execute("UPDATE sessions SET ended_at = started_at - 5, clean = 'maybe' WHERE id = 3")
    conn.execute(
        "UPDATE frames SET ts = 'late', opcode = NULL, direction = 'sideways', payload = x'c3'"
        " WHERE id = 3"
    )
    conn.commit()
    conn.close()
    broken = tmp_path / "broken.db"
    data = bytearray(recording.read_bytes())
    for offset in range(4096 * 3, min(len(data), 4096 * 6), 7):
        data[offset] = 0xAB
    broken.write_bytes(bytes(data))
    return odd, broken


READ_COMMANDS = [
    ["sessions"],
    ["sessions", "--json"],
    ["failures"],
    ["failures", "--json"],
    ["show", "2"],
    ["show", "3", "--frames", "--payloads"],
    ["export"],
    ["export", "--format", "jsonl"],
    ["health", "--db"],
    ["monitor", "--replay", "--once", "--db"],
]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_a_hand_edited_or_damaged_recording_is_never_a_traceback(tmp_path, recording, args):
    odd, broken = damaged(recording, tmp_path)
    for path in (odd, broken):
        full = [*args, str(path)] if args[-1] == "--db" else [*args, "--db", str(path)]
        result = CliRunner().invoke(cli, full)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            path.name,
            result.exception,
        )
        if path is broken:
            assert result.exit_code == 2 and "is damaged" in result.output
        else:
            assert result.exit_code in (0, 1, 2), result.output  # health: its own statuses


def test_a_closed_pipe_ends_a_read_command_quietly(recording):
    import subprocess
    import sys

    many = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 300000)"
    head = subprocess.run(
        [
            "bash",
            "-c",
            f"{sys.executable} -m sentinel_ws_proxy sql '{many} SELECT x FROM c' --csv"
            f" --db {recording} | head -n 1; echo status=${{PIPESTATUS[0]}}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert head.stdout.splitlines() == ["x", "status=141"]  # as if SIGPIPE ended it, as cat
    assert "Traceback" not in head.stderr and "BrokenPipe" not in head.stderr


def test_a_browser_har_with_a_failed_handshake_says_the_browser_hid_the_status(tmp_path):
    """Chromium and Playwright write status -1 for a refused WebSocket."""
    har = json.loads((DATA / "devtools-sample.har").read_text())
    ws_entries = [e for e in har["log"]["entries"] if e.get("_resourceType") == "websocket"]
    refused = ws_entries[1]
    refused["response"]["status"] = -1
    refused["response"]["headers"] = []
    path = tmp_path / "playwright.har"
    path.write_text(json.dumps({"log": {"entries": [refused]}}))
    db = tmp_path / "r.db"
    assert run("import", str(path), db=db).exit_code == 0
    (session,) = rows(db, "SELECT handshake_status, closed_by, error FROM sessions")
    assert (session["handshake_status"], session["closed_by"]) == (-1, "client")
    report = json.loads(run("failures", "--json", db=db).output)
    (verdict,) = report["sessions"]
    assert verdict["category"] == "rejected"
    assert "the browser does not say why" in verdict["explanation"]
    assert "through the proxy keeps it" in verdict["explanation"]


@pytest.mark.parametrize(
    "args, rows_key",
    [
        (["sessions"], None),
        (["failures"], "sessions"),
        (["show", "1"], "messages"),
        (["sql", "SELECT id, ts, payload FROM frames"], None),
        (["search", "hello"], "hits"),
        (["health", "--db-placeholder"], "checks"),
    ],
)
def test_every_read_command_speaks_json_nl_and_csv(recording, args, rows_key):
    import csv
    import io

    args = ["--db" if a == "--db-placeholder" else a for a in args]
    if args[-1] == "--db":
        args.append(str(recording))
        db = None
    else:
        db = recording
    outputs = {}
    for fmt in ("--json", "--nl", "--csv"):
        result = run(*args, fmt, db=db)
        assert not result.output.startswith("sentinel-ws: error"), result.output
        outputs[fmt] = result.output
    whole = json.loads(outputs["--json"])
    listed = whole if rows_key is None else whole[rows_key]
    lines = [json.loads(line) for line in outputs["--nl"].splitlines()]
    table = list(csv.DictReader(io.StringIO(outputs["--csv"])))
    assert listed and len(lines) == len(table) == len(listed)
    first = lines[0]
    assert set(first) == set(table[0])  # the same fields either way
    for key, value in first.items():
        if (key == "ts" or key.endswith("_at")) and isinstance(value, float):
            assert first[f"{key}_iso"].startswith("20")  # ISO 8601 beside epoch seconds
            assert round(value, 6) == value


def test_sql_json_marks_blobs(recording):
    result = run("sql", "SELECT X'00ff' AS raw, 'text' AS word", "--json", db=recording)
    assert json.loads(result.output) == [{"raw": {"$base64": "AP8="}, "word": "text"}]


def test_a_missing_recording_names_the_ones_beside_it(tmp_path, recording, monkeypatch):
    folder = tmp_path / "recordings"
    folder.mkdir()
    shutil.copy(recording, folder / "demo.db")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["failures"])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "recordings/sentinel.db: no such recording" in result.output
    assert "recordings/demo.db" in result.output and "pass --db recordings/demo.db" in result.output
    # SENTINEL_WS_DB names the recording when --db does not.
    result = CliRunner().invoke(
        cli, ["sessions", "--json"], env={"SENTINEL_WS_DB": "recordings/demo.db"}
    )
    assert result.exit_code == 0 and json.loads(result.output)


def test_a_har_without_websockets_is_an_error_and_writes_nothing(tmp_path):
    har = tmp_path / "pages.har"
    har.write_text(json.dumps({"log": {"entries": [{"request": {"url": "http://x/"}}]}}))
    db = tmp_path / "r.db"
    result = run("import", str(har), db=db)
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "no WebSocket" in result.output and "Save all as HAR" in result.output
    assert not db.exists()


async def test_an_open_session_shows_its_counts_so_far(tmp_path, echo_upstream):
    db = tmp_path / "live.db"
    async with running_proxy(echo_upstream, db) as proxy:
        ws = await asyncio.wait_for(websockets.connect(ws_url(proxy.url, "/ws")), 10)
        for text in ("one", "two"):
            await ws.send(text)
            await asyncio.wait_for(ws.recv(), 10)
        for _ in range(200):  # the writer lingers a few ms per batch
            if rows(db, "SELECT count(*) FROM frames")[0][0] >= 4:
                break
            await asyncio.sleep(0.01)
        listed = await asyncio.to_thread(run, "sessions", "--json", db=db)
        table = await asyncio.to_thread(run, "sessions", db=db)
        await ws.close()
    (session,) = json.loads(listed.output)
    assert session["ended_at"] is None
    assert (session["frames_c2s"], session["frames_s2c"]) == (2, 2)
    assert (session["bytes_c2s"], session["bytes_s2c"]) == (6, 6)
    assert " open " in table.output and "2/2" in table.output


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/St_Johns"])
def test_iso_times_carry_the_local_offset_of_their_own_date(monkeypatch, zone):
    """Winter and summer times in one output each get their own offset (DST)."""
    import time as clock

    from sentinel_ws_proxy.timefmt import iso

    monkeypatch.setenv("TZ", zone)
    clock.tzset()
    try:
        for ts in (1_795_658_869.25, 1_785_658_869.5):  # November and August 2026
            assert iso(ts) == datetime.fromtimestamp(ts).astimezone().isoformat(
                timespec="microseconds"
            )
            assert datetime.fromisoformat(iso(ts)).timestamp() == ts
    finally:
        monkeypatch.undo()
        clock.tzset()


def test_every_explanation_agrees_with_its_own_numbers(recording):
    from tests.test_pages import GAP, WINDOW

    report = json.loads(run("failures", "--json", db=recording).output)
    window = report["thresholds"]["reconnect_window"]
    for s in report["sessions"]:
        gap, said = GAP.search(s["explanation"]), WINDOW.search(s["explanation"])
        if gap and said:
            assert float(gap.group(1)) > float(said.group(1)), s
        if s["category"] == "navigation" and gap:
            assert float(gap.group(1)) <= window, s
