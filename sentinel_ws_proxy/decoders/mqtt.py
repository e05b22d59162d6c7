"""MQTT 3.1, 3.1.1 and 5.0 control packets over WebSocket (RabbitMQ web-mqtt, Mosquitto,
EMQX, HiveMQ; MQTT.js, Paho), in binary messages.

A message may hold several packets, and a packet may span messages: every whole packet
is decoded, and one cut short says so (``partial`` in its fields). The version is in
CONNECT's protocol level byte (3, 4 = 3.1.1, 5); other packets do not carry it, so 3.1.1
and 5.0 layouts are told apart by shape: CONNACK's length (2 in 3.1.1), and MQTT 5
properties that parse exactly where 5.0 puts them (``version`` in the fields says which
reading was taken, "5?" when a guess).

=============  ==========  ===============================================================
packet         event       ending
=============  ==========  ===============================================================
CONNECT        open
CONNACK 0      ack
CONNACK != 0   refused     3.1.1: 1 protocol_error; 2, 4, 5 rejected; 3 app_error.
                           5.0: 0x85 0x86 0x87 0x8A 0x8C rejected; 0x80 0x83 server_error;
                           0x81 0x82 0x84 0x95 0x99 0x9A 0x9B protocol_error; 0x88 0x89 0x97
                           0x9C 0x9D 0x9F app_error. The reason (and any reason string) quoted
PUBLISH        message     (topic and payload, as text when UTF-8)
SUBSCRIBE      subscribe
SUBACK         error when a subscription was refused (0x80 and above), else none
UNSUBSCRIBE    complete
PINGREQ        ping        (the client asks)
PINGRESP       pong
DISCONNECT     close       c2s: client_done (protocol_error for an error reason code).
                           s2c (5.0): 0x00 clean; 0x8D keep alive timeout
                           client_unresponsive; 0x87 not authorized rejected; 0x80 0x83
                           server_error; malformed/protocol/topic/size/QoS codes
                           protocol_error; 0x8E session taken over ("another client connected
                           with the same client id"), 0x8B server shutting down, 0x89 busy,
                           0x98 administrative action, 0x9C/0x9D use another server, quotas
                           and rates: app_error
=============  ==========  ===============================================================

Close codes (``close_code``), for brokers that say no with the WebSocket close instead
of a packet. RabbitMQ's web-mqtt (3.x) refuses a CONNECT by closing with 1002 and the
name of the CONNACK return code it meant to send (the CONNACK, queued behind the close,
never arrives): ``unauthenticated`` (4, bad user name or password) and ``unauthorized``
(5, not authorized; also a PUBLISH to a topic the user may not write) rejected,
``access_refused`` rejected, ``invalid_client_id`` (2) rejected, ``unavailable`` (3)
app_error, ``unsupported_protocol_version`` (1) and ``connect_expected`` protocol_error;
any close reason speaking of authentication or authorization rejected. Its 1000
``MQTT died`` says nothing: RabbitMQ closes with it after the client's DISCONNECT and for
a session it ends itself (another client connected with the same client id, a lapsed
keep alive, an administrator's close) alike.

Redacts: CONNECT's password and, in MQTT 5, its Authentication Data property: each is
replaced by the 10 bytes "[redacted]" with the lengths (field, properties, remaining
length) rewritten, so the packet still parses. The user name is kept readable: it names
who connected, which is what a refusal is about.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sentinel_ws_proxy.decoders import _util
from sentinel_ws_proxy.decoders.base import REDACTED, Category, Decoded, Ending, malformed

NAME = "mqtt"
SUBPROTOCOLS = ("mqtt", "mqttv3.1")

TYPES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
         7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
         12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}  # fmt: skip
LEVELS = {3: "3.1", 4: "3.1.1", 5: "5.0"}
CONNACK3 = {0: "connection accepted", 1: "unacceptable protocol version",
            2: "identifier rejected", 3: "server unavailable", 4: "bad user name or password",
            5: "not authorized"}  # fmt: skip
REASONS = {
    0x00: "success", 0x01: "granted QoS 1", 0x02: "granted QoS 2",
    0x04: "disconnect with will message", 0x10: "no matching subscribers",
    0x11: "no subscription existed", 0x18: "continue authentication", 0x19: "re-authenticate",
    0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error",
    0x83: "implementation specific error", 0x84: "unsupported protocol version",
    0x85: "client identifier not valid", 0x86: "bad user name or password",
    0x87: "not authorized", 0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned",
    0x8B: "server shutting down", 0x8C: "bad authentication method",
    0x8D: "keep alive timeout", 0x8E: "session taken over", 0x8F: "topic filter invalid",
    0x90: "topic name invalid", 0x91: "packet identifier in use",
    0x92: "packet identifier not found", 0x93: "receive maximum exceeded",
    0x94: "topic alias invalid", 0x95: "packet too large", 0x96: "message rate too high",
    0x97: "quota exceeded", 0x98: "administrative action", 0x99: "payload format invalid",
    0x9A: "retain not supported", 0x9B: "QoS not supported", 0x9C: "use another server",
    0x9D: "server moved", 0x9E: "shared subscriptions not supported",
    0x9F: "connection rate exceeded", 0xA0: "maximum connect time",
    0xA1: "subscription identifiers not supported",
    0xA2: "wildcard subscriptions not supported",
}  # fmt: skip
REJECTED = {0x85, 0x86, 0x87, 0x8A, 0x8C}
SERVER_FAULT = {0x80, 0x83}
PROTOCOL_FAULT = {0x81, 0x82, 0x84, 0x8F, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x99, 0x9A,
                  0x9B, 0x9E, 0xA1, 0xA2}  # fmt: skip
EXPLAINED = {
    0x8E: "another client connected with the same client id",
    0x8D: "the client sent nothing within its keep alive",
    0x8B: "the server is shutting down",
    0x98: "an administrator disconnected the client",
    0x9C: "the server told the client to use another server",
    0x9D: "the server told the client it has moved",
    0xA0: "the client reached the server's maximum connect time",
}  # fmt: skip
# property id: (name, kind) with kind b byte, h u16, i u32, v varint, s string, d binary,
# p string pair.
PROPERTIES = {
    0x01: ("payload format", "b"), 0x02: ("message expiry", "i"), 0x03: ("content type", "s"),
    0x08: ("response topic", "s"), 0x09: ("correlation data", "d"),
    0x0B: ("subscription identifier", "v"), 0x11: ("session expiry", "i"),
    0x12: ("assigned client id", "s"), 0x13: ("server keep alive", "h"),
    0x15: ("authentication method", "s"), 0x16: ("authentication data", "d"),
    0x17: ("request problem information", "b"), 0x18: ("will delay", "i"),
    0x19: ("request response information", "b"), 0x1A: ("response information", "s"),
    0x1C: ("server reference", "s"), 0x1F: ("reason string", "s"),
    0x21: ("receive maximum", "h"), 0x22: ("topic alias maximum", "h"),
    0x23: ("topic alias", "h"), 0x24: ("maximum QoS", "b"), 0x25: ("retain available", "b"),
    0x26: ("user property", "p"), 0x27: ("maximum packet size", "i"),
    0x28: ("wildcard subscription available", "b"),
    0x29: ("subscription identifiers available", "b"),
    0x2A: ("shared subscription available", "b"),
}  # fmt: skip
PUBLISH_PROPERTIES = {0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26}
MAX_PACKETS = 1000
# RabbitMQ web-mqtt's refusals (rabbit_web_mqtt_handler in 3.x closes with 1002 and the
# error its MQTT processor returned): the CONNACK return code each stands for.
RABBITMQ_REFUSALS = {"unsupported_protocol_version": 1, "invalid_client_id": 2,
                     "unavailable": 3, "unauthenticated": 4, "unauthorized": 5}  # fmt: skip
REFUSED_WORDS = re.compile(
    r"unauthenticated|unauthori[sz]ed|not[ _-]?authori[sz]ed|access[ _-](refused|denied)"
    r"|forbidden|bad[ _-]user[ _-]?name[ _-]or[ _-]password|authentication[ _-]failed"
    r"|(bad|invalid|wrong)[ _-]credentials",
    re.IGNORECASE,
)


class Bad(Exception):
    """A packet that breaks MQTT (or ends early: ``short``)."""

    def __init__(self, why: str, short: bool = False) -> None:
        super().__init__(why)
        self.short = short


class Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos = data, pos
        self.end = len(data) if end is None else end

    def left(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise Bad("the packet ends early")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def varint(self) -> int:
        value, shift = 0, 0
        for _ in range(4):
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
        raise Bad("a variable byte integer longer than 4 bytes")

    def blob(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        return self.blob().decode("utf-8", "replace")


def close_code(code: int, reason: str) -> Ending | None:
    """What a broker's WebSocket close says about the MQTT session (see the table above)."""
    said = reason.strip() if isinstance(reason, str) else ""
    if not said:
        return None
    quoted = f"{code} {_util.short(said, 100)!r}"
    name = said.lower()
    category: Category
    if name == "connect_expected":
        category, why = "protocol_error", "the client sent a packet before CONNECT"
    elif name == "access_refused":
        category, why = "rejected", "an operation the user's permissions do not allow"
    elif name in RABBITMQ_REFUSALS:
        connack = RABBITMQ_REFUSALS[name]
        category = {1: "protocol_error", 3: "app_error"}.get(connack, "rejected")  # type: ignore[assignment]
        why = f"RabbitMQ's name for CONNACK return code {connack}, {CONNACK3[connack]}"
        if connack == 5:
            why += ", or for a PUBLISH the user may not make"
    elif REFUSED_WORDS.search(said):
        return Ending("rejected", f"the MQTT broker refused the client: it closed with {quoted}")
    else:
        return None
    return Ending(category, f"the MQTT broker refused the client: it closed with {quoted} ({why})")


