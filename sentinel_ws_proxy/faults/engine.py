"""Faults in action: which connections and frames a fault touches, and when.

The engine is a plug-in of the proxy (as toxiproxy's toxics are of its
links): the relay asks it once per connection (`attach`), per handshake
(`on_handshake`) and, only while message faults exist, per frame
(`on_frame`). Every firing is reported as an event, so it is recorded.

Timing, per connection: a connection fault (close, abort, stall) fires
`after` seconds after the connection opened (or once `after_messages`
messages went through), then again every `every` seconds while the
connection lives. `probability` is drawn once per connection for those, per
message for drop, delay and bandwidth. `count` caps the firings in total, `duration`
removes the fault after that long.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sentinel_ws_proxy.events import Event, FaultAdded, FaultFired, FaultRemoved
from sentinel_ws_proxy.faults.actions import Decision, Target
from sentinel_ws_proxy.faults.spec import FaultSpec


class Connection(Target, Protocol):
    """What the engine reads of a connection, besides what faults do to it (Target)."""

    path: str
    client_addr: str
    opened_at: float
    frames: dict[str, int]
    watch_messages: bool


@dataclass
class Fault:
    id: int
    spec: FaultSpec
    created_at: float
    rng: random.Random
    fired: int = 0
    removed_at: float | None = None
    # A message fault's own memory per connection (bandwidth: when the link is free).
    state: dict[Any, Any] = field(default_factory=dict)

    def live(self, now: float) -> bool:
        s = self.spec
        if self.removed_at is not None:
            return False
        if s.count is not None and self.fired >= s.count:
            return False
        return s.duration is None or now < self.created_at + s.duration

    def scope(self, path: str, client: str) -> bool:
        s = self.spec
        return (s.path is None or fnmatch.fnmatchcase(path, s.path)) and (
            s.client is None or s.client == client
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "spec": self.spec.text,
            "action": self.spec.name,
            "settings": self.spec.as_dict(),
            "created_at": self.created_at,
            "fired": self.fired,
            "active": self.live(time.time()),
        }


@dataclass
class Attachment:
    """A connection's share of the engine's attention."""

    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    message_triggers: list[Fault] = field(default_factory=list)


class FaultEngine:
    def __init__(self, emit: Callable[[Event], None], first_id: int = 1):
        self._emit = emit
        self._ids = itertools.count(first_id)
        self.faults: dict[int, Fault] = {}
        self.message_faults: list[Fault] = []  # delay, drop, bandwidth: checked per frame
        self._relays: dict[int, Connection] = {}
        self._attached: dict[int, Attachment] = {}

    # -- managing faults ------------------------------------------------------

    def add(self, spec: FaultSpec) -> Fault:
        now = time.time()
        fault = Fault(next(self._ids), spec, now, random.Random(spec.seed))
        self.faults[fault.id] = fault
        if spec.per_message:
            self.message_faults.append(fault)
        self._emit(FaultAdded(fault.id, now, spec.text))
        if spec.duration is not None:
            asyncio.get_running_loop().call_later(spec.duration, self.remove, fault.id)
        if spec.action.kind == "connection":
            for relay in list(self._relays.values()):
                self._arm(fault, relay, self._attachment(relay))
        return fault

    def act(self, relay: Connection, spec: FaultSpec) -> Fault:
        """Apply a connection fault to one live connection, once, now."""
        now = time.time()
        fault = Fault(next(self._ids), spec, now, random.Random(spec.seed))
        self.faults[fault.id] = fault
        self._emit(FaultAdded(fault.id, now, f"{spec.text} (session {relay.session_id})"))
        attachment = self._attached.get(relay.session_id, Attachment())
        self._strike(fault, relay, attachment)
        # One-off: gone from the list at once, while a stall it began goes on.
        self.remove(fault.id)
        return fault

    def remove(self, fault_id: int) -> bool:
        fault = self.faults.pop(fault_id, None)
        if fault is None:
            return False
        fault.removed_at = time.time()
        if fault in self.message_faults:
            self.message_faults.remove(fault)
        self._emit(FaultRemoved(fault_id, fault.removed_at))
        return True

    def clear(self) -> int:
        ids = list(self.faults)
        for fault_id in ids:
            self.remove(fault_id)
        return len(ids)

    def listing(self) -> list[dict[str, Any]]:
        return [f.as_json() for f in self.faults.values()]

    def fire(self, fault: Fault, session_id: int | None, action: str, detail: str = "") -> None:
        fault.fired += 1
        self._emit(FaultFired(fault.id, session_id, time.time(), action, detail))

    # -- handshakes -------------------------------------------------------------

    def on_handshake(self, session_id: int, path: str, client: str) -> Rejection | None:
        """A fault's answer to this handshake instead of the upstream's, if any."""
        now = time.time()
        for fault in list(self.faults.values()):
            s = fault.spec
            if s.action.kind != "handshake" or not fault.live(now):
                continue
            if not fault.scope(path, client) or fault.rng.random() >= s.probability:
                continue
            status, headers = s.action.rejection()
            self.fire(fault, session_id, s.name, f"answered {status}")
            return Rejection(fault.id, s.text, status, headers)
        return None

    # -- connections ----------------------------------------------------------------

    def attach(self, relay: Connection) -> None:
        self._relays[relay.session_id] = relay
        for fault in list(self.faults.values()):
            if fault.spec.action.kind == "connection":
                self._arm(fault, relay, self._attachment(relay))

    def _attachment(self, relay: Connection) -> Attachment:
        # Made only for connections a fault looks at: idle ones cost nothing here.
        return self._attached.setdefault(relay.session_id, Attachment())

    def detach(self, relay: Connection) -> None:
        self._relays.pop(relay.session_id, None)
        attachment = self._attached.pop(relay.session_id, None)
        if attachment is not None:
            for timer in attachment.timers:
                timer.cancel()
        for fault in self.message_faults:
            for key in [k for k in fault.state if k[0] == relay.session_id]:
                del fault.state[key]

    def _arm(self, fault: Fault, relay: Connection, attachment: Attachment) -> None:
        s = fault.spec
        if not fault.live(time.time()) or not fault.scope(relay.path, relay.client_addr):
            return
        if fault.rng.random() >= s.probability:
            return  # this connection was spared
        if s.after_messages is not None:
            attachment.message_triggers.append(fault)
            relay.watch_messages = True
            return
        delay = max(0.0, relay.opened_at + s.after - time.time())
        self._schedule(fault, relay, attachment, delay)

    def _schedule(
        self, fault: Fault, relay: Connection, attachment: Attachment, delay: float
    ) -> None:
        loop = asyncio.get_running_loop()
        attachment.timers.append(loop.call_later(delay, self._strike, fault, relay, attachment))

    def _strike(self, fault: Fault, relay: Connection, attachment: Attachment) -> None:
        if relay.session_id not in self._relays or not fault.live(time.time()):
            return
        action = fault.spec.action
        # Fired before it acts: the recording says why before the frames it causes.
        self.fire(fault, relay.session_id, action.name, action.describe())
        action.strike(relay, fault.id)
        ending = action.after_stall()
        if ending is not None:
            loop = asyncio.get_running_loop()
            attachment.timers.append(loop.call_later(ending[1], self._then, fault, relay))
        if fault.spec.every is not None and action.repeats:
            self._schedule(fault, relay, attachment, fault.spec.every)

    def _then(self, fault: Fault, relay: Connection) -> None:
        if relay.session_id not in self._relays:
            return
        action = fault.spec.action
        ending = action.after_stall()
        assert ending is not None
        self.fire(fault, relay.session_id, ending[0], f"after a {ending[1]:g} s stall")
        action.end(relay, fault.id)

    def on_message(self, relay: Connection) -> None:
        """Count-based triggers: called per frame only on connections that have one."""
        attachment = self._attached.get(relay.session_id)
        if attachment is None:
            return
        seen = relay.frames["c2s"] + relay.frames["s2c"]
        for fault in list(attachment.message_triggers):
            if seen >= (fault.spec.after_messages or 0):
                attachment.message_triggers.remove(fault)
                self._strike(fault, relay, attachment)

    # -- frames ------------------------------------------------------------------------

    def matches_payload(self, direction: str) -> bool:
        """Does a fault look at payloads in this direction (so frames wait to be seen)?"""
        return any(
            f.spec.action.needs_payload() and f.spec.applies_to(direction)
            for f in self.message_faults
        )

    def on_frame(
        self, relay: Connection, direction: str, payload: bytes, size: int
    ) -> tuple[Decision, int] | None:
        """What the message faults do to this frame, and which fault did it, or None."""
        now = time.time()
        held, held_by = 0.0, None
        for fault in self.message_faults:
            s = fault.spec
            if not s.applies_to(direction) or not fault.live(now):
                continue
            if not fault.scope(relay.path, relay.client_addr) or now < relay.opened_at + s.after:
                continue
            seen = relay.frames["c2s"] + relay.frames["s2c"]
            if s.after_messages is not None and seen < s.after_messages:
                continue
            if fault.rng.random() >= s.probability:
                continue
            key = (relay.session_id, direction)
            found = s.action.on_frame(
                fault.state, key, direction, payload, size, now, fault.rng.random()
            )
            if found is None:
                continue
            self.fire(fault, relay.session_id, found.effect, found.detail)
            if found.drop:
                return found, fault.id
            if found.release_at > held:
                held, held_by = found.release_at, fault.id
        return None if held_by is None else (Decision(release_at=held), held_by)


@dataclass(frozen=True)
class Rejection:
    """A fault's answer to a handshake, for the proxy to send."""

    fault_id: int
    spec: str
    status: int
    headers: dict[str, str]
