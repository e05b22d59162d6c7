"""Engine.IO v4 and Socket.IO v5 framing, as socket.io and python-socketio send it.

A WebSocket text message is an Engine.IO packet: a type digit (0 open, 1 close,
2 ping, 3 pong, 4 message, 5 upgrade, 6 noop) then its data ("2probe" is the
upgrade probe). An Engine.IO message carries a Socket.IO packet: a type digit
(0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR, 5 BINARY_EVENT,
6 BINARY_ACK), for binary packets the number of attachments and a dash, then
an optional namespace ("/admin,"), an optional ack id, and JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

NAME = "socket.io"
ENGINE = {"0": "open", "1": "close", "2": "ping", "3": "pong", "4": "message", "5": "upgrade",
          "6": "noop"}  # fmt: skip
SOCKET = {"0": "CONNECT", "1": "DISCONNECT", "2": "EVENT", "3": "ACK", "4": "CONNECT_ERROR",
          "5": "BINARY_EVENT", "6": "BINARY_ACK"}  # fmt: skip
PACKET = re.compile(r"^(?P<type>[0-6])(?:(?P<attachments>\d+)-)?(?:(?P<nsp>/[^,]*),)?(?P<ack>\d+)?")


def detect(path: str, query: str, first_texts: Sequence[str]) -> bool:
    if "/socket.io" in path or "EIO=" in query:
        return True
    # Or the frames themselves: the server's open packet comes first.
    return any(t.startswith('0{"sid":') for t in first_texts[:3])


def decode(text: str) -> tuple[str, str, dict[str, Any]] | None:
    """(kind, summary, fields) of one text message, or None if it is not Engine.IO."""
    if not text or text[0] not in ENGINE:
        return None
    engine, rest = ENGINE[text[0]], text[1:]
    if engine != "message":
        summary = f"engine.io {engine}" + (f" {rest}" if rest else "")
        return engine, summary, {"engine": engine, "data": _json(rest) if rest else None}
    found = PACKET.match(rest)
    if found is None:
        return "message", f"engine.io message {rest}", {"engine": "message", "data": rest}
    kind = SOCKET[found["type"]]
    namespace = found["nsp"] or "/"
    data = _json(rest[found.end() :]) if rest[found.end() :] else None
    fields: dict[str, Any] = {"engine": "message", "namespace": namespace, "data": data}
    if found["ack"]:
        fields["ack"] = int(found["ack"])
    if found["attachments"]:
        fields["attachments"] = int(found["attachments"])
    where = "" if namespace == "/" else f" {namespace}"
    if kind in ("EVENT", "BINARY_EVENT") and isinstance(data, list) and data:
        fields["event"], fields["args"] = data[0], data[1:]
        args = " ".join(json.dumps(a, ensure_ascii=False) for a in data[1:])
        name = json.dumps(data[0], ensure_ascii=False)
        return kind, f"{kind}{where} {name} {args}".rstrip(), fields
    if kind == "CONNECT_ERROR":
        message = data.get("message") if isinstance(data, dict) else data
        return kind, f"CONNECT_ERROR{where}: {message}", fields
    shown = "" if data is None else " " + json.dumps(data, ensure_ascii=False)
    return kind, f"{kind}{where}{shown}", fields


def app_error(text: str) -> str | None:
    """A refusal the app sent inside the messages: connect_error, or a server disconnect."""
    found = decode(text)
    if found is None:
        return None
    kind, _, fields = found
    if kind == "CONNECT_ERROR":
        data = fields.get("data")
        message = data.get("message") if isinstance(data, dict) else data
        return f"Socket.IO connect_error on {fields['namespace']}: {message}"
    if kind == "DISCONNECT":
        return f"the server disconnected the Socket.IO client from {fields['namespace']}"
    return None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