def sniff(path: str, query: str, first: Sequence[tuple[str, Any]]) -> bool:
    for direction, payload in _util.firsts(first):
        if direction == "c2s" and isinstance(payload, bytes) and _is_connect(payload):
            return True
    return False


def _is_connect(raw: bytes) -> bool:
    if len(raw) < 12 or raw[0] != 0x10:
        return False
    pos = 1
    while pos < 5 and raw[pos] & 0x80:
        pos += 1
    head = raw[pos + 1 : pos + 9]
    return head.startswith(b"\x00\x04MQTT") or head.startswith(b"\x00\x06MQIsdp")


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    if isinstance(payload, str):
        if not payload:
            return malformed(NAME, "an empty message")
        return malformed(NAME, "a text message (MQTT over WebSocket is binary)")
    if not isinstance(payload, (bytes, bytearray)) or not payload:
        return malformed(NAME, "an empty message")
    raw = bytes(payload)
    found: list[Decoded] = []
    pos = 0
    while pos < len(raw) and len(found) < MAX_PACKETS:
        try:
            packet, pos = _one(raw, pos, direction)
        except Bad as exc:
            if found:
                found.append(Decoded(NAME, "partial", f"then a packet cut short: {exc}",
                                     {"partial": str(exc)}))  # fmt: skip
                break
            return malformed(NAME, str(exc))
        found.append(packet)
    if not found:
        return malformed(NAME, "no packet")
    main = max(found, key=_rank)
    if len(found) == 1:
        return _with_text(main, [main])
    names = [d.kind for d in found]
    fields = {**main.fields, "packets": names}
    summary = _util.short(f"{main.summary} (one of {len(found)} packets: {' '.join(names)})")
    return _with_text(Decoded(NAME, main.kind, summary, fields, None, main.event, main.ending),
                      found)  # fmt: skip


