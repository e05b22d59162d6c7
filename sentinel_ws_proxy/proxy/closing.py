"""How one relayed WebSocket ends: the close handshake as a state machine, without I/O.

The relay (proxy/relay.py) tells a :class:`Closing` what it saw on the wire: a close
frame going one way (and whether it was passed on), a close of the proxy's own sent,
a side's EOF, a side's connection lost, the close timer firing. Each call updates the
state and answers with the actions the relay then performs, in order: start the close
timer, send a side a close frame of the proxy's own, end a side's TCP connection once
everything queued for it is out, pass an EOF on, close or abort a connection, finish.

What it knows decides the recording: who closed first (``closed_by``), with which code
and reason, whether close frames went both ways (``clean``), and which fault ended the
session. As websockets keeps ``protocol.py`` apart from ``asyncio/``, nothing here
reads a clock or touches a socket, so every path is a unit test (tests/test_closing.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from sentinel_ws_proxy.events import ClosedBy
from sentinel_ws_proxy.protocol import ABNORMAL

Side = Literal["client", "server"]
CLIENT: Side = "client"
SERVER: Side = "server"
BOTH = frozenset((CLIENT, SERVER))


OTHER: dict[Side, Side] = {CLIENT: SERVER, SERVER: CLIENT}


def other(side: Side) -> Side:
    return OTHER[side]


# -- what the relay is asked to do ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Start the close timer (``--close-timeout``); `timer_fired` when it runs out."""


@dataclass(frozen=True, slots=True)
class SendClose:
    """Send `side` a close frame of the proxy's own, at its direction's next frame boundary."""

    side: Side
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class End:
    """End the TCP connection to `side` once everything queued for it has been written."""

    side: Side


