"""Disruptions and recoveries, per client; outages across clients.

A disruption begins where a client's connection ends badly (a server drop, a
server close for a restart or an error, a refused or failed handshake, a
frozen client, an injected fault) or where the page navigates away. It lasts
until that client next has an accepted (101) session: that is its recovery
time; handshakes refused in between are its retries, and their gaps show the
client's backoff. A disruption the recording ends inside never recovered.

Server-side disruptions of several clients that overlap in time are one
incident: "server outage 14:02:03-14:02:10, 7.5 s, 3 clients, 3 retries
refused with 502".
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sentinel_ws_proxy.analysis.classify import CATEGORIES, Verdict, disconnect_at, percentile
from sentinel_ws_proxy.analysis.facts import SessionFacts
from sentinel_ws_proxy.analysis.pages import Pages, client_of
from sentinel_ws_proxy.present import pick
from sentinel_ws_proxy.recording.schema import SessionRow

GROWTH = 1.3  # a gap at least this much longer than the one before counts as growing
SAME = 0.15  # gaps within 15% of each other count as the same
SLACK = 1.0  # server-side disruptions that begin this close together are one incident
# Endings that disrupt a client until it has a socket again: every category but those
# that leave nothing to recover from (an orderly end, a tab gone for good, the proxy's
# own stop, a session still open) or whose next session says nothing of recovery (a
# message too big or a protocol misuse repeats the same way; "other" is not known).
DISRUPTIONS = frozenset(CATEGORIES) - {
    "clean",
    "client_gone",
    "too_big",
    "protocol_error",
    "proxy_shutdown",
    "open",
    "other",
}
SERVER_SIDE = frozenset({"server_restart", "server_drop", "server_error", "upstream_unreachable"})
DOWN = (502, 503, 504)  # a handshake refused like this: the server is down or restarting


@dataclass
class Disruption:
    session_id: int
    kind: str  # the category of the session that began it
    client: tuple[str, str, str]
    client_addr: str
    path: str
    began: float
    recovered_at: float | None = None
    retries: list[tuple[int, int]] = field(default_factory=list)  # (session id, status)
    attempts: list[float] = field(default_factory=list)  # when each retry (and the recovery) began
    fault_id: int | None = None
    by_reload: bool = False  # recovered by loading the page anew, not by the socket's retry

    @property
    def recovery(self) -> float | None:
        return None if self.recovered_at is None else max(0.0, self.recovered_at - self.began)

    @property
    def ended(self) -> float:
        return self.recovered_at or (self.attempts[-1] if self.attempts else self.began)

    @property
    def failure(self) -> bool:
        return self.kind not in ("navigation", "injected")

    def gaps(self) -> list[float]:
        moments = [self.began, *self.attempts]
        return [round(max(0.0, b - a), 6) for a, b in itertools.pairwise(moments)]

    def as_json(self) -> dict[str, Any]:
        return {
            **pick(self, "session_id", "kind"),
            "client": self.client_addr,
            **pick(self, "path", "began"),
            "recovered": self.recovered_at is not None,
            "recovered_by": None
            if self.recovered_at is None
            else ("page reload" if self.by_reload else "reconnect on the same path"),
            "gave_up": self.recovered_at is None,  # not back before the recording ended
            "recovered_after": None if self.recovery is None else round(self.recovery, 6),
            "retries": [{"session_id": i, "status": s} for i, s in self.retries],
            "gaps": self.gaps(),
            "fault_id": self.fault_id,
            **describe_backoff(self.gaps()),
        }


@dataclass
class Incident:
    began: float
    ended: float
    disruptions: list[Disruption]

    @property
    def clients(self) -> int:
        return len({d.client for d in self.disruptions})

    @property
    def refused(self) -> Counter[int]:
        # A retry after two tabs dropped is a retry of both: count each handshake once.
        retries = {retry for d in self.disruptions for retry in d.retries}
        return Counter(status for _, status in retries)

    @property
    def outage(self) -> bool:
        """More than one session's bad luck: several, a restart, or the server down."""
        return (
            len(self.disruptions) > 1
            or any(d.kind == "server_restart" for d in self.disruptions)
            or any(status in DOWN for status in self.refused)
        )

    @property
    def recovered(self) -> bool:
        return all(d.recovered_at is not None for d in self.disruptions)

    def as_json(self) -> dict[str, Any]:
        return {
            "began": self.began,
            "ended": self.ended,
            "seconds": round(self.ended - self.began, 3),
            "clients": self.clients,
            "kinds": sorted({d.kind for d in self.disruptions}),
            "refused_retries": {str(k): v for k, v in sorted(self.refused.items())},
            "recovered": self.recovered,
            "sessions": [d.session_id for d in self.disruptions],
        }