def _rank(d: Decoded) -> int:
    if d.ending is not None:
        return 3
    if d.event in ("open", "ack", "refused", "error"):
        return 2
    return 1 if d.event else 0


def _with_text(main: Decoded, packets: list[Decoded]) -> Decoded:
    lines = [p.fields.get("text_line") or p.summary for p in packets]
    fields = {k: v for k, v in main.fields.items() if k != "text_line"}
    return Decoded(NAME, main.kind, main.summary, fields, "\n".join(lines), main.event,
                   main.ending)  # fmt: skip


def _one(raw: bytes, pos: int, direction: str) -> tuple[Decoded, int]:
    head = Reader(raw, pos)
    first = head.byte()
    try:
        length = head.varint()
    except Bad as exc:
        raise Bad("the packet's fixed header ends early", short=True) from exc
    if head.left() < length:
        kind = TYPES.get(first >> 4, "?")
        raise Bad(f"a {kind} of {length} bytes with {head.left()} here (continued in the next "
                  "message?)", short=True)  # fmt: skip
    body = Reader(raw, head.pos, head.pos + length)
    end = head.pos + length
    kind = TYPES.get(first >> 4)
    if kind is None:
        raise Bad("packet type 0 is reserved")
    flags = first & 0x0F
    handler = HANDLERS.get(kind, _acklike)
    return handler(kind, flags, body, direction), end


