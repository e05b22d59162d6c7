"""One line per session as it ends: what a user watching the proxy's terminal wants to see."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable

from sentinel_ws_proxy.events import Event, SessionClosed, SessionOpened
from sentinel_ws_proxy.protocol import close_code_name
from sentinel_ws_proxy.recording.redact import Redactor


class SessionLog:
    def __init__(self, write: Callable[[str], None], redactor: Redactor | None = None):
        self._write: Callable[[str], None] | None = write
        self._redactor = redactor or Redactor()
        self._open: dict[int, SessionOpened] = {}

    def handle(self, event: Event) -> None:
        if isinstance(event, SessionOpened):
            self._open[event.session_id] = event
        elif isinstance(event, SessionClosed):
            opened = self._open.pop(event.session_id, None)
            if opened is not None and self._write is not None:
                try:
                    self._write(describe(opened, event, self._redactor))
                except (BrokenPipeError, ValueError, OSError):
                    # Whoever read the log left (`proxy | head`): stop printing, keep relaying
                    # and recording; the exit line needs a stdout that goes somewhere too.
                    self._write = None
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, sys.stdout.fileno())


def describe(opened: SessionOpened, closed: SessionClosed, redactor: Redactor | None = None) -> str:
    path = (redactor or Redactor()).path(opened.path)
    head = f"#{opened.session_id} {opened.client_addr} {path}"
    if opened.handshake_status != 101:
        return f"{head}: handshake {opened.handshake_status} ({opened.error})"
    seconds = closed.ts - opened.ts
    code = closed.close_code
    how = "clean" if closed.clean else "abrupt"
    reason = f" {closed.close_reason!r}" if closed.close_reason else ""
    return (
        f"{head}: closed by {closed.closed_by} {code} {close_code_name(code)}{reason}"
        f" ({how}) after {seconds:.1f} s; frames: {closed.frames_c2s} to the server,"
        f" {closed.frames_s2c} to the client"
    )


class Notices:
    """One-line notices on stderr, each kind at most once a second with a count of the rest.

    What a remote client can cause (malformed requests, refused connections,
    failed accepts) must not flood the terminal nor print tracebacks.
    """

    def __init__(self, write: Callable[[str], None] | None = None, every: float = 1.0):
        self._write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self._every = every
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def say(self, kind: str, text: str) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -self._every) < self._every:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        held = self._held.pop(kind, 0)
        more = f" (and {held} more like it)" if held else ""
        self._last[kind] = now
        self._write(f"sentinel-ws: {text}{more}")


class OneLine(logging.Handler):
    """aiohttp's server log through the notices: a line per kind, no traceback."""

    def __init__(self, notices: Notices):
        super().__init__(logging.WARNING)
        self._notices = notices

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        text = record.getMessage() + (f": {type(exc).__name__}: {exc}" if exc else "")
        self._notices.say(record.getMessage(), " ".join(text.split()))


def quiet_aiohttp(notices: Notices) -> None:
    for name in ("aiohttp.server", "aiohttp.web", "aiohttp.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [OneLine(notices)]
        logger.propagate = False
