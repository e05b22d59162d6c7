"""ASP.NET Core SignalR's hub protocol over WebSocket (@microsoft/signalr, the .NET and Java
clients), JSON and MessagePack.

JSON: every record is a JSON object followed by the record separator ``\\x1e``; one
message may hold several. The client's first record is the handshake request
``{"protocol":"json","version":1}`` (or ``"messagepack"``, after which binary messages
hold records as a VarInt length and a msgpack array); the server answers ``{}`` or
``{"error":...}``. SignalR has no subprotocol: it is sniffed from those records.

==============================  ==========  ==================================================
record                          event       ending
==============================  ==========  ==================================================
handshake request               open
handshake response ``{}``       ack
handshake response with error   refused     protocol_error when it speaks of the protocol or
                                            version, server_error for "unexpected error",
                                            else rejected; quoting the error
1 Invocation                    message
2 StreamItem                    message
3 Completion                    complete    (``error`` when it carries an error)
4 StreamInvocation              subscribe
5 CancelInvocation              complete
6 Ping                          ping        (both sides send them; ``from_server`` says who)
7 Close                         close       with ``error``: client_unresponsive when it
                                            speaks of a timeout, rejected for authorization,
                                            else server_error; without: clean. ``reconnect``
                                            is its ``allowReconnect``
8 Ack, 9 Sequence               (none)      stateful reconnect bookkeeping
==============================  ==========  ==================================================

Redacts nothing: SignalR sends its access token in the query string (``access_token=``),
which the proxy redacts with the rest of the URL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sentinel_ws_proxy.decoders import _util
from sentinel_ws_proxy.decoders.base import Decoded, Ending, malformed

NAME = "signalr"
SUBPROTOCOLS: tuple[str, ...] = ()
RS = "\x1e"
# What the client's first message looks like: its handshake request (cheap to test).
FIRST_MESSAGE = re.compile(r'^\s*\{.*"protocol".*\x1e\s*$', re.S)
TYPES = {1: "Invocation", 2: "StreamItem", 3: "Completion", 4: "StreamInvocation",
         5: "CancelInvocation", 6: "Ping", 7: "Close", 8: "Ack", 9: "Sequence"}  # fmt: skip
EVENTS = {1: "message", 2: "message", 3: "complete", 4: "subscribe", 5: "complete", 6: "ping",
          7: "close"}  # fmt: skip
MAX_RECORDS = 1000
TIMEOUT = re.compile(r"time ?out|without receiving", re.IGNORECASE)
AUTH = re.compile(r"unauthori[sz]ed|authenticat|forbidden|access denied", re.IGNORECASE)


def sniff(path: str, query: str, first: Sequence[tuple[str, Any]]) -> bool:
    for direction, payload in _util.firsts(first):
        if not isinstance(payload, str) or not payload.endswith(RS):
            continue
        records = [_util.load_object(r) for r in payload.split(RS)[:-1]]
        if not records or any(r is None for r in records):
            continue
        head = records[0] or {}
        if direction == "c2s" and isinstance(head.get("protocol"), str) and "version" in head:
            return True
        if direction == "s2c" and head == {}:
            return True
        if all(isinstance((r or {}).get("type"), int) and (r or {}).get("type") in TYPES
               for r in records):  # fmt: skip
            return True
    return False


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    if isinstance(payload, (bytes, bytearray)):
        return _binary(bytes(payload), direction)
    if not isinstance(payload, str) or not payload:
        return malformed(NAME, "an empty message")
    if RS not in payload:
        return malformed(NAME, "no record separator (\\x1e) ends the record")
    parts = payload.split(RS)
    records, tail = parts[:-1], parts[-1]
    found: list[Decoded] = []
    for record in records[:MAX_RECORDS]:
        value = _util.load(record)
        if _util.missing(value) or not isinstance(value, dict):
            found.append(malformed(NAME, "a record that is not a JSON object"))
            continue
        found.append(_record(value, direction))
    if tail.strip():
        found.append(malformed(NAME, "a record without its separator (cut short?)"))
    return _merge(found, None)


def _binary(raw: bytes, direction: str) -> Decoded:
    found: list[Decoded] = []
    values: list[Any] = []
    pos = 0
    try:
        import msgpack
    except Exception:  # pragma: no cover - msgpack is a dependency
        return malformed(NAME, "msgpack is not installed")
    while pos < len(raw) and len(found) < MAX_RECORDS:
        length, shift, start = 0, 0, pos
        while True:
            if pos >= len(raw) or pos - start >= 5:
                return malformed(NAME, "a MessagePack record's length prefix ends early")
            b = raw[pos]
            pos += 1
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if pos + length > len(raw):
            found.append(malformed(NAME, "a MessagePack record cut short"))
            break
        try:
            value = msgpack.unpackb(raw[pos : pos + length], raw=False, strict_map_key=False,
                                    unicode_errors="replace")  # fmt: skip
        except Exception:
            found.append(malformed(NAME, "a record that is not MessagePack"))
            pos += length
            continue
        pos += length
        values.append(value)
        record = _from_array(value)
        if record is None:
            found.append(malformed(NAME, "a MessagePack record that is not a hub message"))
        else:
            found.append(_record(record, direction))
    return _merge(found, _util.dumps(values if len(values) != 1 else values[0]))


def _from_array(value: Any) -> dict[str, Any] | None:
    """A MessagePack hub message (an array) as the JSON protocol's object."""
    if not isinstance(value, list) or not value or not isinstance(value[0], int):
        return None
    kind, items = value[0], value[1:] + [None] * 6
    if kind in (1, 4):
        found = {"type": kind, "invocationId": items[1], "target": items[2],
                 "arguments": items[3]}  # fmt: skip
        if items[4] is not None:
            found["streamIds"] = items[4]
        return found
    if kind == 2:
        return {"type": 2, "invocationId": items[1], "item": items[2]}
    if kind == 3:
        found = {"type": 3, "invocationId": items[1]}
        if items[2] == 1:
            found["error"] = items[3]
        elif items[2] == 3:
            found["result"] = items[3]
        return found
    if kind == 5:
        return {"type": 5, "invocationId": items[1]}
    if kind == 6:
        return {"type": 6}
    if kind == 7:
        found = {"type": 7}
        if items[0] is not None:
            found["error"] = items[0]
        if items[1] is not None:
            found["allowReconnect"] = items[1]
        return found
    if kind in (8, 9):
        return {"type": kind, "sequenceId": items[0]}
    return None


