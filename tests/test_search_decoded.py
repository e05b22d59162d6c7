"""search finds what binary messages say when their protocol reads as text (issue 20):
a notebook kernel's binary framing, and Socket.IO over msgpack."""

from __future__ import annotations

import json
import struct

import msgpack
from click.testing import CliRunner

from sentinel_ws_proxy.cli import cli
from sentinel_ws_proxy.events import SessionClosed, SessionOpened, whole_frame
from sentinel_ws_proxy.recording.redact import Redactor
from sentinel_ws_proxy.recording.writer import RecordingWriter

T0 = 1_800_000_000.0
KERNEL = "v1.kernel.websocket.jupyter.org"


def kernel_message(channel: str, msg_type: str, content: dict) -> bytes:
    """The v1 kernel protocol's binary framing: offsets, then channel and JSON parts."""
    parts = [channel.encode(), json.dumps({"msg_type": msg_type, "msg_id": "m1"}).encode(),
             b"{}", b"{}", json.dumps(content).encode()]  # fmt: skip
    offsets, at = [], 8 * (len(parts) + 2)
    for part in parts:
        offsets.append(at)
        at += len(part)
    offsets.append(at)
    head = struct.pack("<Q", len(offsets)) + b"".join(struct.pack("<Q", o) for o in offsets)
    return head + b"".join(parts)


def test_search_finds_text_inside_binary_messages(tmp_path):
    db = tmp_path / "k.db"
    w = RecordingWriter(db, redactor=Redactor(), max_payload=65536, listen="t", upstream="u")
    w.open()
    w.handle(SessionOpened(1, T0, "127.0.0.1", "/api/kernels/k1/channels", "", "ws://u", (),
                           101, subprotocol=KERNEL))  # fmt: skip
    printed = kernel_message("iopub", "stream", {"name": "stdout", "text": "the answer is 42\n"})
    w.handle(whole_frame(1, T0 + 0.1, "s2c", "binary", printed, message=0))
    w.handle(SessionClosed(1, T0 + 1, 1000, "", "client", True))
    w.handle(SessionOpened(2, T0 + 2, "127.0.0.1", "/socket.io/", "EIO=4&transport=websocket",
                           "ws://u", (), 101))  # fmt: skip
    w.handle(whole_frame(2, T0 + 2.1, "s2c", "text", b'0{"sid":"a","upgrades":[],'
                         b'"pingInterval":25000,"pingTimeout":20000}', message=0))  # fmt: skip
    event = msgpack.packb({"type": 2, "nsp": "/", "data": ["mission", {"status": "launched"}]})
    w.handle(whole_frame(2, T0 + 2.2, "s2c", "binary", event, message=1))
    w.handle(SessionClosed(2, T0 + 3, 1000, "", "client", True))
    w.close()
    found = CliRunner().invoke(cli, ["search", "answer is 42", "--json", "--db", str(db)])
    assert found.exit_code == 0, found.output
    assert [h["session_id"] for h in json.loads(found.output)["hits"]] == [1]
    found = CliRunner().invoke(cli, ["search", "launched", "--json", "--db", str(db)])
    assert found.exit_code == 0, found.output
    assert [h["session_id"] for h in json.loads(found.output)["hits"]] == [2]
