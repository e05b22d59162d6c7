"""Protocol Buffers messages without a schema, shown as field numbers and values.

Only binary messages, and only when the whole buffer parses as a wire-format message:
keys with field numbers from 1 and wire types 0 (varint), 1 (64-bit), 2 (length-delimited)
or 5 (32-bit); groups (3, 4) and over-long varints refuse it. A length-delimited value
is shown as text when it is printable UTF-8, else as a nested message when it parses as
one, else as ``{"$base64": ...}``; 32- and 64-bit values as ``{"fixed32": n, "float": f}``.
``text`` is that JSON (``{"1": 150, "2": "hello", "3": {"1": 1}}``, repeated fields as
lists). Sniffed conservatively: every first message binary, at least 8 bytes in all,
each parsing whole with field numbers up to 1000. No events or endings; redacts nothing.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from sentinel_ws_proxy.decoders import _util
from sentinel_ws_proxy.decoders.base import Decoded

NAME = "protobuf"
# Reads any such payload; says nothing of why a session ended (readers skip it there).
GENERIC = True
SUBPROTOCOLS = ("protobuf",)
MAX_FIELD = (1 << 29) - 1
SNIFF_FIELD = 1000
DEPTH = 8
MAX_FIELDS = 10_000


def _varint(raw: bytes, pos: int) -> tuple[int, int] | None:
    value, shift = 0, 0
    for i in range(10):
        if pos >= len(raw):
            return None
        b = raw[pos]
        pos += 1
        if i == 9 and b > 1:
            return None
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
    return None


def parse(raw: bytes, max_field: int = MAX_FIELD) -> list[tuple[int, int, Any]] | None:
    """(field, wire type, value) of each field, or None when raw is not a whole message."""
    found: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(raw):
        if len(found) >= MAX_FIELDS:
            return None
        key = _varint(raw, pos)
        if key is None:
            return None
        number, wire, pos = key[0] >> 3, key[0] & 7, key[1]
        if not 1 <= number <= max_field:
            return None
        if wire == 0:
            got = _varint(raw, pos)
            if got is None:
                return None
            value, pos = got
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(raw):
                return None
            value, pos = raw[pos : pos + size], pos + size
        elif wire == 2:
            got = _varint(raw, pos)
            if got is None or got[1] + got[0] > len(raw):
                return None
            value, pos = raw[got[1] : got[1] + got[0]], got[1] + got[0]
        else:
            return None
        found.append((number, wire, value))
    return found


def _printable(chunk: bytes) -> str | None:
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if all(c.isprintable() or c in "\t\r\n" for c in text) else None


def _value(wire: int, value: Any, depth: int) -> Any:
    if wire == 0:
        return value
    if wire == 1:
        return {"fixed64": int.from_bytes(value, "little"),
                "double": _finite(struct.unpack("<d", value)[0])}  # fmt: skip
    if wire == 5:
        return {"fixed32": int.from_bytes(value, "little"),
                "float": _finite(struct.unpack("<f", value)[0])}  # fmt: skip
    text = _printable(value)
    if text is not None:
        return text
    if depth < DEPTH and value:
        inner = parse(value)
        if inner:
            return _tree(inner, depth + 1)
    return _util.plain(value)


def _finite(number: float) -> float | str:
    return number if number == number and abs(number) != float("inf") else str(number)


def _tree(fields: list[tuple[int, int, Any]], depth: int = 0) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    repeated: set[str] = set()
    for number, wire, value in fields:
        shown = _value(wire, value, depth)
        key = str(number)
        if key not in tree:
            tree[key] = shown
            continue
        if key not in repeated:
            tree[key] = [tree[key]]
            repeated.add(key)
        tree[key].append(shown)
    return tree


def sniff(path: str, query: str, first: Sequence[tuple[str, Any]]) -> bool:
    found = _util.firsts(first)
    if not found or any(not isinstance(p, bytes) for _, p in found):
        return False
    if sum(len(p) for _, p in found) < 8:
        return False
    return all(len(p) >= 2 and parse(p, SNIFF_FIELD) for _, p in found)  # type: ignore[arg-type]


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    if not isinstance(payload, (bytes, bytearray)) or not payload:
        return None
    fields = parse(bytes(payload))
    if not fields:
        return None
    text = _util.dumps(_tree(fields))
    return Decoded(NAME, "message", _util.short(text), {"fields": len(fields)}, text)
