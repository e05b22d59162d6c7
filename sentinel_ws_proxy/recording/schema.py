"""The recording's tables, declared once: a public interface, documented in README.md.

Each table is a dataclass whose fields are its columns, in order (slots, not frozen:
building 100,000 frozen rows took 0.28 s, plain ones 0.03 s). A
column's metadata says what it means (the README's words) and what fills it:
``"Frame.payload"`` (that event's field), ``"writer"`` (derived by the
recorder: redaction, JSON, the run id) or nothing (SQLite assigns it). From
these classes come the CREATE statements, the writer's INSERTs and UPDATEs,
the reader's row objects, the JSONL and HAR round trips, and the README's
schema table (``python -m sentinel_ws_proxy.recording.schema`` prints it; a
test keeps the README in step). Adding a column is one field here plus, when
an event fills it, one field on that event.

Change tables only by adding. Bump SCHEMA_VERSION when what rows mean changes
(version 2: frames are wire frames, not whole messages); readers keep reading
older versions, taking a missing column as NULL.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import sqlite_utils

from sentinel_ws_proxy.errors import RecordingError
from sentinel_ws_proxy.events import Frame, Meaning

__all__ = [
    "TABLES",
    "FaultEventRow",
    "FaultRow",
    "FrameRow",
    "HttpRequestRow",
    "RecordingError",
    "RunRow",
    "SessionRow",
    "check_recording",
    "create_schema",
    "open_database",
    "open_read_only",
]

SCHEMA_VERSION = 2


NO_USUAL = object()


def column(meaning: str, fill: str | None = None, *, usual: Any = NO_USUAL) -> Any:
    """A column: what it means, which event field (or "writer") fills it, and, for a
    column that nearly always holds one value, that value."""
    metadata = {"meaning": meaning, "fill": fill, "usual": usual}
    return dataclasses.field(default=None, metadata=metadata)


# Python annotation -> the type sqlite-utils creates the column with.
_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bytes": bytes}


@dataclass(frozen=True)
class Column:
    name: str
    kind: type  # int, float, str or bytes, as sqlite-utils takes them
    meaning: str
    fill: str | None
    usual: Any = NO_USUAL

    @property
    def has_usual(self) -> bool:
        return self.usual is not NO_USUAL

    @property
    def event(self) -> str | None:
        """The event class that fills this column, if any."""
        return self.fill.partition(".")[0] if self.fill and "." in self.fill else None

    @property
    def field(self) -> str | None:
        return self.fill.partition(".")[2] if self.event else None


def columns_of(row_type: type) -> tuple[Column, ...]:
    found = []
    for f in dataclasses.fields(row_type):
        base = str(f.type).replace(" ", "").removesuffix("|None").split("|")[-1]
        meta = f.metadata
        found.append(Column(f.name, _TYPES[base], meta["meaning"], meta["fill"], meta["usual"]))
    return tuple(found)


@dataclass(slots=True)
class MetaRow:
    table: ClassVar[str] = "meta"
    about: ClassVar[str] = "facts about the file"
    key: str | None = column(
        "`schema_version`; `hash_salt` (the key of `cookie_hash`); optionally `idle_timeout` "
        "and `reconnect_window`, the thresholds readers classify with unless told otherwise "
        "(the demo sets `idle_timeout`)"
    )
    value: str | None = column("its value")


@dataclass(slots=True)
class RunRow:
    table: ClassVar[str] = "runs"
    about: ClassVar[str] = "one row per proxy run (or import)"
    id: int | None = column("the run")
    started_at: float | None = column("when the run started", "writer")
    ended_at: float | None = column(
        "when it stopped (NULL while running, or after a crash)", "writer"
    )
    listen: str | None = column("where it listened (`import` for an import)", "writer")
    upstream: str | None = column("what it forwarded to", "writer")
    version: str | None = column("the sentinel-ws version", "writer")
    pid: int | None = column("the proxy's process id, to refuse a second writer", "writer")
    hostname: str | None = column("the machine it ran on", "writer")


@dataclass(slots=True)
class SessionRow:
    table: ClassVar[str] = "sessions"
    about: ClassVar[str] = "one row per WebSocket upgrade request, accepted or not"
    id: int | None = column("the session", "SessionOpened.session_id")
    run_id: int | None = column("the run that recorded it", "writer")
    started_at: float | None = column("when the upgrade request arrived", "SessionOpened.ts")
    ended_at: float | None = column("when the session ended", "SessionClosed.ts")
    client_addr: str | None = column("the browser's IP address", "SessionOpened.client_addr")
    path: str | None = column("the request path (path parameters redacted)", "writer")
    query: str | None = column("the raw query string (redacted)", "writer")
    upstream_url: str | None = column("the URL the proxy connected to (redacted)", "writer")
    request_headers: str | None = column(
        "JSON object of the client's headers, lower-case names (redacted)", "writer"
    )
    handshake_status: int | None = column(
        "101 when accepted; the upstream's status when refused; 502 when unreachable",
        "SessionOpened.handshake_status",
    )
    response_headers: str | None = column(
        "JSON object of the headers the client received (redacted)", "writer"
    )
    handshake_body: bytes | None = column(
        "the body of a refused handshake, up to `--max-payload`", "writer"
    )
    subprotocol: str | None = column("the negotiated subprotocol", "SessionOpened.subprotocol")
    error: str | None = column("why the handshake failed, in words", "SessionOpened.error")
    close_code: int | None = column(
        "the first close frame's code; 1006 when TCP ended without one; 1005 for no code",
        "SessionClosed.close_code",
    )
    close_reason: str | None = column(
        "the first close frame's reason", "SessionClosed.close_reason"
    )
    closed_by: str | None = column(
        "`client`, `server` or `proxy`: who sent the first close frame, or whose TCP ended first",
        "SessionClosed.closed_by",
    )
    clean: int | None = column(
        "1 when close frames went both ways; 0 for drops and timeouts", "SessionClosed.clean"
    )
    frames_c2s: int | None = column("rows in `frames` client to server", "SessionClosed.frames_c2s")
    frames_s2c: int | None = column("rows in `frames` server to client", "SessionClosed.frames_s2c")
    bytes_c2s: int | None = column("their total `size`", "SessionClosed.bytes_c2s")
    bytes_s2c: int | None = column("their total `size`", "SessionClosed.bytes_s2c")
    last_frame_at: float | None = column(
        "when the last frame other than a close passed (NULL if none)",
        "SessionClosed.last_frame_at",
    )
    user_agent: str | None = column("the User-Agent request header", "writer")
    origin: str | None = column("the Origin request header", "writer")
    cookie_hash: str | None = column(
        "keyed hash of the Cookie header, to recognise the same browser", "writer"
    )
    fault_id: int | None = column(
        "the injected fault that refused or ended the session", "SessionClosed.fault_id"
    )
    response_line: str | None = column(
        "the status line the client received, e.g. `HTTP/1.1 101 Switching Protocols`",
        "SessionOpened.response_line",
    )
    upstream_host: str | None = column(
        "the Host header the upstream got: the browser's, kept, or the upstream's own "
        "(`--host-header`); NULL when the upgrade never went upstream",
        "SessionOpened.upstream_host",
    )

    @property
    def accepted(self) -> bool:
        return self.handshake_status == 101

    @property
    def duration(self) -> float | None:
        if not isinstance(self.ended_at, int | float) or not isinstance(
            self.started_at, int | float
        ):
            return None  # not ended, or a hand-edited row read exactly
        return self.ended_at - self.started_at

    @property
    def idle_before_close(self) -> float | None:
        if self.ended_at is None:
            return None
        return self.ended_at - (self.last_frame_at or self.started_at or self.ended_at)

    @property
    def client_key(self) -> tuple[str, str, str]:
        """ "The same client": remote address and User-Agent. Not the cookie: frameworks
        that set a fresh CSRF cookie on every answer change it on every handshake of one
        tab (the third part stays for the shape of older callers, always empty)."""
        return (self.client_addr or "", self.user_agent or "", "")


def _frame_row() -> type:
    """The ``frames`` row: its id, then events.Frame's fields with their meanings, declared
    once on the event (a new frame column is one field there)."""
    hints = typing.get_type_hints(Frame, include_extras=True)
    fields: list[tuple[str, Any, Any]] = [
        ("id", "int | None", column("the frame; ids rise in wire order in each direction"))
    ]
    for name in Frame._fields:
        hint = hints[name]
        meaning = hint.__metadata__[0]
        base = " | ".join(sorted(_sql_names(hint.__origin__), key=SQL_ORDER.index))
        usual = NO_USUAL if meaning.usual is Meaning.NONE else meaning.usual
        fields.append((name, f"{base} | None", column(meaning.text, f"Frame.{name}", usual=usual)))
    return dataclasses.make_dataclass(
        "FrameRow",
        fields,
        slots=True,
        namespace={
            "table": "frames",
            "about": "one row per WebSocket frame as it crossed the wire, in wire order",
            "__doc__": "A row of `frames`: derived from events.Frame.",
            "__module__": __name__,
        },
    )


SQL_ORDER = ["str", "bytes", "int", "float"]


def _sql_names(t: Any) -> set[str]:
    """int, float, str and/or bytes for a field's type (a Literal of strings is str)."""
    origin = typing.get_origin(t)
    if origin is typing.Literal:
        return {"str"}
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_sql_names(arg) for arg in typing.get_args(t)))
    return set() if t is type(None) else {t.__name__}


