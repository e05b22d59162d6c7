"""What the web app shows: a recording's sessions with their verdicts, kept fresh.

Classifying a recording reads every session (2 s for 100,000), so it is done
once and kept: a snapshot. While a proxy writes the file, SQLite's
``data_version`` says when something changed; the snapshot is rebuilt then,
but never more often than twice its own cost, so a big recording being
written does not keep a core busy. Sessions newer than the snapshot are shown
as they are, their verdict "pending" until the next one; and before the first
snapshot, the list's first page comes at once from SQL, verdicts pending, while
the classification runs in a thread of its own.

Every method here runs in a worker thread (SQLite blocks); each thread has its
own read-only connection.
"""

from __future__ import annotations

import fnmatch
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentinel_ws_proxy import present
from sentinel_ws_proxy.analysis.classify import CATEGORIES, EXPECTED, FAILURES, Verdict
from sentinel_ws_proxy.analysis.recovery import Disruption
from sentinel_ws_proxy.analysis.report import (
    Window,
    classify_recording,
    collector_paused,
    http_failures,
    recorded_thresholds,
)
from sentinel_ws_proxy.decoders import decode, for_session
from sentinel_ws_proxy.recording.queries import DataVersion
from sentinel_ws_proxy.recording.reader import Recording
from sentinel_ws_proxy.recording.schema import SessionRow
from sentinel_ws_proxy.recording.search import SearchIndex

PAGE = 50
CLIENTS_PAGE = 20
PENDING = "pending"
TEXT_LIMIT = 256 * 1024  # characters of one payload sent to the page


@dataclass
class Entry:
    row: SessionRow
    verdict: Verdict | None  # None: newer than the snapshot
    disruption: Disruption | None = None

    @property
    def category(self) -> str:
        return PENDING if self.verdict is None else self.verdict.category

    @property
    def failure(self) -> bool:
        return self.verdict is not None and self.verdict.failure


@dataclass
class Snapshot:
    entries: list[Entry]  # in time order
    by_id: dict[int, Entry]
    http: list[dict[str, Any]]  # failed HTTP requests around the sockets
    generation: int
    built_at: float
    took: float
    last_id: int
    clients: dict[tuple[str, str, str], list[Entry]] = field(default_factory=dict)
    # The list's rows, newest first, made once: (the session's Entry or the HTTP
    # request's dict, the row as the page gets it).
    listed: list[tuple[Entry | dict[str, Any], dict[str, Any]]] = field(default_factory=list)