def _props(r: Reader) -> dict[str, Any]:
    """MQTT 5 properties at the reader (length first)."""
    length = r.varint()
    inner = Reader(r.data, r.pos, r.pos + length)
    if inner.end > r.end:
        raise Bad("properties longer than the packet")
    found: dict[str, Any] = {}
    while inner.left() > 0:
        ident = inner.varint()
        if ident not in PROPERTIES:
            raise Bad(f"unknown property 0x{ident:02x}")
        name, kind = PROPERTIES[ident]
        value: Any
        if kind == "b":
            value = inner.byte()
        elif kind == "h":
            value = inner.u16()
        elif kind == "i":
            value = inner.u32()
        elif kind == "v":
            value = inner.varint()
        elif kind == "s":
            value = inner.string()
        elif kind == "d":
            value = f"({len(inner.blob())} bytes)"
        else:
            value = [inner.string(), inner.string()]
        if kind == "p" or ident == 0x0B:
            found.setdefault(name, []).append(value)
        else:
            found[name] = value
    r.pos = inner.end
    return found


def _props_fit(r: Reader, allowed: set[int] | None = None) -> dict[str, Any] | None:
    """MQTT 5 properties if they parse here (the reader advanced), else None (unmoved)."""
    start = r.pos
    try:
        found = _props(r)
    except Bad:
        r.pos = start
        return None
    if allowed is not None:
        names = {PROPERTIES[i][0] for i in allowed}
        if not set(found) <= names:
            r.pos = start
            return None
    return found


def _payload(data: bytes) -> str:
    if not data:
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return f"({len(data)} bytes binary: {data[:16].hex()}{'…' if len(data) > 16 else ''})"


def _connect(kind: str, flags: int, r: Reader, direction: str) -> Decoded:
    protocol = r.string()
    level = r.byte()
    bits = r.byte()
    keepalive = r.u16()
    fields: dict[str, Any] = {"type": kind, "protocol_name": protocol,
                              "version": LEVELS.get(level, str(level)),
                              "keepalive": keepalive, "clean": bool(bits & 0x02)}  # fmt: skip
    if protocol not in ("MQTT", "MQIsdp"):
        raise Bad(f"CONNECT for protocol {_util.short(protocol, 30)!r}")
    if level == 5:
        props = _props(r)
        if props:
            fields["properties"] = props
    fields["client_id"] = r.string()
    if bits & 0x04:
        if level == 5:
            _props(r)
        fields["will_topic"] = r.string()
        r.blob()
    if bits & 0x80:
        fields["username"] = r.string()
    if bits & 0x40:
        r.blob()
        fields["password"] = True
    who = f" username={_util.short(fields['username'], 60)}" if "username" in fields else ""
    summary = (f"CONNECT {protocol} {fields['version']} "
               f"client_id={_util.short(fields['client_id'], 60) or '(empty)'}"
               f" keepalive={keepalive}s{who}"
               + (" with password" if bits & 0x40 else ""))  # fmt: skip
    return Decoded(NAME, kind, _util.short(summary), fields, event="open")


def _reason_said(code: int, props: dict[str, Any] | None, table: dict[int, str]) -> str:
    said = f"0x{code:02X} {table.get(code, 'unknown reason')}"
    if props and isinstance(props.get("reason string"), str):
        said += f": {_util.short(props['reason string'], 120)}"
    return said


def _fault(code: int) -> Category | None:
    """Whose fault an MQTT 5 reason code says it is, if it says."""
    if code in REJECTED:
        return "rejected"
    if code in SERVER_FAULT:
        return "server_error"
    if code in PROTOCOL_FAULT:
        return "protocol_error"
    return None


def _connack(kind: str, flags: int, r: Reader, direction: str) -> Decoded:
    length = r.left()
    session = r.byte() & 0x01
    code = r.byte()
    props = None
    five = length > 2 or code >= 0x80
    if length > 2:
        props = _props(r)
    fields: dict[str, Any] = {"type": kind, "code": code, "session_present": bool(session),
                              "version": "5.0" if five else "3.1.1"}  # fmt: skip
    if props:
        fields["properties"] = props
    table = REASONS if five else CONNACK3
    said = _reason_said(code, props, table)
    if code == 0:
        return Decoded(NAME, kind, f"CONNACK accepted (session present: {bool(session)})",
                       fields, event="ack")  # fmt: skip
    if five:
        category = _fault(code) or ("app_error" if code in REASONS else "rejected")
    else:
        category = {1: "protocol_error", 3: "app_error"}.get(code, "rejected")
    ending = Ending(category, f"MQTT CONNACK refused the connection: {said}",  # type: ignore[arg-type]
                    reconnect=None)  # fmt: skip
    return Decoded(NAME, kind, _util.short(f"CONNACK refused: {said}"), fields,
                   event="refused", ending=ending)  # fmt: skip