FrameRow = _frame_row()


@dataclass(slots=True)
class HttpRequestRow:
    table: ClassVar[str] = "http_requests"
    about: ClassVar[str] = "one row per plain HTTP request passed through"
    id: int | None = column("the request")
    run_id: int | None = column("the run", "writer")
    ts: float | None = column("when it arrived", "HttpRequest.ts")
    client_addr: str | None = column("the browser's IP address", "HttpRequest.client_addr")
    method: str | None = column("the method", "HttpRequest.method")
    path: str | None = column("the path (path parameters redacted)", "writer")
    query: str | None = column("the query string (redacted)", "writer")
    status: int | None = column(
        "the upstream's status (502 when unreachable)", "HttpRequest.status"
    )
    duration_ms: float | None = column("time to the end of the response", "HttpRequest.duration_ms")
    error: str | None = column("why it failed, in words", "HttpRequest.error")
    body: bytes | None = column(
        "the first bytes (up to 1 KiB) of an error response's body (status 400 and up)", "writer"
    )
    user_agent: str | None = column("the User-Agent header", "HttpRequest.user_agent")
    navigate: int | None = column(
        "1 for a page load: the browser marked it `Sec-Fetch-Mode: navigate` and "
        "`Sec-Fetch-Dest: document` (or `iframe`); how sockets are grouped into pages",
        "HttpRequest.navigate",
    )


