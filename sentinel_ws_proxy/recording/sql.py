"""Read-only SQL over a recording, for `sentinel-ws sql`."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sentinel_ws_proxy.recording.schema import VIEWS, RecordingError, open_read_only


class QueryError(RecordingError):
    """The statement failed; the message says why in SQLite's words."""


# What the authorizer refused, in words, for the one-line error.
_WRITES = {
    sqlite3.SQLITE_ATTACH: "ATTACH (it could open or create another file)",
    sqlite3.SQLITE_DETACH: "DETACH",
    sqlite3.SQLITE_INSERT: "INSERT",
    sqlite3.SQLITE_UPDATE: "UPDATE",
    sqlite3.SQLITE_DELETE: "DELETE",
    sqlite3.SQLITE_DROP_TABLE: "DROP TABLE",
    sqlite3.SQLITE_DROP_INDEX: "DROP INDEX",
    sqlite3.SQLITE_DROP_VIEW: "DROP VIEW",
    sqlite3.SQLITE_CREATE_TABLE: "CREATE TABLE",
    sqlite3.SQLITE_CREATE_INDEX: "CREATE INDEX",
    sqlite3.SQLITE_CREATE_VIEW: "CREATE VIEW",
    sqlite3.SQLITE_CREATE_TRIGGER: "CREATE TRIGGER",
    sqlite3.SQLITE_ALTER_TABLE: "ALTER TABLE",
}
# Pragmas that only read: these with an argument (a table name) ...
_READ_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
     "foreign_key_list", "database_list", "compile_options", "integrity_check",
     "quick_check", "table_list", "function_list", "pragma_list"}
)  # fmt: skip
# ... and these only without one (with a value they change the file).
_SETTINGS = frozenset({"schema_version", "user_version", "page_count", "page_size",
                       "journal_mode", "encoding", "freelist_count"})  # fmt: skip
_ROW_CHANGES = (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE)
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_schema", "sqlite_temp_master"})


class _Guard:
    """SQLite's authorizer: reads pass, anything else is refused with a reason."""

    def __init__(self) -> None:
        self.refused: str | None = None

    def __call__(self, action: int, arg1: str | None, arg2: str | None, *rest: object) -> int:
        if action in _WRITES:
            # CREATE TABLE is seen as an INSERT into sqlite_master first: the statement's
            # own kind, when it comes, names it better.
            if action in _ROW_CHANGES and (arg1 or "").lower() in _SCHEMA_TABLES:
                self.refused = self.refused or "changing the schema (CREATE, DROP, ALTER)"
            elif self.refused is None or action not in _ROW_CHANGES:
                self.refused = _WRITES[action]
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if name in _READ_PRAGMAS or (name in _SETTINGS and arg2 is None):
                return sqlite3.SQLITE_OK
            self.refused = f"PRAGMA {arg1}" + (f" = {arg2}" if arg2 is not None else "")
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK


def _temporary_views(conn: sqlite3.Connection) -> None:
    """The views a recording made by an older proxy lacks, for this connection only."""
    present = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    for name, sql in VIEWS.items():
        if name not in present:
            try:
                conn.execute(sql.replace("CREATE VIEW", "CREATE TEMP VIEW", 1))
            except sqlite3.Error:
                pass  # a column the old file lacks: that view is not offered


def run_query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> tuple[list[str], list[tuple]]:
    """Column names and rows of one statement; nothing in the file can change."""
    db = open_read_only(path)
    conn = db.conn
    try:
        _temporary_views(conn)
        conn.execute("PRAGMA query_only = ON")
        guard = _Guard()
        conn.set_authorizer(guard)
        try:
            cursor = conn.execute(sql, params)
            rows = cursor.fetchall()
        except sqlite3.Error as exc:
            message = str(exc)
            if guard.refused is not None:
                message = (
                    f"read-only: {guard.refused} is not allowed; sentinel-ws sql only reads "
                    "(nothing was changed)"
                )
            elif "readonly" in message or "query_only" in message or "read-only" in message:
                message = f"read-only: {message}; nothing was changed"
            raise QueryError(message) from None
        columns = [d[0] for d in cursor.description or ()]
        return columns, rows
    finally:
        conn.close()