def _publish(kind: str, flags: int, r: Reader, direction: str) -> Decoded:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise Bad("PUBLISH with QoS 3")
    topic = r.string()
    fields: dict[str, Any] = {"type": kind, "topic": topic, "qos": qos,
                              "retain": bool(flags & 0x01), "dup": bool(flags & 0x08)}  # fmt: skip
    if qos:
        fields["packet_id"] = r.u16()
    props = _props_fit(r, PUBLISH_PROPERTIES) if r.left() else None
    if props is not None:
        fields["version"] = "5?"
        if props:
            fields["properties"] = props
    data = r.take(r.left())
    text = _payload(data)
    fields["payload"] = _util.short(text, 1000)
    fields["bytes"] = len(data)
    flags_said = f" qos={qos}" + (" retain" if flags & 0x01 else "")
    summary = f"PUBLISH {_util.short(topic, 80)}{flags_said}" + (f": {text}" if text else "")
    fields["text_line"] = f"PUBLISH {topic}{flags_said}: {text}"
    return Decoded(NAME, kind, _util.short(summary), fields, event="message")


def _topics(r: Reader, options: bool) -> list[Any]:
    found: list[Any] = []
    while r.left() > 0:
        topic = r.string()
        if options:
            found.append([topic, r.byte()])
        else:
            found.append(topic)
    if not found:
        raise Bad("no topic")
    return found


def _subscribe(kind: str, flags: int, r: Reader, direction: str) -> Decoded:
    packet_id = r.u16()
    options = kind == "SUBSCRIBE"
    start = r.pos
    topics: list[Any] | None = None
    version = "3.1.1"
    props = _props_fit(r, {0x0B, 0x26} if options else {0x26})
    if props is not None:
        try:
            topics, version = _topics(r, options), "5?"
        except Bad:
            topics = None
    if topics is None:
        r.pos = start
        topics = _topics(r, options)
        props = None
    fields: dict[str, Any] = {"type": kind, "packet_id": packet_id, "version": version}
    if options:
        fields["topics"] = [{"topic": t, "qos": o & 0x03} for t, o in topics]
        shown = ", ".join(f"{_util.short(t, 60)} (qos {o & 0x03})" for t, o in topics[:5])
        event = "subscribe"
    else:
        fields["topics"] = topics
        shown = ", ".join(_util.short(t, 60) for t in topics[:5])
        event = "complete"
    if props:
        fields["properties"] = props
    return Decoded(NAME, kind, _util.short(f"{kind} {shown}"), fields, event=event)


def _suback(kind: str, flags: int, r: Reader, direction: str) -> Decoded:
    packet_id = r.u16()
    start = r.pos
    rest = r.data[r.pos : r.end]
    version = "3.1.1"
    props = None
    if kind == "UNSUBACK" and not rest:
        codes: list[int] = []
    elif kind == "SUBACK" and rest and all(b in (0, 1, 2, 0x80) for b in rest):
        codes = list(rest)
    else:
        props = _props_fit(r)
        if props is None or r.left() == 0:
            r.pos = start
            raise Bad(f"a {kind} whose codes do not parse")
        codes, version = list(r.take(r.left())), "5?"
    fields: dict[str, Any] = {"type": kind, "packet_id": packet_id, "codes": codes,
                              "version": version}  # fmt: skip
    if props:
        fields["properties"] = props
    failed = [c for c in codes if c >= 0x80]
    said = ", ".join(f"0x{c:02X} {REASONS.get(c, '?')}" for c in codes[:8])
    summary = f"{kind} packet {packet_id}" + (f": {said}" if codes else "")
    return Decoded(NAME, kind, _util.short(summary), fields, event="error" if failed else None)


def _ping(kind: str, flags: int, r: Reader, direction: str) -> Decoded:
    if r.left():
        raise Bad(f"a {kind} with a body")
    fields = {"type": kind, **_util.pinged(direction)}
    event = "ping" if kind == "PINGREQ" else "pong"
    return Decoded(NAME, kind, kind, fields, event=event)


