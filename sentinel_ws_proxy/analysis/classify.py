"""Per-session verdicts: which of a fixed set of categories a session falls in, and why.

Pure functions over session rows (read from a recording, or built from live
events), so `failures`, `health --db` and `monitor` agree.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sentinel_ws_proxy.protocol import close_code_name
from sentinel_ws_proxy.recording.schema import SessionRow

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


def _is_client_disconnect(s: SessionRow) -> bool:
    """The client went away: 1001 going away, or its TCP connection dropped."""
    return s.accepted and s.closed_by == "client" and s.close_code in (1001, 1006)


def reconnect_gaps(sessions: Sequence[SessionRow]) -> dict[int, tuple[float, str] | None]:
    """For each client-side disconnect: (gap, path) of the same client's next accepted
    connection, or None if it never came back."""
    accepted: dict[tuple[str, str, str], list[SessionRow]] = defaultdict(list)
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
    s: SessionRow,
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
    s: SessionRow,
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
    if by == "proxy" and code is None:
        return "proxy_shutdown", "the proxy stopped without closing it (it crashed or was killed)"
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


def _handshake_category(s: SessionRow) -> tuple[str, str]:
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
    s: SessionRow, reconnect: tuple[float, str] | None, window: float
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


def _close_words(s: SessionRow) -> str:
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
