"""One projection: read models turned into plain data, the same for every front.

The CLI's --json/--nl/--csv, the web API, and JSONL export all take their
objects from here, so a session, a verdict or a message has one JSON shape
whoever asks (datasette's habit). Bytes have one convention: ``{"$base64": ...}``
(recording/jsonrows.py), and beside a message's payload, ``text``: what a person
reads, the payload itself for text, a protocol decoder's reading for binary
(binary JSON, msgpack, a notebook kernel's framing), absent when there is none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sentinel_ws_proxy.recording.jsonrows import encode_value, row_to_json
from sentinel_ws_proxy.timefmt import iso

EPOCH_2001 = 978_307_200.0  # a float past this in a time field is an epoch time

if TYPE_CHECKING:  # types only: keeps read commands' start-up light
    from sentinel_ws_proxy.analysis.classify import Verdict
    from sentinel_ws_proxy.analysis.pages import Page
    from sentinel_ws_proxy.decoders.base import Decoded
    from sentinel_ws_proxy.recording.reader import Message
    from sentinel_ws_proxy.recording.schema import SessionRow


def pick(obj: object, *names: str) -> dict[str, Any]:
    """These attributes of a read model, by name, as they are (plain values already)."""
    return {name: getattr(obj, name) for name in names}


def verdict(v: Verdict | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {
        "category": v.category,
        "failure": v.failure,
        "explanation": v.explanation,
        "evidence": list(v.evidence),
        "reconnect_gap": v.reconnect_gap,
        "judged_by": getattr(v, "judged_by", None),
    }


def session(row: SessionRow, v: Verdict | None = None) -> dict[str, Any]:
    """A session: its row (every column, headers as objects, bytes as $base64) with its
    verdict's fields beside them (None while the verdict is pending)."""
    out = row_to_json(row)
    judged = verdict(v) or dict.fromkeys(
        ("category", "failure", "explanation", "evidence", "reconnect_gap", "judged_by")
    )
    out.update(judged)
    return out


def page(p: Page) -> dict[str, Any]:
    """A page load: its client, when it began, its document if the load went through the
    proxy, and its sockets (ids, in order of opening) and their paths."""
    return p.as_json()


def advice(category: str | None) -> dict[str, Any] | None:
    from sentinel_ws_proxy.analysis.advice import ADVICE

    found = ADVICE.get(category) if category else None
    if found is None:
        return None
    return {"title": found.title, "causes": list(found.causes), "fixes": list(found.fixes)}


def message(m: Message, decoded: Decoded | None = None) -> dict[str, Any]:
    """A whole message: where it went, what touched it, its payload and what it says."""
    out: dict[str, Any] = {
        "id": m.id,
        "ts": m.ts,
        "last_ts": m.last_ts,
        "direction": m.direction,
        "source": m.source,
        "opcode": m.opcode,
        "frames": len(m.frames),
        "fin": [f.fin for f in m.frames],
        "size": m.size,
        "payload": encode_value(m.payload),
        "text": readable(m.payload, decoded),
        "truncated": m.truncated,
        "compressed": m.compressed,
        "forwarded": m.forwarded,
        "close_code": m.close_code,
        "close_reason": m.close_reason,
        "violation": m.violation,
        "fault": None if m.fault is None else list(m.fault),
        "decoded": None if decoded is None else decoded.as_json(),
    }
    return out


def readable(payload: str | bytes | None, decoded: Decoded | None) -> str | None:
    """What a person reads of a payload: text as it is, else a decoder's text, else None."""
    if isinstance(payload, str):
        return payload
    if decoded is not None and decoded.text is not None:
        return decoded.text
    return None


def messages(
    listed: list[Message], decode: Callable[[Message], Decoded | None]
) -> list[dict[str, Any]]:
    return [message(m, decode(m)) for m in listed]


def plain(value: Any, key: str = "") -> Any:
    """What JSON output holds, the last step for every front (the CLI's --json, the web
    API): floats rounded (microseconds; 3 decimals for *_ms), an ISO 8601 local time
    beside every epoch time (ts, *_at), bytes as {"$base64": ...}.

    Written for speed (type() is, no recursion into scalars): `failures --json` runs
    it over 100,000 sessions."""
    kind = type(value)
    if kind is dict:
        return _plain_dict(value)
    if kind is list or kind is tuple:
        return [plain(v, key) for v in value]
    if kind is float:
        return round(value, 3 if key.endswith("_ms") else 6)
    if kind is bytes or kind is bytearray or kind is memoryview:
        return encode_value(value)
    return value


def _plain_dict(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        kind = type(v)
        if kind is str or kind is int or v is None or kind is bool:
            out[k] = v
        elif kind is float:
            digits, dated = _KEYS.get(k) or _key(k)
            out[k] = round(v, digits)
            if dated and v > EPOCH_2001:
                out[k + "_iso"] = iso(v)
        else:
            out[k] = plain(v, k)
    return out


_KEYS: dict[str, tuple[int, bool]] = {}


def _key(name: str) -> tuple[int, bool]:
    """How a float under this key is written: its decimals, and whether it is a time."""
    found = _KEYS[name] = (3 if name.endswith("_ms") else 6, name == "ts" or name.endswith("_at"))
    return found
