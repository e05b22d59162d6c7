"""GraphQL over WebSocket, the legacy ``graphql-ws`` subprotocol of Apollo's
subscriptions-transport-ws (still spoken by older Apollo clients, Hasura, gqlgen, Django
channels-graphql-ws, Strawberry's legacy handler).

Every message is a JSON object with a ``type``:

====================  ==========  ==========================================================
type                  event       notes
====================  ==========  ==========================================================
connection_init       open        client; ``payload`` holds its connection params
connection_ack        ack         server
connection_error      refused     server refused connection_init: Ending ``rejected``
ka                    ping        server keep-alive (one-way: the client answers nothing)
start                 subscribe   client; an operation with an ``id``
data                  message     server; a result (``error`` if only errors)
error                 error       server; an operation failed
complete              complete    server; an operation ended
stop                  complete    client; it ended an operation
connection_terminate  close       client ends the session: Ending ``client_done``
====================  ==========  ==========================================================

Redacts: every value of connection_init's ``payload`` (each leaf value becomes
"[redacted]", keys and nesting kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sentinel_ws_proxy.decoders import _graphql, _util
from sentinel_ws_proxy.decoders.base import Decoded, Ending

NAME = "subscriptions-transport-ws"
SUBPROTOCOLS = ("graphql-ws",)

EVENTS = {"connection_init": "open", "connection_ack": "ack", "connection_error": "refused",
          "ka": "ping", "start": "subscribe", "data": "message", "error": "error",
          "complete": "complete", "stop": "complete",
          "connection_terminate": "close"}  # fmt: skip
# Types only this protocol sends ("start", "data", "stop" alone are words any JSON API uses).
OWN = {"ka", "connection_error", "connection_terminate", "start", "data", "stop"}
HANDSHAKE = {"connection_init", "connection_ack", "ka", "connection_error",
             "connection_terminate"}  # fmt: skip


def sniff(path: str, query: str, first: Sequence[tuple[str, Any]]) -> bool:
    types = _graphql.types_in(first)
    return bool(types & OWN) and bool(types & HANDSHAKE) and types <= set(EVENTS)


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    return _graphql.decode(NAME, EVENTS, payload, direction, _message, _own)


def _own(m: _graphql.Message, direction: str) -> Decoded:
    """connection_ack, connection_error, ka, connection_terminate, complete and stop."""
    kind, body, fields, tag, event = m.kind, m.body, m.fields, m.tag, m.event
    if kind == "connection_error":
        said = _message(body)
        ending = Ending("rejected", f"{NAME} connection_error: {said}", reconnect=None)
        return Decoded(NAME, kind, _util.short(f"connection_error: {said}"), fields,
                       event=event, ending=ending)  # fmt: skip
    if kind == "ka":
        fields.update(_util.pinged(direction))
        return Decoded(NAME, kind, "ka (server keep-alive)", fields, event=event)
    if kind == "connection_terminate":
        ending = Ending("client_done", f"{NAME}: the client sent connection_terminate")
        return Decoded(NAME, kind, kind, fields, event=event, ending=ending)
    return Decoded(NAME, kind, f"{kind}{tag}", fields, event=event)


redact = _graphql.redact


def _message(body: Any) -> str:
    """What an error payload says: its message(s)."""
    if isinstance(body, list):
        said = [e.get("message") if isinstance(e, dict) else e for e in body[:3]]
        return "; ".join(_util.shown(s, 120) for s in said) or "[]"
    if isinstance(body, dict) and "message" in body:
        return _util.shown(body["message"], 120)
    return _util.shown(body, 120)
