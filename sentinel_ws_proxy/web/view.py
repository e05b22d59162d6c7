"""What the web app shows: a recording's sessions with their verdicts, kept fresh.

Classifying a recording reads every session (2 s for 100,000), so it is done
once and kept: a snapshot. While a proxy writes the file, SQLite's
``data_version`` says when something changed; the snapshot is rebuilt then,
but never more often than twice its own cost, so a big recording being
written does not keep a core busy. Sessions newer than the snapshot are shown
as they are, their verdict "pending" until the next one; and before the first
snapshot, the list's first page comes at once from SQL, verdicts pending, while
the classification runs in a thread of its own.

Sockets are shown by page load (analysis/pages.py): the list puts each page's
sockets under it, pages newest first (by their latest socket); the reconnect
chains are per page, one lane per socket path, then what came after (the
client's next page). Sessions travel as the one projection's object
(present.session), with the list's own few keys beside it.

Every method here runs in a worker thread (SQLite blocks); each thread has its
own read-only connection.
"""

from __future__ import annotations

import fnmatch
import math
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentinel_ws_proxy import present
from sentinel_ws_proxy.analysis.classify import CATEGORIES, EXPECTED, FAILURES, Verdict
from sentinel_ws_proxy.analysis.pages import Client, Page, client_of
from sentinel_ws_proxy.analysis.recovery import Disruption
from sentinel_ws_proxy.analysis.report import (
    Window,
    classify_recording,
    collector_paused,
    http_failures,
    recorded_thresholds,
)
from sentinel_ws_proxy.decoders import decode_all, for_session
from sentinel_ws_proxy.recording.queries import DataVersion
from sentinel_ws_proxy.recording.reader import Recording
from sentinel_ws_proxy.recording.schema import SessionRow
from sentinel_ws_proxy.recording.search import SearchIndex

PAGE = 50
CHAINS_PAGE = 20  # pages of the browser per screen of reconnect chains
CHAIN_LIMIT = 200  # sockets of one page drawn in its chain
PENDING = "pending"
TEXT_LIMIT = 256 * 1024  # characters of one payload sent to the page


