"""Questions asked of a recording: which sessions, which failures, how did clients recover."""

from __future__ import annotations

import fnmatch
from collections import Counter
from dataclasses import dataclass
from typing import Any

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
from sentinel_ws_proxy.analysis.recovery import recovery
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


@dataclass
class Classified:
    summaries: list[SessionRow]
    verdicts: list[Verdict]
    reconnects: Reconnects

    def pairs(self) -> list[tuple[SessionRow, Verdict]]:
        return list(zip(self.summaries, self.verdicts, strict=False))


def classify_recording(recording: Recording, window: Window = Window()) -> Classified:
    summaries = recording.summaries(since=window.since, until=window.until, run_id=window.run_id)
    verdicts, reconnects = classify_all(
        summaries,
        reconnect_window=window.reconnect_window,
        idle_timeout=window.idle_timeout,
    )
    return Classified(summaries, verdicts, reconnects)


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

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(v.category for v in self.classified.verdicts)
        return {c: found[c] for c in CATEGORIES if found[c]}

    @property
    def recovery(self) -> list[dict[str, Any]]:
        return recovery(self.classified.summaries)

    def examples(self, category: str, n: int = EXAMPLES) -> list[int]:
        return [v.session_id for v in self.classified.verdicts if v.category == category][:n]

    @property
    def failures(self) -> int:
        return sum(n for c, n in self.counts.items() if c not in NOT_FAILURES)

    def as_json(self) -> dict[str, Any]:
        summaries = self.classified.summaries
        return {
            "categories": self.counts,
            "sessions": [
                {
                    "id": v.session_id,
                    "category": v.category,
                    "explanation": v.explanation,
                    "started_at": s.started_at,
                    "ended_at": s.ended_at,
                    "client_addr": s.client_addr,
                    "path": s.path,
                    "handshake_status": s.handshake_status,
                    "close_code": s.close_code,
                    "closed_by": s.closed_by,
                    "reconnect_gap": v.reconnect_gap,
                }
                for s, v in zip(summaries, self.classified.verdicts, strict=False)
            ],
            "reconnects": self.classified.reconnects.as_dict(),
            "recovery": self.recovery,
            "advice": {
                c: {
                    "title": ADVICE[c].title,
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


def failure_report(recording: Recording, window: Window = Window()) -> FailureReport:
    return FailureReport(classify_recording(recording, window), window)
