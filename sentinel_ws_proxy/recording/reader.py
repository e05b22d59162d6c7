"""A recording, read back as row objects (see schema.py) and whole messages.

Always opened read-only: looking at a recording never changes it, and works
while a proxy is still writing it (WAL). A column that an older file lacks
reads as None.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from sentinel_ws_proxy.protocol import effect_name, payload_bytes
from sentinel_ws_proxy.recording.crash import CRASHED, crashed_runs
from sentinel_ws_proxy.recording.queries import RecordingQueries
from sentinel_ws_proxy.recording.schema import (
    TABLES,
    Column,
    FrameRow,
    RecordingError,
    SessionRow,
    open_read_only,
    present_columns,
)

# What classifying a session needs; the big columns stay unread.
SUMMARY_SKIPS = frozenset({"query", "request_headers", "response_headers", "handshake_body"})


@dataclass(frozen=True, slots=True)
class Message:
    """A whole message: one frame, or a data message's fragments joined in wire order."""

    session_id: int
    direction: str
    source: str | None
    opcode: str
    ts: float
    last_ts: float
    frames: tuple[FrameRow, ...]
    payload: str | bytes
    size: int
    truncated: bool

    @property
    def id(self) -> int | None:
        return self.frames[0].id

    @property
    def close_code(self) -> int | None:
        return self.frames[0].close_code

    @property
    def close_reason(self) -> str | None:
        return self.frames[0].close_reason

    @property
    def compressed(self) -> bool:
        return any(f.compressed for f in self.frames)

    @property
    def forwarded(self) -> bool:
        return all(f.forwarded is None or f.forwarded for f in self.frames)

    @property
    def violation(self) -> str | None:
        found = [f.violation for f in self.frames if f.violation]
        return "; ".join(found) if found else None

    @property
    def fault(self) -> tuple[int, str] | None:
        touched = next((f for f in self.frames if f.fault_action), None)
        if touched is None:
            return None
        return (touched.fault_id, effect_name(touched.fault_action))  # type: ignore[return-value]

    @property
    def payload_bytes(self) -> bytes:
        return payload_bytes(self.payload)


def _key(f: FrameRow) -> tuple[int, str, int]:
    """Which message a frame belongs to (a version 1 row is a message of its own)."""
    number = f.message if f.message is not None else -(f.id or 0)
    return (f.session_id or 0, f.direction or "", number)


def join_messages(frames: Sequence[FrameRow]) -> list[Message]:
    """Group a session's wire frames into messages, in the order each message began."""
    groups: dict[tuple[int, str, int], list[FrameRow]] = {}
    for f in frames:
        groups.setdefault(_key(f), []).append(f)
    return [_message(group) for group in groups.values()]


class MessageJoiner:
    """Whole messages from a stream of wire frames (any sessions, in wire order), each as
    its last fragment arrives: the one place fragments are joined, for readers that
    cannot hold a session (search's index, streaming export)."""

    def __init__(self) -> None:
        self.waiting: dict[tuple[int, str, int], list[FrameRow]] = {}

    def feed(self, f: FrameRow) -> Message | None:
        key = _key(f)
        group = self.waiting.get(key)
        if group is None:
            if f.fin in (1, None):
                return _message([f])
            self.waiting[key] = [f]
            return None
        group.append(f)
        if f.fin in (1, None):
            del self.waiting[key]
            return _message(group)
        return None

    def first_waiting(self) -> int | None:
        """The id of the oldest frame whose message has not ended yet."""
        return min((g[0].id or 0 for g in self.waiting.values()), default=None)


