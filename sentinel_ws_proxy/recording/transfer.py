"""Rows of every table out of one recording and into another, with their ids kept apart.

Export takes the chosen sessions with everything they refer to (their runs,
the faults that touched them, those faults' events), or the whole recording.
Appending to another file moves every id past the ids already there and
follows the references (a frame's session, a session's run and fault), so a
recording exported and appended to an empty file is the same, table for
table. JSONL is the plain form: one row per line, ``{"table": NAME, ...}``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path
from typing import Any

from sentinel_ws_proxy.decoders import decode, for_session
from sentinel_ws_proxy.recording.jsonrows import row_from_json, row_to_json
from sentinel_ws_proxy.recording.reader import Recording
from sentinel_ws_proxy.recording.schema import (
    ROW_TYPE,
    TABLES,
    RecordingError,
    open_database,
)

# Tables in the order they are written: a row's references come before it.
ORDER = ("runs", "faults", "sessions", "frames", "fault_events", "http_requests")
# Which table each reference column points into.
REFERENCES: dict[str, dict[str, str]] = {
    "runs": {"id": "runs"},
    "faults": {"id": "faults", "run_id": "runs"},
    "sessions": {"id": "sessions", "run_id": "runs", "fault_id": "faults"},
    "frames": {"id": "frames", "session_id": "sessions", "fault_id": "faults"},
    "fault_events": {"id": "fault_events", "fault_id": "faults", "session_id": "sessions"},
    "http_requests": {"id": "http_requests", "run_id": "runs"},
}


@dataclass
class Tables:
    """Rows by table name, each a row object of schema.py."""

    rows: dict[str, list[Any]] = field(default_factory=lambda: {t: [] for t in ORDER})

    def count(self, table: str) -> int:
        return len(self.rows[table])


def _where_in(column: str, ids: Sequence[int]) -> tuple[str, list[int]]:
    return f"{column} IN ({','.join('?' * len(ids))})", list(ids)


def _select(recording: Recording, table: str, where: str = "", params: Sequence = ()) -> list[Any]:
    if not recording.has_table(table):
        return []
    sql = f"SELECT {recording.columns(table, exact=True)} FROM {table}"
    if where:
        sql += f" WHERE {where}"
    row_type = ROW_TYPE[table]
    return [row_type(*r) for r in recording.conn.execute(sql + " ORDER BY id", list(params))]


def export_tables(recording: Recording, session_ids: Sequence[int] | None = None) -> Tables:
    """The chosen sessions and what they refer to; every row of every table for None."""
    out = Tables()
    if session_ids is None:
        for table in ORDER:
            out.rows[table] = _select(recording, table)
        return out
    for sid in session_ids:
        recording.session_row(sid)  # a RecordingError for an unknown id
    sessions = _chunked(recording, "sessions", "id", session_ids)
    out.rows["sessions"] = sessions
    out.rows["frames"] = _chunked(recording, "frames", "session_id", session_ids)
    events = _chunked(recording, "fault_events", "session_id", session_ids)
    out.rows["fault_events"] = events
    fault_ids = {s.fault_id for s in sessions} | {f.fault_id for f in out.rows["frames"]}
    fault_ids |= {e.fault_id for e in events}
    fault_ids.discard(None)
    out.rows["faults"] = _chunked(recording, "faults", "id", sorted(fault_ids))
    run_ids = sorted({s.run_id for s in sessions} - {None})
    out.rows["runs"] = _chunked(recording, "runs", "id", run_ids)
    return out


def _chunked(recording: Recording, table: str, column: str, ids: Sequence[Any]) -> list[Any]:
    found: list[Any] = []
    ids = list(ids)
    for start in range(0, len(ids), 500):
        found.extend(_select(recording, table, *_where_in(column, ids[start : start + 500])))
    return sorted(found, key=lambda r: r.id)


def to_jsonl(tables: Tables) -> Iterator[str]:
    """One row per line; frames of a session whose protocol is known carry "decoded" too
    (an import ignores it: the row is what was recorded)."""
    decoders = _decoders(tables)
    for table in ORDER:
        for row in tables.rows[table]:
            line = {"table": table, **row_to_json(row)}
            data = table == "frames" and row.opcode in ("text", "binary")
            if data and decoders.get(row.session_id) is not None:
                found = decode(decoders[row.session_id], row.payload, row.direction or "")
                if found is not None:
                    line["decoded"] = found.as_json()
            yield json.dumps(line, ensure_ascii=False)


def _decoders(tables: Tables) -> dict[int, Any]:
    first: dict[int, list[object]] = {}
    for f in tables.rows["frames"]:
        found = first.setdefault(f.session_id, [])
        if len(found) < 4 and f.opcode in ("text", "binary"):
            found.append(f)
    return {
        s.id: for_session(s.subprotocol, s.path, s.query, first.get(s.id, []))
        for s in tables.rows["sessions"]
    }


def from_jsonl(lines: Sequence[str], source: str) -> Tables:
    out = Tables()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            table = data.pop("table")
            out.rows[table].append(row_from_json(ROW_TYPE[table], data))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RecordingError(
                f"{source}: line {number} is not a recording row ({exc})"
            ) from None
    return out


def _offsets(conn: sqlite3.Connection) -> dict[str, int]:
    return {
        table: conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        for table in ORDER
    }


def _moved(row: Any, table: str, offsets: dict[str, int]) -> Any:
    changes = {
        name: getattr(row, name) + offsets[target]
        for name, target in REFERENCES[table].items()
        if getattr(row, name) is not None
    }
    return replace(row, **changes)


def append_tables(db_path: Path, tables: Tables) -> dict[str, int]:
    """Write the rows into a recording (created if missing), ids moved past its own.

    One transaction: a failure leaves the file as it was. Returns the offset
    added to each table's ids.
    """
    db = open_database(db_path, create=True)
    conn = db.conn
    try:
        with conn:
            offsets = _offsets(conn)
            for table in ORDER:
                names = [c.name for c in TABLES[table]]
                sql = (
                    f"INSERT INTO {table} ({', '.join(names)}) "
                    f"VALUES ({','.join('?' * len(names))})"
                )
                conn.executemany(
                    sql, [astuple(_moved(r, table, offsets)) for r in tables.rows[table]]
                )
    except sqlite3.Error as exc:
        raise RecordingError(f"cannot write to {db_path}: {exc}") from None
    finally:
        db.close()
    return offsets
