"""Per-session verdicts: which of a fixed set of categories a session falls in, and why.

Pure functions over session rows and the facts their frames give (see
facts.py), so `failures`, `health --db`, `show` and `monitor` agree. A
category is either a failure or an expected ending: a navigation, a closed
tab, a normal close, the proxy stopping or a fault injected on purpose are
the browser and the tools working as designed, not the app failing.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sentinel_ws_proxy.analysis.facts import SessionFacts
from sentinel_ws_proxy.analysis.pages import Pages, client_of
from sentinel_ws_proxy.protocol import CLOSED_WITHOUT_ANSWER, close_code_name
from sentinel_ws_proxy.recording.schema import SessionRow

# The names are part of the JSON interface.
CATEGORIES = (
    "clean",
    "navigation",
    "client_gone",
    "client_unresponsive",
    "server_restart",
    "server_drop",
    "server_error",
    "rejected",
    "not_found",
    "upstream_unreachable",
    "idle_timeout",
    "too_big",
    "protocol_error",
    "app_error",
    "proxy_shutdown",
    "injected",
    "open",
    "other",
)
# The browser, the app or the tools doing what they should (or still going).
EXPECTED = frozenset({"clean", "navigation", "client_gone", "proxy_shutdown", "injected", "open"})
NOT_FAILURES = EXPECTED
FAILURES = frozenset(CATEGORIES) - EXPECTED

DEFAULT_RECONNECT_WINDOW = 10.0
DEFAULT_IDLE_TIMEOUT = 30.0
# A server ping left unanswered this long before the end means the client froze: a
# healthy client's pong takes one round trip (browsers answer from the network stack,
# not from the page's busy JavaScript), and half a second is a slow one.
UNANSWERED = 0.5
RESTART_CODES = (1001, 1012, 1013)


@dataclass(frozen=True, slots=True)
class Verdict:
    session_id: int
    category: str
    explanation: str
    # Seconds from this client-side disconnect to the same client's next
    # accepted connection; None when it never came back (or not applicable).
    reconnect_gap: float | None = None
    # What in the recording the verdict rests on, in words.
    evidence: tuple[str, ...] = ()
    # The application protocol whose own words decided it (its decoder's name), if any.
    judged_by: str | None = None

    @property
    def failure(self) -> bool:
        return self.category in FAILURES


@dataclass
class Reconnects:
    """How clients came back after they went away (navigations and closed tabs)."""

    disconnects: int = 0
    gaps: list[float] = field(default_factory=list)
    never_reconnected: list[int] = field(default_factory=list)
    pages: int = 0  # pages that navigated (their sockets' navigations counted once)

    def as_dict(self) -> dict[str, object]:
        gaps = sorted(self.gaps)
        return {
            "disconnects": self.disconnects,
            "reconnected": len(gaps),
            "median_gap": percentile(gaps, 50),
            "p95_gap": percentile(gaps, 95),
            "max_gap": gaps[-1] if gaps else None,
            "never_reconnected": self.never_reconnected,
            "pages": self.pages,
        }


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return None
    rank = max(1, -(-len(values) * pct // 100))  # ceil without floats drifting
    return values[int(rank) - 1]


def is_client_disconnect(s: SessionRow) -> bool:
    """The client went away: 1001 going away, or its TCP connection dropped."""
    return s.accepted and s.closed_by == "client" and s.close_code in (1001, 1006)


def disconnect_at(s: SessionRow, facts: SessionFacts | None) -> float:
    """When the session's end began: its first close frame, or the end of TCP."""
    if facts is not None and facts.first_close_at is not None:
        return facts.first_close_at
    return s.ended_at if s.ended_at is not None else (s.started_at or 0.0)


class Accepted:
    """Each client's accepted sessions by start time, to find what came after a moment."""

    def __init__(self, sessions: Sequence[SessionRow]):
        self._by: dict[tuple[str, str, str], list[SessionRow]] = defaultdict(list)
        for s in sessions:
            if s.accepted:
                self._by[s.client_key].append(s)
        self._starts: dict[tuple[str, str, str], list[float]] = {}
        for key, group in self._by.items():
            group.sort(key=lambda s: (s.started_at or 0.0, s.id or 0))
            self._starts[key] = [s.started_at or 0.0 for s in group]

    def next_after(self, s: SessionRow, moment: float) -> SessionRow | None:
        """The same client's first accepted session started at or after `moment`.

        One already open before the moment is never it: that is another tab.
        """
        group = self._by.get(s.client_key, [])
        times = self._starts.get(s.client_key, [])
        i = bisect.bisect_left(times, moment)
        while i < len(group) and group[i].id == s.id:
            i += 1
        return group[i] if i < len(group) else None


# How a reconnect's "what" names a page load rather than a socket's path.
PAGE_LOAD = "page load "


