"""The fault spec grammar, the same on the command line, in the API and in recordings.

    ACTION [key=value ...]

    close   code=1011 reason=TEXT          the client gets a close frame, the upstream 1001
    abort                                  both TCP connections cut, no close frame
    stall   dir=s2c then=close|abort hold=10s   stop forwarding, keep TCP open
    latency ms=200 jitter=50 dir=both      delay each frame
    drop    dir=both probability=P match=TEXT   drop matching messages
    reject  status=503 retry_after=N       refuse handshakes without asking the upstream

Scope: path=GLOB client=ADDR. Triggers: after=10s every=30s after_messages=N
probability=P count=N duration=60s seed=N. Values with spaces are quoted:
reason='server restart'.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass
from typing import Any

ACTIONS = ("close", "abort", "stall", "latency", "drop", "reject")
COMMON = {"path", "client", "after", "every", "after_messages", "probability", "count",
          "duration", "seed"}  # fmt: skip
SPECIFIC = {
    "close": {"code", "reason"},
    "abort": set(),
    "stall": {"dir", "then", "hold", "code", "reason"},
    "latency": {"dir", "ms", "jitter"},
    "drop": {"dir", "match"},
    "reject": {"status", "retry_after"},
}
# Close codes an endpoint may put in a close frame (1005, 1006, 1015 may not).
SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")


class FaultSpecError(ValueError):
    """A malformed spec; the message is one line for the user."""


@dataclass(frozen=True)
class FaultSpec:
    action: str
    text: str
    path: str | None = None
    client: str | None = None
    dir: str = "both"
    code: int = 1011
    reason: str = ""
    then: str | None = None
    hold: float = 10.0
    ms: float = 0.0
    jitter: float = 0.0
    match: str | None = None
    status: int = 503
    retry_after: int | None = None
    after: float = 0.0
    every: float | None = None
    after_messages: int | None = None
    probability: float = 1.0
    count: int | None = None
    duration: float | None = None
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def per_message(self) -> bool:
        return self.action in ("latency", "drop")

    def applies_to(self, direction: str) -> bool:
        return self.dir in ("both", direction)


def seconds(value: str, key: str, text: str) -> float:
    found = DURATION.match(value.strip())
    if not found:
        raise FaultSpecError(f"fault {text!r}: {key}={value!r} is not a duration (10s, 500ms, 2m)")
    number, unit = found.groups()
    return float(number) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[unit]


def parse_spec(text: str) -> FaultSpec:
    """Parse one spec string; raises FaultSpecError with a one-line explanation."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise FaultSpecError(f"fault {text!r}: {exc}") from None
    if not words:
        raise FaultSpecError("empty fault spec: expected one of " + ", ".join(ACTIONS))
    action, settings = words[0].lower(), words[1:]
    if action not in ACTIONS:
        raise FaultSpecError(
            f"fault {text!r}: unknown action {action!r} (one of {', '.join(ACTIONS)})"
        )
    allowed = COMMON | SPECIFIC[action]
    values: dict[str, Any] = {}
    for word in settings:
        key, sep, value = word.partition("=")
        if not sep:
            raise FaultSpecError(f"fault {text!r}: expected key=value, got {word!r}")
        if key not in allowed:
            raise FaultSpecError(
                f"fault {text!r}: {action} has no setting {key!r} "
                f"(it takes {', '.join(sorted(allowed))})"
            )
        values[key] = _convert(key, value, text)
    if action == "stall" and "dir" not in values:
        values["dir"] = "s2c"
    _check(action, values, text)
    return FaultSpec(action=action, text=text.strip(), **values)


def _convert(key: str, value: str, text: str) -> Any:
    try:
        if key in ("after", "every", "duration", "hold"):
            return seconds(value, key, text)
        if key in ("ms", "jitter", "probability"):
            return float(value.removesuffix("ms")) if key != "probability" else float(value)
        if key in ("code", "status", "retry_after", "after_messages", "count", "seed"):
            return int(value)
    except FaultSpecError:
        raise
    except ValueError:
        raise FaultSpecError(f"fault {text!r}: {key}={value!r} is not a number") from None
    return value


def _check(action: str, v: dict[str, Any], text: str) -> None:
    def bad(message: str) -> FaultSpecError:
        return FaultSpecError(f"fault {text!r}: {message}")

    if v.get("dir", "both") not in ("c2s", "s2c", "both"):
        raise bad("dir must be c2s, s2c or both")
    if not 0 <= v.get("probability", 1.0) <= 1:
        raise bad("probability must be between 0 and 1")
    if "code" in v and v["code"] not in SENDABLE and not 3000 <= v["code"] <= 4999:
        raise bad(f"code {v['code']} cannot be sent in a close frame")
    if action == "reject" and not 400 <= v.get("status", 503) <= 599:
        raise bad("status must be an HTTP error status (400-599)")
    if v.get("then") not in (None, "close", "abort"):
        raise bad("then must be close or abort")
    if len(v.get("reason", "").encode()) > 123:
        raise bad("reason must fit in a close frame (123 bytes)")
    for key in ("count", "after_messages"):
        if key in v and v[key] < 1:
            raise bad(f"{key} must be at least 1")
    if v.get("every") is not None and v["every"] <= 0:
        raise bad("every must be more than 0")