class RecordingView:
    """A recording for the web app: read-only, classified once, refreshed when it grows."""

    def __init__(self, path: Path, window: Window | None = None):
        self.path = path
        self._given = window
        self.window = window or Window()  # until the recording says its own thresholds
        self.index = SearchIndex(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._watch_lock = threading.Lock()
        self._watch = DataVersion(path)
        self._snapshot: Snapshot | None = None
        self._builds = 0
        self._building: threading.Thread | None = None

    # -- the file ---------------------------------------------------------------

    def recording(self) -> Recording:
        """This thread's read-only connection (opened anew when the file was replaced)."""
        inode = self.path.stat().st_ino if self.path.exists() else None
        held = getattr(self._local, "held", None)
        if held is None or held[0] != inode:
            if held is not None:
                held[1].close()
            self._local.held = (inode, Recording(self.path))
        return self._local.held[1]

    def generation(self) -> int:
        """A number that grows whenever the recording changed (written, or replaced)."""
        with self._watch_lock:
            return self._watch.poll()

    def version(self) -> tuple[int, int]:
        """What the page refetches on: the recording changed, or a new classification."""
        return self.generation(), self._builds

    def snapshot(self, *, wait: bool = True) -> Snapshot | None:
        """The classified sessions; without `wait`, what there is now (perhaps nothing)
        while a fresh classification runs in the background."""
        generation = self.generation()
        found = self._snapshot
        if found is not None and (found.generation == generation or not self._due(found)):
            return found
        if not wait:
            self._build_in_background()
            return found
        with self._lock:
            found = self._snapshot
            if found is None or (found.generation != generation and self._due(found)):
                found = self._rebuild(generation)
            return found

    def classified(self) -> Snapshot:
        found = self.snapshot(wait=True)
        assert found is not None  # waited for
        return found

    def _due(self, snapshot: Snapshot) -> bool:
        # Never more often than twice its own cost: a big recording being written
        # must not keep a core busy classifying.
        return time.monotonic() - snapshot.built_at >= max(0.5, 2 * snapshot.took)

    def _rebuild(self, generation: int) -> Snapshot:
        with collector_paused():
            found = self._snapshot = self._build(generation)
        self._builds += 1
        return found

    def _build_in_background(self) -> None:
        def build() -> None:
            with self._lock:
                generation = self.generation()
                found = self._snapshot
                if found is None or (found.generation != generation and self._due(found)):
                    self._rebuild(generation)

        if self._building is None or not self._building.is_alive():
            self._building = threading.Thread(target=build, name="classify", daemon=True)
            self._building.start()

    def _build(self, generation: int) -> Snapshot:
        started = time.monotonic()
        recording = self.recording()
        self.window = self._given or Window(**recorded_thresholds(recording))
        classified = classify_recording(recording, self.window)
        began = {d.session_id: d for d in classified.disruptions}
        entries = [Entry(s, v, began.get(s.id or 0)) for s, v in classified.pairs()]
        clients: dict[tuple[str, str, str], list[Entry]] = {}
        for entry in entries:
            clients.setdefault(entry.row.client_key, []).append(entry)
        http = http_failures(recording, classified.summaries, self.window)
        listed: list[tuple[Entry | dict[str, Any], dict[str, Any]]] = [
            (e, _session_item(e)) for e in entries
        ]
        listed += [(h, _http_item(h)) for h in http]
        listed.sort(key=lambda pair: (pair[1]["started_at"] or 0.0, pair[1]["key"]), reverse=True)
        return Snapshot(
            entries=entries,
            by_id={e.row.id or 0: e for e in entries},
            http=http,
            generation=generation,
            built_at=time.monotonic(),
            took=time.monotonic() - started,
            last_id=max((e.row.id or 0 for e in entries), default=0),
            clients=clients,
            listed=listed,
        )

    def _newer(self, snapshot: Snapshot) -> list[Entry]:
        """Sessions the snapshot does not have yet."""
        recording = self.recording()
        ids = recording.session_ids_after(snapshot.last_id)
        rows = recording.session_rows(ids)
        return [Entry(rows[i], None) for i in ids if i in rows]

    # -- what the pages ask ---------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        snapshot = self.snapshot(wait=False)
        if snapshot is None:
            return self._unclassified_summary()
        counts = Counter(e.category for e in snapshot.entries)
        times = [e.row.started_at for e in snapshot.entries if e.row.started_at]
        return {
            "recording": str(self.path),
            "sessions": len(snapshot.entries),
            "failures": sum(n for c, n in counts.items() if c in FAILURES),
            "categories": {c: counts[c] for c in CATEGORIES if counts[c]},
            "kinds": {c: ("expected" if c in EXPECTED else "failure") for c in CATEGORIES},
            "http_failures": len(snapshot.http),
            "first": min(times, default=None),
            "last": max(times, default=None),
            "window": {
                "reconnect_window": self.window.reconnect_window,
                "idle_timeout": self.window.idle_timeout,
            },
            "classified_in": round(snapshot.took, 3),
            "classifying": False,
        }

    def _unclassified_summary(self) -> dict[str, Any]:
        recording = self.recording()
        count, first, last = recording.session_span()
        return {
            "recording": str(self.path),
            "sessions": count,
            "failures": 0,
            "categories": {},
            "kinds": {c: ("expected" if c in EXPECTED else "failure") for c in CATEGORIES},
            "http_failures": 0,
            "first": first,
            "last": last,
            "window": {
                "reconnect_window": self.window.reconnect_window,
                "idle_timeout": self.window.idle_timeout,
            },
            "classified_in": None,
            "classifying": True,
        }

    def sessions(self, query: dict[str, str]) -> dict[str, Any]:
        """One page of sessions (and failed HTTP requests), newest first, filtered.

        Unfiltered, the first page of a recording not classified yet comes at once,
        verdicts "pending" (the live stream says when they are there)."""
        filters = Filters.of(query)
        page = max(1, _int(query.get("page"), 1))
        per_page = min(500, max(1, _int(query.get("per_page"), PAGE)))
        snapshot = self.snapshot(wait=filters.active)
        if snapshot is None:
            return self._unclassified_page(page, per_page)
        newer = [(e, _session_item(e)) for e in reversed(self._newer(snapshot))]
        listed = newer + snapshot.listed
        if filters.active:
            listed = [pair for pair in listed if filters.keep(pair[0])]
        return {
            "total": len(listed),
            "page": page,
            "pages": max(1, math.ceil(len(listed) / per_page)),
            "per_page": per_page,
            "rows": [item for _, item in listed[(page - 1) * per_page : page * per_page]],
            "classifying": False,
        }

    def _unclassified_page(self, page: int, per_page: int) -> dict[str, Any]:
        recording = self.recording()
        total = recording.session_span()[0]
        ids = recording.newest_session_ids(per_page, (page - 1) * per_page)
        rows = recording.session_rows(ids)
        return {
            "total": total,
            "page": page,
            "pages": max(1, math.ceil(total / per_page)),
            "per_page": per_page,
            "rows": [_session_item(Entry(rows[i], None)) for i in ids if i in rows],
            "classifying": True,
        }

    def session(self, session_id: int) -> dict[str, Any]:
        """A session with its verdict (pending while the recording is being classified)."""
        snapshot = self.snapshot(wait=False)
        recording = self.recording()
        row = recording.session_row(session_id)
        entry = snapshot.by_id.get(session_id) if snapshot is not None else None
        verdict = entry.verdict if entry is not None else None
        family = snapshot.clients.get(row.client_key, []) if snapshot is not None else []
        ids = [e.row.id for e in family]
        at = ids.index(session_id) if session_id in ids else None
        return {
            "session": present.session(row, verdict),
            "verdict": present.verdict(verdict),
            "advice": present.advice(verdict.category if verdict is not None else None),
            "disruption": None
            if entry is None or entry.disruption is None
            else entry.disruption.as_json(),
            "previous": ids[at - 1] if at else None,
            "next": ids[at + 1] if at is not None and at + 1 < len(ids) else None,
            "faults": [
                {k: v for k, v in e.items() if k != "session_id"}
                for e in recording.fault_events(session_id)
            ],
            "idle_timeout": self.window.idle_timeout,
        }

    def messages(self, session_id: int, after: int = 0) -> dict[str, Any]:
        """A session's messages (after a message id, for a live session)."""
        recording = self.recording()
        row = recording.session_row(session_id)
        messages = recording.messages(session_id)
        decoder = for_session(row.subprotocol, row.path, row.query, messages)
        shown = [m for m in messages if (m.id or 0) > after]
        return {
            "session_id": session_id,
            "open": row.ended_at is None,
            "decoder": None if decoder is None else decoder.NAME,
            "messages": [_message_item(m, decode(decoder, m.payload, m.direction)) for m in shown],
        }

    def chains(self, query: dict[str, str]) -> dict[str, Any]:
        """Per client, its sessions in time order with the gaps between them."""
        snapshot = self.classified()
        wanted = (query.get("client") or "").lower()
        clients = [
            (key, entries)
            for key, entries in snapshot.clients.items()
            if not wanted or wanted in " ".join(key[:2]).lower()
        ]
        clients.sort(key=lambda kv: -max((e.row.started_at or 0.0) for e in kv[1]))
        page = max(1, _int(query.get("page"), 1))
        shown = clients[(page - 1) * CLIENTS_PAGE : page * CLIENTS_PAGE]
        return {
            "total": len(clients),
            "page": page,
            "pages": max(1, math.ceil(len(clients) / CLIENTS_PAGE)),
            "clients": [_chain(key, entries) for key, entries in shown],
        }

    def search(self, text: str, session_id: int | None, limit: int = 100) -> dict[str, Any]:
        recording = self.recording()
        hits, more = self.index.search(recording, text, session_id=session_id, limit=limit)
        paths = {i: r.path for i, r in recording.session_rows({h.session_id for h in hits}).items()}
        return {
            "query": text,
            "more": more,
            "hits": [{**h.as_json(), "path": paths.get(h.session_id)} for h in hits],
        }

    def close(self) -> None:
        self._watch.close()


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Filters:
    """The list's filters, from the page's query string."""

    category: str = ""
    failed: bool = False
    path: str = ""
    client: str = ""
    text: str = ""
    since: float | None = None
    until: float | None = None

    @classmethod
    def of(cls, query: dict[str, str]) -> Filters:
        category = query.get("category") or ""
        return cls(
            category=category,
            failed=query.get("failed") in ("1", "true", "on") or category == "failures",
            path=query.get("path") or "",
            client=(query.get("client") or "").lower(),
            text=(query.get("text") or "").lower(),
            since=_float(query.get("since")),
            until=_float(query.get("until")),
        )

    @property
    def active(self) -> bool:
        return bool(self.category or self.failed or self.path or self.client or self.text) or (
            self.since,
            self.until,
        ) != (None, None)

    def keep(self, found: Entry | dict[str, Any]) -> bool:
        if isinstance(found, Entry):
            return self.keep_session(found)
        return self.category in ("", "failures", "http") and self.keep_http(found)

    def matches(self, path: str, client: str, ts: float, words: str) -> bool:
        if self.path and not (fnmatch.fnmatchcase(path, self.path) or self.path in path):
            return False
        if self.client and self.client not in client.lower():
            return False
        if self.since is not None and ts < self.since:
            return False
        if self.until is not None and ts >= self.until:
            return False
        return not self.text or self.text in words.lower()

    def keep_session(self, e: Entry) -> bool:
        if self.category == "http" or (self.failed and not e.failure):
            return False
        if self.category not in ("", "failures") and e.category != self.category:
            return False
        s = e.row
        said = e.verdict.explanation if e.verdict else ""
        words = f"{s.path} {s.client_addr} {s.close_reason or ''} {s.error or ''} {said}"
        client = f"{s.client_addr} {s.user_agent}"
        return self.matches(s.path or "", client, s.started_at or 0.0, words)

    def keep_http(self, h: dict[str, Any]) -> bool:
        words = f"{h['path']} {h['body'] or ''} {h['error'] or ''}"
        return self.matches(h["path"] or "", h["client_addr"] or "", h["ts"], words)


def _session_item(e: Entry) -> dict[str, Any]:
    s = e.row
    d = e.disruption
    return {
        "kind": "session",
        "key": f"s{s.id}",
        "id": s.id,
        "started_at": s.started_at,
        "ended_at": s.ended_at,
        "duration": s.duration,
        "client": s.client_addr,
        "user_agent": s.user_agent,
        "path": s.path,
        "status": s.handshake_status,
        "category": e.category,
        "failure": e.failure,
        "closed_by": s.closed_by,
        "close_code": s.close_code,
        "open": s.ended_at is None,
        "frames": [s.frames_c2s, s.frames_s2c],
        "bytes": [s.bytes_c2s, s.bytes_s2c],
        "reconnect_gap": None if e.verdict is None else e.verdict.reconnect_gap,
        "recovery": None
        if d is None or d.kind == "navigation"
        else {"after": d.recovery, "retries": len(d.retries)},
        "explanation": None if e.verdict is None else e.verdict.explanation,
    }


def _http_item(h: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "http",
        "key": f"h{h['id']}",
        "id": h["id"],
        "started_at": h["ts"],
        "client": h["client_addr"],
        "method": h["method"],
        "path": h["path"],
        "query": h["query"],
        "status": h["status"],
        "category": "http",
        "failure": True,
        "body": h["body"],
        "error": h["error"],
    }


def _message_item(message: Any, decoded: Any) -> dict[str, Any]:
    """The projection's message, with its payload cut for the page (text, or hex)."""
    out = present.message(message, decoded)
    text = out["text"]
    if text is not None:
        out["text"] = text[:TEXT_LIMIT]
        out["cut"] = len(text) > TEXT_LIMIT
    if not isinstance(message.payload, str):
        data = bytes(message.payload or b"")
        out["hex"] = data[: TEXT_LIMIT // 2].hex(" ")
        out["cut"] = out.get("cut") or len(data) > TEXT_LIMIT // 2
    del out["payload"]
    return out


def _chain(key: tuple[str, str, str], entries: list[Entry]) -> dict[str, Any]:
    sessions = []
    previous_end: float | None = None
    for e in entries:
        s = e.row
        gap = None if previous_end is None else max(0.0, (s.started_at or 0.0) - previous_end)
        sessions.append(
            {
                "id": s.id,
                "started_at": s.started_at,
                "ended_at": s.ended_at,
                "duration": s.duration,
                "status": s.handshake_status,
                "category": e.category,
                "failure": e.failure,
                "path": s.path,
                "gap_before": gap,
            }
        )
        previous_end = max(previous_end or 0.0, s.ended_at or s.started_at or 0.0)
    return {
        "client": key[0],
        "user_agent": key[1],
        "cookie": bool(key[2]),
        "sessions": sessions,
    }


def check_recording(path: Path) -> None:
    """A clear error now (RecordingError), rather than a failing page later."""
    Recording(path).close()