@dataclass(slots=True)
class FaultRow:
    table: ClassVar[str] = "faults"
    about: ClassVar[str] = "one row per injected fault"
    id: int | None = column("the fault", "FaultAdded.fault_id")
    run_id: int | None = column("the run", "writer")
    spec: str | None = column("the fault as written, e.g. `close code=1011`", "FaultAdded.spec")
    created_at: float | None = column("when it was added", "FaultAdded.ts")
    removed_at: float | None = column("when it was removed (NULL if never)", "FaultRemoved.ts")


@dataclass(slots=True)
class FaultEventRow:
    table: ClassVar[str] = "fault_events"
    about: ClassVar[str] = "one row each time a fault acted"
    id: int | None = column("the event")
    fault_id: int | None = column("the fault", "FaultFired.fault_id")
    session_id: int | None = column("the session it acted on", "FaultFired.session_id")
    ts: float | None = column("when", "FaultFired.ts")
    action: str | None = column(
        "`reject`, `close`, `abort`, `stall`, `drop` or `delay`", "FaultFired.action"
    )
    detail: str | None = column("what it did, in words", "FaultFired.detail")


ROW_TYPES: tuple[type, ...] = (
    MetaRow,
    RunRow,
    SessionRow,
    FrameRow,
    HttpRequestRow,
    FaultRow,
    FaultEventRow,
)
TABLES: dict[str, tuple[Column, ...]] = {t.table: columns_of(t) for t in ROW_TYPES}  # type: ignore[attr-defined]
ROW_TYPE: dict[str, type] = {t.table: t for t in ROW_TYPES}  # type: ignore[attr-defined]

PRIMARY_KEYS = {"meta": "key"}
FOREIGN_KEYS = {
    "sessions": [("run_id", "runs", "id")],
    "frames": [("session_id", "sessions", "id")],
    "http_requests": [("run_id", "runs", "id")],
    "faults": [("run_id", "runs", "id")],
    "fault_events": [("fault_id", "faults", "id")],
}
INDEXES: dict[str, list[list[str]]] = {
    "sessions": [["started_at"], ["close_code"], ["path"], ["client_addr"], ["run_id"]],
    "frames": [["session_id", "ts"]],
    "http_requests": [["ts"]],
    "fault_events": [["fault_id"], ["session_id"]],
}

