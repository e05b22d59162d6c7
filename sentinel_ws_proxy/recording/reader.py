"""A recording, read back: session summaries, rows, frames, and the events themselves.

Always opened read-only: looking at a recording never changes it, and works
while a proxy is still writing it (WAL).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sentinel_ws_proxy.analysis.classify import SessionSummary
from sentinel_ws_proxy.events import Event, Frame, SessionClosed, SessionOpened
from sentinel_ws_proxy.recording.schema import RecordingError, open_read_only

SUMMARY_COLUMNS = (
    "id", "run_id", "started_at", "ended_at", "client_addr", "path", "handshake_status", "error",
    "close_code", "close_reason", "closed_by", "clean", "frames_c2s", "frames_s2c",
    "last_frame_at", "user_agent", "cookie_hash", "fault_id",
)  # fmt: skip


def _summary(row: Sequence[Any]) -> SessionSummary:
    (sid, run_id, started, ended, client, path, status, error, code, reason, by, clean) = row[:12]
    return SessionSummary(
        id=sid,
        run_id=run_id,
        started_at=started,
        ended_at=ended,
        client_addr=client or "",
        path=path or "",
        handshake_status=status,
        error=error,
        close_code=code,
        close_reason=reason,
        closed_by=by,
        clean=bool(clean),
        frames_c2s=row[12] or 0,
        frames_s2c=row[13] or 0,
        last_frame_at=row[14],
        user_agent=row[15],
        cookie_hash=row[16],
        fault_id=row[17],
    )


def _headers(text: str | None) -> tuple[tuple[str, str], ...]:
    return tuple(json.loads(text).items()) if text else ()


class Recording:
    """A read-only view of one recording file."""

    def __init__(self, path: Path):
        self.path = path
        self.db = open_read_only(path)
        self.conn: sqlite3.Connection = self.db.conn
        # A recording from before a column was added reads it as NULL.
        present = set(self.db["sessions"].columns_dict)
        self._summary_select = ", ".join(
            c if c in present else f"NULL AS {c}" for c in SUMMARY_COLUMNS
        )

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def summaries(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        run_id: int | None = None,
    ) -> list[SessionSummary]:
        where, params = [], []
        if since is not None:
            where.append("started_at >= ?")
            params.append(since)
        if until is not None:
            where.append("started_at < ?")
            params.append(until)
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        sql = f"SELECT {self._summary_select} FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at, id"
        return [_summary(row) for row in self.conn.execute(sql, params)]

    def session_rows(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Whole `sessions` rows by id, fetched in chunks."""
        ids = list(ids)
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            cursor = self.conn.execute(
                f"SELECT * FROM sessions WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            names = [d[0] for d in cursor.description]
            for row in cursor:
                found[row[0]] = dict(zip(names, row, strict=False))
        return found

    def session_row(self, session_id: int) -> dict[str, Any]:
        row = self.session_rows([session_id]).get(session_id)
        if row is None:
            raise RecordingError(f"no session {session_id} in {self.path}")
        return row

    def frame_rows(self, session_id: int) -> list[dict[str, Any]]:
        cursor = self.conn.execute(
            "SELECT * FROM frames WHERE session_id = ? ORDER BY id", [session_id]
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=False)) for row in cursor]

    def events(self, session_ids: Iterable[int]) -> Iterator[Event]:
        """The recorded events of these sessions, session by session, in recorded order."""
        for session_id in session_ids:
            row = self.session_row(session_id)
            yield opened_event(row)
            for f in self.frame_rows(session_id):
                yield frame_event(f)
            if row["ended_at"] is not None:
                yield closed_event(row)


def _bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def opened_event(row: dict[str, Any]) -> SessionOpened:
    return SessionOpened(
        session_id=row["id"],
        ts=row["started_at"],
        client_addr=row["client_addr"] or "",
        path=row["path"] or "",
        query=row["query"] or "",
        upstream_url=row["upstream_url"] or "",
        request_headers=_headers(row["request_headers"]),
        handshake_status=row["handshake_status"],
        response_headers=_headers(row["response_headers"]),
        handshake_body=_bytes(row["handshake_body"]),
        subprotocol=row["subprotocol"],
        error=row["error"],
    )


def frame_event(row: dict[str, Any]) -> Frame:
    return Frame(
        session_id=row["session_id"],
        ts=row["ts"],
        direction=row["direction"],
        opcode=row["opcode"],
        payload=_bytes(row["payload"]),
        close_code=row["close_code"],
        close_reason=row["close_reason"],
    )


def closed_event(row: dict[str, Any]) -> SessionClosed:
    return SessionClosed(
        session_id=row["id"],
        ts=row["ended_at"],
        close_code=row["close_code"],
        close_reason=row["close_reason"],
        closed_by=row["closed_by"],
        clean=bool(row["clean"]),
        frames_c2s=row["frames_c2s"] or 0,
        frames_s2c=row["frames_s2c"] or 0,
        bytes_c2s=row["bytes_c2s"] or 0,
        bytes_s2c=row["bytes_s2c"] or 0,
        last_frame_at=row["last_frame_at"],
    )
