"""JSON messages of no particular protocol: text, or UTF-8 JSON in binary messages.

The last resort for sessions whose first messages are all JSON (objects or arrays):
the message's ``kind`` is the value of its ``type``, ``event``, ``event_type``, ``action``
or ``op`` key when it has one (the conventions of most hand-written WebSocket APIs), else
"object", "array"... A binary message's ``text`` is its JSON text, for ``show`` and
``search``. No events or endings: a plain JSON API's words mean nothing in general.
Redacts nothing (a credential's place is the app's own).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sentinel_ws_proxy.decoders import _util
from sentinel_ws_proxy.decoders.base import Decoded

NAME = "json"
# Reads any such payload; says nothing of why a session ended (readers skip it there).
GENERIC = True
SUBPROTOCOLS = ("json",)
KEYS = ("type", "event", "event_type", "action", "op")
SHAPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def sniff(path: str, query: str, first: Sequence[tuple[str, Any]]) -> bool:
    found = _util.firsts(first)
    if not found:
        return False
    containers = 0
    for _, payload in found:
        value = _util.load(_util.as_text(payload))
        if _util.missing(value):
            return False
        containers += isinstance(value, (dict, list))
    return containers > 0


def kind_of(value: Any) -> str:
    """A JSON value's kind: its type-like key's value, else its shape."""
    if isinstance(value, dict):
        for key in KEYS:
            named = value.get(key)
            if isinstance(named, str) and named:
                return _util.short(named, 60)
            if isinstance(named, int) and not isinstance(named, bool):
                return str(named)
    return SHAPES.get(type(value), "number")


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    text = _util.as_text(payload)
    value = _util.load(text)
    if _util.missing(value):
        return None
    binary = not isinstance(payload, str)
    fields: dict[str, Any] = {}
    kind = kind_of(value)
    if isinstance(value, dict):
        fields["keys"] = [_util.short(str(k), 60) for k in list(value)[:20]]
    return Decoded(NAME, kind, _util.short(text or ""), fields, text if binary else None)
