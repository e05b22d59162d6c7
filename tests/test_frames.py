"""The wire frame parser alone (sans I/O): frames, fragments, compression, violations."""

from __future__ import annotations

import os
import zlib

import pytest
from websockets.frames import apply_mask

from sentinel_ws_proxy.events import Frame
from sentinel_ws_proxy.proxy.frames import Deflate, FrameParser, encode_frame

MASK = b"\x11\x22\x33\x44"


def raw(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
    long_form: int | None = None,
) -> bytes:
    """A frame exactly as given, including forms a well-behaved peer would not send."""
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask is not None else 0
    n = len(payload)
    if long_form == 126 or (long_form is None and 126 <= n < 65536):
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    elif long_form == 127 or (long_form is None and n >= 65536):
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    else:
        head.append(bit | n)
    if mask is None:
        return bytes(head) + payload
    return bytes(head) + mask + apply_mask(payload, mask)


def parse(
    stream: bytes,
    direction: str = "c2s",
    *,
    chunk: int | None = None,
    max_payload: int = 1 << 20,
    deflate: Deflate | None = None,
) -> list[Frame]:
    found: list[Frame] = []
    parser = FrameParser(
        1,
        direction,  # type: ignore[arg-type]
        "client" if direction == "c2s" else "server",
        found.append,
        max_payload=max_payload,
        deflate=deflate,
    )
    step = chunk or len(stream) or 1
    for i in range(0, len(stream), step):
        parser.feed(stream[i : i + step], 1000.0)
    assert parser.owned_until == len(stream)
    return found


def simple(frames: list[Frame]) -> list[tuple]:
    return [
        (f.message, f.opcode, f.fin, f.payload, f.size, f.violation, f.close_code) for f in frames
    ]


MIXED = b"".join(
    [
        raw(1, "héllo".encode()),
        raw(2, bytes(range(256)) * 3),
        raw(1, b"x" * 125),
        raw(1, b"y" * 126),
        raw(2, b"z" * 65535),
        raw(2, b"w" * 65536),
        raw(2, b""),
        raw(1, b"frag " + "é".encode()[:1], fin=False),
        raw(9, b"ping between fragments"),
        raw(0, "é".encode()[1:] + b" end", fin=True),
        raw(10, b"pong"),
        raw(8, (4001).to_bytes(2, "big") + "bye ✓".encode()),
    ]
)


@pytest.mark.parametrize("chunk", [None, 1, 7, 1000])
def test_any_chunking_gives_the_same_frames(chunk):
    whole = parse(MIXED)
    assert parse(MIXED, chunk=chunk) == whole
    rows = simple(whole)
    assert [r[1] for r in rows] == [
        "text", "binary", "text", "text", "binary", "binary", "binary",
        "text", "ping", "continuation", "pong", "close",
    ]  # fmt: skip
    assert rows[0][3] == "héllo" and rows[0][4] == len("héllo".encode())
    assert rows[5][4] == 65536
    # The fragmented message: two frames of message 8, the ping (message 9) between them.
    assert [(r[0], r[2]) for r in rows[7:10]] == [(8, 0), (9, 1), (8, 1)]
    assert rows[7][3] == b"frag " + b"\xc3"  # a split character stays bytes
    assert rows[9][3] == b"\xa9 end"
    assert all(r[5] is None for r in rows), [r[5] for r in rows]
    assert rows[-1][6] == 4001 and whole[-1].close_reason == "bye ✓"
    assert all(f.masked == 1 and f.forwarded == 1 for f in whole)


def test_payloads_are_kept_up_to_the_limit_per_message():
    stream = raw(1, b"a" * 10, fin=False) + raw(0, b"b" * 10, fin=False) + raw(0, b"c" * 10)
    frames = parse(stream, max_payload=15)
    assert [(f.payload, f.truncated, f.size) for f in frames] == [
        ("a" * 10, 0, 10),
        ("b" * 5, 1, 10),
        ("", 1, 10),
    ]
    big = parse(raw(2, b"q" * 100_000), max_payload=10, chunk=4096)
    assert (big[0].payload, big[0].truncated, big[0].size) == (b"q" * 10, 1, 100_000)


def test_server_frames_unmasked_and_close_without_code():
    frames = parse(raw(1, b"hi", mask=None) + raw(8, b"", mask=None), "s2c")
    assert [(f.opcode, f.masked, f.violation) for f in frames] == [
        ("text", 0, None),
        ("close", 0, None),
    ]
    assert frames[1].close_code == 1005