def reconnect_gaps(
    sessions: Sequence[SessionRow],
    facts: Mapping[int, SessionFacts] | None = None,
    pages: Pages | None = None,
) -> dict[int, tuple[float, str] | None]:
    """For each client-side disconnect: (gap, what) of the same client's next sign of
    life, a socket on any path (its path) or a document load ("page load /x"), or None
    if it never came back. A page's sockets come back in any order: any of them is
    the page coming back."""
    facts = facts or {}
    accepted = Accepted(sessions)
    gaps: dict[int, tuple[float, str] | None] = {}
    for s in sessions:
        if not is_client_disconnect(s):
            continue
        moment = disconnect_at(s, facts.get(s.id or 0))
        after = accepted.next_after(s, moment)
        found = None if after is None else ((after.started_at or 0.0) - moment, after.path or "")
        load = pages.next_load(client_of(s), moment) if pages is not None else None
        if load is not None and (found is None or load[0] - moment < found[0]):
            found = (load[0] - moment, PAGE_LOAD + load[1])
        gaps[s.id or 0] = found
    return gaps


def classify(
    s: SessionRow,
    reconnect: tuple[float, str] | None = None,
    *,
    facts: SessionFacts | None = None,
    reconnect_window: float = DEFAULT_RECONNECT_WINDOW,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
) -> Verdict:
    """One session's category and a sentence saying why."""
    app = _protocol_category(s, facts)
    if app is not None:
        return Verdict(s.id or 0, app[0], app[1], judged_by=facts.protocol if facts else None)
    category, why = _category(s, reconnect, facts, reconnect_window, idle_timeout)
    gap = reconnect[0] if reconnect is not None and is_client_disconnect(s) else None
    return Verdict(s.id or 0, category, why, gap)


def _protocol_category(s: SessionRow, facts: SessionFacts | None) -> tuple[str, str] | None:
    """The application protocol's own account of the ending, when it gives one: its close
    code, a disconnect or error packet, a heartbeat it missed (decoders/, facts.py)."""
    if facts is None or facts.protocol is None or s.fault_id is not None:
        return None
    if s.closed_by == "proxy" or not s.accepted or s.ended_at is None:
        return None
    ending = facts.app_ending
    if ending is not None:
        category = "clean" if ending.category in ("client_done", "clean") else ending.category
        why = ending.reason
        if ending.reconnect is False and category != "clean":
            why += "; the server told the client not to reconnect"
        return category, why
    ping = facts.app_ping_unanswered
    silent = None if ping is None else disconnect_at(s, facts) - ping
    if silent is not None and s.closed_by == "server" and silent >= UNANSWERED:
        return "client_unresponsive", (
            f"the server's {facts.protocol} ping went unanswered for {silent:.1f} s before it "
            f"{close_words(s).removeprefix('closed by server').strip() or 'closed'} the "
            "connection: the page was frozen or unreachable (its own heartbeat, invisible to "
            "WebSocket pings)"
        )
    return None


def _category(
    s: SessionRow,
    reconnect: tuple[float, str] | None,
    facts: SessionFacts | None,
    window: float,
    idle_timeout: float,
) -> tuple[str, str]:
    if s.fault_id is not None:
        what = "refused the handshake" if not s.accepted else close_words(s)
        return "injected", f"fault {s.fault_id} {what}: injected on purpose, not the app's doing"
    if not s.accepted:
        return _handshake_category(s)
    code, by = s.close_code, s.closed_by
    said = close_words(s)
    if s.ended_at is None:
        return "open", "still open (or the recording stopped before it closed)"
    if by == "proxy" and code == 1001:
        return "proxy_shutdown", "the proxy shut down while the session was open"
    if by == "proxy" and code is None:
        return "proxy_shutdown", "the proxy stopped without closing it (it crashed or was killed)"
    if code == 1009:
        return "too_big", f"a message exceeded the size limit: {said}"
    if code in (1002, 1003, 1007):
        return "protocol_error", f"the connection broke the protocol: {said}"
    if by == "server" and _unanswered(s, facts):
        assert facts is not None and facts.last_server_ping is not None
        silent = disconnect_at(s, facts) - facts.last_server_ping
        ending = "dropped" if code == 1006 else f"closed ({code} {close_code_name(code)})"
        return "client_unresponsive", (
            f"the server pinged and nothing came back from the client for {silent:.1f} s "
            f"before the server {ending} the connection: a frozen or unreachable client"
        )
    if code == 1011:
        return "server_error", f"the server hit an internal error: {said}"
    if code == 1008:
        return "rejected", f"closed for a policy violation: {said}"
    if by == "server" and code in RESTART_CODES:
        return "server_restart", f"the server went away or restarted: {said}"
    if is_client_disconnect(s):
        return _client_disconnect(s, reconnect, facts, window)
    idle = s.idle_before_close
    if by == "server" and idle is not None and idle >= idle_timeout:
        return "idle_timeout", f"{said} after {idle:.1f} s without a frame in either direction"
    if by == "server" and code == 1006:
        return "server_drop", f"the server's side vanished without a close frame after {_secs(s)}"
    if code in (1000, 1005) and (s.clean or _did_not_wait(s, facts)):
        return "clean", f"closed normally: {said}"
    if code is None and by is None:
        return "other", "the recording does not say how the connection ended (an imported capture?)"
    return "other", said


