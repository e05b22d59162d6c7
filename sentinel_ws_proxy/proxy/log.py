"""One line per session as it ends: what a user watching the proxy's terminal wants to see."""

from __future__ import annotations

from collections.abc import Callable

from sentinel_ws_proxy.events import Event, SessionClosed, SessionOpened
from sentinel_ws_proxy.protocol import close_code_name


class SessionLog:
    def __init__(self, write: Callable[[str], None]):
        self._write = write
        self._open: dict[int, SessionOpened] = {}

    def handle(self, event: Event) -> None:
        if isinstance(event, SessionOpened):
            self._open[event.session_id] = event
        elif isinstance(event, SessionClosed):
            opened = self._open.pop(event.session_id, None)
            if opened is not None:
                self._write(describe(opened, event))


def describe(opened: SessionOpened, closed: SessionClosed) -> str:
    head = f"#{opened.session_id} {opened.client_addr} {opened.path}"
    if opened.handshake_status != 101:
        return f"{head}: handshake {opened.handshake_status} ({opened.error})"
    seconds = closed.ts - opened.ts
    code = closed.close_code
    how = "clean" if closed.clean else "abrupt"
    reason = f" {closed.close_reason!r}" if closed.close_reason else ""
    return (
        f"{head}: closed by {closed.closed_by} {code} {close_code_name(code)}{reason}"
        f" ({how}) after {seconds:.1f} s; frames: {closed.frames_c2s} from client,"
        f" {closed.frames_s2c} from server"
    )