def _merge(found: list[Decoded], text: str | None) -> Decoded:
    if not found:
        return malformed(NAME, "no record")
    main = max(found, key=_rank)
    if len(found) == 1:
        if text is None:
            return main
        return Decoded(NAME, main.kind, main.summary, main.fields, text, main.event,
                       main.ending)  # fmt: skip
    names = [d.kind for d in found]
    fields = {**main.fields, "records": names}
    summary = _util.short(f"{main.summary} (one of {len(found)} records: {' '.join(names)})")
    return Decoded(NAME, main.kind, summary, fields, text, main.event, main.ending)


def _rank(d: Decoded) -> int:
    if d.ending is not None:
        return 4
    if d.event in ("open", "ack", "refused", "error"):
        return 3
    if d.kind == "malformed":
        return 2
    return 1 if d.event and d.event != "ping" else 0


def _record(record: dict[str, Any], direction: str) -> Decoded:
    kind = record.get("type")
    if kind is None:
        return _handshake(record, direction)
    if isinstance(kind, bool) or not isinstance(kind, int) or kind not in TYPES:
        return malformed(NAME, f"unknown message type {_util.shown(kind, 40)}")
    name = TYPES[kind]
    fields: dict[str, Any] = {"type": kind}
    ident = record.get("invocationId")
    if ident is not None:
        fields["invocationId"] = _util.plain(ident)
    tag = f" {_util.shown(ident, 40)}" if ident is not None else ""
    event = EVENTS.get(kind)
    if kind in (1, 4):
        target = record.get("target")
        args = record.get("arguments")
        fields["target"] = _util.plain(target)
        shown = ", ".join(_util.shown(a, 80) for a in args[:5]) if isinstance(args, list) else ""
        summary = f"{name} {_util.shown(target, 60)}({shown})" + (f" id={ident}" if tag else "")
        return Decoded(NAME, name, _util.short(summary), fields, event=event)
    if kind == 2:
        summary = f"StreamItem{tag}: {_util.shown(record.get('item'))}"
        return Decoded(NAME, name, _util.short(summary), fields, event=event)
    if kind == 3:
        if record.get("error") is not None:
            fields["error"] = _util.words(record["error"], 300)
            summary = f"Completion{tag} error: {fields['error']}"
            return Decoded(NAME, name, _util.short(summary), fields, event="error")
        said = f": {_util.shown(record['result'])}" if "result" in record else ""
        return Decoded(NAME, name, _util.short(f"Completion{tag}{said}"), fields, event=event)
    if kind == 6:
        fields.update(_util.pinged(direction))
        return Decoded(NAME, name, "Ping", fields, event=event)
    if kind == 7:
        return _close(record, fields, direction)
    if kind in (8, 9):
        fields["sequenceId"] = _util.plain(record.get("sequenceId"))
        return Decoded(NAME, name, f"{name} {_util.shown(record.get('sequenceId'), 40)}", fields)
    return Decoded(NAME, name, f"{name}{tag}", fields, event=event)


