"""Engine.IO v4 (and v3) with Socket.IO v5 packets, as socket.io, python-socketio and
their clients send them, in JSON text (the default parser) or msgpack binary
(socket.io-msgpack-parser, python-socketio's msgpack serializer).

A text message is an Engine.IO packet: a type digit (0 open, 1 close, 2 ping, 3 pong,
4 message, 5 upgrade, 6 noop; "2probe"/"3probe" probe an upgrade; "b" + base64 is a
binary message in text). An Engine.IO message carries a Socket.IO packet: a type digit
(0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR, 5 BINARY_EVENT, 6 BINARY_ACK),
for binary packets the attachment count and a dash, an optional namespace ("/admin,"),
an optional ack id, then JSON. Over WebSocket, Engine.IO sends binary messages raw (no
type byte): with the msgpack parser each one is a whole Socket.IO packet, a map
``{type, data, nsp, id}``; with the default parser it is an attachment of the
BINARY_EVENT before it.

============================  =========  ==================================================
packet                        event      ending
============================  =========  ==================================================
engine open ``0{...}``        open       (fields sid, pingInterval, pingTimeout)
engine ping ``2``             ping       (from the server in v4, the client in v3)
engine pong ``3``             pong
engine close ``1``            close      client_done (c2s) / app_error (s2c)
CONNECT c2s / s2c             open/ack
CONNECT_ERROR                 refused    rejected, quoting its message ("Invalid namespace":
                                         protocol_error); the client will not reconnect
DISCONNECT s2c                close      app_error: the server disconnected the client
                                         (io server disconnect), reconnect False
DISCONNECT c2s                close      client_done
EVENT, ACK, BINARY_*          message
============================  =========  ==================================================

Redacts: the values of a client CONNECT's auth data (``40{"token":...}``,
``40/nsp,{...}``, a msgpack CONNECT's ``data`` map), keys kept.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Any

from sentinel_ws_proxy.decoders import _util
from sentinel_ws_proxy.decoders.base import Decoded, Ending, malformed

NAME = "socket.io"
SUBPROTOCOLS: tuple[str, ...] = ()
ENGINE = {"0": "open", "1": "close", "2": "ping", "3": "pong", "4": "message", "5": "upgrade",
          "6": "noop"}  # fmt: skip
SOCKET = ("CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT",
          "BINARY_ACK")  # fmt: skip
PACKET = re.compile(
    r"(?P<type>[0-6])(?:(?P<attachments>\d{1,6})-)?(?:(?P<nsp>/[^,]*)(?:,|$))?(?P<ack>\d{1,15})?"
)


def sniff(path: str, query: str, first: Sequence[tuple[str, Any]]) -> bool:
    if "/socket.io" in (path or "") or "EIO=" in (query or ""):
        return True
    return any(
        direction == "s2c" and isinstance(p, str) and p.startswith('0{"sid":')
        for direction, p in _util.firsts(first)
    )


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    if isinstance(payload, (bytes, bytearray)):
        return _binary(bytes(payload), direction)
    if not isinstance(payload, str) or not payload:
        return malformed(NAME, "an empty message")
    head, rest = payload[0], payload[1:]
    if head == "b":
        try:
            raw = base64.b64decode(rest, validate=True)
        except Exception:
            return malformed(NAME, "a 'b' message whose base64 does not decode")
        return _binary(raw, direction)
    engine = ENGINE.get(head)
    if engine is None:
        return malformed(NAME, f"unknown Engine.IO packet type {head!r}")
    if engine == "message":
        return _text_packet(rest, direction)
    fields: dict[str, Any] = {"engine": engine}
    if engine == "open":
        data = _util.load_object(rest)
        if data is None:
            return malformed(NAME, "an Engine.IO open packet without its JSON handshake")
        for key in ("sid", "pingInterval", "pingTimeout", "maxPayload", "upgrades"):
            if key in data:
                fields[key] = _util.plain(data[key])
        summary = (f"engine.io open sid={_util.shown(data.get('sid'), 40)} "
                   f"pingInterval={data.get('pingInterval')} "
                   f"pingTimeout={data.get('pingTimeout')}")  # fmt: skip
        return Decoded(NAME, "open", summary, fields, event="open")
    if engine in ("ping", "pong"):
        if rest == "probe":
            return Decoded(NAME, "probe", f"engine.io {engine} probe (transport upgrade)",
                           fields)  # fmt: skip
        fields.update(_util.pinged(direction))
        summary = f"engine.io {engine}" + (f" {_util.short(rest, 80)}" if rest else "")
        return Decoded(NAME, engine, summary, fields, event=engine)
    if engine == "close":
        if direction == "s2c":
            ending = Ending("app_error", "the Engine.IO server closed the transport (close packet)")
        else:
            ending = Ending("client_done", "the Engine.IO client closed the transport")
        return Decoded(NAME, "close", "engine.io close", fields, event="close", ending=ending)
    summary = f"engine.io {engine}" + (f" {_util.short(rest, 80)}" if rest else "")
    return Decoded(NAME, engine, summary, fields)


def _text_packet(rest: str, direction: str) -> Decoded:
    found = PACKET.match(rest)
    if found is None:
        # Engine.IO without Socket.IO: a plain message.
        fields = {"engine": "message", "data": _util.short(rest)}
        return Decoded(NAME, "message", _util.short(f"engine.io message {rest}"), fields,
                       event="message")  # fmt: skip
    kind = SOCKET[int(found["type"])]
    body = rest[found.end() :]
    data: Any = None
    if body:
        data = _util.load(body)
        if _util.missing(data):
            return malformed(NAME, f"the data of a {kind} packet is not JSON")
    ack = int(found["ack"]) if found["ack"] else None
    attachments = int(found["attachments"]) if found["attachments"] else None
    return _packet(kind, found["nsp"] or "/", data, ack, attachments, direction, "json")


def _binary(raw: bytes, direction: str) -> Decoded:
    packet = _msgpack_packet(raw)
    if packet is None:
        fields = {"engine": "message", "bytes": len(raw)}
        return Decoded(NAME, "attachment", f"binary attachment ({len(raw)} bytes)", fields,
                       event="message")  # fmt: skip
    kind = SOCKET[packet["type"]]
    ack = packet.get("id")
    ack = ack if isinstance(ack, int) and not isinstance(ack, bool) else None
    decoded = _packet(kind, packet["nsp"] or "/", packet.get("data"), ack, None, direction,
                      "msgpack")  # fmt: skip
    if decoded.kind == "malformed":
        return decoded
    text = _util.dumps(packet)
    return Decoded(decoded.protocol, decoded.kind, decoded.summary, decoded.fields, text,
                   decoded.event, decoded.ending)  # fmt: skip


def _msgpack_packet(raw: bytes) -> dict[Any, Any] | None:
    if not raw or (raw[0] & 0xF0 != 0x80 and raw[0] != 0xDE):
        return None
    try:
        import msgpack

        value = msgpack.unpackb(raw, raw=False, strict_map_key=False, unicode_errors="replace")
    except Exception:
        return None
    if not isinstance(value, dict):
        return None
    kind, nsp = value.get("type"), value.get("nsp")
    if isinstance(kind, bool) or not isinstance(kind, int) or not 0 <= kind <= 6:
        return None
    if not isinstance(nsp, str):
        return None
    return value


def _packet(kind: str, nsp: str, data: Any, ack: int | None, attachments: int | None,
            direction: str, parser: str) -> Decoded:  # fmt: skip
    fields: dict[str, Any] = {"engine": "message", "namespace": nsp, "parser": parser}
    if ack is not None:
        fields["ack"] = ack
    if attachments is not None:
        fields["attachments"] = attachments
    where = "" if nsp == "/" else f" {_util.short(nsp, 60)}"
    if kind == "CONNECT":
        if direction == "s2c":
            sid = ""
            if isinstance(data, dict) and "sid" in data:
                fields["sid"] = _util.plain(data["sid"])
                sid = f" sid={_util.shown(data['sid'], 40)}"
            summary = _util.short(f"CONNECT{where} accepted{sid}")
            return Decoded(NAME, kind, summary, fields, event="ack")
        keys = sorted(str(k) for k in data) if isinstance(data, dict) else []
        if keys:
            fields["auth_keys"] = keys
        said = f" with auth keys {', '.join(keys)}" if keys else ""
        return Decoded(NAME, kind, _util.short(f"CONNECT{where}{said}"), fields, event="open")
    if kind == "CONNECT_ERROR":
        message = data.get("message") if isinstance(data, dict) else data
        said = _util.words(message)
        fields["message"] = said
        if isinstance(data, dict) and data.get("data") is not None:
            fields["data"] = _util.plain(data["data"])
        category = "protocol_error" if said == "Invalid namespace" else "rejected"
        reason = f"Socket.IO connect_error on {nsp}: {said}"
        if category == "protocol_error":
            reason += " (the client connected to a namespace the server does not have)"
        ending = Ending(category, reason, reconnect=False)
        return Decoded(NAME, kind, _util.short(f"CONNECT_ERROR{where}: {said}"), fields,
                       event="refused", ending=ending)  # fmt: skip
    if kind == "DISCONNECT":
        if direction == "s2c":
            ending = Ending("app_error", f"the server disconnected the client from {nsp} "
                            "(io server disconnect): the client will not reconnect on its own",
                            reconnect=False)  # fmt: skip
        else:
            ending = Ending("client_done", f"the client disconnected from {nsp} "
                            "(io client disconnect)")  # fmt: skip
        return Decoded(NAME, kind, f"DISCONNECT{where}", fields, event="close", ending=ending)
    fields["data"] = _util.plain(data)
    id_said = f" ack={ack}" if ack is not None else ""
    if kind in ("EVENT", "BINARY_EVENT") and isinstance(data, list) and data:
        fields["name"] = _util.plain(data[0])
        args = " ".join(_util.shown(a, 120) for a in data[1:4])
        summary = f"{kind}{where}{id_said} {_util.shown(data[0], 60)} {args}".rstrip()
        return Decoded(NAME, kind, _util.short(summary), fields, event="message")
    shown = "" if data is None else " " + _util.shown(data)
    return Decoded(NAME, kind, _util.short(f"{kind}{where}{id_said}{shown}"), fields,
                   event="message")  # fmt: skip


def redact(payload: str | bytes, direction: str) -> tuple[str | bytes, int] | None:
    if direction != "c2s":
        return None
    if isinstance(payload, str):
        if not payload.startswith("40") or not payload.endswith("}"):
            return None
        if len(payload) > _util.REDACT_LIMIT:
            return None
        found = PACKET.match(payload, 1)
        if found is None or found["type"] != "0":
            return None
        data = _util.load_object(payload[found.end() :])
        if not data:
            return None
        redacted, count = _util.redact_tree(data)
        return payload[: found.end()] + _util.dumps(redacted), count
    if not isinstance(payload, (bytes, bytearray)) or len(payload) > _util.REDACT_LIMIT:
        return None
    packet = _msgpack_packet(bytes(payload))
    if packet is None or packet["type"] != 0 or not isinstance(packet.get("data"), dict):
        return None
    if not packet["data"]:
        return None
    packet = dict(packet)
    packet["data"], count = _util.redact_tree(packet["data"])
    try:
        import msgpack

        return msgpack.packb(packet, use_bin_type=True), count
    except Exception:
        return None
