"""Questions asked of a recording: which sessions, which failures, how did clients recover."""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import gc
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sentinel_ws_proxy import present
from sentinel_ws_proxy.analysis import evidence, facts
from sentinel_ws_proxy.analysis.advice import ADVICE
from sentinel_ws_proxy.analysis.classify import (
    CATEGORIES,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_RECONNECT_WINDOW,
    NOT_FAILURES,
    Reconnects,
    Verdict,
    classify_all,
)
from sentinel_ws_proxy.analysis.facts import SessionFacts
from sentinel_ws_proxy.analysis.pages import Pages
from sentinel_ws_proxy.analysis.pages import group as group_pages
from sentinel_ws_proxy.analysis.recovery import (
    Disruption,
    disruptions,
    incidents,
    restarts,
    summary,
)
from sentinel_ws_proxy.recording.reader import Recording
from sentinel_ws_proxy.recording.schema import SessionRow

EXAMPLES = 5


@dataclass(frozen=True)
class Window:
    """Which sessions to look at, and the classification thresholds."""

    since: float | None = None
    until: float | None = None
    run_id: int | None = None
    reconnect_window: float = DEFAULT_RECONNECT_WINDOW
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT


# Thresholds a recording may carry in its meta table (the demo's idle timeout is 1.5 s).
RECORDED_THRESHOLDS = ("reconnect_window", "idle_timeout")


def recorded_thresholds(recording: Recording) -> dict[str, float]:
    """The classification thresholds the recording was made for, if it says."""
    found = {}
    for name in RECORDED_THRESHOLDS:
        try:
            value = float(recording.meta(name) or "")
        except ValueError:
            continue
        if value >= 0:
            found[name] = value
    return found


@dataclass
class Classified:
    summaries: list[SessionRow]
    verdicts: list[Verdict]
    reconnects: Reconnects
    facts: dict[int, SessionFacts] = field(default_factory=dict)
    disruptions: list[Disruption] = field(default_factory=list)
    pages: Pages = field(default_factory=lambda: Pages([], {}, {}))

    def pairs(self) -> list[tuple[SessionRow, Verdict]]:
        return list(zip(self.summaries, self.verdicts, strict=False))


def classify_sessions(
    summaries: list[SessionRow],
    facts: dict[int, SessionFacts],
    window: Window = Window(),
    loads: Sequence[tuple[float, str, str, str | None]] = (),
) -> Classified:
    """Verdicts with their evidence, and the disruptions they make (pure: no file).
    `loads`: the document loads the proxy saw (recording.document_loads())."""
    pages = group_pages(summaries, loads)
    verdicts, reconnects = classify_all(
        summaries,
        facts=facts,
        pages=pages,
        reconnect_window=window.reconnect_window,
        idle_timeout=window.idle_timeout,
    )
    verdicts = evidence.attach(summaries, verdicts, facts)
    found = disruptions(summaries, verdicts, facts, pages)
    renamed = restarts(found)
    if renamed:
        # A drop the server came back from after refusing retries with 502/503 was a restart.
        verdicts = [
            replace(
                v,
                category=renamed[v.session_id],
                explanation=v.explanation + "; the retries were refused with 502/503 until "
                "the server was back: a restart",
            )
            if v.session_id in renamed
            else v
            for v in verdicts
        ]
        for d in found:
            d.kind = renamed.get(d.session_id, d.kind)
    return Classified(summaries, verdicts, reconnects, facts, found, pages)


def classify_recording(recording: Recording, window: Window = Window()) -> Classified:
    # Classifying makes hundreds of thousands of objects that live on: the cyclic
    # collector would walk them again and again (40% of the time at 100,000 sessions).
    with collector_paused():
        summaries = recording.summaries(
            since=window.since, until=window.until, run_id=window.run_id
        )
        return classify_sessions(
            summaries, facts.gather(recording, summaries), window, recording.document_loads()
        )


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def select_sessions(
    classified: Classified,
    *,
    failed: bool = False,
    close_codes: tuple[int, ...] = (),
    path_glob: str | None = None,
    client: str | None = None,
    limit: int | None = None,
) -> list[tuple[SessionRow, Verdict]]:
    """The matching sessions in time order; with a limit, the most recent ones."""
    chosen = [
        (s, v)
        for s, v in classified.pairs()
        if (not failed or v.category not in NOT_FAILURES)
        and (not close_codes or s.close_code in close_codes)
        and (path_glob is None or fnmatch.fnmatchcase(s.path, path_glob))
        and (client is None or s.client_addr == client)
    ]
    return chosen[-limit:] if limit else chosen


