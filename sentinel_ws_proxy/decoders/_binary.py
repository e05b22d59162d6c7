"""What the MessagePack and CBOR decoders share: a binary message is the encoding's when
it decodes whole, and reads as its value's JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sentinel_ws_proxy.decoders import _util
from sentinel_ws_proxy.decoders.base import Decoded
from sentinel_ws_proxy.decoders.json_ import kind_of

FAILED = object()  # what a loader returns for bytes that do not decode whole

Loader = Callable[[bytes], Any]


def sniff(first: Sequence[tuple[str, Any]], opens: Callable[[bytes], bool], load: Loader) -> bool:
    """Whether there is a binary first message and every one is a non-empty map or array:
    two bytes or more, beginning as one does (``opens``) and decoding whole (``load``)."""
    binary = [p for _, p in _util.firsts(first) if isinstance(p, bytes)]
    if not binary:
        return False
    for raw in binary:
        if len(raw) < 2 or not opens(raw):
            return False
        value = load(raw)
        if not isinstance(value, (dict, list)) or not value:
            return False
    return True


def decode(name: str, payload: str | bytes, load: Loader) -> Decoded | None:
    """A binary message that decodes whole, as JSON text (``kind`` by the JSON decoder's
    rule); None for text, an empty message or bytes that do not decode whole."""
    if not isinstance(payload, (bytes, bytearray)) or not payload:
        return None
    value = load(bytes(payload))
    if value is FAILED:
        return None
    text = _util.dumps(value)
    return Decoded(name, kind_of(value), _util.short(text), {}, text)
