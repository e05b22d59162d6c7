"""MessagePack messages of no particular protocol, shown as JSON.

Only binary messages; a buffer is MessagePack when it unpacks whole (no bytes left over).
``text`` is the value as JSON (bytes as ``{"$base64": ...}``, extension types as
``{"$ext": code, "$base64": ...}``, non-string map keys as their JSON), and ``kind`` follows
the JSON decoder's rule (a ``type``/``event``/``action`` key's value). Sniffed only when
every binary first message unpacks whole to a non-empty map or array. No events or
endings; redacts nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sentinel_ws_proxy.decoders import _util
from sentinel_ws_proxy.decoders.base import Decoded
from sentinel_ws_proxy.decoders.json_ import kind_of

NAME = "msgpack"
# Reads any such payload; says nothing of why a session ended (readers skip it there).
GENERIC = True
SUBPROTOCOLS = ("msgpack", "messagepack")
_FAILED = object()


def unpack(raw: bytes) -> Any:
    """The value raw holds whole, or _FAILED."""
    try:
        import msgpack

        return msgpack.unpackb(raw, raw=False, strict_map_key=False, unicode_errors="replace")
    except Exception:
        return _FAILED


def sniff(path: str, query: str, first: Sequence[tuple[str, Any]]) -> bool:
    binary = [p for _, p in _util.firsts(first) if isinstance(p, bytes)]
    if not binary:
        return False
    for raw in binary:
        if len(raw) < 2 or raw[0] not in _CONTAINERS:
            return False
        value = unpack(raw)
        if not isinstance(value, (dict, list)) or not value:
            return False
    return True


# fixmap, fixarray, array16/32, map16/32
_CONTAINERS = frozenset([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    if not isinstance(payload, (bytes, bytearray)) or not payload:
        return None
    value = unpack(bytes(payload))
    if value is _FAILED:
        return None
    text = _util.dumps(value)
    return Decoded(NAME, kind_of(value), _util.short(text), {}, text)
