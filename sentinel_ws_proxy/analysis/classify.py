"""Per-session verdicts: which of a fixed set of categories a session falls in, and why.

Pure functions over session summaries (built from a recording's rows or from
live events alike), so `failures`, `health --db` and `monitor` agree.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sentinel_ws_proxy.events import Frame, SessionClosed, SessionOpened
from sentinel_ws_proxy.protocol import close_code_name
from sentinel_ws_proxy.recording.redact import client_fingerprint

# The names are part of the JSON interface.
CATEGORIES = (
    "clean",
    "navigation",
    "client_gone",
    "server_drop",
    "server_error",
    "rejected",
    "not_found",
    "upstream_unreachable",
    "idle_timeout",
    "too_big",
    "protocol_error",
    "proxy_shutdown",
    "injected",
    "open",
    "other",
)
# Not failures: the app or the proxy ended these on purpose, or they are still going.
NOT_FAILURES = frozenset({"clean", "open", "proxy_shutdown", "injected"})

DEFAULT_RECONNECT_WINDOW = 10.0
DEFAULT_IDLE_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """What classification needs to know about one session."""

    id: int
    started_at: float
    path: str
    handshake_status: int
    client_addr: str = ""
    ended_at: float | None = None
    error: str | None = None
    close_code: int | None = None
    close_reason: str | None = None
    closed_by: str | None = None
    clean: bool = False
    frames_c2s: int = 0
    frames_s2c: int = 0
    last_frame_at: float | None = None
    user_agent: str | None = None
    cookie_hash: str | None = None
    run_id: int | None = None
    fault_id: int | None = None  # set when an injected fault refused or ended it

    @property
    def client_key(self) -> tuple[str, str, str]:
        """ "The same client": remote address, User-Agent, and cookie when present."""
        return (self.client_addr, self.user_agent or "", self.cookie_hash or "")

    @property
    def accepted(self) -> bool:
        return self.handshake_status == 101

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    @property
    def idle_before_close(self) -> float | None:
        if self.ended_at is None:
            return None
        return self.ended_at - (self.last_frame_at or self.started_at)


@dataclass(frozen=True, slots=True)
class Verdict:
    session_id: int
    category: str
    explanation: str
    # Seconds from this client-side disconnect to the same client's next
    # accepted connection; None when it never came back (or not applicable).
    reconnect_gap: float | None = None


@dataclass
class Reconnects:
    """How clients came back after they disconnected."""

    disconnects: int = 0
    gaps: list[float] = field(default_factory=list)
    never_reconnected: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        gaps = sorted(self.gaps)
        return {
            "disconnects": self.disconnects,
            "reconnected": len(gaps),
            "median_gap": _percentile(gaps, 50),
            "p95_gap": _percentile(gaps, 95),
            "max_gap": gaps[-1] if gaps else None,
            "never_reconnected": self.never_reconnected,
        }


def _percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return None
    rank = max(1, -(-len(values) * pct // 100))  # ceil without floats drifting
    return values[int(rank) - 1]


def summarize(
    opened: SessionOpened,
    frames: Iterable[Frame] = (),
    closed: SessionClosed | None = None,
    *,
    salt: bytes = b"",
) -> SessionSummary:
    """A summary from live events (the recorder's rows give the same fields)."""
    headers = {k.lower(): v for k, v in opened.request_headers}
    last_frame_at = None
    counts = {"c2s": 0, "s2c": 0}
    for frame in frames:
        counts[frame.direction] += 1
        if frame.opcode != "close":
            last_frame_at = frame.ts
    return SessionSummary(
        id=opened.session_id,
        started_at=opened.ts,
        path=opened.path,
        handshake_status=opened.handshake_status,
        client_addr=opened.client_addr,
        ended_at=closed.ts if closed else None,
        error=opened.error,
        close_code=closed.close_code if closed else None,
        close_reason=closed.close_reason if closed else None,
        closed_by=closed.closed_by if closed else None,
        clean=bool(closed and closed.clean),
        frames_c2s=max(counts["c2s"], closed.frames_c2s if closed else 0),
        frames_s2c=max(counts["s2c"], closed.frames_s2c if closed else 0),
        last_frame_at=last_frame_at or (closed.last_frame_at if closed else None),
        user_agent=headers.get("user-agent"),
        cookie_hash=client_fingerprint(salt, headers.get("cookie")),
    )


def _is_client_disconnect(s: SessionSummary) -> bool:
    """The client went away: 1001 going away, or its TCP connection dropped."""
    return s.accepted and s.closed_by == "client" and s.close_code in (1001, 1006)


def reconnect_gaps(sessions: Sequence[SessionSummary]) -> dict[int, tuple[float, str] | None]:
    """For each client-side disconnect: (gap, path) of the same client's next accepted
    connection, or None if it never came back."""
    accepted: dict[tuple[str, str, str], list[SessionSummary]] = defaultdict(list)
    for s in sessions:
        if s.accepted:
            accepted[s.client_key].append(s)
    starts: dict[tuple[str, str, str], list[float]] = {}
    for key, group in accepted.items():
        group.sort(key=lambda s: (s.started_at, s.id))
        starts[key] = [s.started_at for s in group]
    gaps: dict[int, tuple[float, str] | None] = {}
    for s in sessions:
        if not _is_client_disconnect(s):
            continue
        group, times = accepted[s.client_key], starts[s.client_key]
        i = bisect.bisect_right(times, s.started_at)
        while i < len(group) and group[i].id == s.id:
            i += 1
        if i < len(group):
            after = group[i]
            gap = max(0.0, after.started_at - (s.ended_at or s.started_at))
            gaps[s.id] = (gap, after.path)
        else:
            gaps[s.id] = None
    return gaps


def classify(
    s: SessionSummary,
    reconnect: tuple[float, str] | None = None,
    *,
    reconnect_window: float = DEFAULT_RECONNECT_WINDOW,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
) -> Verdict:
    """One session's category and a sentence saying why."""
    category, why = _category(s, reconnect, reconnect_window, idle_timeout)
    gap = reconnect[0] if reconnect is not None and _is_client_disconnect(s) else None
    return Verdict(s.id, category, why, gap)


def _category(
    s: SessionSummary,
    reconnect: tuple[float, str] | None,
    window: float,
    idle_timeout: float,
) -> tuple[str, str]:
    if s.fault_id is not None:
        what = "refused the handshake" if not s.accepted else _close_words(s)
        return "injected", f"fault {s.fault_id} {what}: injected on purpose, not the app's doing"
    if not s.accepted:
        return _handshake_category(s)
    code, by = s.close_code, s.closed_by
    said = _close_words(s)
    if s.ended_at is None:
        return "open", "still open (or the recording stopped before it closed)"
    if by == "proxy" and code == 1001:
        return "proxy_shutdown", "the proxy shut down while the session was open"
    if code == 1009:
        return "too_big", f"a message exceeded the size limit: {said}"
    if code in (1002, 1003, 1007):
        return "protocol_error", f"the connection broke the protocol: {said}"
    if code == 1011:
        return "server_error", f"the server hit an internal error: {said}"
    if code == 1008:
        return "rejected", f"closed for a policy violation: {said}"
    if _is_client_disconnect(s):
        return _client_disconnect(s, reconnect, window)
    idle = s.idle_before_close
    if by == "server" and idle is not None and idle >= idle_timeout:
        return "idle_timeout", f"{said} after {idle:.1f} s without a frame in either direction"
    if by == "server" and code == 1006:
        return "server_drop", f"the server's side vanished without a close frame after {_secs(s)}"
    if code in (1000, 1005) and s.clean:
        return "clean", f"closed normally: {said}"
    if code is None and by is None:
        return "other", "the recording does not say how the connection ended (an imported capture?)"
    return "other", said


def _handshake_category(s: SessionSummary) -> tuple[str, str]:
    status = s.handshake_status
    detail = f" ({s.error})" if s.error else ""
    if status in (401, 403):
        return "rejected", f"the handshake was refused with {status}{detail}"
    if status == 404:
        return "not_found", f"no WebSocket endpoint at {s.path} (404){detail}"
    if status == 502 and s.closed_by == "proxy":
        return "upstream_unreachable", f"the proxy could not reach the upstream{detail}"
    if 500 <= status <= 599:
        return "server_error", f"the handshake failed with {status}{detail}"
    return "other", f"the handshake was answered with {status}{detail}"


def _client_disconnect(
    s: SessionSummary, reconnect: tuple[float, str] | None, window: float
) -> tuple[str, str]:
    how = (
        "closed with 1001 going away"
        if s.close_code == 1001
        else "dropped the connection without a close frame"
    )
    if reconnect is not None:
        gap, path = reconnect
        if gap <= window and path == s.path:
            return "navigation", f"the client {how} and reconnected to {path} {gap:.3f} s later"
        return (
            "client_gone",
            f"the client {how}; it came back {gap:.1f} s later"
            + (f" on {path}" if path != s.path else "")
            + f", outside the {window:g} s reconnect window",
        )
    return "client_gone", f"the client {how} and did not reconnect"


def _close_words(s: SessionSummary) -> str:
    who = s.closed_by or "nobody recorded"
    code = s.close_code
    words = f"closed by {who} with {code} {close_code_name(code)}" if code else f"closed by {who}"
    if s.close_reason:
        words += f" ({s.close_reason!r})"
    return words


def _secs(s: SessionSummary) -> str:
    return "?" if s.duration is None else f"{s.duration:.1f} s"


def classify_all(
    sessions: Sequence[SessionSummary],
    *,
    reconnect_window: float = DEFAULT_RECONNECT_WINDOW,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
) -> tuple[list[Verdict], Reconnects]:
    """Verdicts for every session, and the reconnect statistics they imply."""
    gaps = reconnect_gaps(sessions)
    verdicts = [
        classify(
            s,
            gaps.get(s.id),
            reconnect_window=reconnect_window,
            idle_timeout=idle_timeout,
        )
        for s in sessions
    ]
    stats = Reconnects(disconnects=len(gaps))
    for session_id, found in gaps.items():
        if found is None:
            stats.never_reconnected.append(session_id)
        else:
            stats.gaps.append(found[0])
    return verdicts, stats