def _message(group: list[FrameRow]) -> Message:
    first = group[0]
    opcode = next((f.opcode for f in group if f.opcode != "continuation"), first.opcode)
    if len(group) == 1:
        payload = first.payload if first.payload is not None else b""
    else:
        joined = b"".join(payload_bytes(f.payload) for f in group)
        payload = joined
        if opcode == "text":
            try:
                payload = joined.decode("utf-8")
            except UnicodeDecodeError:
                pass
    return Message(
        session_id=first.session_id or 0,
        direction=first.direction or "",
        source=first.source,
        opcode=opcode or "",
        ts=first.ts or 0.0,
        last_ts=group[-1].ts or 0.0,
        frames=tuple(group),
        payload=payload,
        size=sum(f.size or 0 for f in group),
        truncated=any(f.truncated for f in group),
    )


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# What a column reads as when a row holds something it should not (hand-edited files):
# the essentials get a value the analysis can work with.
FALLBACK = {
    ("sessions", "started_at"): "ended_at, 0.0",
    ("sessions", "handshake_status"): "0",
    ("sessions", "path"): "''",
    ("sessions", "client_addr"): "''",
    ("frames", "ts"): "0.0",
    ("frames", "direction"): "''",
    ("frames", "opcode"): "''",
}


def clean_expression(table: str, column: Column) -> str:
    """SQL that reads a column as its declared type, whatever the row holds."""
    name = column.name
    if column.kind is int:
        expr = f"CASE WHEN typeof({name}) IN ('integer', 'real') THEN CAST({name} AS INTEGER) END"
    elif column.kind is float:
        expr = f"CASE WHEN typeof({name}) IN ('integer', 'real') THEN CAST({name} AS REAL) END"
    elif column.kind is str:
        expr = f"CASE WHEN typeof({name}) = 'text' THEN {name} ELSE CAST({name} AS TEXT) END"
    else:
        return name  # payloads and bodies: text or bytes, both fine
    fallback = FALLBACK.get((table, name))
    if fallback:
        expr = f"coalesce({expr}, {fallback})"
    return f"{expr} AS {name}"


