"""Every question the read side asks of a recording, as methods of Recording.

The reader owns the SQL: commands, the web view, the monitor, replay and the
analysis call these and never write a query of their own (the user's own `sql`
command aside). Each method reads tolerantly: a table or column that an older
file lacks reads as nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

CHUNK = 500  # ids per IN (...) list


def _marks(ids: Sequence[object]) -> str:
    return ",".join("?" * len(ids))


class RecordingQueries:
    """Mixed into Recording (reader.py), which supplies fetch(), conn, has_table()."""

    conn: sqlite3.Connection
    path: Path
    _present: dict[str, set[str]]

    def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:  # pragma: no cover
        raise NotImplementedError

    def has_table(self, table: str) -> bool:  # pragma: no cover
        raise NotImplementedError

    def has_column(self, table: str, column: str) -> bool:
        return column in self._present.get(table, set())

    # -- sessions --------------------------------------------------------------

    def session_span(self) -> tuple[int, float | None, float | None]:
        """(how many sessions, the first start, the last start)."""
        count, first, last = self.fetch(
            "SELECT count(*), min(started_at), max(started_at) FROM sessions"
        )[0]
        return count, first, last

    def session_ids_after(self, last_id: int) -> list[int]:
        return [r[0] for r in self.fetch("SELECT id FROM sessions WHERE id > ? ORDER BY id",
                                         [last_id])]  # fmt: skip

    def newest_session_ids(self, limit: int, offset: int = 0) -> list[int]:
        return [
            r[0]
            for r in self.fetch(
                "SELECT id FROM sessions ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?",
                [limit, offset],
            )
        ]

    def latest_run_id(self) -> int | None:
        """The newest run that recorded a session."""
        return self.fetch("SELECT max(run_id) FROM sessions")[0][0]

    def session_ids_of_run(self, run_id: int) -> list[int]:
        return [
            r[0]
            for r in self.fetch(
                "SELECT id FROM sessions WHERE run_id = ? ORDER BY started_at, id", [run_id]
            )
        ]

    def first_session_by_agent(self) -> dict[str, int]:
        """Each User-Agent's first session (the demo names its scenarios by agent)."""
        first: dict[str, int] = {}
        for session_id, agent in self.fetch("SELECT id, user_agent FROM sessions ORDER BY id"):
            first.setdefault(agent, session_id)
        return first

    def open_sessions(self, run_id: int | None) -> list[tuple[int, str, str, float]]:
        """(id, client, path, started_at) of a run's accepted sessions still open."""
        return [
            (r[0], r[1] or "", r[2] or "", r[3])
            for r in self.fetch(
                "SELECT id, client_addr, path, started_at FROM sessions"
                " WHERE run_id = ? AND ended_at IS NULL AND handshake_status = 101",
                [run_id],
            )
        ]

    def oldest_start_of_recent_closes(self, limit: int) -> float | None:
        """When the oldest of the last `limit` sessions to end began."""
        return self.fetch(
            "SELECT min(started_at) FROM (SELECT started_at FROM sessions"
            " WHERE typeof(ended_at) IN ('integer', 'real')"
            " AND typeof(started_at) IN ('integer', 'real') ORDER BY ended_at DESC LIMIT ?)",
            [limit],
        )[0][0]

    # -- runs --------------------------------------------------------------------

    def latest_run(self) -> int | None:
        return self.fetch("SELECT max(id) FROM runs")[0][0] if self.has_table("runs") else None

    # -- frames ------------------------------------------------------------------

    def max_frame_id(self) -> int:
        return self.fetch("SELECT coalesce(max(id), 0) FROM frames")[0][0]

    def frame_counts_after(self, frame_id: int) -> dict[str, int]:
        """Frames recorded after `frame_id`, per direction."""
        return dict(
            self.fetch(
                "SELECT direction, count(*) FROM frames WHERE id > ? GROUP BY direction",
                [frame_id],
            )
        )

    def traffic(self, session_ids: Sequence[int]) -> list[tuple[int, str, int, float, float]]:
        """(session, direction, frames, bytes, last frame at) for each session so far."""
        found: list[tuple[int, str, int, float, float]] = []
        ids = list(session_ids)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            found += self.fetch(
                "SELECT session_id, direction, count(*), total(size), max(CAST(ts AS REAL))"
                f" FROM frames WHERE session_id IN ({_marks(chunk)})"
                " GROUP BY session_id, direction",
                chunk,
            )
        return found

    def frame_clock(self, since: float) -> Iterator[tuple[int, float, str, int]]:
        """(session, ts, direction, size) of every frame from `since` on, in wire order,
        streamed. Numbers only: a hand-edited row with text in ts or size is left out."""
        return iter(
            self.conn.execute(
                "SELECT session_id, ts, direction, coalesce(CAST(size AS INTEGER), 0) FROM frames"
                " WHERE typeof(ts) IN ('integer', 'real') AND ts >= ? ORDER BY id",
                [since],
            )
        )

    def close_facts(
        self, where: str, params: Sequence[object]
    ) -> list[tuple[int, Any, Any, Any, Any, Any, Any]]:
        """Per session in `where` (a clause over session_id from analysis/facts.py):
        (session, first close ts, last server ping ts, last client frame ts,
        a close frame not forwarded (0/1), the first close's id * 2 + (from the server),
        the id of the client's first text frame)."""
        delivered = "forwarded = 0" if self.has_column("frames", "forwarded") else "0"
        # The first close frame's direction rides in the parity of min(id * 2 + s2c):
        # one pass over the frames instead of a second query.
        return self.fetch(
            f"""SELECT session_id,
                  min(CASE WHEN opcode = 'close' THEN ts END),
                  max(CASE WHEN direction = 's2c' AND opcode = 'ping' THEN ts END),
                  max(CASE WHEN direction = 'c2s' THEN ts END),
                  max(CASE WHEN opcode = 'close' AND {delivered} THEN 1 ELSE 0 END),
                  min(CASE WHEN opcode = 'close' THEN id * 2 + (direction = 's2c') END),
                  min(CASE WHEN direction = 'c2s' AND opcode = 'text' THEN id END)
                FROM frames WHERE {where} GROUP BY session_id""",
            params,
        )

    INDEXED = ("id", "session_id", "ts", "direction", "opcode", "message", "fin", "payload",
               "close_reason")  # fmt: skip

    def frames_to_index(self, after: int, limit: int) -> list[tuple]:
        """The next wire frames after a frame id, only what search's index needs, as stored
        (a version 1 file has no message or fin): (id, session, ts, direction, opcode,
        message, fin, payload, close reason)."""
        columns = ", ".join(
            c if self.has_column("frames", c) else f"NULL AS {c}" for c in self.INDEXED
        )
        return self.fetch(
            f"SELECT {columns} FROM frames WHERE id > ? ORDER BY id LIMIT ?", [after, limit]
        )

    def payload_heads(self, frame_ids: Sequence[int], length: int = 256) -> dict[int, Any]:
        """session id -> the first `length` characters (or bytes) of each frame's payload."""
        found: dict[int, Any] = {}
        ids = list(frame_ids)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            sql = (
                f"SELECT session_id, substr(payload, 1, {int(length)}) FROM frames"
                f" WHERE id IN ({_marks(chunk)})"
            )
            found.update(self.fetch(sql, chunk))
        return found

    def first_server_text(self, session_id: int, prefixes: Sequence[str]) -> str | None:
        """The session's first text frame from the server that starts with one of these."""
        like = " OR ".join("payload LIKE ?" for _ in prefixes)
        rows = self.fetch(
            "SELECT payload FROM frames WHERE session_id = ? AND direction = 's2c'"
            f" AND opcode = 'text' AND ({like}) ORDER BY id LIMIT 1",
            [session_id, *(p.replace("%", "") + "%" for p in prefixes)],
        )
        return rows[0][0] if rows else None

    def edge_frames(self, session_ids: Sequence[int], first: int, last: int) -> list[Any]:
        """The first `first` and last `last` wire frames of each session (FrameRows, in
        wire order per session): where a protocol says what it is and how it ended."""
        from sentinel_ws_proxy.recording.schema import FrameRow

        columns = self.columns("frames")  # type: ignore[attr-defined]
        found: list[Any] = []
        ids = list(session_ids)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            rows = self.fetch(
                f"SELECT * FROM (SELECT {columns},"
                " row_number() OVER (PARTITION BY session_id ORDER BY id) AS head,"
                " row_number() OVER (PARTITION BY session_id ORDER BY id DESC) AS tail"
                f" FROM frames WHERE session_id IN ({_marks(chunk)}))"
                " WHERE head <= ? OR tail <= ? ORDER BY session_id, id",
                [*chunk, first, last],
            )
            found += [FrameRow(*row[:-2]) for row in rows]
        return found

    # -- faults ------------------------------------------------------------------

    def fault_events(
        self, session_id: int | None = None, *, newest: int | None = None
    ) -> list[dict[str, Any]]:
        """What faults did, with each fault's spec: one session's in time order, or the
        `newest` N of the whole recording, newest first."""
        if not self.has_table("fault_events"):
            return []
        sql = (
            "SELECT e.ts, e.action, e.detail, e.fault_id, f.spec, e.session_id"
            " FROM fault_events e LEFT JOIN faults f ON f.id = e.fault_id"
        )
        params: list[object] = []
        if session_id is not None:
            sql += " WHERE e.session_id = ? ORDER BY e.ts, e.id"
            params.append(session_id)
        else:
            sql += " ORDER BY e.id DESC"
        if newest is not None:
            sql += " LIMIT ?"
            params.append(newest)
        keys = ("ts", "action", "detail", "fault_id", "spec", "session_id")
        return [dict(zip(keys, r, strict=True)) for r in self.fetch(sql, params)]

    # -- HTTP --------------------------------------------------------------------

    def failed_http(
        self,
        paths: Sequence[str],
        *,
        since: float | None = None,
        until: float | None = None,
        run_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Failed plain HTTP requests (400 and up) on these paths, or on Socket.IO/SockJS
        transports, in time order; each body as one line of its first 200 characters."""
        if not self.has_table("http_requests"):
            return []
        paths = list(paths)
        where = [
            "CAST(status AS INTEGER) >= 400",
            "(path LIKE '%/socket.io/%' OR path LIKE '%/sockjs/%'"
            + (f" OR path IN ({_marks(paths)}))" if paths else ")"),
        ]
        params: list[object] = list(paths)
        for clause, value in (("ts >= ?", since), ("ts < ?", until), ("run_id = ?", run_id)):
            if value is not None:
                where.append(clause)
                params.append(value)
        body = "body" if self.has_column("http_requests", "body") else "NULL"
        keys = ("id", "ts", "client_addr", "method", "path", "query", "status", "error", "body")
        out = []
        for row in self.fetch(
            f"SELECT id, ts, client_addr, method, path, query, status, error, {body}"
            f" FROM http_requests WHERE {' AND '.join(where)} ORDER BY ts, id",
            params,
        ):
            item = dict(zip(keys, row, strict=True))
            text = item["body"]
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            item["body"] = " ".join((text or "").split())[:200] or None
            out.append(item)
        return out

    def document_loads(self) -> list[tuple[float, str, str, str | None]]:
        """(ts, client, path, user agent) of the page loads the proxy passed through:
        requests a browser marked as a document navigation (Sec-Fetch-Mode: navigate).
        Only recordings that keep request headers of HTTP requests have them."""
        if not self.has_column("http_requests", "navigate"):
            return []
        return [
            (r[0], r[1] or "", r[2] or "", r[3])
            for r in self.fetch(
                "SELECT ts, client_addr, path, user_agent FROM http_requests"
                " WHERE navigate = 1 AND typeof(ts) IN ('integer', 'real') ORDER BY ts, id"
            )
        ]


class DataVersion:
    """Tells when a recording changed (written by a proxy, or replaced), cheaply: SQLite's
    ``data_version`` on a connection of its own, and the file's inode."""

    def __init__(self, path: Path):
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._seen: tuple[int, int] | None = None  # (inode, data_version)
        self.generation = 0

    def poll(self) -> int:
        """A number that grows whenever the recording changed."""
        try:
            inode = self.path.stat().st_ino
        except OSError:
            return self.generation
        if self._conn is None or self._seen is None or self._seen[0] != inode:
            if self._conn is not None:
                self._conn.close()
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._seen = None
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if self._seen != (inode, version):
            self._seen = (inode, version)
            self.generation += 1
        return self.generation

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
