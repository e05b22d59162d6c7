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

if TYPE_CHECKING:  # types only: keeps read commands' start-up light
    from sentinel_ws_proxy.analysis.classify import Verdict
    from sentinel_ws_proxy.decoders.base import Decoded
    from sentinel_ws_proxy.recording.reader import Message
    from sentinel_ws_proxy.recording.schema import SessionRow


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
