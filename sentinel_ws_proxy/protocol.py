"""WebSocket protocol facts (RFC 6455), free of I/O."""

from __future__ import annotations

import struct
from http import HTTPStatus

from websockets.frames import CLOSE_CODE_EXPLANATIONS, CloseCode

# RFC 6455 section 7.4.1 and the IANA registry, as websockets names them. 1005,
# 1006 and 1015 never travel on the wire: they name what a peer observed.
# What the proxy records for an upgrade an upstream took and closed without answering (a
# dev server's proxy whose backend is down): reachable, but it said nothing.
CLOSED_WITHOUT_ANSWER = "the upstream accepted the connection and closed it without an answer"
NO_STATUS = CloseCode.NO_STATUS_RCVD
ABNORMAL = CloseCode.ABNORMAL_CLOSURE
GOING_AWAY = CloseCode.GOING_AWAY
MESSAGE_TOO_BIG = CloseCode.MESSAGE_TOO_BIG
# websockets says "OK" for 1000; the RFC's name reads better beside the others.
NAMES = {
    code: "normal closure" if code == CloseCode.NORMAL_CLOSURE else said.removesuffix(" [internal]")
    for code, said in CLOSE_CODE_EXPLANATIONS.items()
}


def close_code_name(code: int | None) -> str:
    """A readable name for a close code, including the private ranges."""
    if code is None:
        return "none"
    if code in NAMES:
        return NAMES[code]
    if 3000 <= code <= 3999:
        return "registered (library/framework)"
    if 4000 <= code <= 4999:
        return "private (application)"
    return "unknown"


def close_payload(code: int | None, reason: str = "") -> bytes:
    """The payload of a close frame; no code means an empty payload (seen as 1005)."""
    if code is None or code == NO_STATUS:
        return b""
    return struct.pack("!H", code) + reason.encode("utf-8")


def status_phrase(status: int | None, unknown: str = "") -> str:
    """The reason phrase of an HTTP status (404: "Not Found"), or `unknown`."""
    try:
        return HTTPStatus(status).phrase  # type: ignore[arg-type]
    except ValueError:
        return unknown


def payload_bytes(value: str | bytes | bytearray | memoryview | None) -> bytes:
    """A payload as bytes: text (as SQLite hands it back) in UTF-8, nothing as b""."""
    if value is None:
        return b""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


# What a fault did, one name per effect: the engine reports it (fault_events.action,
# besides close, abort and reject), and a frame it touched records it (frames.fault_action).
DROP, DELAY, STALL = "drop", "delay", "stall"
# frames.fault_action as recordings made before one name per effect stored it.
FORMER_EFFECTS = {"dropped": DROP, "delayed": DELAY, "stalled": STALL}


def effect_name(recorded: str | None) -> str | None:
    """A recorded fault effect under its one name, whichever recording it comes from."""
    return FORMER_EFFECTS.get(recorded, recorded) if recorded is not None else None
