"""What each fault does: one class per action, with only its own settings, its help and
its effect. The grammar, the engine, the admin API's list and the CLI's help all come
from ACTIONS, so a new kind of fault is one class here (toxiproxy's toxics are the model).

An action acts through small interfaces: a `Target` for connection faults (the relay
offers inject_close, inject_abort and stall) and a `Decision` it returns for message
faults (drop this frame, or hold it until a moment). It never reaches into the relay.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol

from websockets.frames import EXTERNAL_CLOSE_CODES

# The fault vocabulary readers share: one name per effect (and the names of old recordings).
from sentinel_ws_proxy.protocol import DELAY, DROP, STALL

# Close codes an endpoint may put in a close frame (1005, 1006, 1015 may not).
SENDABLE = EXTERNAL_CLOSE_CODES
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmg]?)(i?b)?(?:/s)?$", re.IGNORECASE)


class Target(Protocol):
    """What a connection fault may do to a connection (the relay offers it)."""

    session_id: int

    def inject_close(self, code: int, reason: str, fault_id: int | None) -> None: ...

    def inject_abort(self, fault_id: int | None) -> None: ...

    def stall(self, direction: str, fault_id: int) -> None: ...


@dataclass(frozen=True)
class Decision:
    """What a message fault does to one frame."""

    drop: bool = False
    release_at: float = 0.0  # epoch seconds before which the frame may not leave
    detail: str = ""

    @property
    def effect(self) -> str:
        return DROP if self.drop else DELAY


# -- reading values -------------------------------------------------------------------


def duration(value: str) -> float:
    found = DURATION.match(value.strip())
    if not found:
        raise ValueError("is not a duration (10s, 500ms, 2m)")
    number, unit = found.groups()
    return float(number) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[unit]


def milliseconds(value: str) -> float:
    try:
        return float(value.removesuffix("ms"))
    except ValueError:
        raise ValueError("is not a number of milliseconds") from None


def number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError("is not a number") from None


def integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("is not a whole number") from None


def direction(value: str) -> str:
    if value not in ("c2s", "s2c", "both"):
        raise ValueError("must be c2s, s2c or both")
    return value


def close_code(value: str) -> int:
    code = integer(value)
    if code not in SENDABLE and not 3000 <= code <= 4999:
        raise ValueError("cannot be sent in a close frame")
    return code


def close_reason(value: str) -> str:
    if len(value.encode()) > 123:
        raise ValueError("must fit in a close frame (123 bytes)")
    return value


def rate(value: str) -> float:
    """Bytes per second: 10KB/s, 1.5MB/s, 500B/s (K, M, G are powers of 1024)."""
    found = RATE.match(value.strip())
    if not found or float(found.group(1)) <= 0:
        raise ValueError("is not a rate (10KB/s, 1MB/s, 500B/s)")
    amount, scale, _ = found.groups()
    return float(amount) * 1024 ** ("kmg".find(scale.lower()) + 1) if scale else float(amount)


def text(value: str) -> str:
    return value


@dataclass(frozen=True)
class Setting:
    parse: Callable[[str], Any]
    help: str
    shown: str  # how the usage line shows it: the default as one would write it


def setting(default: Any, parse: Callable[[str], Any], help: str, shown: str = "") -> Any:
    written = shown or (str(int(default)) if isinstance(default, float) else str(default))
    return field(default=default, metadata={"setting": Setting(parse, help, written)})


# -- the actions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One kind of fault. Subclasses declare their settings as fields (see `setting`)."""

    name: ClassVar[str]
    kind: ClassVar[str]  # "connection", "message" or "handshake"
    summary: ClassVar[str]  # what the client sees, in one line
    on_one_connection: ClassVar[bool] = False  # may act on one live connection now
    repeats: ClassVar[bool] = False  # every= strikes the same connection again

    @classmethod
    def settings(cls) -> dict[str, Setting]:
        return {f.name: f.metadata["setting"] for f in fields(cls) if "setting" in f.metadata}

    @classmethod
    def usage(cls) -> str:
        shown = " ".join(f"{k}={s.shown}" for k, s in cls.settings().items())
        return f"{cls.name} {shown}".strip()

    def check(self) -> None:
        """Settings that only make sense together; raise ValueError to refuse."""

    def values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # Effects: each kind overrides its own.
    def describe(self) -> str:
        """What a connection fault is about to do, in words (recorded with its firing)."""
        return ""

    def strike(self, target: Target, fault_id: int) -> None:
        """A connection fault acts."""
        raise NotImplementedError

    def after_stall(self) -> tuple[str, float] | None:
        """A stall's ending: (close or abort, after how long), if it has one."""
        return None

    def end(self, target: Target, fault_id: int) -> None:
        """The ending after_stall() announced."""
        raise NotImplementedError

    def on_frame(
        self, state: dict[Any, Any], key: Any, direction: str, payload: bytes, size: int,
        now: float, draw: float,
    ) -> Decision | None:  # fmt: skip
        raise NotImplementedError

    def needs_payload(self) -> bool:
        """Must a frame be seen whole before this fault can decide (drop match=)?"""
        return False

    def rejection(self) -> tuple[int, dict[str, str]]:
        raise NotImplementedError


