"""Application protocols inside WebSocket messages, decoded for people.

A decoder is a small module with ``detect(path, query, first_texts)`` and
``decode(text)``; adding msgpack or STOMP is one more module in DECODERS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from sentinel_ws_proxy.decoders import socketio


@dataclass(frozen=True)
class Decoded:
    protocol: str  # e.g. "socket.io"
    kind: str  # the packet type, e.g. "EVENT", "CONNECT_ERROR", "ping"
    summary: str  # one line for people
    fields: dict[str, Any] = field(default_factory=dict)  # for JSON

    def as_json(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "kind": self.kind, "summary": self.summary,
                **self.fields}  # fmt: skip


DECODERS: tuple[ModuleType, ...] = (socketio,)


def decoder_for(path: str, query: str, first_texts: Sequence[str]) -> ModuleType | None:
    """The decoder whose protocol this session speaks, if any."""
    return next((d for d in DECODERS if d.detect(path, query, first_texts)), None)


def decode(decoder: ModuleType | None, payload: str | bytes) -> Decoded | None:
    if decoder is None or not isinstance(payload, str):
        return None
    found = decoder.decode(payload)
    return None if found is None else Decoded(decoder.NAME, *found)


def session_decoder(path: str | None, query: str | None, payloads: Sequence[object]) -> Any:
    """The decoder for a session from its path, query and first text payloads."""
    texts = [p for p in payloads[:3] if isinstance(p, str)]
    return decoder_for(path or "", query or "", texts)


def app_error(text: str | bytes | None) -> str | None:
    """An application-level refusal in a server message, in the app's words, if it is one."""
    if not isinstance(text, str):
        return None
    return socketio.app_error(text)
