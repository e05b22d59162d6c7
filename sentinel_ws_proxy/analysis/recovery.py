"""How clients recovered from injected faults: did they come back, how fast, with what backoff.

An incident starts at a session a fault ended (or a handshake a fault
refused) and runs through that client's following attempts until one is
accepted. The gaps between attempts show the
client's backoff: growing, capped, constant, or giving up.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sentinel_ws_proxy.recording.schema import SessionRow

GROWTH = 1.3  # a gap at least this much longer than the one before counts as growing
SAME = 0.15  # gaps within 15% of each other count as the same


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


def recovery(sessions: Sequence[SessionRow]) -> list[dict[str, Any]]:
    by_client: dict[tuple[str, str, str], list[SessionRow]] = defaultdict(list)
    for s in sorted(sessions, key=lambda s: (s.started_at, s.id)):
        by_client[s.client_key].append(s)
    incidents = []
    for group in by_client.values():
        i = 0
        while i < len(group):
            start = group[i]
            if start.fault_id is None:
                i += 1
                continue
            attempts, gaps, recovered = [], [], None
            previous_end = start.ended_at or start.started_at
            j = i + 1
            while j < len(group):
                attempt = group[j]
                attempts.append(attempt.id)
                gaps.append(round(max(0.0, attempt.started_at - previous_end), 6))
                if attempt.accepted:
                    recovered = attempt  # a fault may end it later: that is the next incident
                    break
                previous_end = attempt.ended_at or attempt.started_at
                j += 1
            first_end = start.ended_at or start.started_at
            incidents.append(
                {
                    "session_id": start.id,
                    "fault_id": start.fault_id,
                    "client": start.client_addr,
                    "path": start.path,
                    "recovered": recovered is not None,
                    "recovered_after": None
                    if recovered is None
                    else round(recovered.started_at - first_end, 6),
                    "attempts": attempts,
                    "gaps": gaps,
                    "gave_up": recovered is None,
                    **describe_backoff(gaps),
                }
            )
            i = j if recovered is not None else len(group)
    return incidents
