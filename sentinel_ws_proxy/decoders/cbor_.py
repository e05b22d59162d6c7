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

from sentinel_ws_proxy.decoders import _binary
from sentinel_ws_proxy.decoders.base import Decoded

NAME = "cbor"
# Reads any such payload; says nothing of why a session ended (readers skip it there).
GENERIC = True
SUBPROTOCOLS = ("cbor",)


def load(raw: bytes) -> Any:
    """The value raw holds whole, or _binary.FAILED."""
    try:
        import io

        import cbor2

        stream = io.BytesIO(raw)
        value = cbor2.CBORDecoder(stream).decode()
        if stream.tell() != len(raw):
            return _binary.FAILED
        return value
    except Exception:
        return _binary.FAILED


def sniff(path: str, query: str, first: Sequence[tuple[str, Any]]) -> bool:
    return _binary.sniff(first, _container, load)


def _container(raw: bytes) -> bool:
    # major types 4 (array) and 5 (map), or a self-described CBOR tag (d9 d9 f7)
    return 0x80 <= raw[0] <= 0xBF or raw.startswith(b"\xd9\xd9\xf7")


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    return _binary.decode(NAME, payload, load)