def _disconnect(kind: str, flags: int, r: Reader, direction: str) -> Decoded:
    code = r.byte() if r.left() else 0
    props = _props(r) if r.left() else None
    fields: dict[str, Any] = {"type": kind, "code": code}
    if props:
        fields["properties"] = props
    said = _reason_said(code, props, REASONS)
    if direction != "s2c":
        category = "protocol_error" if code in PROTOCOL_FAULT else "client_done"
        ending = Ending(category, f"the MQTT client sent DISCONNECT ({said})")  # type: ignore[arg-type]
        return Decoded(NAME, kind, _util.short(f"DISCONNECT {said}"), fields, event="close",
                       ending=ending)  # fmt: skip
    if code == 0:
        category = "clean"
    elif code == 0x8D:
        category = "client_unresponsive"
    else:
        category = _fault(code) or "app_error"
    why = EXPLAINED.get(code)
    reason = f"the MQTT server sent DISCONNECT {said}" + (f": {why}" if why else "")
    reconnect = True if code in (0x9C, 0x9D) else None
    ending = Ending(category, reason, reconnect=reconnect)  # type: ignore[arg-type]
    return Decoded(NAME, kind, _util.short(f"DISCONNECT from the server: {said}"), fields,
                   event="close", ending=ending)  # fmt: skip


def _acklike(kind: str, flags: int, r: Reader, direction: str) -> Decoded:
    fields: dict[str, Any] = {"type": kind}
    if kind == "AUTH":
        code = r.byte() if r.left() else 0
        props = _props(r) if r.left() else None
        fields["code"] = code
        if props:
            fields["properties"] = props
        return Decoded(NAME, kind, f"AUTH {_reason_said(code, props, REASONS)}", fields)
    fields["packet_id"] = r.u16()
    summary = f"{kind} packet {fields['packet_id']}"
    if r.left():
        code = r.byte()
        props = _props(r) if r.left() else None
        fields["code"] = code
        if props:
            fields["properties"] = props
        summary += f" {_reason_said(code, props, REASONS)}"
    return Decoded(NAME, kind, _util.short(summary), fields)


HANDLERS = {"CONNECT": _connect, "CONNACK": _connack, "PUBLISH": _publish,
            "SUBSCRIBE": _subscribe, "UNSUBSCRIBE": _subscribe, "SUBACK": _suback,
            "UNSUBACK": _suback, "PINGREQ": _ping, "PINGRESP": _ping,
            "DISCONNECT": _disconnect}  # fmt: skip


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def redact(payload: str | bytes, direction: str) -> tuple[str | bytes, int] | None:
    if direction != "c2s" or not isinstance(payload, (bytes, bytearray)):
        return None
    raw = bytes(payload)
    if not _is_connect(raw):
        return None
    try:
        return _redact_connect(raw)
    except Exception:
        return None


def _redact_connect(raw: bytes) -> tuple[bytes, int] | None:
    start, end = _bounds(raw)
    if end > len(raw):
        return None
    found = _credentials(raw, start, end)
    if found is None:
        return None
    secret = REDACTED.encode()
    field = struct.pack(">H", len(secret)) + secret
    body = bytearray(raw[start:end])
    count = 0
    if found.password is not None:
        at, stop = found.password
        body[at - start : stop - start] = field
        count += 1
    if found.auth and found.props_at is not None:
        at, stop = found.auth[-1]  # the last (the spec allows one)
        delta = len(field) - (stop - at)
        body[at - start : stop - start] = field
        old = Reader(raw, found.props_at)
        old_len = old.varint()
        body[found.props_at - start : old.pos - start] = _varint(old_len + delta)
        count += 1
    if not count:
        return None
    packet = bytes([raw[0]]) + _varint(len(body)) + bytes(body)
    return packet + raw[end:], count


def secret_ranges(raw: bytes) -> list[tuple[int, int]] | None:
    """Where a client's CONNECT holds its password (and v5 authentication data): byte
    ranges of the values in ``raw``, a CONNECT's bytes from its first byte on. None while
    the packet is not whole yet (clients such as mqtt.js write it in a dozen WebSocket
    messages), [] for a whole CONNECT without secrets. The recorder masks these bytes in
    place, so every message keeps its length and the packet still parses."""
    if not raw or raw[0] >> 4 != 1:
        return []
    try:
        start, end = _bounds(raw)
    except Exception:
        return None if len(raw) < 5 else []
    if end > len(raw):
        return None
    try:
        found = _credentials(raw, start, end, lax=True)
    except Exception:
        return []
    if found is None:
        return []
    # the values, past each field's two length bytes
    ranges = [(at + 2, stop) for at, stop in found.auth]
    if found.password is not None:
        ranges.append((found.password[0] + 2, found.password[1]))
    return ranges


