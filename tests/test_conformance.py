"""Conformance through the proxy with raw sockets on both ends.

A scripted client and a scripted server speak bytes, not a WebSocket library:
each sends exactly the frames a case lists (valid or not) and records exactly
the bytes it receives. Every case proves that what one endpoint sent is what
the other received, byte for byte, both ways, and that the recording holds
each wire frame in order with the right columns. The expected rows come from
the case's own description of its frames, not from the proxy's parser.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from websockets.frames import apply_mask

from sentinel_ws_proxy.recording.reader import Recording
from tests.conftest import rows, running_proxy, within

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BIG = 16 * 1024 * 1024
OPNAMES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}


@dataclass
class F:
    """One frame as a case sends it, and what the recording must say about it."""

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0
    violation: str | None = None  # a substring the recorded violation must contain
    wire: bytes | None = None  # the payload as sent, when it differs (compressed)
    compressed: bool = False

    def encode(self, masked: bool) -> bytes:
        data = self.payload if self.wire is None else self.wire
        head = bytearray([(0x80 if self.fin else 0) | (self.rsv << 4) | self.opcode])
        bit = 0x80 if masked else 0
        n = len(data)
        if n < 126:
            head.append(bit | n)
        elif n < 65536:
            head += bytes([bit | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([bit | 127]) + n.to_bytes(8, "big")
        if not masked:
            return bytes(head) + data
        mask = os.urandom(4)
        return bytes(head) + mask + apply_mask(data, mask)

    def expected(self, masked: bool) -> tuple:
        name = OPNAMES.get(self.opcode, f"reserved-{self.opcode}")
        wire = len(self.payload if self.wire is None else self.wire)
        return (name, int(self.fin), self.rsv, int(masked), int(self.compressed), wire)


@dataclass
class Case:
    client: list[F]
    server: list[F] = field(default_factory=list)
    extensions: str | None = None  # what the server answers in Sec-WebSocket-Extensions
    messages: dict[str, list[bytes]] = field(default_factory=dict)  # direction -> plaintexts


def close(code: int | None, reason: bytes = b"") -> bytes:
    return b"" if code is None else code.to_bytes(2, "big") + reason


def sizes(opcode: int) -> list[F]:
    return [F(opcode, bytes([i % 251]) * n) for i, n in enumerate((0, 125, 126, 65535, 65536))]


def deflated(messages: list[bytes], *, bits: int = 15, takeover: bool = True) -> list[list[F]]:
    """Each message compressed as permessage-deflate does, cut in two fragments."""
    out, compressor = [], zlib.compressobj(wbits=-bits)
    for text in messages:
        c = compressor if takeover else zlib.compressobj(wbits=-bits)
        data = c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH)
        data = data[:-4]
        half = max(1, len(data) // 2)
        out.append(
            [
                F(1, b"", fin=False, rsv=4, wire=data[:half], compressed=True),
                F(0, b"", wire=data[half:], compressed=True),
            ]
        )
    return out


def deflate_case(extensions: str, *, server_bits=15, client_bits=15) -> Case:
    server_takeover = "server_no_context_takeover" not in extensions
    client_takeover = "client_no_context_takeover" not in extensions
    texts = [b'{"event_type": "mission_updated", "mission_id": %d}' % i for i in range(4)]
    client = deflated(texts, bits=client_bits, takeover=client_takeover)
    server = deflated(texts[::-1], bits=server_bits, takeover=server_takeover)
    return Case(
        client=[f for pair in client for f in pair],
        server=[f for pair in server for f in pair],
        extensions=extensions,
        messages={"c2s": texts, "s2c": texts[::-1]},
    )


SPLIT_E = "é".encode()
CASES = {
    "text sizes": Case(sizes(1), sizes(1)),
    "binary sizes": Case(sizes(2), sizes(2)),
    "16 MiB binary each way": Case([F(2, os.urandom(1024) * (BIG // 1024))], [F(2, b"b" * BIG)]),
    "reserved bits": Case(
        [F(1, b"rsv1", rsv=4, violation="RSV1"), F(1, b"rsv2", rsv=2, violation="RSV2")],
        [F(2, b"rsv3", rsv=1, violation="RSV2/RSV3")],
    ),
    "reserved opcodes": Case(
        [F(3, b"three", violation="reserved opcode 3"), F(7, b"", violation="reserved opcode 7")],
        [F(11, b"x", violation="reserved opcode 11"), F(15, b"y", violation="reserved opcode 15")],
    ),
    "ping and pong payloads": Case(
        [F(9, b""), F(9, b"p" * 125), F(10, b"unsolicited")],
        [F(10, b""), F(10, b"p" * 125), F(9, b"server ping")],
    ),
    "oversized control frames": Case(
        [F(9, b"p" * 126, violation="control frame over 125 bytes")],
        [F(10, b"q" * 200, violation="control frame over 125 bytes")],
    ),
    "fragments with control frames between": Case(
        [
            F(1, b"one ", fin=False),
            F(9, b"between"),
            F(0, b"two ", fin=False),
            F(10, b"also between"),
            F(0, b"three"),
            F(2, b"\x00\x01", fin=False),
            F(0, b"\x02\x03"),
        ],
        [F(2, b"a", fin=False), F(0, b"b", fin=False), F(9, b"mid"), F(0, b"c")],
    ),
    "invalid UTF-8": Case(
        [
            F(1, b"bad \xff", violation="invalid UTF-8"),
            F(1, b"split " + SPLIT_E[:1], fin=False),
            F(0, SPLIT_E[1:] + b" fine"),
            F(1, b"split bad " + SPLIT_E[:1], fin=False),
            F(0, b"\x41", violation="invalid UTF-8"),
        ],
        [F(1, b"\xc0\xaf", violation="invalid UTF-8")],
    ),
    "bad continuations": Case(
        [
            F(0, b"orphan", violation="no message to continue"),
            F(1, b"open", fin=False),
            F(1, b"again", violation="new message before the previous one ended"),
        ]
    ),
    "valid closes": Case([F(8, close(1000))], [F(8, close(1001, "bye ✓".encode()))]),
    "close without code and private codes": Case(
        [F(8, close(None))],
        [F(8, close(4000, b"app")), F(8, close(3000), violation="frame after a close frame")],
    ),
    "invalid closes": Case(
        [
            F(8, close(1005), violation="close code 1005 may not be sent"),
            F(8, close(1006, b"x"), violation="close code 1006"),
            F(8, close(999), violation="close code 999"),
            F(8, b"\x03", violation="close payload of 1 byte"),
        ],
        [
            F(8, close(5000), violation="close code 5000"),
            F(8, close(65535), violation="close code 65535"),
            F(8, close(1000, b"\xff"), violation="invalid UTF-8 in the close reason"),
        ],
    ),
    "unmasked client and masked server frames": Case([], []),  # built in the test
    "deflate": deflate_case("permessage-deflate"),
    "deflate, server_no_context_takeover": deflate_case(
        "permessage-deflate; server_no_context_takeover"
    ),
    "deflate, client_no_context_takeover": deflate_case(
        "permessage-deflate; client_no_context_takeover"
    ),
    "deflate, both no_context_takeover": deflate_case(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    ),
    "deflate, window bits": deflate_case(
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
        server_bits=10,
        client_bits=9,
    ),
}


class RawServer:
    """Answers one upgrade with 101, sends its frames, keeps every byte it receives."""

    def __init__(self, case: Case, server_bytes: bytes, expect: int):
        self.case, self.server_bytes, self.expect = case, server_bytes, expect
        self.request_head = b""
        self.response_head = b""
        self.received = b""
        self.done = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.request_head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in self.request_head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        head = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\nX-Raw: yes\r\n"
        )
        if self.case.extensions:
            head += b"Sec-WebSocket-Extensions: " + self.case.extensions.encode() + b"\r\n"
        self.response_head = head + b"\r\n"
        # The head and the first frames in one write: the proxy must split them itself.
        writer.write(self.response_head + self.server_bytes)
        self.received = await reader.readexactly(self.expect)
        writer.close()
        self.done.set()


async def run_case(case: Case, client_bytes: bytes, server_bytes: bytes, db: Path) -> None:
    server = RawServer(case, server_bytes, len(client_bytes))
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, limit=1 << 20)
    port = listener.sockets[0].getsockname()[1]
    async with listener, running_proxy(f"http://127.0.0.1:{port}", db) as proxy:
        host = proxy.url.removeprefix("http://")
        reader, writer = await asyncio.open_connection(*host.rsplit(":", 1), limit=1 << 20)
        offer = "permessage-deflate; client_max_window_bits" if case.extensions else None
        head = (
            "GET /raw?case=1 HTTP/1.1\r\n"
            f"Host: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "X-Case-Header: Kept As Sent\r\n"
            + (f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else "")
            + "\r\n"
        ).encode()
        writer.write(head + client_bytes)  # frames right behind the head, before the 101
        got_head = await within(reader.readuntil(b"\r\n\r\n"))
        got = await within(reader.readexactly(len(server_bytes)), 60)
        assert await within(reader.read()) == b""  # the server's close reaches us as EOF
        writer.close()
        await within(server.done.wait(), 60)
        await proxy.stop_once()
    # The handshake: the client's headers upstream in order and case, the 101 back exactly.
    sent_lines = head.split(b"\r\n")[1:-2]
    seen_lines = server.request_head.split(b"\r\n")
    kept = [line for line in sent_lines if not line.lower().startswith(b"host:")]
    assert [line for line in seen_lines if line in kept] == kept
    assert server.request_head.startswith(b"GET /raw?case=1 HTTP/1.1\r\n")
    assert got_head == server.response_head
    # The frames, byte for byte, both ways.
    assert server.received == client_bytes
    assert got == server_bytes


@pytest.mark.parametrize("name", list(CASES))
async def test_bytes_arrive_unchanged_and_every_wire_frame_is_recorded(name, db):
    case = CASES[name]
    client_frames, server_frames = case.client, case.server
    client_masked, server_masked = True, False
    if name == "unmasked client and masked server frames":
        client_frames = [F(1, b"plain", violation="unmasked client frame")]
        server_frames = [F(1, b"masked", violation="masked server frame")]
        client_masked, server_masked = False, True
    client_bytes = b"".join(f.encode(client_masked) for f in client_frames)
    server_bytes = b"".join(f.encode(server_masked) for f in server_frames)
    await within(run_case(case, client_bytes, server_bytes, db), 90)

    for direction, frames, masked in (
        ("c2s", client_frames, client_masked),
        ("s2c", server_frames, server_masked),
    ):
        recorded = rows(
            db,
            "SELECT opcode, fin, rsv, masked, compressed, wire_size, size, payload, truncated,"
            " violation, source, forwarded FROM frames WHERE direction = ? ORDER BY id",
            (direction,),
        )
        assert [tuple(r)[:6] for r in recorded] == [f.expected(masked) for f in frames], direction
        for f, r in zip(frames, recorded, strict=True):
            assert (r["source"], r["forwarded"]) == (
                "client" if direction == "c2s" else "server",
                1,
            )
            if f.violation:
                assert f.violation in (r["violation"] or ""), (f, r["violation"])
            else:
                assert r["violation"] is None, (f, r["violation"])
            if f.compressed:
                continue
            stored = r["payload"].encode() if isinstance(r["payload"], str) else r["payload"]
            assert r["size"] == len(f.payload)
            assert stored == f.payload[: 64 * 1024], (f.opcode, len(f.payload))
            assert r["truncated"] == int(len(f.payload) > 64 * 1024)
    with Recording(db) as recording:
        messages = recording.messages(1)
    for direction, texts in case.messages.items():
        joined = [m.payload_bytes for m in messages if m.direction == direction]
        assert joined == texts, direction
    (session,) = rows(db, "SELECT * FROM sessions")
    assert session["handshake_status"] == 101
    assert session["response_line"] == "HTTP/1.1 101 Switching Protocols"
    assert session["frames_c2s"] == len(client_frames)
    assert session["frames_s2c"] == len(server_frames)
