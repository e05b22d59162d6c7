"""Rails Action Cable (and AnyCable) over WebSocket, ``actioncable-v1-json`` (JSON text) and
AnyCable's ``actioncable-v1-msgpack`` (the same maps in msgpack binary).

The server sends ``{"type": ...}`` control messages and ``{"identifier", "message"}``
broadcasts; the client sends ``{"command": "subscribe" | "unsubscribe" | "message",
"identifier": "<channel params as JSON>", "data": "<JSON>"}``.

========================  =========  ===========================================================
message                   event      ending
========================  =========  ===========================================================
welcome                   ack        (the connection's ``connect`` accepted it)
ping                      ping       every 3 s from the server; heartbeats are one-way: the
                                     client answers nothing and only watches for silence
confirm_subscription      ack
reject_subscription       refused    rejected: the channel's ``subscribed`` rejected it
disconnect                close      reason "unauthorized" rejected (``connect`` refused the
                                     client, typically its cookie or token);
                                     "server_restart" app_error (reconnect true);
                                     "invalid_request" protocol_error; "remote" and others
                                     app_error; ``reconnect`` as the server said
broadcast                 message
subscribe                 subscribe  (client)
unsubscribe               complete   (client)
message                   message    (client: ``data`` names the channel action)
========================  =========  ===========================================================

Redacts: in a client subscribe, the identifier's channel params named like credentials
(token, password, secret, authorization...), keys kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sentinel_ws_proxy.decoders import _util
from sentinel_ws_proxy.decoders.base import Decoded, Ending, malformed

NAME = "actioncable"
SUBPROTOCOLS = ("actioncable-v1-json", "actioncable-v1-msgpack", "actioncable-v1-ext-json",
                "actioncable-unsupported")  # fmt: skip
TYPES = {"welcome", "ping", "confirm_subscription", "reject_subscription", "disconnect"}
COMMANDS = {"subscribe", "unsubscribe", "message", "history", "whisper", "pong"}


def sniff(path: str, query: str, first: Sequence[tuple[str, Any]]) -> bool:
    for _, payload in _util.firsts(first):
        if not isinstance(payload, str):
            continue
        found = _util.load_object(payload)
        if found is None:
            continue
        if found.get("type") == "welcome" or (found.get("type") in TYPES and "identifier" in found):
            return True
        if found.get("command") in COMMANDS and isinstance(found.get("identifier"), str):
            return True
    return False


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    text = None
    if isinstance(payload, (bytes, bytearray)):
        message = _msgpack(bytes(payload))
        if message is None:
            return malformed(NAME, "a binary message that is not a msgpack map")
        text = _util.dumps(message)
    elif isinstance(payload, str):
        message = _util.load(payload)
        if _util.missing(message):
            return malformed(NAME, "not JSON")
        if not isinstance(message, dict):
            return malformed(NAME, "not a JSON object")
    else:
        return None
    found = _message(message, direction)
    if text is None or found.kind == "malformed":
        return found
    return Decoded(NAME, found.kind, found.summary, found.fields, text, found.event,
                   found.ending)  # fmt: skip


def _msgpack(raw: bytes) -> dict[Any, Any] | None:
    try:
        import msgpack

        value = msgpack.unpackb(raw, raw=False, strict_map_key=False, unicode_errors="replace")
    except Exception:
        return None
    return value if isinstance(value, dict) else None


def _channel(identifier: Any) -> str:
    params = _util.load_object(identifier) if isinstance(identifier, str) else identifier
    if isinstance(params, dict) and "channel" in params:
        rest = {k: v for k, v in params.items() if k != "channel"}
        extra = f" {_util.shown(rest, 80)}" if rest else ""
        return f"{_util.shown(params['channel'], 60)}{extra}"
    return _util.shown(identifier, 80)


def _message(m: dict[Any, Any], direction: str) -> Decoded:
    kind = m.get("type")
    command = m.get("command")
    fields: dict[str, Any] = {}
    if "identifier" in m:
        fields["identifier"] = _util.plain(m["identifier"])
    if isinstance(kind, str):
        fields["type"] = kind
        if kind == "welcome":
            if m.get("sid") is not None:
                fields["sid"] = _util.plain(m["sid"])
            return Decoded(NAME, kind, "welcome", fields, event="ack")
        if kind == "ping":
            fields.update(_util.pinged(direction))
            fields["one_way"] = True
            return Decoded(NAME, kind, f"ping {_util.shown(m.get('message'), 20)}", fields,
                           event="ping")  # fmt: skip
        if kind == "confirm_subscription":
            summary = f"confirm_subscription {_channel(m.get('identifier'))}"
            return Decoded(NAME, kind, _util.short(summary), fields, event="ack")
        if kind == "reject_subscription":
            channel = _channel(m.get("identifier"))
            ending = Ending("rejected", f"Action Cable rejected the subscription to {channel}")
            return Decoded(NAME, kind, _util.short(f"reject_subscription {channel}"), fields,
                           event="refused", ending=ending)  # fmt: skip
        if kind == "disconnect":
            return _disconnect(m, fields)
        return Decoded(NAME, kind, _util.short(f"{kind} {_util.shown(m.get('message'))}"),
                       fields)  # fmt: skip
    if isinstance(command, str):
        fields["command"] = command
        channel = _channel(m.get("identifier"))
        if command == "subscribe":
            return Decoded(NAME, command, _util.short(f"subscribe {channel}"), fields,
                           event="subscribe")  # fmt: skip
        if command == "unsubscribe":
            return Decoded(NAME, command, _util.short(f"unsubscribe {channel}"), fields,
                           event="complete")  # fmt: skip
        data = m.get("data")
        parsed = _util.load_object(data) if isinstance(data, str) else data
        if isinstance(parsed, dict) and isinstance(parsed.get("action"), str):
            fields["action"] = parsed["action"]
        fields["data"] = _util.plain(parsed if parsed is not None else data)
        summary = f"{command} {channel}: {_util.shown(parsed if parsed is not None else data)}"
        return Decoded(NAME, command, _util.short(summary), fields, event="message")
    if "message" in m and "identifier" in m:
        summary = f"broadcast {_channel(m['identifier'])}: {_util.shown(m['message'])}"
        return Decoded(NAME, "broadcast", _util.short(summary), fields, event="message")
    return malformed(NAME, "neither a 'type', a 'command' nor a broadcast")


def _disconnect(m: dict[Any, Any], fields: dict[str, Any]) -> Decoded:
    reason = m.get("reason")
    reconnect = m.get("reconnect")
    reconnect = reconnect if isinstance(reconnect, bool) else None
    fields["reason"] = _util.plain(reason)
    fields["reconnect"] = reconnect
    said = _util.words(reason) if reason is not None else "(no reason)"
    if reason == "unauthorized":
        category = "rejected"
        why = ": the connection's connect refused the client (reject_unauthorized_connection)"
    elif reason == "server_restart":
        category, why = "app_error", ": the server is restarting"
        reconnect = True if reconnect is None else reconnect
    elif reason == "invalid_request":
        category, why = "protocol_error", ": the server found the request invalid"
    elif reason == "remote":
        category, why = "app_error", ": the app disconnected the client (remote_connections)"
    else:
        category, why = "app_error", ""
    ending = Ending(category, f"Action Cable disconnect {said}{why}", reconnect=reconnect)  # type: ignore[arg-type]
    summary = f"disconnect {said} (reconnect: {_util.shown(m.get('reconnect'), 10)})"
    return Decoded(NAME, "disconnect", _util.short(summary), fields, event="close",
                   ending=ending)  # fmt: skip


def redact(payload: str | bytes, direction: str) -> tuple[str | bytes, int] | None:
    if not _util.may_redact(payload, direction, '"subscribe"'):
        return None
    message = _util.load_object(payload)
    if message is None or message.get("command") != "subscribe":
        return None
    identifier = message.get("identifier")
    params = _util.load_object(identifier) if isinstance(identifier, str) else None
    if params is None:
        return None
    params, count = _util.redact_secrets(params)
    if not count:
        return None
    message["identifier"] = _util.dumps(params)
    return _util.dumps(message), count
