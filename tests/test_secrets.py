"""Credentials inside messages are redacted before they are recorded (issue 20).

The real writer on a real SQLite file, fed the events the proxy makes; the frames
as the wire carried them: a graphql-ws connection_init, a Socket.IO CONNECT with
auth, a STOMP CONNECT, and an MQTT CONNECT written in pieces as mqtt.js does.
"""

from __future__ import annotations

import itertools
import sqlite3
import struct
from pathlib import Path

from sentinel_ws_proxy.decoders import decode, graphql_transport_ws, mqtt
from sentinel_ws_proxy.events import SessionClosed, SessionOpened, whole_frame
from sentinel_ws_proxy.recording.redact import Redactor
from sentinel_ws_proxy.recording.writer import RecordingWriter

T0 = 1_800_000_000.0


def record(db: Path, subprotocol: str | None, path: str, frames, *, redact=True, close=True):
    w = RecordingWriter(
        db, redactor=Redactor(enabled=redact), max_payload=65536, listen="t", upstream="u"
    )
    w.open()
    w.handle(SessionOpened(1, T0, "127.0.0.1", path, "", "ws://u" + path, (), 101,
                           subprotocol=subprotocol))  # fmt: skip
    for i, (direction, opcode, payload) in enumerate(frames):
        w.handle(whole_frame(1, T0 + 0.001 * i, direction, opcode, payload, message=i))
    if close:
        w.handle(SessionClosed(1, T0 + 1, 1000, "", "client", True))
    stats = w.close()
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT direction, payload FROM frames ORDER BY id").fetchall()
    conn.close()
    return rows, stats


def test_graphql_ws_connection_init_payload(tmp_path):
    init = b'{"type":"connection_init","payload":{"token":"s3cret","user":{"pw":"hunter2"}}}'
    rows, stats = record(tmp_path / "g.db", "graphql-transport-ws", "/graphql", [
        ("c2s", "text", init),
        ("s2c", "text", b'{"type":"connection_ack"}'),
        ("c2s", "text", b'{"type":"subscribe","id":"1","payload":{"query":"{ token }"}}'),
    ])  # fmt: skip
    stored = rows[0][1]
    assert "s3cret" not in stored and "hunter2" not in stored and "[redacted]" in stored
    assert stats.redacted_in_messages == 2
    assert decode(graphql_transport_ws, stored, "c2s").kind == "connection_init"
    assert rows[2][1].endswith('"{ token }"}}')  # a query naming a field is not a secret


def test_socketio_connect_auth(tmp_path):
    rows, _ = record(tmp_path / "s.db", None, "/socket.io/", [
        ("s2c", "text", b'0{"sid":"x","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'),
        ("c2s", "text", b'40{"token":"abc123"}'),
    ])  # fmt: skip
    assert "abc123" not in rows[1][1] and rows[1][1].startswith("40{")


def test_stomp_passcode(tmp_path):
    connect = b"CONNECT\naccept-version:1.2\nlogin:guest\npasscode:guest-pw\n\n\x00"
    rows, _ = record(tmp_path / "st.db", "v12.stomp", "/ws", [("c2s", "text", connect)])
    assert "guest-pw" not in rows[0][1] and "login:guest" in rows[0][1]


def mqtt_connect(password: bytes) -> bytes:
    def s(b: bytes) -> bytes:
        return struct.pack(">H", len(b)) + b

    body = s(b"MQTT") + bytes([4, 0xC2]) + struct.pack(">H", 60)
    body += s(b"client-1") + s(b"user") + s(password)
    return bytes([0x10, len(body)]) + body


def test_an_mqtt_connect_written_in_pieces_is_masked_in_place(tmp_path):
    packet = mqtt_connect(b"p4ssw0rd")
    # mqtt.js writes the fixed header, each field's length and each field apart.
    cuts = [0, 1, 2, 8, 10, 12, 14, 22, 24, 28, 30, len(packet)]
    pieces = [packet[a:b] for a, b in itertools.pairwise(cuts)]
    frames = [("c2s", "binary", p) for p in pieces] + [("s2c", "binary", b"\x20\x02\x00\x00")]
    rows, stats = record(tmp_path / "m.db", "mqtt", "/mqtt", frames)
    stored = b"".join(bytes(p) for d, p in rows if d == "c2s")
    assert [len(p) for d, p in rows if d == "c2s"] == [len(p) for p in pieces]
    assert b"p4ssw0rd" not in stored and stored.endswith(b"********")
    assert stored[:-8] == packet[:-8]
    assert rows[-1][0] == "s2c"  # the CONNACK still after the CONNECT, in wire order
    assert mqtt.secret_ranges(stored) == [(len(packet) - 8, len(packet))]
    assert stats.redacted_in_messages == 1


def test_an_mqtt_connect_never_finished_is_kept_when_the_session_ends(tmp_path):
    packet = mqtt_connect(b"pw")
    rows, _ = record(tmp_path / "m2.db", "mqtt", "/mqtt", [("c2s", "binary", packet[:5])])
    assert [bytes(p) for _, p in rows] == [packet[:5]]  # held, then let go: nothing lost


def test_frames_held_when_the_recorder_stops_are_written(tmp_path):
    packet = mqtt_connect(b"pw")
    rows, _ = record(tmp_path / "m3.db", "mqtt", "/mqtt", [("c2s", "binary", packet[:5])],
                     close=False)  # fmt: skip
    assert [bytes(p) for _, p in rows] == [packet[:5]]


def test_no_redact_records_messages_as_sent(tmp_path):
    init = b'{"type":"connection_init","payload":{"token":"s3cret"}}'
    rows, _ = record(tmp_path / "n.db", "graphql-transport-ws", "/graphql",
                     [("c2s", "text", init)], redact=False)  # fmt: skip
    assert "s3cret" in rows[0][1]