@dataclass
class FailureReport:
    classified: Classified
    window: Window
    http_failures: list[dict[str, Any]] = field(default_factory=list)

    @functools.cached_property
    def by_category(self) -> dict[str, list[Verdict]]:
        """The verdicts of each category present, in time order, in CATEGORIES' order."""
        found: dict[str, list[Verdict]] = {c: [] for c in CATEGORIES}
        for v in self.classified.verdicts:
            found[v.category].append(v)
        return {c: verdicts for c, verdicts in found.items() if verdicts}

    @property
    def counts(self) -> dict[str, int]:
        return {c: len(verdicts) for c, verdicts in self.by_category.items()}

    @property
    def recovery(self) -> list[dict[str, Any]]:
        """Every disruption and how that client recovered (injected faults included)."""
        return [d.as_json() for d in self.classified.disruptions if d.kind != "navigation"]

    def worst_recoveries(self, n: int) -> tuple[list[dict[str, Any]], int]:
        """The `n` disruptions that went worst (never recovered, then slowest), and how
        many there are in all."""
        found = [d for d in self.classified.disruptions if d.kind != "navigation"]
        found.sort(key=lambda d: (d.recovered_at is not None, -(d.recovery or 0.0), d.began))
        return [d.as_json() for d in found[:n]], len(found)

    @property
    def incidents(self) -> list[dict[str, Any]]:
        return [i.as_json() for i in incidents(self.classified.disruptions)]

    @property
    def recovery_summary(self) -> dict[str, Any]:
        return summary(self.classified.disruptions)

    def examples(self, category: str, n: int = EXAMPLES) -> list[int]:
        return [v.session_id for v in self.by_category.get(category, [])[:n]]

    def evidence(self, category: str, n: int = 3) -> list[str]:
        """The distinct evidence lines of a category's sessions, most common first."""
        found = Counter(line for v in self.by_category.get(category, []) for line in v.evidence)
        return [line for line, _ in found.most_common(n)]

    def pages_in(self, category: str) -> int:
        """How many pages the sessions of a category belong to."""
        of = self.classified.pages.of_session
        return len(
            {of.get(v.session_id, -v.session_id) for v in self.by_category.get(category, [])}
        )

    @functools.cached_property
    def retries(self) -> frozenset[int]:
        """Refused handshakes that were a client's retries after a disruption: the
        disruption's, measured by its recovery, not failures of their own."""
        return frozenset(i for d in self.classified.disruptions for i, _ in d.retries)

    @property
    def failures(self) -> int:
        """Sessions that failed, a client's refused retries during a disruption left out."""
        return sum(
            1 for v in self.classified.verdicts if v.failure and v.session_id not in self.retries
        )

    @property
    def expected(self) -> dict[str, int]:
        """The expected endings that are disconnects: navigations, tabs closed, ..."""
        return {c: n for c, n in self.counts.items() if c in NOT_FAILURES and c != "clean"}

    def as_json(self) -> dict[str, Any]:
        summaries = self.classified.summaries
        return {
            "categories": self.counts,
            "failures": self.failures,
            "refused_retries": len(self.retries),
            "expected": self.expected,
            "sessions": [
                {
                    "id": v.session_id,
                    **present.verdict(v),  # type: ignore[dict-item]
                    "started_at": s.started_at,
                    "ended_at": s.ended_at,
                    "client_addr": s.client_addr,
                    "path": s.path,
                    "handshake_status": s.handshake_status,
                    "close_code": s.close_code,
                    "closed_by": s.closed_by,
                    "page": self.classified.pages.of_session.get(v.session_id),
                    "retry": v.session_id in self.retries,
                }
                for s, v in zip(summaries, self.classified.verdicts, strict=False)
            ],
            "reconnects": self.classified.reconnects.as_dict(),
            "pages": [p.as_json() for p in self.classified.pages.pages],
            "recovery": self.recovery,
            "recovery_summary": self.recovery_summary,
            "incidents": self.incidents,
            "http_failures": self.http_failures,
            "advice": {
                c: {
                    "title": ADVICE[c].title,
                    "failure": c not in NOT_FAILURES,
                    "evidence": self.evidence(c),
                    "causes": list(ADVICE[c].causes),
                    "fixes": list(ADVICE[c].fixes),
                    "examples": self.examples(c),
                }
                for c in self.counts
            },
            "thresholds": {
                "reconnect_window": self.window.reconnect_window,
                "idle_timeout": self.window.idle_timeout,
            },
        }


def http_failures(recording: Recording, sessions: list[SessionRow], window: Window) -> list[dict]:
    """Failed plain HTTP requests on the sockets' paths, or on Socket.IO/SockJS transports."""
    return recording.failed_http(
        sorted({s.path for s in sessions if s.path}),
        since=window.since,
        until=window.until,
        run_id=window.run_id,
    )


def failure_report(recording: Recording, window: Window = Window()) -> FailureReport:
    classified = classify_recording(recording, window)
    return FailureReport(classified, window, http_failures(recording, classified.summaries, window))
