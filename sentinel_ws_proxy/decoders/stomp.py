"""STOMP 1.0-1.2 over WebSocket (RabbitMQ web-stomp, ActiveMQ, Artemis, Spring's broker
relay and simple broker; clients such as @stomp/stompjs), in text or binary messages.

A frame is a command line, ``name:value`` header lines, a blank line, a body and a NUL
byte (a ``content-length`` header, when present, gives the body's length). A message
that is only end-of-lines (``\\n`` or ``\\r\\n``) is a heart-beat, which either side sends
(``from_server`` says who). One message may hold several frames; a frame split over
messages (stompjs' ``maxWebSocketChunkSize``) is shown as partial.

==============  =========  ===============================================================
frame           event      ending
==============  =========  ===============================================================
CONNECT/STOMP   open
CONNECTED       ack
SUBSCRIBE       subscribe
UNSUBSCRIBE     complete
SEND, MESSAGE   message
DISCONNECT      close      client_done (the client's orderly goodbye)
ERROR           refused    rejected, when its ``message`` header or body speak of
                           login, credentials, authentication, access refused or denied,
                           authorization, permission
ERROR           error      otherwise: server_error (exception, internal, processing
                           error), protocol_error (bad, invalid, malformed, unsupported,
                           version, missing...), else app_error; the server closes the
                           connection after any ERROR, so every ERROR carries an Ending
                           quoting its ``message`` header (and the body's first line)
RECEIPT, ACK, NACK, BEGIN, COMMIT, ABORT: no event
==============  =========  ===============================================================

Redacts: in a client CONNECT/STOMP frame, the ``passcode`` header and any header named
like a credential (token, authorization, password, secret, cookie, session, api key...).
``login`` is kept readable: it names who connected, which is what a refusal is about.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sentinel_ws_proxy.decoders import _util
from sentinel_ws_proxy.decoders.base import REDACTED, Decoded, Ending, malformed

NAME = "stomp"
SUBPROTOCOLS = ("v12.stomp", "v11.stomp", "v10.stomp", "stomp")
# What the client's first message looks like without the subprotocol (cheap to test).
FIRST_MESSAGE = re.compile(r"^(CONNECT|STOMP)\r?\n")

CLIENT = {"CONNECT", "STOMP", "SEND", "SUBSCRIBE", "UNSUBSCRIBE", "BEGIN", "COMMIT", "ABORT",
          "ACK", "NACK", "DISCONNECT"}  # fmt: skip
SERVER = {"CONNECTED", "MESSAGE", "RECEIPT", "ERROR"}
EVENTS = {"CONNECT": "open", "STOMP": "open", "CONNECTED": "ack", "SUBSCRIBE": "subscribe",
          "UNSUBSCRIBE": "complete", "SEND": "message", "MESSAGE": "message",
          "DISCONNECT": "close", "ERROR": "error"}  # fmt: skip
# Which frame of several in one message names it.
RANK = {"ERROR": 5, "CONNECTED": 4, "DISCONNECT": 4, "CONNECT": 4, "STOMP": 4}
MAX_HEADERS = 256
ESCAPES = {"\\n": "\n", "\\r": "\r", "\\c": ":", "\\\\": "\\"}
ESCAPED = re.compile(r"\\[nrc\\]")

REFUSED = re.compile(
    r"auth|login|passcode|password|credential|access[ _-]?(is[ _-])?(refused|denied)"
    r"|not[ _-]authori[sz]ed|forbidden|permission|unauthori[sz]ed",
    re.IGNORECASE,
)
SERVER_FAULT = re.compile(r"exception|internal|processing error|crash|unexpected", re.IGNORECASE)
PROTOCOL_FAULT = re.compile(
    r"bad|invalid|malformed|unsupported|not supported|version|missing|syntax|unknown"
    r"|illegal|too (large|long|many)|must",
    re.IGNORECASE,
)


@dataclass
class Frame:
    command: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    partial: str | None = None  # why the frame is incomplete


def sniff(path: str, query: str, first: Sequence[tuple[str, Any]]) -> bool:
    for direction, payload in _util.firsts(first):
        head = payload[:16]
        if isinstance(head, bytes):
            head = head.decode("latin-1")
        head = head.lstrip("\r\n")
        wanted = ("CONNECT", "STOMP") if direction == "c2s" else ("CONNECTED",)
        if any(head.startswith(w + "\n") or head.startswith(w + "\r\n") for w in wanted):
            return True
    return False


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    raw = _bytes(payload)
    if raw is None:
        return malformed(NAME, "not a STOMP frame")
    if not raw:
        return malformed(NAME, "an empty message")
    if not raw.strip(b"\r\n"):
        fields = {"beats": raw.count(b"\n"), **_util.pinged(direction)}
        who = "server" if direction == "s2c" else "client"
        return Decoded(NAME, "heartbeat", f"heart-beat from the {who}", fields, event="ping")
    frames, error = _frames(raw)
    if error is not None:
        return malformed(NAME, error)
    if not frames:
        return malformed(NAME, "no frame")
    main = max(frames, key=lambda f: RANK.get(f.command, 0))
    found = _frame(main, direction)
    summary = found.summary
    fields = found.fields
    if len(frames) > 1:
        fields["frames"] = [f.command for f in frames]
        summary = f"{summary} (one of {len(frames)} frames: {' '.join(fields['frames'])})"
    text = None
    if isinstance(payload, (bytes, bytearray)):
        try:
            text = bytes(payload).decode("utf-8").replace("\x00", "")
        except UnicodeDecodeError:
            text = None
    return Decoded(NAME, found.kind, _util.short(summary), fields, text, found.event,
                   found.ending)  # fmt: skip


def _bytes(payload: Any) -> bytes | None:
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogatepass")
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    return None


def _frames(raw: bytes) -> tuple[list[Frame], str | None]:
    frames: list[Frame] = []
    pos, end = 0, len(raw)
    while pos < end:
        while pos < end and raw[pos] in b"\r\n":
            pos += 1
        if pos >= end:
            break
        eol = raw.find(b"\n", pos)
        line = raw[pos : eol if eol >= 0 else end].rstrip(b"\r")
        command = line.decode("utf-8", "replace")
        if command not in CLIENT and command not in SERVER:
            return frames, f"unknown command {_util.short(command, 40)!r}"
        frame = Frame(command)
        frames.append(frame)
        if eol < 0:
            frame.partial = "the frame ends after its command"
            break
        pos = eol + 1
        escaped = command not in ("CONNECT", "CONNECTED")
        count = 0
        while True:
            eol = raw.find(b"\n", pos)
            if eol < 0:
                frame.partial = "the frame ends inside its headers"
                return frames, None
            line = raw[pos:eol].rstrip(b"\r")
            pos = eol + 1
            if not line:
                break
            count += 1
            if count > MAX_HEADERS:
                return frames, f"more than {MAX_HEADERS} headers"
            name, colon, value = line.decode("utf-8", "replace").partition(":")
            if not colon:
                return frames, f"a header line without ':' in {command}"
            if escaped:
                name, value = _unescape(name), _unescape(value)
            frame.headers.setdefault(name, value)
        length = frame.headers.get("content-length", "").strip()
        if length.isdigit() and len(length) < 12:
            stop = pos + int(length)
            if stop >= end:
                frame.body = raw[pos:end]
                frame.partial = "the body is shorter than its content-length"
                break
            if raw[stop] != 0:
                return frames, "no NUL after content-length bytes of body"
            frame.body, pos = raw[pos:stop], stop + 1
        else:
            stop = raw.find(b"\x00", pos)
            if stop < 0:
                frame.body = raw[pos:end]
                frame.partial = "no NUL ends the frame"
                break
            frame.body, pos = raw[pos:stop], stop + 1
    return frames, None


def _unescape(text: str) -> str:
    return ESCAPED.sub(lambda m: ESCAPES[m.group(0)], text) if "\\" in text else text


def _body(body: bytes) -> str:
    if not body:
        return ""
    try:
        return _util.short(body.decode("utf-8"), 160)
    except UnicodeDecodeError:
        return f"({len(body)} bytes binary)"


def _frame(frame: Frame, direction: str) -> Decoded:
    command, headers = frame.command, frame.headers
    shown = {k: (REDACTED if _secret(k) else v) for k, v in headers.items()}
    fields: dict[str, Any] = {"command": command, "headers": shown}
    body = _body(frame.body)
    if frame.body:
        fields["body"] = body
    if frame.partial:
        fields["partial"] = frame.partial
    event = EVENTS.get(command)
    late = f" (partial: {frame.partial})" if frame.partial else ""

    def pick(*names: str) -> str:
        return " ".join(f"{n}={_util.short(shown[n], 60)}" for n in names if n in shown)

    if command in ("CONNECT", "STOMP"):
        summary = f"{command} {pick('host', 'accept-version', 'heart-beat', 'login')}"
    elif command == "CONNECTED":
        summary = f"CONNECTED {pick('version', 'heart-beat', 'server', 'session')}"
    elif command in ("SEND", "MESSAGE"):
        where = _util.short(headers.get("destination", "?"), 80)
        summary = f"{command} {where}" + (f": {body}" if body else "")
    elif command == "ERROR":
        return _error(frame, fields, body, late)
    elif command == "DISCONNECT":
        ending = Ending("client_done", "the STOMP client sent DISCONNECT")
        summary = f"DISCONNECT {pick('receipt')}".rstrip()
        return Decoded(NAME, command, summary + late, fields, event="close", ending=ending)
    else:
        names = ("id", "destination", "receipt-id", "receipt", "message-id", "transaction")
        summary = f"{command} {pick(*names)}"
    return Decoded(NAME, command, summary.rstrip() + late, fields, event=event)


def _error(frame: Frame, fields: dict[str, Any], body: str, late: str) -> Decoded:
    message = frame.headers.get("message", "").strip()
    detail = body.splitlines()[0].strip() if body.strip() else ""
    said = message or detail or "(no message)"
    if detail and detail != message:
        said = f"{said} ({detail})" if message else said
    said = _util.short(said, 160)
    both = f"{message}\n{detail}"
    if REFUSED.search(both):
        category, event = "rejected", "refused"
    elif SERVER_FAULT.search(both):
        category, event = "server_error", "error"
    elif PROTOCOL_FAULT.search(both):
        category, event = "protocol_error", "error"
    else:
        category, event = "app_error", "error"
    ending = Ending(category, f"STOMP ERROR: {said}")  # type: ignore[arg-type]
    return Decoded(NAME, "ERROR", f"ERROR: {said}{late}", fields, event=event, ending=ending)


def _secret(name: str) -> bool:
    return name.lower() == "passcode" or bool(_util.SECRET.search(name))


def redact(payload: str | bytes, direction: str) -> tuple[str | bytes, int] | None:
    if direction != "c2s":
        return None
    if isinstance(payload, str):
        head = payload[:12].lstrip("\r\n")
        if not (head.startswith("CONNECT") or head.startswith("STOMP")):
            return None
        raw = payload.encode("utf-8", "surrogatepass")
    elif isinstance(payload, (bytes, bytearray)):
        head = bytes(payload[:12]).lstrip(b"\r\n")
        if not (head.startswith(b"CONNECT") or head.startswith(b"STOMP")):
            return None
        raw = bytes(payload)
    else:
        return None
    start = len(raw) - len(raw.lstrip(b"\r\n"))
    eol = raw.find(b"\n", start)
    if eol < 0 or raw[start:eol].rstrip(b"\r") not in (b"CONNECT", b"STOMP"):
        return None
    out, pos, count = [raw[: eol + 1]], eol + 1, 0
    while True:
        nl = raw.find(b"\n", pos)
        line = raw[pos : nl + 1] if nl >= 0 else raw[pos:]  # a cut frame's last line too
        pos = nl + 1 if nl >= 0 else len(raw)
        if not line:
            break
        bare = line.rstrip(b"\r\n")
        if not bare:
            out.append(raw[pos - len(line) :])
            break
        name, colon, _ = bare.partition(b":")
        if colon and _secret(name.decode("utf-8", "replace")):
            out.append(name + b":" + REDACTED.encode() + line[len(bare) :])
            count += 1
        else:
            out.append(line)
    if not count:
        return None
    joined = b"".join(out)
    if isinstance(payload, str):
        return joined.decode("utf-8", "surrogatepass"), count
    return joined, count
