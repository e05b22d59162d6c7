"""Small helpers the protocol decoders share: JSON that never raises, values made plain
JSON (bytes, msgpack extension types, CBOR tags), one-line summaries, and redaction (the
cheap first refusal, the values of a credential map).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from sentinel_ws_proxy.decoders.base import REDACTED

SUMMARY = 200  # characters in a one-line summary
DEPTH = 64  # nesting kept when a decoded value is made plain
NODES = 20_000  # values kept when a decoded value is made plain (shared-reference bombs)
# redact() refuses longer messages outright: no handshake carries credentials in 256 KiB.
REDACT_LIMIT = 256 * 1024

_MISSING = object()

# Header and key names that carry credentials.
SECRET = re.compile(
    r"pass|token|secret|auth|cookie|credential|session|api[-_]?key|jwt|bearer|signature|private",
    re.IGNORECASE,
)


def as_text(payload: object) -> str | None:
    """A message's text: itself, or a binary message's bytes if they are UTF-8."""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            return bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def load(text: str | None) -> Any:
    """The JSON value of text, or ``_MISSING`` (see ``missing``) when it is not JSON."""
    if not text:
        return _MISSING
    try:
        return json.loads(text)
    except Exception:  # ValueError, RecursionError on absurd nesting
        return _MISSING


def missing(value: Any) -> bool:
    return value is _MISSING


def load_object(text: str | None) -> dict[str, Any] | None:
    """The JSON object text holds, or None."""
    value = load(text)
    return value if isinstance(value, dict) else None


def dumps(value: Any) -> str:
    """Compact JSON text of any decoded value (made plain first); never raises."""
    try:
        return json.dumps(plain(value), ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False)  # fmt: skip
    except Exception:  # an unexpected type in a user's value: its repr will do
        return json.dumps(repr(value)[:SUMMARY])


def short(text: Any, limit: int = SUMMARY) -> str:
    """One line of at most ``limit`` characters."""
    line = text if isinstance(text, str) else dumps(text)
    if len(line) > limit * 4:
        line = line[: limit * 4]
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def shown(value: Any, limit: int = SUMMARY) -> str:
    """A value as it reads in a summary: strings bare, the rest as compact JSON."""
    if isinstance(value, str):
        return short(value, limit)
    return short(dumps(value), limit)


def plain(value: Any) -> Any:
    """A plain JSON value: bytes as {"$base64": ...}, map keys as strings, CBOR tags and
    msgpack extensions spelt out, non-finite floats as strings; deep or huge values cut."""
    budget = [NODES]
    return _plain(value, 0, budget)


def _plain(value: Any, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0 or depth > DEPTH:
        return "…"
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if -(2**63) <= value < 2**64:
            return value
        return str(value) if value.bit_length() < 1000 else f"<{value.bit_length()}-bit integer>"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if budget[0] < 0:
                break
            name = key if isinstance(key, str) else _key(key, depth, budget)
            out[name] = _plain(item, depth + 1, budget)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = []
        for item in value:
            if budget[0] < 0:
                items.append("…")
                break
            items.append(_plain(item, depth + 1, budget))
        return items
    # msgpack's ExtType and Timestamp, cbor2's CBORTag, datetime, Decimal, UUID...
    code = getattr(value, "code", None)
    data = getattr(value, "data", None)
    if isinstance(code, int) and isinstance(data, bytes):
        return {"$ext": code, "$base64": base64.b64encode(data).decode("ascii")}
    tag = getattr(value, "tag", None)
    if isinstance(tag, int) and hasattr(value, "value"):
        return {"$tag": tag, "value": _plain(value.value, depth + 1, budget)}
    iso = getattr(value, "isoformat", None)
    if callable(iso):
        try:
            return iso()
        except Exception:
            pass
    to_datetime = getattr(value, "to_datetime", None)
    if callable(to_datetime):
        try:
            return to_datetime().isoformat()
        except Exception:
            pass
    try:
        return str(value)[:SUMMARY]
    except Exception:
        return type(value).__name__


def _key(key: Any, depth: int, budget: list[int]) -> str:
    """A map's non-string key as text (msgpack and CBOR allow any)."""
    try:
        return json.dumps(_plain(key, depth + 1, budget), ensure_ascii=False,
                          separators=(",", ":"), allow_nan=False)  # fmt: skip
    except Exception:
        return type(key).__name__


def redact_tree(value: Any) -> tuple[Any, int]:
    """Every leaf value of a map replaced with REDACTED (keys and nesting kept)."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        count = 0
        for key, item in value.items():
            out[key], n = redact_tree(item) if isinstance(item, dict) and item else (REDACTED, 1)
            count += n
        return out, count
    return REDACTED, 1


def redact_secrets(value: Any) -> tuple[Any, int]:
    """The values of a map's credential-named keys (SECRET) replaced, at any depth."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        count = 0
        for key, item in value.items():
            if isinstance(key, str) and SECRET.search(key) and not isinstance(item, dict):
                out[key], n = REDACTED, 1
            else:
                out[key], n = redact_secrets(item)
            count += n
        return out, count
    if isinstance(value, list):
        items, count = [], 0
        for item in value:
            new, n = redact_secrets(item)
            items.append(new)
            count += n
        return items, count
    return value, 0


def may_redact(payload: str | bytes, direction: str, *marks: str, binary: bool = False) -> bool:
    """redact()'s cheap first refusal: whether payload is a client's message worth parsing
    for credentials, text (or, with ``binary``, bytes too) of at most REDACT_LIMIT that
    holds every one of ``marks`` (as UTF-8 in bytes)."""
    if direction != "c2s" or not (binary or isinstance(payload, str)):
        return False
    if len(payload) > REDACT_LIMIT:
        return False
    if isinstance(payload, str):
        return all(mark in payload for mark in marks)
    return all(mark.encode() in payload for mark in marks)


def same_type(original: str | bytes, text: str) -> str | bytes:
    """text as the original message's type (a binary message stays binary)."""
    return text if isinstance(original, str) else text.encode("utf-8")


def firsts(first: Iterable[Any] | None, limit: int = 4) -> list[tuple[str, str | bytes]]:
    """The sniffed first messages, well-formed ones only."""
    found: list[tuple[str, str | bytes]] = []
    if not first:
        return found
    try:
        for item in first:
            if len(found) >= limit:
                break
            if (isinstance(item, Sequence) and not isinstance(item, (str, bytes))
                    and len(item) == 2 and isinstance(item[1], (str, bytes))):  # fmt: skip
                found.append((str(item[0]), item[1]))
    except Exception:
        pass
    return found


def pinged(direction: str) -> dict[str, Any]:
    """The fields of a heartbeat: who sent it."""
    return {"from_server": direction == "s2c"}


def words(value: Any, limit: int = 120) -> str:
    """A value quoted in an Ending's reason: a string bare, else JSON, one line."""
    return shown(value, limit)
