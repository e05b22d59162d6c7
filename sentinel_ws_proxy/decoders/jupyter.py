"""Jupyter kernel messages over WebSocket (jupyter_server's ``/api/kernels/<id>/channels``,
JupyterLab, Notebook 7, VS Code).

With the ``v1.kernel.websocket.jupyter.org`` subprotocol every message is binary: a
little-endian uint64 count n, n uint64 offsets into the message, then the channel name
(UTF-8), the header, parent_header, metadata and content (JSON each) and any binary
buffers. Without it (the legacy protocol), a message is JSON text with ``channel``,
``header``, ``parent_header``, ``metadata``, ``content`` and ``buffers``, or, when it has
buffers, binary: a big-endian uint32 count, uint32 offsets, that JSON, the buffers.

Decoded ``text`` of a binary message is the JSON of {channel, header, parent_header,
metadata, content} (buffers as their sizes), and the summary reads like
"iopub stream stdout: hello" or "shell execute_request: print(1)".

==============================================  ======  =====================================
message                                         event   ending
==============================================  ======  =====================================
execute_request, kernel_info_request...         message
execute_reply with status "error" or "aborted"  error   (the code raised: the session goes on)
iopub ``error``                                 error
iopub status "restarting" / "autorestarting"    error   (the kernel died and is restarting)
iopub status "dead"                             close   server_error: the kernel died
==============================================  ======  =====================================

Redacts nothing: the token is in the query string, redacted with the rest of the URL.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from sentinel_ws_proxy.decoders import _util
from sentinel_ws_proxy.decoders.base import Decoded, Ending, malformed

NAME = "jupyter"
SUBPROTOCOLS = ("v1.kernel.websocket.jupyter.org",)
MAX_PARTS = 4096
PARTS = ("header", "parent_header", "metadata", "content")


def sniff(path: str, query: str, first: Sequence[tuple[str, Any]]) -> bool:
    if "/api/kernels/" in (path or "") and "/channels" in (path or ""):
        return True
    for _, payload in _util.firsts(first):
        if isinstance(payload, bytes):
            if _v1(payload) is not None:
                return True
        else:
            found = _util.load_object(payload)
            if (found is not None and isinstance(found.get("header"), dict)
                    and "msg_type" in found["header"] and "channel" in found):  # fmt: skip
                return True
    return False


def _v1(raw: bytes) -> dict[str, Any] | None:
    """A v1 binary message as {channel, header, ..., buffers: [sizes]}, or None."""
    if len(raw) < 8:
        return None
    count = int.from_bytes(raw[:8], "little")
    if not 6 <= count <= MAX_PARTS or 8 * (1 + count) > len(raw):
        return None
    offsets = [int.from_bytes(raw[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    if offsets[0] != 8 * (1 + count) or offsets[-1] > len(raw):
        return None
    if any(b < a for a, b in pairwise(offsets)):
        return None
    parts = [raw[offsets[i] : offsets[i + 1]] for i in range(count - 1)]
    try:
        channel = parts[0].decode("utf-8")
    except UnicodeDecodeError:
        return None
    message: dict[str, Any] = {"channel": channel}
    for name, part in zip(PARTS, parts[1:5], strict=True):
        value = _util.load(part.decode("utf-8", "replace"))
        if _util.missing(value):
            return None
        message[name] = value
    buffers = parts[5:]
    if buffers:
        message["buffers"] = [f"({len(b)} bytes)" for b in buffers]
    return message


def _legacy_binary(raw: bytes) -> dict[str, Any] | None:
    if len(raw) < 8:
        return None
    count = struct.unpack(">I", raw[:4])[0]
    if not 1 <= count <= MAX_PARTS or 4 * (count + 1) > len(raw):
        return None
    offsets = list(struct.unpack(f">{count}I", raw[4 : 4 * (count + 1)]))
    offsets.append(len(raw))
    if offsets[0] != 4 * (count + 1) or any(b < a for a, b in pairwise(offsets)):
        return None
    message = _util.load_object(raw[offsets[0] : offsets[1]].decode("utf-8", "replace"))
    if message is None:
        return None
    message["buffers"] = [f"({offsets[i + 1] - offsets[i]} bytes)" for i in range(1, count)]
    return message


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    text = None
    if isinstance(payload, (bytes, bytearray)):
        raw = bytes(payload)
        message = _v1(raw) or _legacy_binary(raw)
        if message is None:
            return malformed(NAME, "a binary message that is not a kernel message")
        text = _util.dumps(message)
    elif isinstance(payload, str):
        message = _util.load_object(payload)
        if message is None:
            return malformed(NAME, "not a JSON object")
    else:
        return None
    return _message(message, text)


def _message(m: dict[str, Any], text: str | None) -> Decoded:
    header = m.get("header") if isinstance(m.get("header"), dict) else {}
    msg_type = header.get("msg_type", m.get("msg_type"))
    if not isinstance(msg_type, str):
        return malformed(NAME, "no header.msg_type")
    channel = m.get("channel")
    channel = channel if isinstance(channel, str) else "?"
    content = m.get("content") if isinstance(m.get("content"), dict) else {}
    fields: dict[str, Any] = {"channel": channel, "msg_type": msg_type}
    for key in ("msg_id", "session"):
        if isinstance(header.get(key), str):
            fields[key] = header[key]
    parent = m.get("parent_header")
    if isinstance(parent, dict) and isinstance(parent.get("msg_id"), str):
        fields["parent_msg_id"] = parent["msg_id"]
    head = f"{channel} {msg_type}"
    event: str | None = "message"
    ending = None
    said = ""
    if msg_type == "stream":
        said = f" {_util.shown(content.get('name'), 10)}: {_util.shown(content.get('text'))}"
    elif msg_type in ("execute_request", "execute_input"):
        said = f": {_util.shown(content.get('code'))}"
    elif msg_type == "status":
        state = content.get("execution_state")
        fields["execution_state"] = _util.plain(state)
        said = f": {_util.shown(state, 40)}"
        if state in ("restarting", "autorestarting"):
            event = "error"
        elif state == "dead":
            event = "close"
            ending = Ending("server_error", "the Jupyter kernel died (status dead)")
    elif msg_type.endswith("_reply"):
        status = content.get("status")
        fields["status"] = _util.plain(status)
        said = f" {_util.shown(status, 20)}"
        if status in ("error", "aborted"):
            event = "error"
            if content.get("ename") is not None:
                said += f" {_util.shown(content.get('ename'), 60)}: "
                said += _util.shown(content.get("evalue"))
    elif msg_type == "error":
        event = "error"
        said = f": {_util.shown(content.get('ename'), 60)}: {_util.shown(content.get('evalue'))}"
    elif msg_type in ("execute_result", "display_data", "update_display_data"):
        data = content.get("data") if isinstance(content.get("data"), dict) else {}
        if "text/plain" in data:
            said = f": {_util.shown(data['text/plain'])}"
        elif data:
            said = f": {', '.join(sorted(map(str, data))[:4])}"
    elif msg_type.startswith("comm_"):
        said = f" {_util.shown(content.get('comm_id'), 40)}"
    return Decoded(NAME, msg_type, _util.short(head + said), fields, text, event, ending)  # type: ignore[arg-type]