class Recording(RecordingQueries):
    """A read-only view of one recording file; the questions it answers are in queries.py."""

    def __init__(self, path: Path):
        self.path = path
        self.db = open_read_only(path)
        self.conn: sqlite3.Connection = self.db.conn
        # Text that is not UTF-8 (a hand-edited or damaged file) reads with replacements.
        self.conn.text_factory = _text
        self._present = {table: present_columns(self.db, table) for table in TABLES}
        # Runs whose proxy died without ending them: their open sessions read as ended
        # (the next proxy on the file writes the same; a reader changes nothing).
        self.crashed: set[int] = set(crashed_runs(self.db)) if self.has_table("runs") else set()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def columns(self, table: str, skip: Iterable[str] = (), *, exact: bool = False) -> str:
        """The declared columns in order; one the file lacks (or skipped) reads as NULL.

        For reading a value is made what its column says (a hand-edited 'yesterday'
        in a time column reads as NULL); ``exact`` keeps every value as stored (export).
        """
        present, skipped = self._present[table], set(skip)
        return ", ".join(
            (c.name if exact else clean_expression(table, c))
            if c.name in present and c.name not in skipped
            else f"NULL AS {c.name}"
            for c in TABLES[table]
        )

    def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        """Every row of a query; text decoded at C speed, with replacements only when a
        value is not UTF-8 (a hand-edited or damaged file)."""
        self.conn.text_factory = str
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "decode" not in str(exc):
                raise
            self.conn.text_factory = _text
            return self.conn.execute(sql, params).fetchall()
        finally:
            self.conn.text_factory = _text

    def has_table(self, table: str) -> bool:
        return bool(self._present.get(table))

    def summaries(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        run_id: int | None = None,
    ) -> list[SessionRow]:
        """Every session in time order, without its headers and body."""
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
        sql = f"SELECT {self.columns('sessions', SUMMARY_SKIPS)} FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at, id"
        return self._ended([SessionRow(*row) for row in self.fetch(sql, params)])

    def _ended(self, rows: list[SessionRow]) -> list[SessionRow]:
        """Open sessions of a crashed run, as the next proxy will close them."""
        if not self.crashed:
            return rows
        stuck = [r.id for r in rows if r.ended_at is None and r.run_id in self.crashed]
        if not stuck:
            return rows
        last: dict[int, float] = {}
        for start in range(0, len(stuck), 500):
            chunk = stuck[start : start + 500]
            last.update(
                self.fetch(
                    f"SELECT session_id, max(ts) FROM frames WHERE session_id IN"
                    f" ({','.join('?' * len(chunk))}) GROUP BY session_id",
                    chunk,
                )
            )
        return [
            replace(
                r,
                ended_at=max(r.started_at or 0.0, last.get(r.id) or r.started_at or 0.0),
                closed_by="proxy",
                clean=0,
                error=r.error or CRASHED,
            )
            if r.ended_at is None and r.run_id in self.crashed
            else r
            for r in rows
        ]

    def session_rows(self, ids: Iterable[int]) -> dict[int, SessionRow]:
        """Whole `sessions` rows by id, fetched in chunks."""
        ids = list(ids)
        found: dict[int, SessionRow] = {}
        select = self.columns("sessions")
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            cursor = self.fetch(
                f"SELECT {select} FROM sessions WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            for row in self._ended([SessionRow(*r) for r in cursor]):
                found[row.id] = row  # type: ignore[index]
        return found

    def with_live_counts(self, rows: dict[int, SessionRow]) -> dict[int, SessionRow]:
        """Open sessions with the frames and bytes recorded so far (the row's own counts
        are written when a session closes)."""
        open_ids = [i for i, r in rows.items() if r.ended_at is None]
        counted = dict(rows)
        for start in range(0, len(open_ids), 500):
            chunk = open_ids[start : start + 500]
            found: dict[int, dict[str, tuple[int, int]]] = {}
            for sid, direction, frames, size in self.fetch(
                "SELECT session_id, direction, count(*), coalesce(sum(size), 0) FROM frames"
                f" WHERE session_id IN ({','.join('?' * len(chunk))})"
                " GROUP BY session_id, direction",
                chunk,
            ):
                found.setdefault(sid, {})[direction] = (frames, size)
            for sid in chunk:
                c2s, s2c = (found.get(sid, {}).get(d, (0, 0)) for d in ("c2s", "s2c"))
                counted[sid] = replace(
                    rows[sid], frames_c2s=c2s[0], frames_s2c=s2c[0],
                    bytes_c2s=c2s[1], bytes_s2c=s2c[1],
                )  # fmt: skip
        return counted

    def session_row(self, session_id: int) -> SessionRow:
        row = self.session_rows([session_id]).get(session_id)
        if row is None:
            raise RecordingError(f"no session {session_id} in {self.path}")
        return row

    def frame_rows(self, session_id: int) -> list[FrameRow]:
        rows = self.fetch(
            f"SELECT {self.columns('frames')} FROM frames WHERE session_id = ? ORDER BY id",
            [session_id],
        )
        return [FrameRow(*row) for row in rows]

    def frames_after(self, frame_id: int, limit: int) -> list[FrameRow]:
        """The next `limit` wire frames of the whole recording after `frame_id`, in id order."""
        rows = self.fetch(
            f"SELECT {self.columns('frames')} FROM frames WHERE id > ? ORDER BY id LIMIT ?",
            [frame_id, limit],
        )
        return [FrameRow(*row) for row in rows]

    def meta(self, key: str) -> str | None:
        if not self.has_table("meta"):
            return None
        found = self.conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if found is None else str(found[0])

    def messages(self, session_id: int) -> list[Message]:
        return join_messages(self.frame_rows(session_id))

    def rows(self, table: str) -> list[tuple]:
        """Every row of a table, declared columns in order (for export)."""
        if not self.has_table(table):
            return []
        order = "key" if table == "meta" else "id"
        return self.conn.execute(
            f"SELECT {self.columns(table, exact=True)} FROM {table} ORDER BY {order}"
        ).fetchall()