def _bounds(raw: bytes) -> tuple[int, int]:
    """Where a packet's variable header begins and where the packet ends, by its remaining
    length (which may say more than raw holds). Raises where that length is cut short."""
    head = Reader(raw, 1)
    length = head.varint()
    return head.pos, head.pos + length


@dataclass(frozen=True, slots=True)
class _Credentials:
    """Where a CONNECT's credentials are: each field from its two length bytes to its end."""

    props_at: int | None  # where MQTT 5's properties length is
    auth: list[tuple[int, int]]  # its authentication data properties, in order
    password: tuple[int, int] | None


_FIXED = {"b": 1, "h": 2, "i": 4}  # property types of a fixed size


def _credentials(raw: bytes, start: int, end: int, lax: bool = False) -> _Credentials | None:
    """The credential fields of the CONNECT in raw[start:end] (its variable header on).
    None at an unknown property (nothing after it can be found); raises where the packet
    breaks MQTT, except that, with ``lax``, a fixed-size property may overrun the properties
    (they then end there: secret_ranges masks what it can still find)."""
    r = Reader(raw, start, end)
    r.string()
    level = r.byte()
    bits = r.byte()
    r.u16()
    props_at = None
    auth: list[tuple[int, int]] = []
    if level == 5:
        props_at = r.pos
        props_len = r.varint()
        inner = Reader(raw, r.pos, r.pos + props_len)
        while inner.left() > 0:
            ident = inner.varint()
            kind = PROPERTIES.get(ident, ("", "?"))[1]
            at = inner.pos
            if kind in _FIXED:
                if lax:
                    inner.pos += _FIXED[kind]
                else:
                    inner.take(_FIXED[kind])
            elif kind == "v":
                inner.varint()
            elif kind in ("s", "d"):
                inner.blob()
            elif kind == "p":
                inner.blob()
                inner.blob()
            else:
                return None
            if ident == 0x16:  # authentication data
                auth.append((at, inner.pos))
        r.pos = inner.end
    r.blob()  # client id
    if bits & 0x04:
        if level == 5:
            r.pos += r.varint()
        r.blob()
        r.blob()
    if bits & 0x80:
        r.blob()
    password = None
    if bits & 0x40:
        at = r.pos
        r.blob()
        password = (at, r.pos)
    return _Credentials(props_at, auth, password)


# A client may write one packet in several WebSocket messages (mqtt.js writes each field
# apart): readers join a direction's messages into a stream and decode whole packets.
JOINS_MESSAGES = True


def split(stream: bytes) -> tuple[list[bytes], bytes]:
    """The whole packets at the start of a direction's byte stream, and what is left."""
    packets: list[bytes] = []
    pos = 0
    while pos + 2 <= len(stream):
        length, shift, at = 0, 0, pos + 1
        while True:
            if at >= len(stream) or shift > 21:
                return packets, stream[pos:]
            byte = stream[at]
            length |= (byte & 0x7F) << shift
            at += 1
            shift += 7
            if not byte & 0x80:
                break
        end = at + length
        if end > len(stream):
            break
        packets.append(stream[pos:end])
        pos = end
    return packets, stream[pos:]


def session_end(
    said: Sequence[tuple[str, Decoded]], closed_by: str | None, code: int | None, reason: str | None
) -> Ending | None:
    """A session the broker ended although the client never said DISCONNECT: in MQTT 3.1.1
    a broker has no packet to say why (5.0 sends DISCONNECT with a reason code, decoded
    above), so the client's silence is the evidence."""
    if closed_by != "server":
        return None
    accepted = any(d == "s2c" and m.kind == "CONNACK" and m.event == "ack" for d, m in said)
    if not accepted or any(d == "c2s" and m.kind == "DISCONNECT" for d, m in said):
        return None
    closed = f"{code} {reason!r}" if reason else f"{code}"
    return Ending(
        "app_error",
        f"the MQTT broker ended an accepted session without the client's DISCONNECT (closed "
        f"with {closed}): another client connected with the same client id, the client "
        "missed its keep-alive, or an administrator closed it",
    )
