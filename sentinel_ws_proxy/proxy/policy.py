"""What one direction of a relayed WebSocket does with each frame, without I/O.

When a direction forwards frame by frame (a message fault, a stall, ``--max-message``;
see proxy/relay.py), the relay asks its :class:`FramePolicy` about each frame twice at
most: once its header has been read and, for a frame held back until it is whole, once
it is complete. The answer is a :data:`Verdict`: forward it (from a release time on),
discard it, hold it until it is whole, or refuse it as too big (the relay then closes
the session with 1009). With the verdict comes the fault that acted and its effect
(faults/actions.py: ``drop``, ``delay``, ``stall``), which the recording keeps in
``frames.fault_id`` and ``frames.fault_action``.

The message faults themselves are a plug-in (faults/engine.py) reached through
:class:`MessageFaults`; the policy keeps what spans frames: which fault stalls this
direction, the dropped message whose fragments follow, the current message's size.
Nothing here reads a clock or touches a socket (tests/test_policy.py).
"""

from __future__ import annotations

from typing import Any, Protocol

from sentinel_ws_proxy.events import Frame
from sentinel_ws_proxy.faults.actions import DELAY, DROP, STALL, Decision
from sentinel_ws_proxy.protocol import payload_bytes
from sentinel_ws_proxy.proxy.frames import CLOSE, FrameHeader

FORWARD, DISCARD, HOLD, TOO_BIG = 0, 1, 2, 3
HOLD_LIMIT = 1024 * 1024  # a drop fault with match= looks at frames up to this size

# (FORWARD/DISCARD/HOLD/TOO_BIG, (fault id, effect) or None, release time)
Verdict = tuple[int, tuple[int, str] | None, float]
DISCARDED: Verdict = (DISCARD, None, 0.0)
REFUSED: Verdict = (TOO_BIG, None, 0.0)


class MessageFaults(Protocol):
    """What the policy asks of the fault engine (faults/engine.py)."""

    message_faults: list[Any]  # the faults checked per frame; empty: none

    def matches_payload(self, direction: str) -> bool: ...

    def on_frame(
        self, relay: Any, direction: str, payload: bytes, size: int
    ) -> tuple[Decision, int] | None: ...


class FramePolicy:
    """One direction's rules for frames: size limit, stall, message faults."""

    __slots__ = (
        "connection",
        "direction",
        "dropping",
        "faults",
        "max_message",
        "message_size",
        "stalled_by",
    )

    def __init__(
        self,
        direction: str,
        *,
        max_message: int = 0,
        faults: MessageFaults | None = None,
        connection: Any = None,
    ):
        self.direction = direction
        self.max_message = max_message
        self.faults = faults
        self.connection = connection  # what the fault engine is told the frame belongs to
        self.stalled_by: int | None = None  # the stall fault holding this direction back
        self.dropping: tuple[int, str] | None = None  # a dropped message's later fragments
        self.message_size = 0  # bytes of the current message's frames so far (--max-message)

    def stall(self, fault_id: int) -> None:
        self.stalled_by = fault_id

    def unstall(self) -> None:
        self.stalled_by = None

    def decide(self, h: FrameHeader, frame: Frame | None, release_at: float, now: float) -> Verdict:
        """A frame's verdict once its header was read (`frame` None) or once it is whole.

        `release_at` is when the direction's previous frame may leave: frames keep their
        order, so none leaves before it.
        """
        opcode = h.opcode
        release = max(release_at, now)
        if opcode in (0, 1, 2) and self.max_message:
            # The size the application would get: inflated, for a compressed message.
            before = self.message_size if opcode == 0 else 0
            if frame is not None:
                size = before + frame.size if h.compressed else 0
            elif h.compressed and h.length <= HOLD_LIMIT:
                return HOLD, None, release  # judged once inflated
            else:
                size = before + h.length
            if size > self.max_message:
                return REFUSED
        if self.stalled_by is not None and opcode != CLOSE:
            return DISCARD, (self.stalled_by, STALL), 0.0
        if opcode in (1, 2):
            self.dropping = None
        elif opcode == 0 and self.dropping is not None:
            return DISCARD, self.dropping, 0.0
        faults = self.faults
        if faults is None or not faults.message_faults or opcode == CLOSE:
            return FORWARD, None, release
        if frame is None and h.length <= HOLD_LIMIT and faults.matches_payload(self.direction):
            return HOLD, None, release
        payload = h.prefix if frame is None else payload_bytes(frame.payload)
        found = faults.on_frame(self.connection, self.direction, payload, h.length)
        if found is None:
            return FORWARD, None, release
        decision, fault_id = found
        if decision.drop:
            if opcode in (1, 2) and not h.fin:
                self.dropping = (fault_id, DROP)
            return DISCARD, (fault_id, DROP), 0.0
        return FORWARD, (fault_id, DELAY), max(release_at, decision.release_at)

    def seen(self, frame: Frame) -> None:
        """A frame went by whole: the current message's size so far."""
        if frame.opcode == "continuation":
            self.message_size += frame.size
        elif frame.opcode in ("text", "binary"):
            self.message_size = frame.size