def _handshake(record: dict[str, Any], direction: str) -> Decoded:
    if direction == "c2s" or "protocol" in record:
        protocol, version = record.get("protocol"), record.get("version")
        fields = {"hub_protocol": _util.plain(protocol), "version": _util.plain(version)}
        summary = f"handshake: protocol {_util.shown(protocol, 40)} version {version}"
        return Decoded(NAME, "handshake", _util.short(summary), fields, event="open")
    error = record.get("error")
    if error is None:
        return Decoded(NAME, "handshake_response", "handshake accepted", {}, event="ack")
    said = _util.words(error, 200)
    lowered = said.lower()
    if "protocol" in lowered or "version" in lowered:
        category = "protocol_error"
    elif "unexpected error" in lowered:
        category = "server_error"
    else:
        category = "rejected"
    ending = Ending(category, f"SignalR handshake error: {said}", reconnect=False)  # type: ignore[arg-type]
    return Decoded(NAME, "handshake_response", _util.short(f"handshake refused: {said}"),
                   {"error": said}, event="refused", ending=ending)  # fmt: skip


def _close(record: dict[str, Any], fields: dict[str, Any], direction: str) -> Decoded:
    error = record.get("error")
    allow = record.get("allowReconnect")
    reconnect = allow is True
    fields["allowReconnect"] = reconnect
    if direction == "c2s":
        ending = Ending("client_done", "the SignalR client sent a close message",
                        reconnect=reconnect)  # fmt: skip
        return Decoded(NAME, "Close", "Close from the client", fields, event="close",
                       ending=ending)  # fmt: skip
    if error is None or error == "":
        ending = Ending("clean", "the SignalR server closed the connection without an error",
                        reconnect=reconnect)  # fmt: skip
        return Decoded(NAME, "Close", f"Close (allowReconnect: {reconnect})", fields,
                       event="close", ending=ending)  # fmt: skip
    said = _util.words(error, 300)
    fields["error"] = said
    if TIMEOUT.search(said):
        category = "client_unresponsive"
    elif AUTH.search(said):
        category = "rejected"
    else:
        category = "server_error"
    ending = Ending(category, f"SignalR close: {said}", reconnect=reconnect)  # type: ignore[arg-type]
    summary = f"Close with error: {said} (allowReconnect: {reconnect})"
    return Decoded(NAME, "Close", _util.short(summary), fields, event="close", ending=ending)