def describe_backoff(gaps: Sequence[float]) -> dict[str, Any]:
    """Classify a sequence of retry gaps."""
    if len(gaps) < 2:
        return {"pattern": "single retry" if gaps else "no retry", "capped_at": None}
    steps = list(itertools.pairwise(gaps))
    grows = [b >= a * GROWTH for a, b in steps]
    same = [abs(b - a) <= SAME * max(a, b, 1e-9) for a, b in steps]
    capped_at = None
    if any(grows) and same[-1]:
        capped_at = round(gaps[-1], 3)
        pattern = "exponential, capped"
    elif all(grows):
        pattern = "growing"
    elif all(same):
        pattern = "constant"
    else:
        pattern = "irregular"
    return {"pattern": pattern, "capped_at": capped_at}


def disruptions(
    sessions: Sequence[SessionRow],
    verdicts: Sequence[Verdict],
    facts: Mapping[int, SessionFacts],
    pages: Pages | None = None,
) -> list[Disruption]:
    """Every disruption of every client, in the order they began.

    A disruption is recovered when the same client opens a socket on the same path
    again (a page's event socket coming back says nothing of its kernel socket), or
    when it loads a page anew (a reload: recovered, by another road, and said so)."""
    by_client: dict[tuple[str, str, str], list[tuple[SessionRow, Verdict]]] = defaultdict(list)
    for s, v in zip(sessions, verdicts, strict=True):
        by_client[s.client_key].append((s, v))
    found: list[Disruption] = []
    for pairs in by_client.values():
        pairs.sort(key=lambda p: (p[0].started_at or 0.0, p[0].id or 0))
        # One client may have several disruptions at once: two tabs of one browser
        # dropped by the same outage. Its next accepted session ends all of them.
        pending: list[Disruption] = []
        for s, v in pairs:
            start = s.started_at or 0.0
            if pages is not None:
                _reloaded(pending, pages, s, start)
            # What failed on a path comes back, or is retried, on that path.
            due = [d for d in pending if start >= d.began and d.path == s.path]
            for d in due:
                d.attempts.append(start)
                if s.accepted:
                    d.recovered_at = start
                else:
                    d.retries.append((s.id or 0, s.handshake_status or 0))
            pending = [d for d in pending if d.recovered_at is None]
            if due and not s.accepted:
                continue  # a retry, not a new disruption
            if v.category in DISRUPTIONS and (s.ended_at is not None or not s.accepted):
                began = disconnect_at(s, facts.get(s.id or 0)) if s.accepted else start
                disruption = Disruption(
                    s.id or 0, v.category, s.client_key, s.client_addr or "", s.path or "",
                    began, fault_id=s.fault_id,
                )  # fmt: skip
                pending.append(disruption)
                found.append(disruption)
    found.sort(key=lambda d: d.began)
    return found


def _reloaded(pending: list[Disruption], pages: Pages, s: SessionRow, start: float) -> None:
    """Disruptions of this client that a page load before `start` ended."""
    for d in pending:
        load = pages.next_load(client_of(s), d.began)
        if d.recovered_at is None and load is not None and load[0] <= start:
            d.recovered_at = load[0]
            d.by_reload = True


def restarts(found: Sequence[Disruption]) -> dict[int, str]:
    """Drops the server came back from after refusing retries with 502/503: restarts."""
    return {
        d.session_id: "server_restart"
        for d in found
        if d.kind == "server_drop"
        and d.recovered_at is not None
        and any(status in DOWN for _, status in d.retries)
    }


def incidents(found: Sequence[Disruption]) -> list[Incident]:
    """Server-side disruptions that overlap in time, across clients.

    One session's failure alone (a 500 on a wrong path) is not an incident: it
    takes several sessions, a restart, or retries refused while the server was down.
    """
    out: list[Incident] = []
    for d in sorted((d for d in found if d.kind in SERVER_SIDE), key=lambda d: d.began):
        # Part of it while it lasts, or when it began with it; once every client is
        # back, what fails next is another story.
        if out and (d.began <= out[-1].ended or d.began <= out[-1].began + SLACK):
            out[-1].disruptions.append(d)
            out[-1].ended = max(out[-1].ended, d.ended)
        else:
            out.append(Incident(d.began, d.ended, [d]))
    return [i for i in out if i.outage]


def summary(found: Sequence[Disruption]) -> dict[str, Any]:
    """Recovery after failures (not navigations, not injected faults)."""
    failures = [d for d in found if d.failure]
    times = sorted(d.recovery for d in failures if d.recovery is not None)
    return {
        "disruptions": len(failures),
        "recovered": len(times),
        "median_seconds": percentile(times, 50),
        "p95_seconds": percentile(times, 95),
        "max_seconds": times[-1] if times else None,
        "never_recovered": [d.session_id for d in failures if d.recovered_at is None],
    }
