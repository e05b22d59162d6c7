"""Full-text search over a recording's messages and close reasons.

The index is a side file next to the recording (``rec.db`` -> ``rec.db.search``;
in the user's cache folder when the recording's folder is not writable): the
recording itself stays read-only. It is built on first use and brought up to
date incrementally, from the last frame it saw; a recording replaced by
another (the demo rewrites its file) is noticed and indexed anew.

Queries: words are matched as written, anywhere in a message, without regard
to case (SQLite FTS5 with the trigram tokenizer); ``AND``, ``OR``, ``NOT``,
``"phrases"`` and ``prefix*`` work as in FTS5. ``key:value`` matches JSON
messages (Socket.IO packets too) holding that key with that value at any
depth; ``data.mission_id:7`` names the path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel_ws_proxy.decoders import decode, for_session
from sentinel_ws_proxy.errors import UserError
from sentinel_ws_proxy.present import pick
from sentinel_ws_proxy.protocol import payload_bytes
from sentinel_ws_proxy.recording.reader import Message, MessageJoiner, Recording, join_messages
from sentinel_ws_proxy.recording.schema import FrameRow

BATCH = 50_000  # frames read per step while indexing
FORMAT = "3"  # of the index file: another one is built anew (3: decoded binary messages)
SNIPPET = 48  # characters either side of a match in a snippet
TRIGRAM = 3  # shorter words cannot use the trigram index
FIELD = re.compile(r'(?<![\w"])([A-Za-z_$][\w.$-]*):("(?:[^"\\]|\\.)*"|[^\s"()]+)')
OPERATORS = re.compile(r'\b(AND|OR|NOT|NEAR)\b|["()*^]')
TOKEN = re.compile(r'"(?:[^"]|"")*"|[()]|[^\s()"]+')
BARE = re.compile(r"^[\w\u0080-\U0010ffff]+$")
KEYWORDS = ("AND", "OR", "NOT")
# Engine.IO/Socket.IO framing before the JSON: packet types, namespace, ack id.
SOCKETIO_PREFIX = re.compile(r"^[0-6]{1,2}(?:\d+-)?(?:/[^,\[{]*,)?\d*(?=[\[{])")


class SearchError(UserError, ValueError):
    """A query SQLite cannot read: the message says why, in one line."""


@dataclass(frozen=True)
class Hit:
    id: int  # the message's first frame
    session_id: int
    direction: str
    ts: float
    kind: str  # "message" or "close"
    text: str
    snippet: tuple[tuple[str, bool], ...]  # (text, matched) pieces

    def as_json(self) -> dict[str, Any]:
        found = pick(self, "id", "session_id", "direction", "ts", "kind")
        return {**found, "snippet": [[piece, matched] for piece, matched in self.snippet]}


def index_path(db: Path) -> Path:
    """Where the index of a recording lives."""
    db = db.resolve()
    if os.access(db.parent, os.W_OK):
        return db.with_name(db.name + ".search")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sentinel-ws"
    digest = hashlib.sha1(str(db).encode()).hexdigest()[:16]
    return cache / f"{db.stem}-{digest}.search"


def json_part(text: str) -> str | None:
    """The JSON in a message: the whole text, or what follows a Socket.IO prefix."""
    stripped = text.lstrip()
    if not stripped:
        return None
    if stripped[0] not in "[{":
        prefix = SOCKETIO_PREFIX.match(stripped)
        if prefix is None:
            return None
        stripped = stripped[prefix.end() :]
    try:
        json.loads(stripped)
    except ValueError:
        return None
    return stripped


@dataclass(frozen=True)
class Query:
    words: tuple[str, ...]  # plain words, matched as substrings
    fts: str | None  # an FTS5 expression as the user wrote it (operators used)
    fields: tuple[tuple[str, str], ...]  # key:value filters

    @classmethod
    def parse(cls, text: str) -> Query:
        fields = tuple((key, _unquote(value)) for key, value in FIELD.findall(text))
        rest = FIELD.sub(" ", text).strip()
        if rest.count('"') % 2:
            raise SearchError(f"cannot read the query {text!r}: a quote is not closed")
        if OPERATORS.search(rest):
            return cls((), _barewords_quoted(rest), fields)
        return cls(tuple(rest.split()), None, fields)

    @property
    def empty(self) -> bool:
        return not (self.words or self.fts or self.fields)

    def match(self) -> str | None:
        """The FTS5 MATCH expression, when the index can narrow the search."""
        terms = [_phrase(w) for w in self.words if len(w) >= TRIGRAM]
        for key, value in self.fields:
            terms += [_phrase(p) for p in (key.rsplit(".", 1)[-1], value) if len(p) >= TRIGRAM]
        if self.fts:
            terms.append(f"({self.fts})")
        return " AND ".join(terms) or None

    def marks(self) -> list[str]:
        """What to highlight in a snippet."""
        found = [*self.words, *(value for _, value in self.fields)]
        if self.fts:
            for quoted, bare in re.findall(r'"([^"]+)"|([^\s"()*^]+)', self.fts):
                found.append(quoted or bare)
        return [m for m in found if m and m.upper() not in ("AND", "OR", "NOT", "NEAR")]


def _unquote(value: str) -> str:
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        return value[1:-1].replace('\\"', '"')
    return value


def _barewords_quoted(expression: str) -> str:
    """An FTS5 expression whose words FTS5 would misread (conn-12, a.b) are phrases."""
    out = []
    for token in TOKEN.findall(expression):
        core = token.rstrip("*").lstrip("^")
        if token in ("(", ")") or token.startswith('"') or token in KEYWORDS or BARE.match(core):
            out.append(token)
        else:
            out.append(token[: len(token) - len(token.lstrip("^"))] + _phrase(core)
                       + token[len(token.rstrip("*")) :])  # fmt: skip
    return " ".join(out)


def _phrase(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


class SearchIndex:
    """The search index of one recording."""

    def __init__(self, recording: Path, path: Path | None = None):
        self.recording = recording
        self.path = path or index_path(recording)
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.create_function("json_part", 1, json_part, deterministic=True)
        return conn

    def update(self, recording: Recording) -> int:
        """Index what the recording gained since the last update; how many texts were added."""
        with self._lock:
            conn = self._connect()
            try:
                return self._update(conn, recording)
            finally:
                conn.close()

    def _update(self, conn: sqlite3.Connection, recording: Recording) -> int:
        identity = recording.meta("hash_salt") or str(recording.path.stat().st_ino)
        meta = _meta(conn)
        if meta.get("recording") != identity or meta.get("format") != FORMAT:
            _create(conn)
            meta = {}
        last = int(meta.get("last_frame", "0"))
        # Texts past the resume point (a message whose last fragment had not come)
        # are indexed anew: take them out of the index first.
        with conn:
            conn.execute(
                "INSERT INTO texts_fts(texts_fts, rowid, text)"
                " SELECT 'delete', id, text FROM texts WHERE id > ?",
                [last],
            )
            conn.execute("DELETE FROM texts WHERE id > ?", [last])
        added = 0
        joiner = MessageJoiner()
        decoders = SessionDecoders(recording)
        while True:
            frames = recording.frames_to_index(last, BATCH)
            if not frames:
                break
            decoders.learn({f[1] for f in frames if f[4] == "binary"})
            rows = list(_texts(frames, joiner, decoders))
            with conn:
                conn.executemany("INSERT OR IGNORE INTO texts VALUES (?,?,?,?,?,?)", rows)
            added += len(rows)
            last = frames[-1][0] or last
        waiting = joiner.first_waiting()
        resume = last if waiting is None else waiting - 1
        with conn:
            conn.execute(
                "INSERT INTO texts_fts(rowid, text) SELECT id, text FROM texts WHERE id > ?",
                [int(meta.get("last_frame", "0"))],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("recording", identity), ("format", FORMAT), ("last_frame", str(resume))],
            )
        return added

    def search(
        self,
        recording: Recording,
        query: str,
        *,
        session_id: int | None = None,
        limit: int = 50,
    ) -> tuple[list[Hit], bool]:
        """The newest matching texts first, and whether there were more than `limit`."""
        parsed = Query.parse(query)
        if parsed.empty:
            raise SearchError("an empty query: give words to find, or key:value")
        self.update(recording)
        conn = self._connect()
        try:
            rows = _select(conn, parsed, session_id, limit + 1)
        except sqlite3.OperationalError as exc:
            raise SearchError(f"cannot read the query {query!r}: {exc}") from None
        finally:
            conn.close()
        marks = parsed.marks()
        hits = [
            Hit(r[0], r[1], r[2], r[3], r[4], r[5], tuple(snippet(r[5], marks)))
            for r in rows[:limit]
        ]
        return hits, len(rows) > limit


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    try:
        return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    except sqlite3.OperationalError:
        return {}


def _create(conn: sqlite3.Connection) -> None:
    """An empty index. The FTS table reads its text from `texts` (external content) and is
    kept in step by hand: triggers would cost a third of the build."""
    with conn:
        for table in ("texts_fts", "texts", "meta"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute(
            "CREATE TABLE texts (id INTEGER PRIMARY KEY, session_id INTEGER, direction TEXT,"
            " ts REAL, kind TEXT, text TEXT)"
        )
        conn.execute("CREATE INDEX texts_session ON texts (session_id)")
        conn.execute(
            "CREATE VIRTUAL TABLE texts_fts USING fts5(text, content=texts, content_rowid=id,"
            f" tokenize='{_tokenizer(conn)}')"
        )


def _tokenizer(conn: sqlite3.Connection) -> str:
    """Trigram (substrings, SQLite 3.34+), else unicode61 (whole words)."""
    try:
        conn.execute("CREATE VIRTUAL TABLE temp.probe USING fts5(x, tokenize='trigram')")
    except sqlite3.OperationalError:
        return "unicode61"
    conn.execute("DROP TABLE temp.probe")
    return "trigram"


class SessionDecoders:
    """Each session's protocol decoder, learnt from its handshake and first messages, for
    the sessions that send binary messages (binary JSON, msgpack, kernel messages)."""

    def __init__(self, recording: Recording):
        self.recording = recording
        self.known: dict[int | None, Any] = {}

    def learn(self, session_ids: set[int | None]) -> None:
        new = [sid for sid in session_ids if sid is not None and sid not in self.known]
        if not new:
            return
        rows = self.recording.session_rows(new)
        firsts: dict[int, list[FrameRow]] = {}
        for f in self.recording.edge_frames(new, 6, 0):
            firsts.setdefault(f.session_id or 0, []).append(f)
        for sid in new:
            row = rows.get(sid)
            messages = join_messages(firsts.get(sid, []))
            self.known[sid] = (
                None if row is None
                else for_session(row.subprotocol, row.path, row.query, messages)
            )  # fmt: skip

    def text(self, message: Message) -> str | None:
        """What a binary message says, as text a person searches, if its protocol says."""
        decoded = decode(self.known.get(message.session_id), message.payload, message.direction)
        return None if decoded is None else decoded.text


def _texts(
    frames: list[tuple], joiner: MessageJoiner, decoders: SessionDecoders
) -> Iterator[tuple]:
    """Rows for the index: whole text messages (fragments joined), binary messages whose
    protocol reads as text, and close reasons. A one-frame text message, nearly all of
    them, is indexed straight from its tuple; the rest go through the message joiner."""
    for frame in frames:
        fid, session_id, ts, direction, opcode, message, fin, payload, reason = frame
        if opcode == "close":
            if reason:
                yield (fid, session_id, direction, ts, "close", _decoded(reason))
            continue
        whole = fin in (1, None) and (message is None or not joiner.waiting)
        if whole and opcode == "text":
            yield (fid, session_id, direction, ts, "message", _decoded(payload))
            continue
        if whole and opcode != "binary":
            continue
        joined = joiner.feed(
            FrameRow(
                id=fid,
                session_id=session_id,
                ts=ts,
                direction=direction,
                opcode=opcode,
                message=message,
                fin=fin,
                payload=payload,
            )
        )
        if joined is None:
            continue
        text = _decoded(joined.payload) if joined.opcode == "text" else None
        if joined.opcode == "binary":
            text = decoders.text(joined)
        if text is not None:
            yield (joined.id, joined.session_id, joined.direction, joined.ts, "message", text)


def _decoded(payload: str | bytes | None) -> str:
    if isinstance(payload, str):
        return payload
    return payload_bytes(payload).decode("utf-8", "replace")


def _select(conn: sqlite3.Connection, query: Query, session_id: int | None, limit: int) -> list:
    where, params = [], []
    match = query.match()
    if match is not None:
        # Read from the FTS table in rowid order: the newest matches come first and the
        # scan stops at the limit (2 ms for a word in every one of 900,000 messages).
        source, order = "texts_fts f JOIN texts t ON t.id = f.rowid", "f.rowid DESC"
        where.append("texts_fts MATCH ?")
        params.append(match)
    else:
        source, order = "texts t", "t.id DESC"
    for word in query.words:
        if len(word) < TRIGRAM:  # the index cannot narrow these: look inside
            where.append("instr(lower(t.text), lower(?)) > 0")
            params.append(word)
    for key, value in query.fields:
        name = "fullkey" if "." in key else "key"
        wanted = "$." + key if "." in key else key
        # json_part() is NULL for a message that holds no JSON: json_tree then has nothing.
        where.append(
            "t.kind = 'message' AND EXISTS (SELECT 1 FROM json_tree(json_part(t.text)) j"
            f" WHERE j.{name} = ? AND j.type NOT IN ('object', 'array')"
            " AND (j.atom = ? OR CAST(j.atom AS TEXT) = ?"
            " OR (j.type = 'true' AND ? = 'true') OR (j.type = 'false' AND ? = 'false')"
            " OR (j.type = 'null' AND ? = 'null')))"
        )
        params += [wanted, value, value, value, value, value]
    if session_id is not None:
        low, high = conn.execute(
            "SELECT min(id), max(id) FROM texts WHERE session_id = ?", [session_id]
        ).fetchone()
        where.append("t.session_id = ?")
        params.append(session_id)
        if match is not None and low is not None:
            where.append("f.rowid BETWEEN ? AND ?")  # FTS5 narrows by rowid itself
            params += [low, high]
    sql = f"SELECT t.id, t.session_id, t.direction, t.ts, t.kind, t.text FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {order} LIMIT ?"
    return conn.execute(sql, [*params, limit]).fetchall()


def snippet(text: str, marks: list[str]) -> Iterator[tuple[str, bool]]:
    """The text around the first match, the matches marked."""
    lowered = text.lower()
    spots = sorted((i, i + len(m)) for m in marks if m for i in _find_all(lowered, m.lower()))
    if not spots:
        yield (_clip(text, 0, 2 * SNIPPET), False)
        return
    start = max(0, spots[0][0] - SNIPPET)
    end = min(len(text), spots[0][1] + SNIPPET)
    if start > 0:
        yield ("…", False)
    at = start
    for a, b in spots:
        if a < at or b > end:
            continue
        if a > at:
            yield (text[at:a], False)
        yield (text[a:b], True)
        at = b
    if at < end:
        yield (text[at:end], False)
    if end < len(text):
        yield ("…", False)


def _find_all(text: str, part: str) -> Iterator[int]:
    at = text.find(part)
    while at != -1:
        yield at
        at = text.find(part, at + len(part))


def _clip(text: str, start: int, end: int) -> str:
    return text[start:end] + ("…" if len(text) > end else "")
