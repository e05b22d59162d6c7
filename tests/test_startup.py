"""Start-up and shutdown are safe at every instant (issue 21, item 1).

A Ctrl-C that lands while the proxy starts, or just after its banner, used to
raise KeyboardInterrupt past the recorder: the writer thread (not a daemon, so
that an exit never cuts a batch off) then kept the process alive for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sentinel_ws_proxy.recording.redact import Redactor
from sentinel_ws_proxy.recording.writer import RecordingWriter
from tests.conftest import within
from tests.test_cli import cli_process

# Seconds a stopped proxy may take to exit, on a loaded machine.
EXIT_WITHIN = 15.0


def runs_left_open(db: Path) -> list[int]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT id FROM runs WHERE ended_at IS NULL")]
    except sqlite3.OperationalError:  # signalled before the tables were made
        return []
    finally:
        conn.close()


async def stopped(process: asyncio.subprocess.Process) -> tuple[int, str]:
    try:
        await asyncio.wait_for(process.wait(), EXIT_WITHIN)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"the proxy did not exit within {EXIT_WITHIN} s of one SIGINT")
    err = (await process.stderr.read()).decode()
    return process.returncode, err


async def signalled_after(db: Path, upstream: str, delay: float | None) -> tuple[int, str]:
    """A proxy given one SIGINT `delay` s after it was spawned (None: right after its banner)."""
    process = await cli_process(
        "proxy", "--listen", "127.0.0.1:0", "--upstream", upstream, "--db", str(db)
    )
    try:
        if delay is None:
            while True:
                line = (await within(process.stdout.readline())).decode()
                assert line, "the proxy exited before its banner"
                if line.startswith("Point your frontend at"):
                    break
        else:
            await asyncio.sleep(delay)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        return await stopped(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.timeout(240)
async def test_sigint_at_any_moment_of_start_up_exits_promptly_and_ends_its_run(
    tmp_path, echo_upstream
):
    # How long this machine takes from spawn to banner, so that the signals land in
    # the proxy's start-up (binding, the recorder and its thread, the server) and not
    # only in the interpreter's imports, where nothing is open yet.
    began = time.monotonic()
    await signalled_after(tmp_path / "warm.db", echo_upstream, None)
    ready = time.monotonic() - began
    rng = random.Random(21)
    delays: list[float | None] = [rng.uniform(0.0, ready) for _ in range(4)]
    delays += [rng.uniform(0.6 * ready, 1.1 * ready) for _ in range(16)]
    # And right after the banner, where a fresh proxy hung 4 times in 15.
    delays += [None] * 10
    for i, delay in enumerate(delays):
        db = tmp_path / f"rec{i}.db"
        status, err = await signalled_after(db, echo_upstream, delay)
        where = "right after the banner" if delay is None else f"{delay:.3f} s after spawn"
        assert runs_left_open(db) == [], f"SIGINT {where} left its run open"
        # The writer thread that hung the process showed as this, at the second Ctrl-C.
        assert "Exception ignored" not in err, (where, err)
        if db.exists():
            # Once the recording is touched the signal handlers are in: no traceback.
            # (Before that, a KeyboardInterrupt while Python imports is Python's own.)
            assert "Traceback" not in err, (where, err)
        if delay is None:
            # Past the banner it is an ordinary stop: status 0 and the flush line.
            assert status == 0, (where, status, err)


def test_a_writer_nobody_closed_does_not_keep_the_process_alive(tmp_path):
    db = tmp_path / "orphan.db"
    script = (
        "import sys\nfrom pathlib import Path\n"
        "from sentinel_ws_proxy.recording.redact import Redactor\n"
        "from sentinel_ws_proxy.recording.writer import RecordingWriter\n"
        "from sentinel_ws_proxy.events import HttpRequest\n"
        f"w = RecordingWriter(Path({str(db)!r}), redactor=Redactor(), max_payload=64, "
        "listen='t', upstream='u')\n"
        "w.open()\n"
        "w.handle(HttpRequest(1.8e9, '127.0.0.1', 'GET', '/left', '', 200, 1.0))\n"
        "sys.exit(0)  # main returns without close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], timeout=EXIT_WITHIN, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT path FROM http_requests").fetchall() == [("/left",)]


def test_a_closed_writer_needs_nothing_at_exit(tmp_path):
    w = RecordingWriter(
        tmp_path / "r.db", redactor=Redactor(), max_payload=64, listen="t", upstream="u"
    )
    w.open()
    w.close()
    assert not w.alive()