@dataclass
class Entry:
    row: SessionRow
    verdict: Verdict | None  # None: newer than the snapshot
    disruption: Disruption | None = None
    page: int | None = None  # the id of its page load; None: newer than the snapshot

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
    clients: dict[Client, list[Entry]] = field(default_factory=dict)  # in time order
    pages: dict[int, Page] = field(default_factory=dict)
    members: dict[int, list[Entry]] = field(default_factory=dict)  # a page's, in time order
    previous_page: dict[int, int] = field(default_factory=dict)  # the client's, by page id
    next_page: dict[int, int] = field(default_factory=dict)
    newest_pages: list[int] = field(default_factory=list)  # page ids, newest load first
    # The list's rows in order, made once: each page's sessions in order of opening
    # under it, pages (and failed HTTP requests) by their newest start, newest first.
    listed: list[Entry | dict[str, Any]] = field(default_factory=list)


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
        of_page = classified.pages.of_session
        entries = [
            Entry(s, v, began.get(s.id or 0), of_page.get(s.id or 0)) for s, v in classified.pairs()
        ]
        clients: dict[Client, list[Entry]] = defaultdict(list)
        members: dict[int, list[Entry]] = defaultdict(list)
        groups: list[tuple[tuple[float, int, int], list[Entry | dict[str, Any]]]] = []
        for entry in entries:
            clients[client_of(entry.row)].append(entry)
            if entry.page is not None:
                members[entry.page].append(entry)
            else:  # not in any page (no id): a row of its own
                groups.append(((entry.row.started_at or 0.0, 1, entry.row.id or 0), [entry]))
        for pid, found in members.items():
            groups.append(((found[-1].row.started_at or 0.0, 1, pid), list(found)))
        http = http_failures(recording, classified.summaries, self.window)
        groups += [((h["ts"] or 0.0, 0, h["id"]), [h]) for h in http]
        groups.sort(key=lambda group: group[0], reverse=True)
        pages = {p.id: p for p in classified.pages.pages if p.id in members}
        previous_page: dict[int, int] = {}
        next_page: dict[int, int] = {}
        last: dict[Client, int] = {}
        for p in pages.values():  # in time order
            if p.client in last:
                previous_page[p.id] = last[p.client]
                next_page[last[p.client]] = p.id
            last[p.client] = p.id
        return Snapshot(
            entries=entries,
            by_id={e.row.id or 0: e for e in entries},
            http=http,
            generation=generation,
            built_at=time.monotonic(),
            took=time.monotonic() - started,
            last_id=max((e.row.id or 0 for e in entries), default=0),
            clients=dict(clients),
            pages=pages,
            members=dict(members),
            previous_page=previous_page,
            next_page=next_page,
            newest_pages=list(reversed(pages)),
            listed=[item for _, group in groups for item in group],
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
        return present.plain(
            {
                "recording": str(self.path),
                "sessions": len(snapshot.entries),
                "pages": len(snapshot.pages),
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
        )

    def _unclassified_summary(self) -> dict[str, Any]:
        recording = self.recording()
        count, first, last = recording.session_span()
        return present.plain(
            {
                "recording": str(self.path),
                "sessions": count,
                "pages": None,
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
        )

    def sessions(self, query: dict[str, str]) -> dict[str, Any]:
        """One screen of sessions (and failed HTTP requests), filtered: each page load's
        sessions together in order of opening, pages newest first; `page_loads` says
        what each page shown is (`page_id=` shows one).

        Unfiltered, the first screen of a recording not classified yet comes at once,
        verdicts pending (the live stream says when they are there)."""
        filters = Filters.of(query)
        page = max(1, _int(query.get("page"), 1))
        per_page = min(500, max(1, _int(query.get("per_page"), PAGE)))
        snapshot = self.snapshot(wait=filters.active)
        if snapshot is None:
            return self._unclassified_page(page, per_page)
        listed: list[Entry | dict[str, Any]] = [*reversed(self._newer(snapshot))]
        listed += snapshot.listed
        if filters.active:
            listed = [found for found in listed if filters.keep(found)]
        shown = listed[(page - 1) * per_page : page * per_page]
        entries = [e for e in shown if isinstance(e, Entry)]
        rows = self.recording().session_rows(e.row.id for e in entries)
        loads = dict.fromkeys(e.page for e in entries if e.page is not None)
        return present.plain(
            {
                "total": len(listed),
                "page": page,
                "pages": max(1, math.ceil(len(listed) / per_page)),
                "per_page": per_page,
                "rows": [
                    _session_item(found, rows) if isinstance(found, Entry) else _http_item(found)
                    for found in shown
                ],
                "page_loads": {str(pid): self._page_load(snapshot, pid) for pid in loads},
                "classifying": False,
            }
        )

    def _unclassified_page(self, page: int, per_page: int) -> dict[str, Any]:
        recording = self.recording()
        total = recording.session_span()[0]
        ids = recording.newest_session_ids(per_page, (page - 1) * per_page)
        rows = recording.session_rows(ids)
        return present.plain(
            {
                "total": total,
                "page": page,
                "pages": max(1, math.ceil(total / per_page)),
                "per_page": per_page,
                "rows": [_session_item(Entry(rows[i], None), rows) for i in ids if i in rows],
                "page_loads": {},
                "classifying": True,
            }
        )

    def _page_load(self, snapshot: Snapshot, pid: int) -> dict[str, Any]:
        """A page as the projection gives it, with what its sockets came to, and the same
        client's pages before and after it."""
        members = snapshot.members.get(pid, [])
        counts = Counter(e.category for e in members)
        ends = [e.row.ended_at for e in members]
        return {
            **present.page(snapshot.pages[pid]),
            "categories": {c: counts[c] for c in CATEGORIES if counts[c]},
            "failures": sum(e.failure for e in members),
            "ended_at": None if None in ends else max(ends, default=None),
            "previous_page": snapshot.previous_page.get(pid),
            "next_page": snapshot.next_page.get(pid),
        }

    def session(self, session_id: int) -> dict[str, Any]:
        """A session with its verdict (pending while the recording is being classified),
        its page, and the same client's sessions before and after it."""
        snapshot = self.snapshot(wait=False)
        recording = self.recording()
        row = recording.session_row(session_id)
        entry = snapshot.by_id.get(session_id) if snapshot is not None else None
        verdict = entry.verdict if entry is not None else None
        family = snapshot.clients.get(client_of(row), []) if snapshot is not None else []
        ids = [e.row.id for e in family]
        at = ids.index(session_id) if session_id in ids else None
        return present.plain(
            {
                "session": present.session(row, verdict),
                "verdict": present.verdict(verdict),
                "advice": present.advice(verdict.category if verdict is not None else None),
                "disruption": None
                if entry is None or entry.disruption is None
                else entry.disruption.as_json(),
                "page": self._page_of(snapshot, entry),
                "previous": ids[at - 1] if at else None,
                "next": ids[at + 1] if at is not None and at + 1 < len(ids) else None,
                "faults": [
                    {k: v for k, v in e.items() if k != "session_id"}
                    for e in recording.fault_events(session_id)
                ],
                "idle_timeout": self.window.idle_timeout,
            }
        )

    def _page_of(self, snapshot: Snapshot | None, entry: Entry | None) -> dict[str, Any] | None:
        """A session's page, with each of its sockets' verdicts."""
        pid = None if entry is None else entry.page
        if snapshot is None or pid is None or pid not in snapshot.pages:
            return None
        verdicts = {str(e.row.id): e.category for e in snapshot.members[pid]}
        return {**self._page_load(snapshot, pid), "verdicts": verdicts}

    def messages(self, session_id: int, after: int = 0) -> dict[str, Any]:
        """A session's messages (after a message id, for a live session)."""
        recording = self.recording()
        row = recording.session_row(session_id)
        messages = recording.messages(session_id)
        decoder = for_session(row.subprotocol, row.path, row.query, messages)
        said = decode_all(decoder, messages)  # from the start: packets may span messages
        # Not through present.plain: it would round and date what a decoder read
        # out of a payload.
        return {
            "session_id": session_id,
            "open": row.ended_at is None,
            "decoder": None if decoder is None else decoder.NAME,
            "messages": [
                _message_item(m, d)
                for m, d in zip(messages, said, strict=True)
                if (m.id or 0) > after
            ],
        }

    def chains(self, query: dict[str, str]) -> dict[str, Any]:
        """Per page load, newest first: its sockets, one lane per path in time order with
        the gaps between them, then what came after (the same client's next page).
        `client=` keeps the pages of matching clients, `page_id=` one page."""
        snapshot = self.classified()
        wanted = (query.get("client") or "").lower()
        one = _int(query.get("page_id"), 0)
        if one:
            chosen = [one] if one in snapshot.pages else []
        elif wanted:
            chosen = [
                pid
                for pid in snapshot.newest_pages
                if wanted in " ".join(snapshot.pages[pid].client).lower()
            ]
        else:
            chosen = snapshot.newest_pages
        page = max(1, _int(query.get("page"), 1))
        shown = chosen[(page - 1) * CHAINS_PAGE : page * CHAINS_PAGE]
        drawn = {pid: snapshot.members[pid][:CHAIN_LIMIT] for pid in shown}
        rows = self.recording().session_rows(e.row.id for found in drawn.values() for e in found)
        return present.plain(
            {
                "total": len(chosen),
                "page": page,
                "pages": max(1, math.ceil(len(chosen) / CHAINS_PAGE)),
                "chains": [self._chain(snapshot, pid, drawn[pid], rows) for pid in shown],
            }
        )

    def _chain(
        self, snapshot: Snapshot, pid: int, drawn: list[Entry], rows: dict[int, SessionRow]
    ) -> dict[str, Any]:
        lanes: dict[str, list[dict[str, Any]]] = {}
        ended: dict[str, float] = {}  # each lane's latest end so far
        for e in drawn:
            s = e.row
            path = s.path or ""
            before = ended.get(path)
            gap = None if before is None else max(0.0, (s.started_at or 0.0) - before)
            lanes.setdefault(path, []).append({**_session_item(e, rows), "gap_before": gap})
            ended[path] = max(before or 0.0, s.ended_at or s.started_at or 0.0)
        found = self._page_load(snapshot, pid)
        after = snapshot.next_page.get(pid)
        if after is not None:
            then = self._page_load(snapshot, after)
            end = found["ended_at"]
            after_json: dict[str, Any] | None = {
                **then,
                "gap": None if end is None else then["began"] - end,
            }
        else:
            after_json = None
        return {
            **found,
            "lanes": [{"path": path, "sessions": items} for path, items in lanes.items()],
            "drawn": len(drawn),
            "after": after_json,
        }

    def search(self, text: str, session_id: int | None, limit: int = 100) -> dict[str, Any]:
        recording = self.recording()
        hits, more = self.index.search(recording, text, session_id=session_id, limit=limit)
        paths = {i: r.path for i, r in recording.session_rows({h.session_id for h in hits}).items()}
        return present.plain(
            {
                "query": text,
                "more": more,
                "hits": [{**h.as_json(), "path": paths.get(h.session_id)} for h in hits],
            }
        )

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
    page_id: int | None = None

    @classmethod
    def of(cls, query: dict[str, str]) -> Filters:
        category = query.get("category") or ""
        page_id = _int(query.get("page_id"), 0)
        return cls(
            category=category,
            failed=query.get("failed") in ("1", "true", "on") or category == "failures",
            path=query.get("path") or "",
            client=(query.get("client") or "").lower(),
            text=(query.get("text") or "").lower(),
            since=_float(query.get("since")),
            until=_float(query.get("until")),
            page_id=page_id or None,
        )

    @property
    def active(self) -> bool:
        return bool(self.category or self.failed or self.path or self.client or self.text) or (
            self.since,
            self.until,
            self.page_id,
        ) != (None, None, None)

    def keep(self, found: Entry | dict[str, Any]) -> bool:
        if isinstance(found, Entry):
            return self.keep_session(found)
        if self.page_id is not None:
            return False
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
        if self.page_id is not None and e.page != self.page_id:
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


# A list item is the projection's session plus these, the list's own.
LIST_EXTRAS = ("kind", "key", "open", "recovery", "page")


def _session_item(e: Entry, rows: dict[int, SessionRow]) -> dict[str, Any]:
    """The session as `show --json` and /api/sessions/ID give it (its whole row, from
    `rows` when there), with the list's extras."""
    s = rows.get(e.row.id or 0, e.row)
    d = e.disruption
    return {
        **present.session(s, e.verdict),
        "kind": "session",
        "key": f"s{s.id}",
        "open": s.ended_at is None,
        "recovery": None
        if d is None or d.kind == "navigation"
        else {"after": d.recovery, "retries": len(d.retries)},
        "page": e.page,
    }


def _http_item(h: dict[str, Any]) -> dict[str, Any]:
    """A failed HTTP request as `failures --json` gives it, with the list's extras."""
    return {**h, "kind": "http", "key": f"h{h['id']}", "category": "http", "failure": True}


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


def check_recording(path: Path) -> None:
    """A clear error now (RecordingError), rather than a failing page later."""
    Recording(path).close()
