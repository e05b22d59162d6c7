"""What the two GraphQL-over-WebSocket protocols share (graphql_transport_ws: graphql-ws,
and graphql_ws_legacy: subscriptions-transport-ws): JSON objects with a ``type``, an ``id``
and a ``payload``; connection_init, an operation (event ``subscribe``: subscribe or start),
its results (event ``message``: next or data) and error alike under their own names; and
the same redaction of connection_init's payload.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sentinel_ws_proxy.decoders import _util
from sentinel_ws_proxy.decoders.base import Decoded, malformed


@dataclass(frozen=True, slots=True)
class Message:
    """A well-formed message of a known type, for a protocol's own types."""

    kind: str  # its type
    body: Any  # its payload (None without one)
    fields: dict[str, Any]  # its type and id, to add to
    tag: str  # " <id>" for a summary, "" without an id
    event: str  # the protocol's EVENTS[kind]


def types_in(first: Sequence[tuple[str, Any]]) -> set[str]:
    """The types of the sniffed first messages that are JSON objects with one."""
    types = set()
    for _, payload in _util.firsts(first):
        found = _util.load_object(_util.as_text(payload))
        if found is not None and isinstance(found.get("type"), str):
            types.add(found["type"])
    return types


def decode(
    name: str,
    events: dict[str, str],
    payload: str | bytes,
    direction: str,
    errors_said: Callable[[Any], str],
    own: Callable[[Message, str], Decoded],
) -> Decoded:
    """A message of protocol ``name`` (its types and their events: ``events``): malformed
    unless a JSON object of a known type; the types both protocols have decoded here (an
    error's messages quoted by ``errors_said``), the rest by ``own(message, direction)``."""
    text = _util.as_text(payload)
    if text is None:
        return malformed(name, "a binary message that is not UTF-8 text")
    message = _util.load(text)
    if _util.missing(message):
        return malformed(name, "not JSON")
    if not isinstance(message, dict):
        return malformed(name, "not a JSON object")
    kind = message.get("type")
    if not isinstance(kind, str):
        return malformed(name, "no 'type'")
    if kind not in events:
        return malformed(name, f"unknown message type {_util.short(kind, 60)!r}")
    ident = message.get("id")
    body = message.get("payload")
    fields: dict[str, Any] = {"type": kind}
    if ident is not None:
        fields["id"] = _util.plain(ident)
    tag = f" {_util.short(str(ident), 40)}" if ident is not None else ""
    event = events[kind]
    if kind == "connection_init":
        keys = sorted(str(k) for k in body) if isinstance(body, dict) else []
        fields["payload_keys"] = keys
        said = f" with payload keys {', '.join(keys)}" if keys else ""
        return Decoded(name, kind, _util.short(f"connection_init{said}"), fields, event=event)
    if event == "subscribe":  # an operation: its query (or payload) and operation name
        query = body.get("query") if isinstance(body, dict) else None
        operation = body.get("operationName") if isinstance(body, dict) else None
        if isinstance(operation, str):
            fields["operationName"] = operation
        summary = f"{kind}{tag}: {_util.shown(query if query is not None else body)}"
        return Decoded(name, kind, _util.short(summary), fields, event=event)
    if event == "message":  # a result: its data, or its errors (event error) without data
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors and isinstance(body, dict) and body.get("data") is None:
            fields["errors"] = _util.plain(errors)
            summary = f"{kind}{tag} with errors: {errors_said(errors)}"
            return Decoded(name, kind, _util.short(summary), fields, event="error")
        data = body.get("data") if isinstance(body, dict) else body
        return Decoded(name, kind, _util.short(f"{kind}{tag}: {_util.shown(data)}"), fields,
                       event=event)  # fmt: skip
    if kind == "error":
        fields["errors"] = _util.plain(body)
        return Decoded(name, kind, _util.short(f"error{tag}: {errors_said(body)}"), fields,
                       event=event)  # fmt: skip
    return own(Message(kind, body, fields, tag, event), direction)


def redact(payload: str | bytes, direction: str) -> tuple[str | bytes, int] | None:
    """A client's connection_init with every leaf value of its payload REDACTED."""
    if not _util.may_redact(payload, direction, "connection_init", '"payload"', binary=True):
        return None
    message = _util.load_object(_util.as_text(payload))
    if message is None or message.get("type") != "connection_init":
        return None
    body = message.get("payload")
    if not isinstance(body, dict) or not body:
        return None
    message["payload"], count = _util.redact_tree(body)
    return _util.same_type(payload, _util.dumps(message)), count