def deflate(message: bytes, compressor=None) -> bytes:
    c = compressor or zlib.compressobj(wbits=-15)
    data = c.compress(message) + c.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


@pytest.mark.parametrize("takeover", [True, False])
def test_compressed_messages_are_inflated(takeover):
    compressor = zlib.compressobj(wbits=-15)
    messages = [b'{"event": "mission_updated", "id": %d}' % i for i in range(5)]
    stream = b""
    for m in messages:
        data = deflate(m, compressor if takeover else None)
        half = len(data) // 2
        stream += raw(1, data[:half], rsv=4, fin=False) + raw(0, data[half:])
    negotiated = Deflate(client_no_context_takeover=not takeover)
    for chunk in (None, 3):
        frames = parse(stream, deflate=negotiated, chunk=chunk)
        texts = [b"".join(f.payload.encode() if isinstance(f.payload, str) else f.payload
                          for f in frames[i : i + 2]) for i in range(0, 10, 2)]  # fmt: skip
        assert texts == messages
        assert all(f.compressed == 1 and f.violation is None for f in frames)
        assert sum(f.size for f in frames[:2]) == len(messages[0])
        assert frames[0].rsv == 4 and frames[1].rsv == 0


def test_a_deflate_bomb_costs_cpu_not_memory():
    bomb = deflate(b"\x00" * (64 * 1024 * 1024))
    assert len(bomb) < 100_000
    (frame,) = parse(raw(2, bomb, rsv=4), deflate=Deflate(), max_payload=1000)
    assert (frame.size, frame.wire_size, len(frame.payload)) == (64 * 1024 * 1024, len(bomb), 1000)
    assert frame.truncated == 1


@pytest.mark.parametrize(
    "stream,direction,problem",
    [
        (raw(1, b"hi", mask=None), "c2s", "unmasked client frame"),
        (raw(1, b"hi"), "s2c", "masked server frame"),
        (raw(3, b"x"), "c2s", "reserved opcode 3"),
        (raw(11, b"x"), "c2s", "reserved opcode 11"),
        (raw(1, b"x", rsv=2), "c2s", "RSV2/RSV3 set"),
        (raw(1, b"x", rsv=4), "c2s", "RSV1 without a negotiated compression extension"),
        (raw(9, b"p" * 126), "c2s", "control frame over 125 bytes"),
        (raw(9, b"p", fin=False), "c2s", "fragmented control frame"),
        (raw(1, b"\xff\xfe"), "c2s", "invalid UTF-8 in a text message"),
        (raw(1, b"ok \xe2\x82", fin=False) + raw(0, b"x"), "c2s", "invalid UTF-8"),
        (raw(0, b"x"), "c2s", "continuation frame with no message to continue"),
        (raw(1, b"a", fin=False) + raw(1, b"b"), "c2s", "new message before the previous"),
        (raw(8, b"\x03\xed"), "c2s", "close code 1005 may not be sent"),
        (raw(8, b"\x03\xee"), "c2s", "close code 1006 may not be sent"),
        (raw(8, (5000).to_bytes(2, "big")), "c2s", "close code 5000 may not be sent"),
        (raw(8, b"\x03"), "c2s", "close payload of 1 byte"),
        (raw(8, b"\x03\xe8\xff"), "c2s", "invalid UTF-8 in the close reason"),
        (raw(8, b"\x03\xe8") + raw(1, b"late"), "c2s", "frame after a close frame"),
        (raw(1, b"short", long_form=126), "c2s", "length not in its shortest form"),
        (raw(2, b"x" * 300, long_form=127), "c2s", "length not in its shortest form"),
        (raw(2, b"not deflate", rsv=4), "c2s", "invalid compressed data"),
    ],
)
def test_violations_are_noted_not_refused(stream, direction, problem):
    deflate_on = Deflate() if "deflate" in problem or "compressed" in problem else None
    frames = parse(stream, direction, deflate=deflate_on)
    assert any(problem in (f.violation or "") for f in frames), [f.violation for f in frames]


def test_a_one_byte_close_has_no_code():
    (frame,) = parse(raw(8, b"\x03"))
    assert (frame.close_code, frame.close_reason) == (None, None)


def test_encoded_frames_of_our_own_parse_back():
    body = (1001).to_bytes(2, "big") + b"sentinel-ws proxy shutting down"
    for mask, direction in ((os.urandom(4), "c2s"), (None, "s2c")):
        (frame,) = parse(encode_frame(8, body, mask=mask), direction)
        assert (frame.close_code, frame.close_reason, frame.violation) == (
            1001,
            "sentinel-ws proxy shutting down",
            None,
        )