# Whole messages, their fragments joined, for SQL users: one row per message.
# (SQLite before 3.44 has no ORDER BY inside group_concat; the ordered
# subquery keeps fragments in wire order in practice, and sentinel-ws itself
# joins fragments in Python.)
MESSAGES_VIEW = """
CREATE VIEW IF NOT EXISTS messages AS
SELECT min(id) AS id, session_id, direction, coalesce(message, id) AS message,
  min(ts) AS ts, max(ts) AS last_ts, min(source) AS source,
  coalesce(max(CASE WHEN opcode != 'continuation' THEN opcode END), 'continuation') AS opcode,
  count(*) AS frames, sum(size) AS size, sum(wire_size) AS wire_size,
  max(compressed) AS compressed,
  CASE WHEN count(*) = 1 THEN max(payload)
       WHEN max(CASE WHEN opcode = 'text' THEN 1 ELSE 0 END) = 1 THEN group_concat(payload, '')
       ELSE CAST(group_concat(payload, '') AS BLOB) END AS payload,
  max(truncated) AS truncated, max(close_code) AS close_code, max(close_reason) AS close_reason,
  min(forwarded) AS forwarded, group_concat(violation, '; ') AS violation,
  max(fault_id) AS fault_id, max(fault_action) AS fault_action
FROM (SELECT * FROM frames ORDER BY id)
GROUP BY session_id, direction, coalesce(message, id)
"""
# Times people can read (ISO 8601, local time, milliseconds) for `sql` and datasette,
# and how each session ended in plain words. Not the verdict: classifying needs the
# whole recording (sentinel-ws sessions --csv has the categories).
LOCAL = "strftime('%Y-%m-%dT%H:%M:%f', {}, 'unixepoch', 'localtime')"
SESSIONS_VIEW = f"""
CREATE VIEW IF NOT EXISTS sessions_view AS
SELECT id, run_id, {LOCAL.format("started_at")} AS started, {LOCAL.format("ended_at")} AS ended,
  round((ended_at - started_at) * 1000, 1) AS duration_ms, client_addr, path, query,
  handshake_status,
  CASE WHEN handshake_status IS NOT 101 THEN 'refused with ' || handshake_status
       WHEN ended_at IS NULL THEN 'open'
       WHEN close_code IS NULL OR close_code = 1006
         THEN 'dropped by the ' || coalesce(closed_by, '?') || ' (no close frame)'
       ELSE 'closed ' || close_code || ' by the ' || coalesce(closed_by, '?')
            || CASE WHEN clean THEN '' ELSE ' (no completed close handshake)' END
  END AS ending,
  close_code, close_reason, closed_by, clean, frames_c2s, frames_s2c, bytes_c2s, bytes_s2c,
  user_agent, origin, subprotocol, error, fault_id
FROM sessions
"""
FRAMES_VIEW = f"""
CREATE VIEW IF NOT EXISTS frames_view AS
SELECT id, session_id, {LOCAL.format("ts")} AS time, direction, source, opcode, fin, size,
  wire_size, compressed, payload, truncated, forwarded, close_code, close_reason, violation,
  fault_id, fault_action
FROM frames
"""
VIEWS = {"messages": MESSAGES_VIEW, "sessions_view": SESSIONS_VIEW, "frames_view": FRAMES_VIEW}


def schema_markdown() -> str:
    """The README's table of tables and columns, made from the declaration."""
    lines = ["| table | column | meaning |", "|---|---|---|"]
    for row_type in ROW_TYPES:
        name = row_type.table  # type: ignore[attr-defined]
        lines.append(f"| `{name}` | | {row_type.about} |")  # type: ignore[attr-defined]
        lines.extend(f"| | `{c.name}` | {c.meaning} |" for c in TABLES[name])
    return "\n".join(lines)


def present_columns(db: sqlite_utils.Database, table: str) -> set[str]:
    return set(db[table].columns_dict) if db[table].exists() else set()


def select_list(table: str, present: set[str], wanted: tuple[str, ...] | None = None) -> str:
    """The declared columns in order; one an older file lacks reads as NULL."""
    names = wanted or tuple(c.name for c in TABLES[table])
    return ", ".join(n if n in present else f"NULL AS {n}" for n in names)