@dataclass(frozen=True)
class Close(Action):
    name = "close"
    kind = "connection"
    summary = (
        "a close frame with that code; the upstream gets 1001, as after a server crash or restart"
    )
    on_one_connection = True
    code: int = setting(1011, close_code, "the close code the client gets")
    reason: str = setting("", close_reason, "the close reason the client gets", "TEXT")

    def describe(self) -> str:
        return f"client {self.code}, upstream 1001"

    def strike(self, target: Target, fault_id: int) -> None:
        target.inject_close(self.code, self.reason, fault_id)


@dataclass(frozen=True)
class Abort(Action):
    name = "abort"
    kind = "connection"
    summary = "both TCP connections cut with no close frame: 1006"
    on_one_connection = True

    def describe(self) -> str:
        return "both connections cut"

    def strike(self, target: Target, fault_id: int) -> None:
        target.inject_abort(fault_id)


@dataclass(frozen=True)
class Stall(Action):
    name = STALL
    kind = "connection"
    summary = (
        "nothing more in that direction while TCP stays open: a stale connection, the "
        "'failed to send' story; then=close or then=abort ends it after hold"
    )
    on_one_connection = True
    repeats = True
    dir: str = setting("s2c", direction, "which direction stops")
    then: str = setting(
        "", lambda v: _choice(v, ("close", "abort")), "close or abort after hold", "close|abort"
    )
    hold: float = setting(10.0, duration, "how long before then= acts", "10s")
    code: int = setting(1011, close_code, "with then=close: the close code")
    reason: str = setting("", close_reason, "with then=close: the close reason", "TEXT")

    def describe(self) -> str:
        return f"dir={self.dir}"

    def strike(self, target: Target, fault_id: int) -> None:
        target.stall(self.dir, fault_id)

    def after_stall(self) -> tuple[str, float] | None:
        return (self.then, self.hold) if self.then else None

    def end(self, target: Target, fault_id: int) -> None:
        if self.then == "close":
            target.inject_close(self.code, self.reason, fault_id)
        else:
            target.inject_abort(fault_id)


@dataclass(frozen=True)
class Delay(Action):
    name = DELAY
    kind = "message"
    summary = "each frame in that direction delayed (later frames wait behind it)"
    ms: float = setting(0.0, milliseconds, "delay in milliseconds", "200")
    jitter: float = setting(0.0, milliseconds, "up to this many ms more or less", "50")
    dir: str = setting("both", direction, "which direction")

    def on_frame(
        self, state: dict[Any, Any], key: Any, direction: str, payload: bytes, size: int,
        now: float, draw: float,
    ) -> Decision | None:  # fmt: skip
        extra = (self.ms + (2 * draw - 1) * self.jitter) / 1000
        if extra <= 0:
            return None
        return Decision(release_at=now + extra, detail=f"{direction}, {extra * 1000:.0f} ms")


@dataclass(frozen=True)
class Drop(Action):
    name = DROP
    kind = "message"
    summary = "matching messages (by substring of the payload) never arrive"
    dir: str = setting("both", direction, "which direction")
    match: str = setting("", text, "only messages whose payload holds this text", "TEXT")

    def needs_payload(self) -> bool:
        return bool(self.match)

    def on_frame(
        self, state: dict[Any, Any], key: Any, direction: str, payload: bytes, size: int,
        now: float, draw: float,
    ) -> Decision | None:  # fmt: skip
        if self.match and self.match.encode() not in payload:
            return None
        return Decision(drop=True, detail=f"{direction}, {size} bytes")


@dataclass(frozen=True)
class Bandwidth(Action):
    name = "bandwidth"
    kind = "message"
    summary = (
        "at most that many bytes per second in that direction: frames wait their turn, "
        "as on a slow link"
    )
    rate: float = setting(10240.0, rate, "bytes per second: 10KB/s, 1MB/s, 500B/s", "10KB/s")
    dir: str = setting("both", direction, "which direction")

    def on_frame(
        self, state: dict[Any, Any], key: Any, direction: str, payload: bytes, size: int,
        now: float, draw: float,
    ) -> Decision | None:  # fmt: skip
        # The link is busy until state[key]; this frame goes after, taking size/rate.
        ready = max(state.get(key, 0.0), now) + size / self.rate
        state[key] = ready
        return Decision(release_at=ready, detail=f"{direction}, {size} bytes at {self.rate:g} B/s")


@dataclass(frozen=True)
class Reject(Action):
    name = "reject"
    kind = "handshake"
    summary = "handshakes answered with that status (and Retry-After) without asking the upstream"
    status: int = setting(503, integer, "the HTTP status (400-599)")
    retry_after: int = setting(0, integer, "seconds for a Retry-After header (0: none)", "N")

    def check(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")

    def rejection(self) -> tuple[int, dict[str, str]]:
        extra = {"Retry-After": str(self.retry_after)} if self.retry_after else {}
        return self.status, extra


def _choice(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"must be {' or '.join(allowed)}")
    return value


ACTIONS: dict[str, type[Action]] = {
    action.name: action for action in (Close, Abort, Stall, Delay, Drop, Bandwidth, Reject)
}
# Former names a spec may still use: `latency ms=200` is `delay ms=200`.
ALIASES: dict[str, str] = {"latency": DELAY}


def actions_markdown() -> str:
    """The README's table of faults, made from ACTIONS."""
    lines = ["| fault | what the client sees | settings |", "|---|---|---|"]
    for action in ACTIONS.values():
        settings = "; ".join(f"`{k}`: {s.help}" for k, s in action.settings().items()) or "-"
        cells = (f"`{action.usage()}`", action.summary, settings)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(actions_markdown())
