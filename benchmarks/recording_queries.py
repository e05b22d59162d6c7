"""How fast the read side answers on a big recording.

Builds (once, cached in the given folder) a recording of 100,000 sessions and
1,000,000 frames with a realistic mix of endings, then times `failures` and
`sessions --failed` through the real CLI (a fresh process each, so the numbers
include start-up) and through the library. Prints the numbers; asserts nothing.

    python benchmarks/recording_queries.py [--dir /tmp/sentinel-bench] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import sqlite_utils

from sentinel_ws_proxy.analysis.report import Window, failure_report
from sentinel_ws_proxy.recording.reader import Recording
from sentinel_ws_proxy.recording.schema import create_schema

SESSIONS = 100_000
FRAMES_PER_SESSION = 11
CLIENTS = 5_000

# (weight, handshake status, close code, closed by, clean, next session soon)
ENDINGS = [
    (55, 101, 1000, "client", 1, False),
    (15, 101, 1001, "client", 1, True),  # navigation
    (5, 101, 1006, "client", 0, False),  # killed tab
    (5, 101, 1006, "server", 0, False),
    (3, 101, 1011, "server", 1, False),
    (5, 403, None, "server", 0, False),
    (2, 404, None, "server", 0, False),
    (2, 502, None, "proxy", 0, False),
    (4, 101, 4000, "server", 1, False),  # an idle close, often
    (1, 101, 1009, "proxy", 0, False),
    (3, 101, 1001, "proxy", 1, False),
]


def build(path: Path, seed: int = 7) -> None:
    rng = random.Random(seed)
    db = sqlite_utils.Database(path)
    db.execute("PRAGMA journal_mode=WAL")
    create_schema(db)
    db["runs"].insert({"id": 1, "started_at": 0.0, "listen": "bench", "upstream": "bench"})
    weights = [e[0] for e in ENDINGS]
    t = 1_790_000_000.0
    sessions, frames = [], []
    returning = None  # a navigating client comes back right away
    for sid in range(1, SESSIONS + 1):
        _, status, code, by, clean, soon = rng.choices(ENDINGS, weights)[0]
        client = returning or f"10.{sid % CLIENTS // 250}.{sid % 250}.1"
        t += 0.12 if returning else rng.expovariate(1 / 0.05)
        start = t
        n = FRAMES_PER_SESSION if status == 101 else 0
        ts = start
        for i in range(n - 1 if n else 0):
            ts += rng.expovariate(1 / 0.5)
            direction = "s2c" if i % 3 else "c2s"
            frames.append((sid, ts, direction, "text", 40, '{"event_type": "x"}', 0))
        last_frame = ts if n else None
        if code == 4000:
            ts += 35.0  # silence before the server's close
        end = ts + 0.01
        t = max(t, end) if soon else t
        returning = client if soon else None
        if n:
            direction = "c2s" if by == "client" else "s2c"
            frames.append((sid, end, direction, "close", 2, b"\x03\xe8", 0))
        sessions.append(
            (
                sid, 1, start, end, client, "/ws/mission-updates", "", "ws://up/ws/mission-updates",
                '{"user-agent": "bench"}', status, "{}", None, None, None, code, "", by, clean,
                n // 2, n - n // 2, 200, 200, last_frame, "bench", None, None,
            )
        )  # fmt: skip
    with db.conn:
        db.conn.executemany(
            "INSERT INTO sessions (id, run_id, started_at, ended_at, client_addr, path, query,"
            " upstream_url, request_headers, handshake_status, response_headers, handshake_body,"
            " subprotocol, error, close_code, close_reason, closed_by, clean, frames_c2s,"
            " frames_s2c, bytes_c2s, bytes_s2c, last_frame_at, user_agent, origin, cookie_hash)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            sessions,
        )
        db.conn.executemany(
            "INSERT INTO frames (session_id, ts, direction, opcode, size, payload, truncated)"
            " VALUES (?,?,?,?,?,?,?)",
            frames,
        )
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def cli(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "sentinel_ws_proxy", *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/sentinel-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    db = args.dir / f"big-{SESSIONS}.db"
    if not db.exists():
        started = time.perf_counter()
        build(db)
        print(f"built {db} in {time.perf_counter() - started:.1f} s")
    conn = sqlite3.connect(db)
    n_sessions = conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
    n_frames = conn.execute("SELECT count(*) FROM frames").fetchone()[0]
    conn.close()
    megabytes = db.stat().st_size / 1e6
    print(f"recording: {n_sessions:,} sessions, {n_frames:,} frames, {megabytes:.0f} MB")

    def library() -> None:
        with Recording(db) as recording:
            failure_report(recording, Window())

    results = {
        "failures (library)": timed(library, args.repeat),
        "sentinel-ws failures": timed(lambda: cli("failures", "--db", str(db)), args.repeat),
        "sentinel-ws failures --json": timed(
            lambda: cli("failures", "--json", "--db", str(db)), args.repeat
        ),
        "sentinel-ws sessions --failed": timed(
            lambda: cli("sessions", "--failed", "--db", str(db)), args.repeat
        ),
        "sentinel-ws --version (start-up alone)": timed(lambda: cli("--version"), args.repeat),
    }
    results.update(web_and_search(db, args.repeat))
    width = max(map(len, results))
    print(f"{'command':<{width}}  median    best   (targets: CLI 2 s, web list and search 1 s)")
    for name, times in results.items():
        print(f"{name:<{width}}  {statistics.median(times):5.2f} s  {min(times):5.2f} s")
    with Recording(db) as recording:
        counts = failure_report(recording, Window()).counts
    print("categories:", json.dumps(counts))


def web_and_search(db: Path, repeat: int) -> dict[str, list[float]]:
    """The web app: the first page (at once, verdicts pending), the verdicts (the whole
    recording classified, in the background), the list once classified; and search (the
    index built on first use, then queries)."""
    from sentinel_ws_proxy.recording.search import SearchIndex
    from sentinel_ws_proxy.web.view import RecordingView

    def first_page() -> None:
        view = RecordingView(db)
        view.sessions({})
        view.close()

    def verdicts() -> None:
        view = RecordingView(db)
        view.classified()
        view.close()

    warm = RecordingView(db)
    warm.classified()
    index = SearchIndex(db)

    def build() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{index.path}{suffix}").unlink(missing_ok=True)
        with Recording(db) as recording:
            index.update(recording)

    def query(text: str, session_id: int | None = None):
        def run() -> None:
            with Recording(db) as recording:
                index.search(recording, text, session_id=session_id, limit=50)

        return run

    results = {
        "web: first page of the list (verdicts pending)": timed(first_page, repeat),
        "web: verdicts in (classified in the background)": timed(verdicts, repeat),
        "web: the list once classified": timed(lambda: warm.sessions({}), repeat),
        "web: failures only, page 20": timed(
            lambda: warm.sessions({"category": "failures", "page": "20"}), repeat
        ),
        "web: one session": timed(lambda: warm.session(54_321), repeat),
        "web: reconnect chains, first page": timed(lambda: warm.chains({}), repeat),
        "search: building the index (first use)": timed(build, 1),
        "search: a word in every message (event_type)": timed(query("event_type"), repeat),
        "search: a word nowhere (zebra)": timed(query("zebra"), repeat),
        "search: key:value (event_type:x)": timed(query("event_type:x"), repeat),
        "search: a word, in one session": timed(query("event_type", 54_321), repeat),
    }
    warm.close()
    return results


if __name__ == "__main__":
    main()