@dataclass(frozen=True, slots=True)
class PassEof:
    """The other side's EOF goes on to `side` once everything queued for it is out
    (the relay then asks `eof_to` how)."""

    side: Side


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection to `side` now (its write buffer is flushed first)."""

    side: Side


@dataclass(frozen=True, slots=True)
class Abort:
    """Cut the connection to `side` now, unsent bytes and all."""

    side: Side


@dataclass(frozen=True, slots=True)
class Finish:
    """Both connections are gone: the session is over (`finish` says how)."""


Action = StartTimer | SendClose | End | PassEof | Close | Abort | Finish

# Actions are values: the usual ones are made once (a session's close costs no allocations).
START_TIMER = StartTimer()
FINISH = Finish()
END = {CLIENT: End(CLIENT), SERVER: End(SERVER)}
PASS_EOF = {CLIENT: PassEof(CLIENT), SERVER: PassEof(SERVER)}
END_BOTH = (END[CLIENT], END[SERVER])
CLOSE_BOTH = (Close(CLIENT), Close(SERVER))
ABORT = {CLIENT: Abort(CLIENT), SERVER: Abort(SERVER)}

# How an EOF reaches its sink (`eof_to`): not yet, by closing the connection, or by
# half-closing it (``write_eof``), so the sink may still send.
WAIT, CLOSE_NOW, WRITE_EOF = "wait", "close", "write_eof"


class Outcome(NamedTuple):
    """How the session ended, as recorded in ``sessions``."""

    close_code: int | None
    close_reason: str | None
    closed_by: ClosedBy
    clean: bool
    fault_id: int | None


class Closing:
    """The close handshake of one relayed WebSocket, seen from between its two ends."""

    __slots__ = (
        "by_proxy",
        "ended",
        "fault_id",
        "finished",
        "first",
        "got",
        "lost",
        "sent",
        "timing",
    )

    def __init__(self) -> None:
        # The first sign of an ending: (code, reason, closed by).
        self.first: tuple[int | None, str | None, ClosedBy] | None = None
        self.fault_id: int | None = None  # the fault that ended the session
        self.got: set[Side] = set()  # sides whose close frame was seen
        self.sent: set[Side] = set()  # sides that were sent a close frame (passed on or own)
        self.by_proxy = False  # the proxy sent closes of its own and awaits their answers
        self.ended: set[Side] = set()  # sides whose TCP stream ended (EOF)
        self.lost: set[Side] = set()  # sides whose connection is gone
        self.timing = False  # the close timer runs
        self.finished = False

    @property
    def answered(self) -> bool:
        """Both sides sent their close frame."""
        return self.got == BOTH

    def _begin(self, code: int | None, reason: str | None, by: ClosedBy, out: list[Action]) -> None:
        if self.first is None:
            self.first = (code, reason, by)
            self._timer(out)

    def _timer(self, out: list[Action]) -> None:
        if not self.timing and not self.finished:
            self.timing = True
            out.append(START_TIMER)

    def _end_if_answered(self, out: list[Action]) -> None:
        # Closes of the proxy's own were answered by both sides: as the client's
        # server, the proxy ends the TCP connections itself.
        if self.by_proxy and self.got == BOTH:
            out += END_BOTH

    # -- what the relay saw ----------------------------------------------------------------

    def close_frame(
        self, source: Side, code: int | None, reason: str | None, forwarded: bool
    ) -> list[Action]:
        """A close frame from `source`; `forwarded` if it was passed on to the other side."""
        out: list[Action] = []
        self.got.add(source)
        if forwarded:
            self.sent.add(OTHER[source])
        self._begin(code, reason, source, out)
        self._end_if_answered(out)
        return out

    def proxy_close(
        self,
        code: int,
        reason: str,
        closes: tuple[tuple[Side, int, str], ...],
        fault_id: int | None = None,
    ) -> list[Action]:
        """The proxy ends the session: `closes` are (side, code, reason) to send, in order;
        `code` and `reason` are recorded if nothing ended it before (nor `fault_id`)."""
        out: list[Action] = []
        if self.first is None and fault_id is not None:
            self.fault_id = fault_id
        self._begin(code, reason, "proxy", out)
        self.by_proxy = True
        out += (SendClose(side, c, r) for side, c, r in closes)
        self._end_if_answered(out)
        return out

    def close_sent(self, side: Side) -> None:
        """A close frame of the proxy's own went to `side`."""
        self.sent.add(side)

    def abort(self, fault_id: int | None) -> list[Action]:
        """Both connections cut with no close frame (a fault, a hurried stop)."""
        if self.finished:
            return []
        if self.first is None:
            self.fault_id = fault_id
            self.first = (ABNORMAL, "", "proxy")
        return [ABORT[CLIENT], ABORT[SERVER]]

    def eof(self, side: Side) -> list[Action]:
        """`side`'s TCP stream ended (it may still read)."""
        out: list[Action] = []
        self.ended.add(side)
        self._begin(ABNORMAL, "", side, out)  # its TCP ended before any close frame
        out.append(PASS_EOF[OTHER[side]])
        if self.ended | self.lost == BOTH:
            out += CLOSE_BOTH
        return out

    def eof_to(self, sink: Side, can_write_eof: bool) -> str:
        """How an EOF reaches `sink`: WAIT, CLOSE_NOW or WRITE_EOF."""
        if self.by_proxy and sink not in self.got:
            # The proxy's close to that side awaits its answer; closing now would make the
            # kernel reset a connection whose peer is still sending, losing our close frame.
            return WAIT
        if self.by_proxy or not can_write_eof or OTHER[sink] in self.lost:
            return CLOSE_NOW
        return WRITE_EOF

    def connection_lost(self, side: Side) -> list[Action]:
        """`side`'s connection is gone."""
        self.lost.add(side)
        if self.first is None:
            self.first = (ABNORMAL, "", side)
        if OTHER[side] in self.lost:
            return [FINISH]
        out: list[Action] = [END[OTHER[side]]]
        self._timer(out)
        return out

    def timer_fired(self) -> list[Action]:
        """A side did not finish closing in time: drop both."""
        self.timing = False
        return [ABORT[side] for side in (CLIENT, SERVER) if side not in self.lost]

    def finish(self) -> Outcome:
        self.finished = True
        code, reason, closed_by = self.first or (ABNORMAL, "", "proxy")
        clean = self.got == BOTH and self.sent == BOTH
        return Outcome(code, reason, closed_by, clean, self.fault_id)
