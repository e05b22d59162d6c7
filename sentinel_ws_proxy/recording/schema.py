"""The recording's tables: a public interface, documented in README.md.

Change them only by adding, and bump SCHEMA_VERSION with a migration when a
change is not purely additive.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from sentinel_ws_proxy.errors import RecordingError

__all__ = ["RecordingError", "check_recording", "create_schema", "open_database", "open_read_only"]

SCHEMA_VERSION = 1

TABLES: dict[str, dict[str, type]] = {
    "meta": {"key": str, "value": str},
    "runs": {
        "id": int,
        "started_at": float,
        "ended_at": float,
        "listen": str,
        "upstream": str,
        "version": str,
        "pid": int,
        "hostname": str,
    },
    "sessions": {
        "id": int,
        "run_id": int,
        "started_at": float,
        "ended_at": float,
        "client_addr": str,
        "path": str,
        "query": str,
        "upstream_url": str,
        "request_headers": str,
        "handshake_status": int,
        "response_headers": str,
        "handshake_body": bytes,
        "subprotocol": str,
        "error": str,
        "close_code": int,
        "close_reason": str,
        "closed_by": str,
        "clean": int,
        "frames_c2s": int,
        "frames_s2c": int,
        "bytes_c2s": int,
        "bytes_s2c": int,
        "last_frame_at": float,
        "user_agent": str,
        "origin": str,
        "cookie_hash": str,
        "fault_id": int,
    },
    "frames": {
        "id": int,
        "session_id": int,
        "ts": float,
        "direction": str,
        "opcode": str,
        "size": int,
        "payload": bytes,
        "truncated": int,
        "close_code": int,
        "close_reason": str,
        "fault_id": int,
        "fault_action": str,
    },
    "http_requests": {
        "id": int,
        "run_id": int,
        "ts": float,
        "client_addr": str,
        "method": str,
        "path": str,
        "query": str,
        "status": int,
        "duration_ms": float,
        "error": str,
    },
    "faults": {"id": int, "run_id": int, "spec": str, "created_at": float, "removed_at": float},
    "fault_events": {
        "id": int,
        "fault_id": int,
        "session_id": int,
        "ts": float,
        "action": str,
        "detail": str,
    },
}

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
    """Create every missing table and index (idempotent)."""
    for name, columns in TABLES.items():
        table = db.table(name)
        if not table.exists():
            table.create(
                columns,
                pk=PRIMARY_KEYS.get(name, "id"),
                foreign_keys=FOREIGN_KEYS.get(name),
            )
        else:
            # Additive changes reach older files: new columns are added, never altered.
            present = set(table.columns_dict)
            for column, kind in columns.items():
                if column not in present:
                    table.add_column(column, kind)
        for index in INDEXES.get(name, []):
            table.create_index(index, if_not_exists=True)
    db.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
        [str(SCHEMA_VERSION)],
    )
    db.conn.commit()


def open_database(path: Path, *, create: bool) -> sqlite_utils.Database:
    """Open a recording for writing, creating it (and its folder) if asked."""
    if not path.exists() and not create:
        raise RecordingError(f"{path}: no such recording")
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


def open_read_only(path: Path) -> sqlite_utils.Database:
    """Open a recording read-only: readers never change what they read."""
    if not path.exists():
        raise RecordingError(f"{path}: no such recording")
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
