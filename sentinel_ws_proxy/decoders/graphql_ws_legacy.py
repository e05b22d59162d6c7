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

from sentinel_ws_proxy.decoders import _util
from sentinel_ws_proxy.decoders.base import Decoded, Ending, malformed

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
    types = set()
    for _, payload in _util.firsts(first):
        found = _util.load_object(_util.as_text(payload))
        if found is not None and isinstance(found.get("type"), str):
            types.add(found["type"])
    return bool(types & OWN) and bool(types & HANDSHAKE) and types <= set(EVENTS)


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    text = _util.as_text(payload)
    if text is None:
        return malformed(NAME, "a binary message that is not UTF-8 text")
    message = _util.load(text)
    if _util.missing(message):
        return malformed(NAME, "not JSON")
    if not isinstance(message, dict):
        return malformed(NAME, "not a JSON object")
    kind = message.get("type")
    if not isinstance(kind, str):
        return malformed(NAME, "no 'type'")
    if kind not in EVENTS:
        return malformed(NAME, f"unknown message type {_util.short(kind, 60)!r}")
    ident = message.get("id")
    body = message.get("payload")
    fields: dict[str, Any] = {"type": kind}
    if ident is not None:
        fields["id"] = _util.plain(ident)
    tag = f" {_util.short(str(ident), 40)}" if ident is not None else ""
    event = EVENTS[kind]
    if kind == "connection_init":
        keys = sorted(str(k) for k in body) if isinstance(body, dict) else []
        fields["payload_keys"] = keys
        said = f" with payload keys {', '.join(keys)}" if keys else ""
        return Decoded(NAME, kind, _util.short(f"connection_init{said}"), fields, event=event)
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
    if kind == "start":
        query = body.get("query") if isinstance(body, dict) else None
        operation = body.get("operationName") if isinstance(body, dict) else None
        if isinstance(operation, str):
            fields["operationName"] = operation
        summary = f"start{tag}: {_util.shown(query if query is not None else body)}"
        return Decoded(NAME, kind, _util.short(summary), fields, event=event)
    if kind == "data":
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors and isinstance(body, dict) and body.get("data") is None:
            fields["errors"] = _util.plain(errors)
            summary = f"data{tag} with errors: {_message(errors)}"
            return Decoded(NAME, kind, _util.short(summary), fields, event="error")
        data = body.get("data") if isinstance(body, dict) else body
        return Decoded(NAME, kind, _util.short(f"data{tag}: {_util.shown(data)}"), fields,
                       event=event)  # fmt: skip
    if kind == "error":
        fields["errors"] = _util.plain(body)
        return Decoded(NAME, kind, _util.short(f"error{tag}: {_message(body)}"), fields,
                       event=event)  # fmt: skip
    return Decoded(NAME, kind, f"{kind}{tag}", fields, event=event)


def redact(payload: str | bytes, direction: str) -> tuple[str | bytes, int] | None:
    if direction != "c2s" or len(payload) > _util.REDACT_LIMIT:
        return None
    if isinstance(payload, str):
        if "connection_init" not in payload or '"payload"' not in payload:
            return None
    elif b"connection_init" not in payload or b'"payload"' not in payload:
        return None
    message = _util.load_object(_util.as_text(payload))
    if message is None or message.get("type") != "connection_init":
        return None
    body = message.get("payload")
    if not isinstance(body, dict) or not body:
        return None
    message["payload"], count = _util.redact_tree(body)
    return _util.same_type(payload, _util.dumps(message)), count


def _message(body: Any) -> str:
    """What an error payload says: its message(s)."""
    if isinstance(body, list):
        said = [e.get("message") if isinstance(e, dict) else e for e in body[:3]]
        return "; ".join(_util.shown(s, 120) for s in said) or "[]"
    if isinstance(body, dict) and "message" in body:
        return _util.shown(body["message"], 120)
    return _util.shown(body, 120)
