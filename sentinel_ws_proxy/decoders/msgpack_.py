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

from sentinel_ws_proxy.decoders import _binary
from sentinel_ws_proxy.decoders.base import Decoded

NAME = "msgpack"
# Reads any such payload; says nothing of why a session ended (readers skip it there).
GENERIC = True
SUBPROTOCOLS = ("msgpack", "messagepack")


def unpack(raw: bytes) -> Any:
    """The value raw holds whole, or _binary.FAILED."""
    try:
        import msgpack

        return msgpack.unpackb(raw, raw=False, strict_map_key=False, unicode_errors="replace")
    except Exception:
        return _binary.FAILED


def sniff(path: str, query: str, first: Sequence[tuple[str, Any]]) -> bool:
    return _binary.sniff(first, _container, unpack)


# fixmap, fixarray, array16/32, map16/32
_CONTAINERS = frozenset([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])


def _container(raw: bytes) -> bool:
    return raw[0] in _CONTAINERS


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    return _binary.decode(NAME, payload, unpack)