def _unanswered(s: SessionRow, facts: SessionFacts | None) -> bool:
    if facts is None or facts.last_server_ping is None:
        return False
    answered = facts.last_client_frame is not None and (
        facts.last_client_frame >= facts.last_server_ping
    )
    return not answered and disconnect_at(s, facts) - facts.last_server_ping >= UNANSWERED


def _did_not_wait(s: SessionRow, facts: SessionFacts | None) -> bool:
    """The client sent its close and left before the server's reply reached it."""
    return bool(s.closed_by == "client" and facts is not None and facts.reply_not_delivered)


def _handshake_category(s: SessionRow) -> tuple[str, str]:
    status = s.handshake_status or 0
    detail = f" ({s.error})" if s.error else ""
    if status in (401, 403):
        return "rejected", f"the handshake was refused with {status}{detail}"
    if status == 404:
        return "not_found", f"no WebSocket endpoint at {s.path} (404){detail}"
    if (
        status == 502
        and s.closed_by == "proxy"
        and (s.error or "").startswith(CLOSED_WITHOUT_ANSWER)
    ):
        return "server_error", (
            f"{s.error}: the upgrade reached a server that closed it unanswered (a dev "
            "server's proxy does this while the backend behind it is down)"
        )
    if status == 502 and s.closed_by == "proxy":
        return "upstream_unreachable", f"the proxy could not reach the upstream{detail}"
    if 500 <= status <= 599:
        return "server_error", f"the handshake failed with {status}{detail}"
    if status in (-1, 0):
        return "rejected", (
            "the handshake failed and the browser does not say why (a browser HAR records "
            "no status for a refused WebSocket; a recording through the proxy keeps it)"
        )
    return "other", f"the handshake was answered with {status}{detail}"


def _client_disconnect(
    s: SessionRow, reconnect: tuple[float, str] | None, facts: SessionFacts | None, window: float
) -> tuple[str, str]:
    how = (
        "closed with 1001 going away"
        if s.close_code == 1001
        else "dropped the connection without a close frame"
    )
    if _did_not_wait(s, facts):
        how += " (the browser did not wait for the server's reply)"
    if reconnect is not None:
        gap, what = reconnect
        if gap <= window:
            if what.startswith(PAGE_LOAD):
                back = f"the browser loaded {what.removeprefix(PAGE_LOAD)} {gap:.3f} s later"
                return "navigation", f"the client {how} and {back}: the page navigated"
            if what == s.path:
                return "navigation", f"the client {how} and reconnected to {what} {gap:.3f} s later"
            return "navigation", (
                f"the client {how} and its page was back {gap:.3f} s later (a socket on {what} "
                "first): the page navigated or reloaded"
            )
        shown = f"{gap:.3f}" if gap < 1 else f"{gap:.1f}"
        return (
            "client_gone",
            f"the client {how}; it came back {shown} s later"
            + (f" ({what})" if what != s.path else "")
            + f", outside the {window:g} s reconnect window",
        )
    return "client_gone", f"the client {how} and did not reconnect (a tab closed for good?)"


def close_words(s: SessionRow) -> str:
    who = s.closed_by or "nobody recorded"
    code = s.close_code
    words = f"closed by {who} with {code} {close_code_name(code)}" if code else f"closed by {who}"
    if s.close_reason:
        words += f" ({s.close_reason!r})"
    return words


def _secs(s: SessionRow) -> str:
    return "?" if s.duration is None else f"{s.duration:.1f} s"


def classify_all(
    sessions: Sequence[SessionRow],
    *,
    facts: Mapping[int, SessionFacts] | None = None,
    pages: Pages | None = None,
    reconnect_window: float = DEFAULT_RECONNECT_WINDOW,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
) -> tuple[list[Verdict], Reconnects]:
    """Verdicts for every session, and the reconnect statistics they imply."""
    facts = facts or {}
    gaps = reconnect_gaps(sessions, facts, pages)
    verdicts = [
        classify(
            s,
            gaps.get(s.id or 0),
            facts=facts.get(s.id or 0),
            reconnect_window=reconnect_window,
            idle_timeout=idle_timeout,
        )
        for s in sessions
    ]
    # Counted from the verdicts, so that the navigation line agrees with the table.
    stats = Reconnects(disconnects=len(gaps))
    navigated: set[int] = set()
    for v in verdicts:
        if v.category == "navigation" and v.reconnect_gap is not None:
            stats.gaps.append(v.reconnect_gap)
            page = pages.of_session.get(v.session_id) if pages is not None else None
            navigated.add(page if page is not None else -v.session_id)
        elif v.category == "client_gone" and gaps.get(v.session_id) is None:
            stats.never_reconnected.append(v.session_id)
    stats.pages = len(navigated)
    return verdicts, stats
