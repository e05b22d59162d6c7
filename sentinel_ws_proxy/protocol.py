"""WebSocket protocol facts (RFC 6455), free of I/O."""

from __future__ import annotations

import struct

# RFC 6455 section 7.4.1 and the IANA registry. 1005, 1006 and 1015 never
# travel on the wire: they name what a peer observed.
CLOSE_CODE_NAMES: dict[int, str] = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status received",
    1006: "abnormal closure",
    1007: "invalid frame payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake",
}

NO_STATUS = 1005
ABNORMAL = 1006
GOING_AWAY = 1001
MESSAGE_TOO_BIG = 1009


def close_code_name(code: int | None) -> str:
    """A readable name for a close code, including the private ranges."""
    if code is None:
        return "none"
    if code in CLOSE_CODE_NAMES:
        return CLOSE_CODE_NAMES[code]
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
