"""GraphQL over WebSocket, the ``graphql-transport-ws`` subprotocol (the graphql-ws library,
v5 and later; Apollo Server 4, Yoga, Hasura, Strawberry...).

Every message is a JSON object with a ``type``:

==================  ================================================  ==============
code  reason the library sends                          category
====  ================================================  ==============
4400  Invalid message received (from the client)        protocol_error
4401  Unauthorized (subscribe before connection_ack)    protocol_error
4403  Forbidden (onConnect returned false)              rejected
4406  Subprotocol not acceptable                        protocol_error
4408  Connection initialisation timeout                 protocol_error
4409  Subscriber for <id> already exists                protocol_error
4429  Too many initialisation requests                  protocol_error
4499  Terminated (the client's own terminate())         client_done
4500  the thrown error's message (or "Internal ...")    server_error
4504  Connection acknowledgement timeout (the client)   protocol_error
4004  Bad response (the client: an invalid server msg)  protocol_error
4005  Internal client error (the client's code threw)   protocol_error
====  ================================================  ==============

Other close codes (1000, 1001...) are left to the generic WebSocket judgement.

Redacts: every value of connection_init's ``payload`` (tokens, authorization headers,
passwords: each leaf value becomes "[redacted]", keys and nesting kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sentinel_ws_proxy.decoders import _graphql, _util
from sentinel_ws_proxy.decoders.base import Decoded, Ending

NAME = "graphql-ws"
SUBPROTOCOLS = ("graphql-transport-ws",)

EVENTS = {"connection_init": "open", "connection_ack": "ack", "ping": "ping", "pong": "pong",
          "subscribe": "subscribe", "next": "message", "error": "error",
          "complete": "complete"}  # fmt: skip
# Types only subscriptions-transport-ws (subprotocol "graphql-ws") sends.
LEGACY = {"start", "data", "ka", "stop", "connection_error", "connection_terminate"}
# Every session begins with these; "subscribe" or "next" alone are words many JSON APIs use.
HANDSHAKE = {"connection_init", "connection_ack"}

# code: (category, the library's reason, what it means)
CLOSES: dict[int, tuple[str, str, str]] = {
    4400: ("protocol_error", "Bad request",
           "the server could not parse or did not expect the client's message"),
    4401: ("protocol_error", "Unauthorized",
           "the client subscribed before the server acknowledged connection_init"),
    4403: ("rejected", "Forbidden",
           "the server's onConnect refused the connection_init payload"),
    4406: ("protocol_error", "Subprotocol not acceptable",
           "the server accepted the WebSocket without the graphql-transport-ws subprotocol"),
    4408: ("protocol_error", "Connection initialisation timeout",
           "the client sent no connection_init in time"),
    4409: ("protocol_error", "Subscriber already exists",
           "the client reused the id of an operation still running"),
    4429: ("protocol_error", "Too many initialisation requests",
           "the client sent connection_init twice"),
    4499: ("client_done", "Terminated",
           "the client called terminate(): its own, expected ending"),
    4500: ("server_error", "Internal server error",
           "a server handler threw (graphql-ws puts the thrown error's message in the reason)"),
    4504: ("protocol_error", "Connection acknowledgement timeout",
           "the server sent no connection_ack in time, so the client gave up"),
    4004: ("protocol_error", "Bad response",
           "the client found the server's message invalid"),
    4005: ("protocol_error", "Internal client error",
           "the client's own code threw (its connectionParams, say)"),
}  # fmt: skip


def sniff(path: str, query: str, first: Sequence[tuple[str, Any]]) -> bool:
    types = _graphql.types_in(first)
    return bool(types & HANDSHAKE) and types <= set(EVENTS) and not types & LEGACY


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    return _graphql.decode(NAME, EVENTS, payload, direction, _messages, _own)


def _own(m: _graphql.Message, direction: str) -> Decoded:
    """ping, pong, connection_ack and complete."""
    kind, body, fields, tag, event = m.kind, m.body, m.fields, m.tag, m.event
    if kind in ("ping", "pong"):
        fields.update(_util.pinged(direction))
        shown = f" {_util.shown(body, 120)}" if body is not None else ""
        return Decoded(NAME, kind, f"{kind}{shown}", fields, event=event)
    shown = f": {_util.shown(body)}" if body is not None and kind != "complete" else ""
    return Decoded(NAME, kind, _util.short(f"{kind}{tag}{shown}"), fields, event=event)


def close_code(code: int, reason: str) -> Ending | None:
    found = CLOSES.get(code)
    if found is None:
        return None
    category, name, meaning = found
    said = _util.short(reason, 123) if isinstance(reason, str) and reason.strip() else name
    return Ending(category, f"graphql-ws {code} {said}: {meaning}")  # type: ignore[arg-type]


redact = _graphql.redact


def _messages(errors: Any) -> str:
    if isinstance(errors, list):
        said = [e.get("message") if isinstance(e, dict) else e for e in errors[:3]]
        return "; ".join(_util.shown(s, 120) for s in said) or "[]"
    return _util.shown(errors)
