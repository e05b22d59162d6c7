"""Read-only SQL over a recording, for `sentinel-ws sql`."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sentinel_ws_proxy.recording.schema import RecordingError, open_read_only


class QueryError(RecordingError):
    """The statement failed; the message says why in SQLite's words."""


def _deny_attach(action: int, *args: object) -> int:
    # The file is opened read-only, but ATTACH could open (and create) another one.
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def run_query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> tuple[list[str], list[tuple]]:
    """Column names and rows of one statement; nothing in the file can change."""
    db = open_read_only(path)
    conn = db.conn
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.set_authorizer(_deny_attach)
        try:
            cursor = conn.execute(sql, params)
            rows = cursor.fetchall()
        except sqlite3.Error as exc:
            message = str(exc)
            if "readonly" in message or "query_only" in message or "read-only" in message:
                message = f"recordings are read-only here ({message}); nothing was changed"
            raise QueryError(message) from None
        columns = [d[0] for d in cursor.description or ()]
        return columns, rows
    finally:
        conn.close()