def check_recording(db: sqlite_utils.Database, path: Path) -> int | None:
    """The file's schema version, or None for an empty database.

    Raises RecordingError for a file that is not SQLite or not one of ours.
    """
    try:
        names = set(db.table_names())
    except sqlite3.DatabaseError as exc:
        raise RecordingError(f"{path} is not a SQLite database ({exc})") from None
    if not names:
        return None
    if "meta" not in names:
        raise RecordingError(f"{path} is a SQLite database but not a sentinel-ws recording")
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or not str(row[0]).isdigit():
        raise RecordingError(f"{path} is a SQLite database but not a sentinel-ws recording")
    version = int(row[0])
    if version > SCHEMA_VERSION:
        raise RecordingError(
            f"{path} was written by a newer sentinel-ws (schema {version}, "
            f"this version reads up to {SCHEMA_VERSION}); upgrade sentinel-ws"
        )
    return version


def create_schema(db: sqlite_utils.Database) -> None:
    """Create every missing table, column, index and view (idempotent)."""
    for name, columns in TABLES.items():
        table = db.table(name)
        if not table.exists():
            table.create(
                {c.name: c.kind for c in columns},
                pk=PRIMARY_KEYS.get(name, "id"),
                foreign_keys=FOREIGN_KEYS.get(name),
            )
        else:
            # Additive changes reach older files: new columns are added, never altered.
            present = set(table.columns_dict)
            for c in columns:
                if c.name not in present:
                    table.add_column(c.name, c.kind)
        for index in INDEXES.get(name, []):
            table.create_index(index, if_not_exists=True)
    for sql in VIEWS.values():
        db.execute(sql)
    # A file from an older version now has every column of this one.
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [str(SCHEMA_VERSION)],
    )
    db.conn.commit()


def open_database(path: Path, *, create: bool) -> sqlite_utils.Database:
    """Open a recording for writing, creating it (and its folder) if asked."""
    if not path.exists() and not create:
        raise no_such_recording(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite_utils.Database(sqlite3.connect(path, timeout=5.0))
    except (OSError, sqlite3.Error) as exc:
        raise RecordingError(f"cannot open {path} for writing: {exc}") from None
    check_recording(db, path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        create_schema(db)
    except sqlite3.Error as exc:
        db.close()
        raise RecordingError(f"cannot write to {path}: {exc}") from None
    return db


def set_meta(path: Path, key: str, value: str) -> None:
    """Write one fact into a recording's meta table (the demo's thresholds, say)."""
    db = open_database(path, create=False)
    try:
        with db.conn:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])
    finally:
        db.close()


def no_such_recording(path: Path) -> RecordingError:
    """The error for a missing recording, naming the ones beside it (the demo's, say)."""
    folder = path.parent if path.parent.is_dir() else Path("recordings")
    found = sorted(
        (f for f in folder.glob("*.db") if f.is_file()),
        key=lambda f: f.stat().st_mtime,
        reverse=True,
    )[:5] if folder.is_dir() else []  # fmt: skip
    if not found:
        return RecordingError(
            f"{path}: no such recording (sentinel-ws proxy writes one; sentinel-ws demo "
            "makes recordings/demo.db)"
        )
    now = time.time()
    listed = ", ".join(f"{f} ({_age(now - f.stat().st_mtime)} ago)" for f in found)
    return RecordingError(f"{path}: no such recording; there is {listed}: pass --db {found[0]}")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def open_read_only(path: Path) -> sqlite_utils.Database:
    """Open a recording read-only: readers never change what they read."""
    if not path.exists():
        raise no_such_recording(path)
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        db = sqlite_utils.Database(sqlite3.connect(uri, uri=True))
    except sqlite3.Error as exc:
        raise RecordingError(f"cannot open {path}: {exc}") from None
    version = check_recording(db, path)
    if version is None:
        db.close()
        raise RecordingError(f"{path} is an empty database, not a sentinel-ws recording")
    return db


def iter_rows(cursor: sqlite3.Cursor, row_type: type) -> Iterator[Any]:
    """Rows of a `SELECT select_list(...)` as row objects."""
    return (row_type(*row) for row in cursor)


if __name__ == "__main__":
    print(schema_markdown())
