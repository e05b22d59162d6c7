"""Pages: a browser tab's sockets, grouped by the page load that opened them.

A user thinks in pages, not sockets: a Vite app's page holds the dev server's
hot-reload socket beside the app's own; a notebook's holds a kernel socket and
an event stream. They close together when the page navigates (1001 each, within
milliseconds) and the next page opens its own, in any order.

A client is its address and User-Agent. Cookies are not identity: frameworks
that set a fresh CSRF cookie on every answer make the Cookie header differ on
every handshake of one tab, so a changed cookie never splits a client.

A page begins at a document load the proxy passed through (the browser marks
it ``Sec-Fetch-Mode: navigate``, ``Sec-Fetch-Dest: document``): the client's
sockets opened after it, until its next load, are that page's. When the page
itself is not served through the proxy, sockets opened together belong
together: a socket joins the client's current page while one of that page's
sockets is still open, or when it opens within BURST of the page's last
opening; otherwise it begins a new page.

Pure: sessions and document loads in, pages out.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sentinel_ws_proxy.recording.schema import SessionRow

BURST = 1.0  # seconds: sockets a page opens at load come within this of each other

Client = tuple[str, str]  # (address, User-Agent)


def client_of(s: SessionRow) -> Client:
    return (s.client_addr or "", s.user_agent or "")


@dataclass(slots=True)
class Page:
    id: int  # the id of its first session
    client: Client
    began: float  # its document load, or its first socket's start
    loaded: bool  # began with a document load the proxy saw
    document: str | None  # that document's path
    sessions: list[int] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # its sockets' paths, in order of opening

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_addr": self.client[0],
            "user_agent": self.client[1],
            "began": self.began,
            "document": self.document,
            "loaded_through_proxy": self.loaded,
            "sessions": list(self.sessions),
            "paths": sorted(set(self.paths)),
        }


@dataclass
class Pages:
    pages: list[Page]
    of_session: dict[int, int]  # session id -> page id
    loads: dict[Client, list[tuple[float, str]]]  # each client's document loads, in time order

    def page(self, session_id: int) -> Page | None:
        pid = self.of_session.get(session_id)
        return None if pid is None else self._by_id.get(pid)

    @property
    def _by_id(self) -> dict[int, Page]:
        return {p.id: p for p in self.pages}

    def next_load(self, client: Client, after: float) -> tuple[float, str] | None:
        """The client's first document load at or after a moment."""
        loads = self.loads.get(client, [])
        i = bisect.bisect_left(loads, (after, ""))
        return loads[i] if i < len(loads) else None


def group(
    sessions: Sequence[SessionRow], loads: Sequence[tuple[float, str, str, str | None]] = ()
) -> Pages:
    """Every session's page. `loads`: (ts, client address, path, User-Agent) of each
    document load, as recording.document_loads() gives them."""
    by_client: dict[Client, list[tuple[float, str]]] = defaultdict(list)
    for ts, addr, path, agent in loads:
        by_client[(addr, agent or "")].append((ts, path))
    for found in by_client.values():
        found.sort()
    sockets: dict[Client, list[SessionRow]] = defaultdict(list)
    for s in sessions:
        if s.id is not None:
            sockets[client_of(s)].append(s)
    pages: list[Page] = []
    of_session: dict[int, int] = {}
    for client, group_ in sockets.items():
        group_.sort(key=lambda s: (s.started_at or 0.0, s.id or 0))
        for s, page in _assign(group_, by_client.get(client, []), client):
            if not page.sessions:
                pages.append(page)
            page.sessions.append(s.id or 0)
            page.paths.append(s.path or "")
            of_session[s.id or 0] = page.id
    pages.sort(key=lambda p: (p.began, p.id))
    return Pages(pages, of_session, dict(by_client))


INF = float("inf")


@dataclass(slots=True)
class _Held:
    """What a page holds so far, kept up as sockets join it (no rescans)."""

    last_start: float
    open_until: float = -INF  # when its last accepted socket ends (inf: one is open)
    # path -> [until when a socket is open there, who ended the last one, when it ended]
    paths: dict[str, list] = field(default_factory=dict)

    def add(self, s: SessionRow) -> None:
        start = s.started_at or 0.0
        end = INF if s.ended_at is None else s.ended_at
        self.last_start = max(self.last_start, start)
        held = self.paths.setdefault(s.path or "", [-INF, None, 0.0])
        if s.accepted:
            self.open_until = max(self.open_until, end)
            held[0] = max(held[0], end)
        held[1], held[2] = s.closed_by, s.ended_at or start


def _assign(
    sockets: list[SessionRow], loads: list[tuple[float, str]], client: Client
) -> Iterator[tuple[SessionRow, Page]]:
    """Each of one client's sockets (in the order they opened) with its page."""
    held: dict[int, _Held] = {}  # page id -> what it holds
    order: list[Page] = []  # the client's pages, oldest first
    used: tuple[float, str] | None = None  # the load that began the newest page
    for s in sockets:
        start = s.started_at or 0.0
        load = _last_load(loads, start)
        page: Page | None = None
        if load is not None and load != used and (not order or load[0] > order[-1].began):
            page, used = Page(s.id or 0, client, load[0], True, load[1]), load
        else:
            # Two tabs of one browser are one client: a socket coming back belongs to the
            # page that lost one on its path (a reconnect, a retry), not just the newest.
            page = _missing(order, held, s.path or "", start)
            if page is None and order and _joins(order[-1], held[order[-1].id], start):
                page = order[-1]
            if page is None:
                page = Page(s.id or 0, client, start, False, None)
        if page.id not in held:
            held[page.id] = _Held(page.began)
            order.append(page)
        held[page.id].add(s)
        yield s, page


def _missing(order: list[Page], held: dict[int, _Held], path: str, start: float) -> Page | None:
    """The page that lost its socket on `path` to the server (or never got it) and has
    none open there now; of several, the one that has waited longest (two tabs' retries
    alternate, as they do). A page the browser left (its sockets closed from the
    client's side) is no candidate."""
    best: tuple[float, Page] | None = None
    for i in range(max(0, len(order) - 8), len(order)):
        page = order[i]
        found = held[page.id].paths.get(path)
        if found is None or found[0] > start or found[1] == "client":
            continue
        if best is None or found[2] < best[0]:
            best = (found[2], page)
    return None if best is None else best[1]


def _last_load(loads: list[tuple[float, str]], before: float) -> tuple[float, str] | None:
    if not loads:
        return None
    i = bisect.bisect_right(loads, (before, "\uffff"))
    return loads[i - 1] if i else None


def _joins(page: Page, held: _Held, start: float) -> bool:
    """A socket opening at `start` belongs to the page: its load said so (the next load
    begins the next page), one of its sockets is still open then, or the page opened
    its last socket a moment ago."""
    return page.loaded or start - held.last_start <= BURST or held.open_until > start
