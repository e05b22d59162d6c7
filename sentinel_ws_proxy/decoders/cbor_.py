"""CBOR messages of no particular protocol, shown as JSON.

Only binary messages; a buffer is CBOR when it decodes whole (no bytes left over).
``text`` is the value as JSON (byte strings as ``{"$base64": ...}``, unknown tags as
``{"$tag": n, "value": ...}``, dates as ISO text), ``kind`` follows the JSON decoder's rule.
Sniffed only when every binary first message decodes whole to a non-empty map or array
(and is not MessagePack, which is tried first). No events or endings; redacts nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sentinel_ws_proxy.decoders import _util
from sentinel_ws_proxy.decoders.base import Decoded
from sentinel_ws_proxy.decoders.json_ import kind_of

NAME = "cbor"
# Reads any such payload; says nothing of why a session ended (readers skip it there).
GENERIC = True
SUBPROTOCOLS = ("cbor",)
_FAILED = object()


def load(raw: bytes) -> Any:
    """The value raw holds whole, or _FAILED."""
    try:
        import io

        import cbor2

        stream = io.BytesIO(raw)
        value = cbor2.CBORDecoder(stream).decode()
        if stream.tell() != len(raw):
            return _FAILED
        return value
    except Exception:
        return _FAILED


def sniff(path: str, query: str, first: Sequence[tuple[str, Any]]) -> bool:
    binary = [p for _, p in _util.firsts(first) if isinstance(p, bytes)]
    if not binary:
        return False
    for raw in binary:
        # major types 4 (array) and 5 (map), or a self-described CBOR tag (d9 d9 f7)
        if len(raw) < 2 or not (0x80 <= raw[0] <= 0xBF or raw.startswith(b"\xd9\xd9\xf7")):
            return False
        value = load(raw)
        if not isinstance(value, (dict, list)) or not value:
            return False
    return True


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    if not isinstance(payload, (bytes, bytearray)) or not payload:
        return None
    value = load(bytes(payload))
    if value is _FAILED:
        return None
    text = _util.dumps(value)
    return Decoded(NAME, kind_of(value), _util.short(text), {}, text)
