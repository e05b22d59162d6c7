"""The recorder: events in, SQLite rows out, never on the event loop.

``handle()`` only puts the event on a queue. A thread of its own drains the
queue, turns events into rows (redaction, truncation and UTF-8 decoding happen
here, off the relay's path) and inserts each batch with ``executemany`` in one
transaction. A batch is whatever arrived while the previous one was written,
so the delay between a frame and its commit is one batch's write time.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import socket
import sqlite3
import sys
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from sentinel_ws_proxy import __version__
from sentinel_ws_proxy.events import Event, Frame, SessionOpened, stored_payload
from sentinel_ws_proxy.recording.crash import crashed_runs, end_crashed_run, in_use
from sentinel_ws_proxy.recording.redact import Redactor, client_fingerprint
from sentinel_ws_proxy.recording.schema import RecordingError, open_database
from sentinel_ws_proxy.recording.secrets import PayloadSecrets
from sentinel_ws_proxy.recording.statements import Statement, statements

MAX_BATCH = 20_000
# After the first event of a batch, the writer waits this long for more: one wake-up
# (and one turn at the GIL) per 2 ms instead of one per frame. Measured on a quiet
# relay: round trip p50 236 -> 163 us, throughput unchanged; 50 ms cost throughput.
LINGER = 0.002
FILE_CHECK = 0.5  # how often an idle writer looks whether its file is still there
# Past BACKLOG_HIGH payload bytes waiting for the disk, relays pause reading until
# it is down to BACKLOG_LOW: memory stays bounded and no frame is dropped.
BACKLOG_HIGH = 32 * 1024 * 1024
BACKLOG_LOW = 8 * 1024 * 1024
# The same for the number of events, whatever their size (small frames).
EVENTS_HIGH = 100_000
EVENTS_LOW = 20_000
LAG_SAMPLES = 200_000
ERROR_BODY = 1024  # bytes of an HTTP error response's body kept
# What a value SQLite cannot take raises (as opposed to a disk that refuses writes).
DATA_ERRORS = (sqlite3.InterfaceError, sqlite3.ProgrammingError, ValueError, TypeError)
_STOP = object()
# How long a writer left open at interpreter exit may retry a refusing disk.
EXIT_RETRY = 5.0


def _stop_at_exit(ref: weakref.ref[RecordingWriter]) -> Callable[[], None]:
    def stop() -> None:
        writer = ref()
        if writer is not None and writer.alive():
            writer._deadline = time.monotonic() + EXIT_RETRY
            writer._queue.put(_STOP)

    return stop


@dataclass
class WriterStats:
    rows_written: int = 0
    batches: int = 0
    last_commit: float | None = None
    max_lag_ms: float = 0.0
    errors: int = 0
    dropped: int = 0  # events that never became rows, for the reasons in lost
    lost: Counter[str] = field(default_factory=Counter)
    repaired: int = 0  # rows stored after making a value storable (undecodable text as bytes)
    throttled_seconds: float = 0.0  # time the relay waited for a backlog to be written
    last_error: str | None = None
    paused_since: float | None = None  # the disk refuses writes (full, I/O error) since then
    crashed: str | None = None  # the writer thread died: why
    recreated: int = 0  # times the file was deleted under the proxy and made anew
    redacted_in_messages: int = 0  # credential fields redacted inside messages (secrets.py)
    # Seconds from an event to the commit that stored it, for the latest events.
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_SAMPLES))

    def note_lags(self, committed: float, batch: list[Event]) -> None:
        lags = [committed - e.ts for e in batch]
        self.lags.extend(lags)
        if lags:
            self.max_lag_ms = max(self.max_lag_ms, max(lags) * 1000)

    def lag_ms(self) -> dict[str, float | None]:
        """Commit lag percentiles over the latest events, in milliseconds."""
        ordered = sorted(self.lags.copy())  # copy() is atomic; the writer thread appends
        if not ordered:
            return {"p50": None, "p99": None, "max": None}

        def pick(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

        return {"p50": pick(0.50), "p99": pick(0.99), "max": round(self.max_lag_ms, 3)}


def headers_json(pairs: Iterable[tuple[str, str]]) -> str:
    """Headers as a JSON object with lower-case names; repeats joined by ', '."""
    merged: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return json.dumps(merged, ensure_ascii=False)


def _header(pairs: Iterable[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in pairs if k.lower() == name), None)


class RecordingWriter:
    """Appends one proxy run to a recording file."""

    def __init__(
        self,
        path: Path,
        *,
        redactor: Redactor,
        max_payload: int,
        listen: str,
        upstream: str,
        backlog_high: int = BACKLOG_HIGH,
        backlog_low: int = BACKLOG_LOW,
        events_high: int = EVENTS_HIGH,
        events_low: int = EVENTS_LOW,
        connect: Callable[[Path], sqlite3.Connection] | None = None,
    ):
        self.path = path
        self.backlog_high = backlog_high
        self.backlog_low = backlog_low
        self.events_high = events_high
        self.events_low = events_low
        self.redactor = redactor
        self.max_payload = max_payload
        self.listen = listen
        self.upstream = upstream
        self.run_id = 0
        self.first_session_id = 1
        self.first_fault_id = 1
        self.stats = WriterStats()
        self._salt = b""
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._queued_bytes = 0
        self._written_bytes = 0
        self._thread: threading.Thread | None = None
        self._statements = statements(self._derivations())
        self._secrets = PayloadSecrets(enabled=redactor.enabled)
        self._deadline: float | None = None  # when a stopping writer stops retrying the disk
        # How the writer thread opens the file (a test passes a disk that is full).
        self._connect = connect or (lambda path: sqlite3.connect(path, timeout=30.0))
        self._in_hand = 0  # events taken off the queue and not yet committed
        self._conn: sqlite3.Connection | None = None  # the writer thread's own
        self._file: tuple[int, int] | None = None  # which file that is (device, inode)

    def open(self) -> None:
        """Check the file, start a run row, and start the writer thread.

        Runs synchronously so that a bad path fails before the proxy listens.
        """
        db = open_database(self.path, create=True)
        # Which file this is, taken here: the writer thread may start after the file
        # was already deleted again, and must not take the gap for its own file.
        self._file = _identity(self.path)
        try:
            writing = in_use(db)
            if writing is not None:
                raise RecordingError(
                    f"{self.path} is being written by another sentinel-ws proxy "
                    f"(run {writing[0]}, pid {writing[1]}); stop it or choose another --db"
                )
            for run_id in crashed_runs(db):
                end_crashed_run(db, run_id)
            self._salt = self._hash_salt(db)
            self.run_id = self._start_run(db)
            self.first_session_id = (
                db.execute("SELECT coalesce(max(id), 0) FROM sessions").fetchone()[0] + 1
            )
            self.first_fault_id = (
                db.execute("SELECT coalesce(max(id), 0) FROM faults").fetchone()[0] + 1
            )
        except sqlite3.Error as exc:
            raise RecordingError(f"cannot write to {self.path}: {exc}") from None
        finally:
            db.close()
        # Not a daemon: an interpreter exit must not cut a batch off halfway. But a
        # writer whose owner never closed it (an exception, a Ctrl-C in the wrong
        # instant) must not keep the process alive either: at exit it is told to stop,
        # after writing what it holds, before the interpreter waits for it.
        self._thread = threading.Thread(target=self._guarded, name="sentinel-recorder")
        self._thread.start()
        threading._register_atexit(_stop_at_exit(weakref.ref(self)))  # type: ignore[attr-defined]

    def _start_run(self, db: Database) -> int:
        run_id = (
            db["runs"]
            .insert(
                {
                    "started_at": time.time(),
                    "listen": self.listen,
                    "upstream": self.upstream,
                    "version": __version__,
                    "pid": os.getpid(),
                    "hostname": socket.gethostname(),
                }
            )
            .last_pk
        )
        db.conn.commit()
        return int(run_id)

    @staticmethod
    def _hash_salt(db: Database) -> bytes:
        row = db.execute("SELECT value FROM meta WHERE key = 'hash_salt'").fetchone()
        if row:
            return bytes.fromhex(row[0])
        salt = secrets.token_bytes(16)
        db.execute("INSERT INTO meta (key, value) VALUES ('hash_salt', ?)", [salt.hex()])
        return salt

    def handle(self, event: Event) -> None:
        """Queue an event; returns at once, whatever the disk is doing."""
        if self.stats.crashed is not None:
            self._lose(1, "the recorder had stopped")
            return
        self._queue.put(event)
        if type(event) is Frame:
            self._queued_bytes += event.size

    def _lose(self, n: int, why: str) -> None:
        self.stats.dropped += n
        self.stats.lost[why] += n

    def queued(self) -> int:
        """Events handed over and not yet written."""
        return self._queue.qsize()

    def backlog(self) -> int:
        """Payload bytes queued but not yet written."""
        # Two counters, each written by one thread only, so no lock is needed.
        return self._queued_bytes - self._written_bytes

    def behind(self) -> bool:
        """Too much waits for the disk: the relays should pause reading until caught_up().

        The relay does not wait on the disk; but when the disk cannot keep up
        for long, slowing the relay down is better than holding an unbounded
        backlog in memory or losing frames. Both bytes and events count: small
        frames cost memory and commit time too.
        """
        if self.stats.crashed is not None:
            return False  # nothing will catch up: do not hold the relays forever
        return self.backlog() > self.backlog_high or self.queued() > self.events_high

    def caught_up(self) -> bool:
        if self.stats.crashed is not None:
            return True
        return self.backlog() <= self.backlog_low and self.queued() <= self.events_low

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, *, give_up_after: float | None = None) -> WriterStats:
        """Write everything still queued, mark the run ended, and stop the thread.

        A disk that refuses writes is retried until give_up_after seconds have
        passed (None: for as long as it takes); then what is left is counted lost.
        """
        if self._thread is not None:
            if give_up_after is not None:
                self._deadline = time.monotonic() + give_up_after
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        return self.stats

    def abandon(self) -> int:
        """Give up at once on what is not written yet (a third Ctrl-C); how many events."""
        self._deadline = 0.0
        return self.queued() + self._in_hand

    # -- the writer thread ------------------------------------------------

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # the proxy must hear of it, whatever it was
            self.stats.crashed = f"{type(exc).__name__}: {exc}"
            lost = self.queued() + self._in_hand
            self._lose(lost, "the recorder stopped")
            print(
                f"sentinel-ws: RECORDING STOPPED: the writer for {self.path} failed "
                f"({self.stats.crashed}); {lost} events lost; the proxy keeps relaying "
                "without recording",
                file=sys.stderr,
            )

    def _run(self) -> None:
        self._conn = self._first_connection()
        checked = time.monotonic()
        try:
            stopping = False
            while not stopping:
                batch, stopping = self._next_batch()
                # SQLite writes on into a deleted file without a word, and its rows
                # go with it: look before every batch (a stat, ~2 us), and when idle.
                if batch or time.monotonic() - checked >= FILE_CHECK:
                    checked = time.monotonic()
                    self._file_moved()
                if batch:
                    self._in_hand = len(batch)
                    self._write(batch)
                    self._in_hand = 0
            held = self._secrets.release()  # first messages of sessions still open
            if held:
                self._write(held, counted=True)
            self._write_run_end(self._conn)
        finally:
            self._conn.close()

    def _file_moved(self) -> bool:
        """Start a new file when ours was deleted or replaced; whether it was."""
        if _identity(self.path) == self._file:
            return False
        self._conn = self._recreate(self._conn)
        return True

    def _first_connection(self) -> sqlite3.Connection:
        """The thread's connection; the file may have gone since open() looked at it."""
        try:
            return self._open_connection()
        except sqlite3.Error:
            if _identity(self.path) == self._file:
                raise
        return self._recreate(None)

    def _open_connection(self) -> sqlite3.Connection:
        conn = self._connect(self.path)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL with synchronous=NORMAL survives a crash of this process;
            # only a power loss can cost the last commits.
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _recreate(self, conn: sqlite3.Connection | None) -> sqlite3.Connection:
        """The file was deleted or replaced under us: start a new one, and say so loudly.

        Writing on to a deleted file would lose every row at exit without a word.
        """
        if conn is not None:
            conn.close()
        self.stats.recreated += 1
        db = open_database(self.path, create=True)
        self._file = _identity(self.path)
        try:
            self._salt = self._hash_salt(db)
            self.run_id = self._start_run(db)
        finally:
            db.close()
        print(
            f"sentinel-ws: WARNING: {self.path} was deleted or replaced while recording; "
            f"recording goes on in a new {self.path} (run {self.run_id}); sessions open now "
            "continue there without their handshake row, and what was recorded before is "
            "gone with the old file",
            file=sys.stderr,
        )
        return self._open_connection()

    def _next_batch(self) -> tuple[list[Event], bool]:
        batch: list[Event] = []
        try:
            item = self._queue.get(timeout=FILE_CHECK)  # idle: still look at the file
        except queue.Empty:
            return batch, False
        time.sleep(LINGER)
        while True:
            if item is _STOP:
                return batch, True
            batch.append(item)  # type: ignore[arg-type]
            if len(batch) >= MAX_BATCH:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False

    def _derivations(self) -> dict[tuple[str, str], Callable[[Any], object]]:
        """How the recorder fills the columns the schema marks "writer"."""
        r = self.redactor

        def body(s: SessionOpened) -> object:
            return stored_payload(s.handshake_body, self.max_payload, text=True)[0] or None

        return {
            ("sessions", "run_id"): lambda e: self.run_id,
            ("sessions", "query"): lambda s: r.query(s.query),
            ("sessions", "upstream_url"): lambda s: r.url(s.upstream_url),
            ("sessions", "path"): lambda s: r.path(s.path),
            ("sessions", "request_headers"): lambda s: headers_json(
                r.headers(s.request_headers, protocol=s.subprotocol)
            ),
            # The subprotocol the server chose stays readable, long names too (Jupyter's).
            ("sessions", "response_headers"): lambda s: headers_json(
                r.headers(s.response_headers, protocol=s.subprotocol)
            ),
            ("sessions", "handshake_body"): body,
            ("sessions", "user_agent"): lambda s: _header(s.request_headers, "user-agent"),
            ("sessions", "origin"): lambda s: _header(s.request_headers, "origin"),
            ("sessions", "cookie_hash"): lambda s: client_fingerprint(
                self._salt, _header(s.request_headers, "cookie")
            ),
            ("http_requests", "run_id"): lambda e: self.run_id,
            ("http_requests", "query"): lambda h: r.query(h.query),
            ("http_requests", "path"): lambda h: r.path(h.path),
            ("http_requests", "body"): lambda h: (
                stored_payload(h.body, ERROR_BODY, text=True)[0] or None
            ),
            ("faults", "run_id"): lambda e: self.run_id,
        }

    def _write(self, batch: list[Event], *, counted: bool = False) -> None:
        incoming = 0 if counted else sum(e.size for e in batch if type(e) is Frame)
        stored = list(self._secrets.filter(batch)) if self._secrets.enabled else batch
        self.stats.redacted_in_messages = self._secrets.redacted
        rows = self._rows(stored)
        written = self._insert(rows)
        # Written or given up on (and counted lost): either way off the backlog, so
        # relays paused behind it go on.
        self._written_bytes += incoming
        if written is None:
            return
        now = time.time()
        self.stats.rows_written += written
        self.stats.batches += 1
        self.stats.last_commit = now
        self.stats.note_lags(now, batch)

    def _insert(self, rows: list[tuple[Statement, list]]) -> int | None:
        """Commit the rows; the count written, or None when the disk was given up on.

        A value SQLite cannot take (text with undecodable bytes from a header or
        a reason phrase) costs its row a repair, never the batch. A disk that
        refuses writes (full, I/O error, locked) pauses recording: the batch is
        retried until the disk takes it, while the relays wait behind the
        backlog, so nothing the proxy still holds is lost. A refusal from a file
        deleted or replaced under us (SQLite may call it "attempt to write a
        readonly database") sends the batch to a new file at once.
        """
        started = None
        while True:
            try:
                with self._conn:
                    return self._execute(self._conn, rows)
            except sqlite3.OperationalError as exc:
                if self._file_moved():
                    continue
                started = started or time.monotonic()
                if not self._disk_trouble(exc, started, sum(len(p) for _, p in rows)):
                    return None
        return None

    def _execute(self, conn: sqlite3.Connection, rows: list[tuple[Statement, list]]) -> int:
        written = 0
        for statement, params in rows:
            # A refused value stops executemany partway: the savepoint takes back the
            # rows before it, so that going one by one stores each exactly once.
            conn.execute("SAVEPOINT rows")
            try:
                conn.executemany(statement.sql, params)
                written += len(params)
            except DATA_ERRORS:
                conn.execute("ROLLBACK TO rows")
                written += self._one_by_one(conn, statement, params)
            conn.execute("RELEASE rows")
        if self.stats.paused_since is not None:
            paused = time.monotonic() - self.stats.paused_since
            print(f"sentinel-ws: recording resumed after {paused:.1f} s", file=sys.stderr)
            self.stats.paused_since = None
        return written

    def _one_by_one(self, conn: sqlite3.Connection, statement: Statement, params: list) -> int:
        written = 0
        for row in params:
            try:
                conn.execute(statement.sql, row)
            except DATA_ERRORS:
                try:
                    conn.execute(statement.sql, storable(row))
                except DATA_ERRORS as exc:
                    self._lose(1, f"a value SQLite refused ({exc})")
                    continue
                self.stats.repaired += 1
                if self.stats.repaired == 1:
                    print(
                        "sentinel-ws: a row held text with undecodable bytes; stored as bytes "
                        "(BLOB) instead, losslessly (/_sentinel/status counts them)",
                        file=sys.stderr,
                    )
            written += 1
        return written

    def _disk_trouble(self, exc: Exception, started: float, events: int) -> bool:
        """Wait and say so; False once a stopping proxy has waited long enough."""
        self.stats.errors += 1
        self.stats.last_error = str(exc)
        now = time.monotonic()
        if self.stats.paused_since is None:
            self.stats.paused_since = now
            print(
                f"sentinel-ws: recording to {self.path} paused: {exc}; retrying every second "
                f"(relays slow down once {self.backlog_high >> 20} MiB wait); free space "
                "and it resumes by itself",
                file=sys.stderr,
            )
        if self._deadline is not None and now >= self._deadline:
            self._lose(events, f"the disk refused them ({exc})")
            print(
                f"sentinel-ws: gave up on {events} events for {self.path}: {exc}",
                file=sys.stderr,
            )
            return False
        time.sleep(min(1.0, 0.05 * 2 ** min(5, int(now - started))))
        return True

    def _rows(self, batch: list[Event]) -> list[tuple[Statement, list[Sequence[object]]]]:
        """Each statement with its parameters; inserts before updates."""
        by_type: dict[type, list[Event]] = {}
        for event in batch:
            by_type.setdefault(type(event), []).append(event)
        inserts: list[tuple[Statement, list[Sequence[object]]]] = []
        updates: list[tuple[Statement, list[Sequence[object]]]] = []
        for event_type, events in by_type.items():
            for statement in self._statements.get(event_type, ()):
                if statement.short is not None:
                    inserts.extend(_split(statement, events))
                    continue
                build = statement.build
                params = events if build is None else [build(e) for e in events]
                (updates if statement.sql.startswith("UPDATE") else inserts).append(
                    (statement, params)
                )
        return inserts + updates

    def _write_run_end(self, conn: sqlite3.Connection) -> None:
        try:
            with conn:
                conn.execute(
                    "UPDATE runs SET ended_at = ? WHERE id = ?", [time.time(), self.run_id]
                )
        except sqlite3.Error as exc:
            print(f"sentinel-ws: could not mark run {self.run_id} ended: {exc}", file=sys.stderr)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def storable(row: Sequence[object]) -> tuple[object, ...]:
    """A row SQLite will take: text that does not encode as UTF-8 (a lone surrogate from
    an undecodable header byte) becomes the bytes it stood for."""
    out = []
    for value in row:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                try:
                    value = value.encode("utf-8", "surrogateescape")
                except UnicodeEncodeError:
                    value = value.encode("utf-8", "surrogatepass")
        elif value is not None and not isinstance(value, int | float | bytes):
            value = str(value)
        out.append(value)
    return tuple(out)


def _split(
    statement: Statement, events: list[Any]
) -> list[tuple[Statement, list[Sequence[object]]]]:
    """Rows whose last columns hold their usual values go in with the short INSERT.

    Runs stay in event order: frames' ids must rise in wire order.
    """
    assert statement.short is not None
    sql, cut, tail = statement.short
    short = statement._replace(sql=sql)
    runs: list[tuple[Statement, list[Sequence[object]]]] = []
    current: list[Sequence[object]] = []
    usual = True
    for e in events:
        fits = e[cut:] == tail
        if fits != usual:
            if current:
                runs.append((short if usual else statement, current))
            current, usual = [], fits
        current.append(e[:cut] if fits else e)
    if current:
        runs.append((short if usual else statement, current))
    return runs
