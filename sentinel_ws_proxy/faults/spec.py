"""The fault spec grammar, the same on the command line, in the API and in recordings:

    ACTION [key=value ...]

ACTION and its own settings come from faults/actions.py (a former name, such as
`latency` for `delay`, still parses: see ALIASES); every fault also takes a
scope (path=GLOB client=ADDR) and triggers (after=10s every=30s after_messages=N
probability=P count=N duration=60s seed=N). Values with spaces are quoted:
reason='server restart'.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sentinel_ws_proxy.errors import UserError
from sentinel_ws_proxy.faults.actions import (
    ACTIONS,
    ALIASES,
    Action,
    duration,
    integer,
    number,
    text,
)


def _at_least_one(value: str) -> int:
    found = integer(value)
    if found < 1:
        raise ValueError("must be at least 1")
    return found


def _probability(value: str) -> float:
    found = number(value)
    if not 0 <= found <= 1:
        raise ValueError("must be between 0 and 1")
    return found


def _positive_duration(value: str) -> float:
    found = duration(value)
    if found <= 0:
        raise ValueError("must be more than 0")
    return found


# Scope and triggers, which every fault takes.
COMMON: dict[str, Callable[[str], Any]] = {
    "path": text,
    "client": text,
    "after": duration,
    "every": _positive_duration,
    "after_messages": _at_least_one,
    "probability": _probability,
    "count": _at_least_one,
    "duration": duration,
    "seed": integer,
}


class FaultSpecError(UserError, ValueError):
    """A malformed spec; the message is one line for the user."""


@dataclass(frozen=True)
class FaultSpec:
    action: Action
    text: str
    path: str | None = None
    client: str | None = None
    after: float = 0.0
    every: float | None = None
    after_messages: int | None = None
    probability: float = 1.0
    count: int | None = None
    duration: float | None = None
    seed: int | None = None

    @property
    def name(self) -> str:
        return self.action.name

    @property
    def per_message(self) -> bool:
        return self.action.kind == "message"

    def applies_to(self, direction: str) -> bool:
        return getattr(self.action, "dir", "both") in ("both", direction)

    def as_dict(self) -> dict[str, Any]:
        common = {k: getattr(self, k) for k in COMMON if getattr(self, k) is not None}
        return {"action": self.name, **self.action.values(), **common}


def parse_spec(spec: str) -> FaultSpec:
    """Parse one spec string; raises FaultSpecError with a one-line explanation."""
    try:
        words = shlex.split(spec)
    except ValueError as exc:
        raise FaultSpecError(f"fault {spec!r}: {exc}") from None
    if not words:
        raise FaultSpecError("empty fault spec: expected one of " + ", ".join(ACTIONS))
    name, settings = words[0].lower(), words[1:]
    action = ACTIONS.get(ALIASES.get(name, name))
    if action is None:
        raise FaultSpecError(
            f"fault {spec!r}: unknown action {name!r} (one of {', '.join(ACTIONS)})"
        )
    own = action.settings()
    allowed = {**{k: s.parse for k, s in own.items()}, **COMMON}
    values: dict[str, Any] = {}
    for word in settings:
        key, sep, value = word.partition("=")
        if not sep:
            raise FaultSpecError(f"fault {spec!r}: expected key=value, got {word!r}")
        if key not in allowed:
            raise FaultSpecError(
                f"fault {spec!r}: {name} has no setting {key!r} "
                f"(it takes {', '.join(sorted(allowed))})"
            )
        try:
            values[key] = allowed[key](value)
        except ValueError as exc:
            raise FaultSpecError(f"fault {spec!r}: {key}={value!r} {exc}") from None
    try:
        chosen = action(**{k: v for k, v in values.items() if k in own})
        chosen.check()
    except ValueError as exc:
        raise FaultSpecError(f"fault {spec!r}: {exc}") from None
    common = {k: v for k, v in values.items() if k in COMMON}
    return FaultSpec(action=chosen, text=spec.strip(), **common)


def grammar() -> str:
    """Every action with its settings and what it does, for help texts."""
    lines = []
    for action in ACTIONS.values():
        lines += [f"  {action.usage()}", f"      {action.summary}"]
    lines.append(
        "  Scope: path=GLOB client=ADDR. Triggers: after=10s every=30s after_messages=N\n"
        "  probability=P count=N duration=60s seed=N. Values with spaces are quoted:\n"
        "  reason='server restart'."
    )
    return "\n".join(lines)
