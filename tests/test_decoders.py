"""Application-protocol decoders (sentinel_ws_proxy/decoders/): wire examples written from
each protocol's spec or library (graphql-ws 6.4, socket.io 4.8 and socket.io-msgpack-parser,
mqtt-packet, the SignalR hub protocol, Phoenix 1.8's serializer, Action Cable 8.1,
jupyter_server's v1 kernel protocol), what they decode to, how a session's decoder is chosen,
what redact() replaces, and a seeded fuzz: no decoder may raise on any input.
"""

from __future__ import annotations

import base64
import json
import random
import struct
from types import ModuleType
from typing import Any

import cbor2
import msgpack
import pytest

from sentinel_ws_proxy import decoders
from sentinel_ws_proxy.decoders import (
    _util,
    actioncable,
    cbor_,
    graphql_transport_ws,
    graphql_ws_legacy,
    json_,
    jupyter,
    mqtt,
    msgpack_,
    phoenix,
    protobuf_,
    signalr,
    socketio,
    stomp,
)
from sentinel_ws_proxy.decoders.base import REDACTED, Decoded, Ending

RS = "\x1e"
RESERVED = {"protocol", "kind", "summary", "event", "ending"}


def stomp_frame(command: str, headers: dict[str, str], body: bytes | str = b"") -> str:
    raw = body.encode() if isinstance(body, str) else body
    lines = [command, *(f"{k}:{v}" for k, v in headers.items())]
    return "\n".join(lines) + "\n\n" + raw.decode("utf-8", "replace") + "\x00"


def jupyter_v1(channel: str, msg_type: str, content: dict[str, Any],
               buffers: tuple[bytes, ...] = ()) -> bytes:  # fmt: skip
    """jupyter_server's serialize_msg_to_ws_v1."""
    header = {"msg_id": "m1", "msg_type": msg_type, "session": "s1", "username": "u",
              "version": "5.3", "date": "2026-01-01T00:00:00Z"}  # fmt: skip
    parts = [json.dumps(x).encode() for x in (header, {"msg_id": "p0"}, {}, content)]
    parts += list(buffers)
    name = channel.encode()
    offsets = [8 * (1 + 1 + len(parts) + 1)]
    offsets.append(len(name) + offsets[-1])
    for part in parts:
        offsets.append(len(part) + offsets[-1])
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return head + name + b"".join(parts)


def jupyter_legacy_binary(message: dict[str, Any], buffers: list[bytes]) -> bytes:
    """jupyter_server's serialize_binary_message."""
    parts = [json.dumps(message).encode(), *buffers]
    offsets = [4 * (len(parts) + 1)]
    for part in parts[:-1]:
        offsets.append(offsets[-1] + len(part))
    return struct.pack("!" + "I" * (len(parts) + 1), len(parts), *offsets) + b"".join(parts)


def signalr_msgpack(*values: Any) -> bytes:
    out = b""
    for value in values:
        body = msgpack.packb(value)
        n, prefix = len(body), bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            prefix.append(b | (0x80 if n else 0))
            if not n:
                break
        out += bytes(prefix) + body
    return out


def phoenix_push(join_ref: str, ref: str, topic: str, event: str, data: bytes) -> bytes:
    fields = [s.encode() for s in (join_ref, ref, topic, event)]
    return bytes([0, *map(len, fields)]) + b"".join(fields) + data


def phoenix_reply(join_ref: str, ref: str, topic: str, status: str, data: bytes) -> bytes:
    fields = [s.encode() for s in (join_ref, ref, topic, status)]
    return bytes([1, *map(len, fields)]) + b"".join(fields) + data


IDENT = json.dumps({"channel": "ChatChannel", "room": "1"})
H = bytes.fromhex

# (decoder, payload, direction, kind, event, ending category or None)
EXAMPLES: list[tuple[ModuleType, str | bytes, str, str, str | None, str | None]] = [
    # graphql-transport-ws
    (graphql_transport_ws, '{"type":"connection_init","payload":{"authToken":"abc"}}', "c2s",
     "connection_init", "open", None),
    (graphql_transport_ws, '{"type":"connection_ack"}', "s2c", "connection_ack", "ack", None),
    (graphql_transport_ws, '{"type":"ping"}', "c2s", "ping", "ping", None),
    (graphql_transport_ws, '{"type":"pong","payload":{"t":1}}', "s2c", "pong", "pong", None),
    (graphql_transport_ws, '{"id":"1","type":"subscribe","payload":{"query":"subscription '
     '{ greetings }","operationName":null}}', "c2s", "subscribe", "subscribe", None),
    (graphql_transport_ws, '{"id":"1","type":"next","payload":{"data":{"greetings":"Hi"}}}',
     "s2c", "next", "message", None),
    (graphql_transport_ws, '{"id":"1","type":"next","payload":{"errors":[{"message":"boom"}]}}',
     "s2c", "next", "error", None),
    (graphql_transport_ws, '{"id":"1","type":"error","payload":[{"message":"Cannot query field '
     '\\"nope\\" on type \\"Subscription\\"."}]}', "s2c", "error", "error", None),
    (graphql_transport_ws, '{"id":"1","type":"complete"}', "c2s", "complete", "complete", None),
    (graphql_transport_ws, '{"type":"start","id":"1"}', "c2s", "malformed", None, None),
    (graphql_transport_ws, "not json", "s2c", "malformed", None, None),
    # subscriptions-transport-ws
    (graphql_ws_legacy, '{"type":"connection_init","payload":{"Authorization":"Bearer x"}}',
     "c2s", "connection_init", "open", None),
    (graphql_ws_legacy, '{"type":"connection_ack"}', "s2c", "connection_ack", "ack", None),
    (graphql_ws_legacy, '{"type":"ka"}', "s2c", "ka", "ping", None),
    (graphql_ws_legacy, '{"id":"1","type":"start","payload":{"query":"subscription { a }"}}',
     "c2s", "start", "subscribe", None),
    (graphql_ws_legacy, '{"id":"1","type":"data","payload":{"data":{"a":1}}}', "s2c", "data",
     "message", None),
    (graphql_ws_legacy, '{"id":"1","type":"error","payload":{"message":"bad query"}}', "s2c",
     "error", "error", None),
    (graphql_ws_legacy, '{"id":"1","type":"complete"}', "s2c", "complete", "complete", None),
    (graphql_ws_legacy, '{"id":"1","type":"stop"}', "c2s", "stop", "complete", None),
    (graphql_ws_legacy, '{"type":"connection_terminate"}', "c2s", "connection_terminate",
     "close", "client_done"),
    (graphql_ws_legacy, '{"type":"connection_error","payload":{"message":"Invalid token"}}',
     "s2c", "connection_error", "refused", "rejected"),
    # Socket.IO
    (socketio, '0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,'
     '"pingTimeout":20000,"maxPayload":1000000}', "s2c", "open", "open", None),
    (socketio, "40", "c2s", "CONNECT", "open", None),
    (socketio, '40{"token":"abc"}', "c2s", "CONNECT", "open", None),
    (socketio, '40/admin,{"sid":"wZX3oN0bSVIhsaknAAAI"}', "s2c", "CONNECT", "ack", None),
    (socketio, "2", "s2c", "ping", "ping", None),
    (socketio, "3", "c2s", "pong", "pong", None),
    (socketio, "2probe", "c2s", "probe", None, None),
    (socketio, '42["chat message","hello"]', "c2s", "EVENT", "message", None),
    (socketio, '421["ask",1]', "c2s", "EVENT", "message", None),
    (socketio, '431["answer"]', "s2c", "ACK", "message", None),
    (socketio, '451-["upload",{"_placeholder":true,"num":0}]', "c2s", "BINARY_EVENT",
     "message", None),
    (socketio, b"\x01\x02\x03", "c2s", "attachment", "message", None),
    (socketio, '44{"message":"authentication failed"}', "s2c", "CONNECT_ERROR", "refused",
     "rejected"),
    (socketio, '44/nope,{"message":"Invalid namespace"}', "s2c", "CONNECT_ERROR", "refused",
     "protocol_error"),
    (socketio, "41", "s2c", "DISCONNECT", "close", "app_error"),
    (socketio, "41/admin,", "c2s", "DISCONNECT", "close", "client_done"),
    (socketio, "1", "c2s", "close", "close", "client_done"),
    (socketio, "6", "c2s", "noop", None, None),
    # socket.io-msgpack-parser 3.0.2's own bytes (notepack.io)
    (socketio, H("83a47479706500a36e7370a12fa46461746181a5746f6b656ea3616263"), "c2s",
     "CONNECT", "open", None),
    (socketio, H("84a47479706502a36e7370a12fa46461746192a46368617481a16101a2696403"), "s2c",
     "EVENT", "message", None),
    (socketio, H("82a47479706501a36e7370a62f61646d696e"), "s2c", "DISCONNECT", "close",
     "app_error"),
    (socketio, H("83a47479706504a36e7370a12fa46461746181a76d657373616765ae6e6f742061757468"
                 "6f72697a6564"), "s2c", "CONNECT_ERROR", "refused", "rejected"),
    (socketio, "9", "s2c", "malformed", None, None),
    # STOMP
    (stomp, stomp_frame("CONNECT", {"accept-version": "1.2,1.1,1.0", "heart-beat": "10000,10000",
                                    "login": "guest", "passcode": "guest"}), "c2s",
     "CONNECT", "open", None),
    (stomp, stomp_frame("CONNECTED", {"version": "1.2", "heart-beat": "10000,10000",
                                      "server": "RabbitMQ/3.12.1", "session": "session-x"}),
     "s2c", "CONNECTED", "ack", None),
    (stomp, stomp_frame("SUBSCRIBE", {"id": "sub-0", "destination": "/topic/chat"}), "c2s",
     "SUBSCRIBE", "subscribe", None),
    (stomp, stomp_frame("UNSUBSCRIBE", {"id": "sub-0"}), "c2s", "UNSUBSCRIBE", "complete",
     None),
    (stomp, stomp_frame("SEND", {"destination": "/topic/chat", "content-length": "5"}, "hello"),
     "c2s", "SEND", "message", None),
    (stomp, stomp_frame("MESSAGE", {"subscription": "sub-0", "destination": "/topic/chat",
                                    "message-id": "T_sub-0@@session-x@@1",
                                    "content-length": "5"}, "hello") + "\n",
     "s2c", "MESSAGE", "message", None),
    (stomp, "\n", "s2c", "heartbeat", "ping", None),
    (stomp, b"\r\n", "c2s", "heartbeat", "ping", None),
    (stomp, stomp_frame("RECEIPT", {"receipt-id": "77"}), "s2c", "RECEIPT", None, None),
    (stomp, stomp_frame("DISCONNECT", {"receipt": "77"}), "c2s", "DISCONNECT", "close",
     "client_done"),
    # RabbitMQ's refusal of a bad login
    (stomp, stomp_frame("ERROR", {"message": "Bad CONNECT", "content-type": "text/plain",
                                  "version": "1.0,1.1,1.2"},
                        "Access refused for user 'guest'\n"), "s2c", "ERROR", "refused",
     "rejected"),
    (stomp, stomp_frame("ERROR", {"message": "not_found"}, "NOT_FOUND - no queue 'x' in vhost"),
     "s2c", "ERROR", "error", "app_error"),
    (stomp, stomp_frame("ERROR", {"message": "Processing error"}, "an exception"), "s2c",
     "ERROR", "error", "server_error"),
    (stomp, stomp_frame("ERROR", {"message": "Invalid destination"}, "'/x' is not valid."),
     "s2c", "ERROR", "error", "protocol_error"),
    (stomp, b"SEND\ndestination:/queue/bin\ncontent-length:3\n\n\x01\xff\x00\x00", "c2s",
     "SEND", "message", None),
    (stomp, "SEND\ndestination:/queue/a\n\nhel", "c2s", "SEND", "message", None),
    (stomp, "HELLO\n\n\x00", "c2s", "malformed", None, None),
    # MQTT (mqtt-packet 9's own bytes)
    (mqtt, H("102000044d51545404c2003c00057765622d31000567756573740006733363726574"), "c2s",
     "CONNECT", "open", None),
    (mqtt, H("103700044d51545405c2001e16110000003c150005746f6b656e160006746f6b31323300057765"
             "622d35000567756573740006733363726574"), "c2s", "CONNECT", "open", None),
    (mqtt, H("20020000"), "s2c", "CONNACK", "ack", None),
    (mqtt, H("2003000000"), "s2c", "CONNACK", "ack", None),
    (mqtt, H("20020005"), "s2c", "CONNACK", "refused", "rejected"),
    (mqtt, H("20020001"), "s2c", "CONNACK", "refused", "protocol_error"),
    (mqtt, H("20020003"), "s2c", "CONNACK", "refused", "app_error"),
    (mqtt, H("20150086121f000f6261642063726564656e7469616c73"), "s2c", "CONNACK", "refused",
     "rejected"),
    (mqtt, H("2003008800"), "s2c", "CONNACK", "refused", "app_error"),
    (mqtt, H("321a0009636861742f726f6f6d00077b2274657874223a226869227d"), "c2s", "PUBLISH",
     "message", None),
    (mqtt, H("30110009636861742f726f6f6d0068656c6c6f"), "s2c", "PUBLISH", "message", None),
    (mqtt, H("820b00010006636861742f2301"), "c2s", "SUBSCRIBE", "subscribe", None),
    (mqtt, H("820c0001000006636861742f2301"), "c2s", "SUBSCRIBE", "subscribe", None),
    (mqtt, H("9003000101"), "s2c", "SUBACK", None, None),
    (mqtt, H("900400010087"), "s2c", "SUBACK", "error", None),
    (mqtt, H("a20a00020006636861742f23"), "c2s", "UNSUBSCRIBE", "complete", None),
    (mqtt, H("c000"), "c2s", "PINGREQ", "ping", None),
    (mqtt, H("d000"), "s2c", "PINGRESP", "pong", None),
    (mqtt, H("40020007"), "s2c", "PUBACK", None, None),
    (mqtt, H("e000"), "c2s", "DISCONNECT", "close", "client_done"),
    (mqtt, H("e01d8e1b1f0018616e6f7468657220636c69656e7420746f6f6b206f766572"), "s2c",
     "DISCONNECT", "close", "app_error"),
    (mqtt, H("e0028d00"), "s2c", "DISCONNECT", "close", "client_unresponsive"),
    (mqtt, H("e0028b00"), "s2c", "DISCONNECT", "close", "app_error"),
    (mqtt, H("e000"), "s2c", "DISCONNECT", "close", "clean"),
    (mqtt, H("d000c000"), "s2c", "PINGRESP", "pong", None),
    (mqtt, H("3220000963"), "s2c", "malformed", None, None),
    (mqtt, "text", "c2s", "malformed", None, None),
    # SignalR (JSON hub protocol)
    (signalr, '{"protocol":"json","version":1}' + RS, "c2s", "handshake", "open", None),
    (signalr, "{}" + RS, "s2c", "handshake_response", "ack", None),
    (signalr, '{"error":"Requested protocol \'messagepack\' is not available."}' + RS, "s2c",
     "handshake_response", "refused", "protocol_error"),
    (signalr, '{"type":1,"invocationId":"0","target":"SendMessage","arguments":["alice","hi"]}'
     + RS, "c2s", "Invocation", "message", None),
    (signalr, '{"type":1,"target":"ReceiveMessage","arguments":["hi"]}' + RS, "s2c",
     "Invocation", "message", None),
    (signalr, '{"type":2,"invocationId":"2","item":5}' + RS, "s2c", "StreamItem", "message",
     None),
    (signalr, '{"type":3,"invocationId":"0","result":"hi"}' + RS, "s2c", "Completion",
     "complete", None),
    (signalr, '{"type":3,"invocationId":"1","error":"Failed to invoke \'X\' due to an error on '
     'the server. HubException: Method does not exist."}' + RS, "s2c", "Completion", "error",
     None),
    (signalr, '{"type":4,"invocationId":"2","target":"Counter","arguments":[10]}' + RS, "c2s",
     "StreamInvocation", "subscribe", None),
    (signalr, '{"type":5,"invocationId":"2"}' + RS, "c2s", "CancelInvocation", "complete",
     None),
    (signalr, '{"type":6}' + RS, "s2c", "Ping", "ping", None),
    (signalr, '{"type":7,"error":"Connection closed with an error. Boom","allowReconnect":true}'
     + RS, "s2c", "Close", "close", "server_error"),
    (signalr, '{"type":7}' + RS, "s2c", "Close", "close", "clean"),
    (signalr, "{}" + RS + '{"type":6}' + RS, "s2c", "handshake_response", "ack", None),
    (signalr, signalr_msgpack([1, {}, "0", "Send", ["a", 1]]), "c2s", "Invocation", "message",
     None),
    (signalr, signalr_msgpack([6], [7, "Server shut down", True]), "s2c", "Close", "close",
     "server_error"),
    (signalr, '{"type":6}', "s2c", "malformed", None, None),
    # Phoenix (serializer 2.0.0 arrays, 1.0.0 objects, binary)
    (phoenix, '["3","3","room:lobby","phx_join",{"token":"abc"}]', "c2s", "phx_join",
     "subscribe", None),
    (phoenix, '["3","3","room:lobby","phx_reply",{"status":"ok","response":{}}]', "s2c",
     "phx_reply", "ack", None),
    (phoenix, '["3","3","room:lobby","phx_reply",{"status":"error","response":{"reason":'
     '"unauthorized"}}]', "s2c", "phx_reply", "refused", "rejected"),
    (phoenix, '["4","4","room:nope","phx_reply",{"status":"error","response":{"reason":'
     '"unmatched topic"}}]', "s2c", "phx_reply", "refused", "protocol_error"),
    (phoenix, '["3","6","room:lobby","phx_reply",{"status":"error","response":{"reason":'
     '"too long"}}]', "s2c", "phx_reply", "error", None),
    (phoenix, '["3","6","room:lobby","phx_reply",{"status":"ok","response":{"n":1}}]', "s2c",
     "phx_reply", "message", None),
    (phoenix, '[null,"4","phoenix","heartbeat",{}]', "c2s", "heartbeat", "ping", None),
    (phoenix, '[null,"4","phoenix","phx_reply",{"status":"ok","response":{}}]', "s2c",
     "phx_reply", "pong", None),
    (phoenix, '["3","3","room:lobby","phx_error",{}]', "s2c", "phx_error", "error",
     "server_error"),
    (phoenix, '["3","3","room:lobby","phx_close",{}]', "s2c", "phx_close", "close",
     "app_error"),
    (phoenix, '["3","5","room:lobby","phx_leave",{}]', "c2s", "phx_leave", "close",
     "client_done"),
    (phoenix, '[null,null,"room:lobby","new_msg",{"body":"hi"}]', "s2c", "new_msg", "message",
     None),
    (phoenix, '{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1"}', "c2s",
     "phx_join", "subscribe", None),
    (phoenix, phoenix_push("3", "7", "room:lobby", "upload", b"\x00\x01\x02"), "c2s", "upload",
     "message", None),
    (phoenix, phoenix_reply("3", "7", "room:lobby", "ok", b"\x09"), "s2c", "phx_reply",
     "message", None),
    (phoenix, bytes([2, 10, 4]) + b"room:lobbytick" + b"\xff", "s2c", "tick", "message", None),
    (phoenix, '{"not":"phoenix"}', "s2c", "malformed", None, None),
    # Action Cable
    (actioncable, '{"type":"welcome"}', "s2c", "welcome", "ack", None),
    (actioncable, '{"type":"ping","message":1700000000}', "s2c", "ping", "ping", None),
    (actioncable, json.dumps({"command": "subscribe", "identifier": IDENT}), "c2s", "subscribe",
     "subscribe", None),
    (actioncable, json.dumps({"identifier": IDENT, "type": "confirm_subscription"}), "s2c",
     "confirm_subscription", "ack", None),
    (actioncable, json.dumps({"identifier": IDENT, "type": "reject_subscription"}), "s2c",
     "reject_subscription", "refused", "rejected"),
    (actioncable, json.dumps({"identifier": IDENT, "message": {"body": "hi"}}), "s2c",
     "broadcast", "message", None),
    (actioncable, json.dumps({"command": "message", "identifier": IDENT,
                              "data": json.dumps({"action": "speak", "body": "hi"})}), "c2s",
     "message", "message", None),
    (actioncable, json.dumps({"command": "unsubscribe", "identifier": IDENT}), "c2s",
     "unsubscribe", "complete", None),
    (actioncable, '{"type":"disconnect","reason":"unauthorized","reconnect":false}', "s2c",
     "disconnect", "close", "rejected"),
    (actioncable, '{"type":"disconnect","reason":"server_restart","reconnect":true}', "s2c",
     "disconnect", "close", "app_error"),
    (actioncable, '{"type":"disconnect","reason":"invalid_request","reconnect":false}', "s2c",
     "disconnect", "close", "protocol_error"),
    (actioncable, '{"type":"disconnect","reason":"remote","reconnect":false}', "s2c",
     "disconnect", "close", "app_error"),
    (actioncable, msgpack.packb({"type": "welcome", "sid": "abc"}), "s2c", "welcome", "ack",
     None),
    (actioncable, "[1,2]", "s2c", "malformed", None, None),
    # Jupyter (v1 binary, legacy text and binary)
    (jupyter, jupyter_v1("shell", "execute_request", {"code": "print(1)", "silent": False}),
     "c2s", "execute_request", "message", None),
    (jupyter, jupyter_v1("iopub", "stream", {"name": "stdout", "text": "hello\n"}), "s2c",
     "stream", "message", None),
    (jupyter, jupyter_v1("iopub", "status", {"execution_state": "busy"}), "s2c", "status",
     "message", None),
    (jupyter, jupyter_v1("shell", "execute_reply", {"status": "error", "ename": "ZeroDivisionError",
                                                    "evalue": "division by zero",
                                                    "traceback": []}), "s2c",
     "execute_reply", "error", None),
    (jupyter, jupyter_v1("iopub", "error", {"ename": "NameError", "evalue": "name 'x' is not "
                                            "defined", "traceback": []}), "s2c", "error",
     "error", None),
    (jupyter, jupyter_v1("iopub", "status", {"execution_state": "restarting"}), "s2c", "status",
     "error", None),
    (jupyter, jupyter_v1("iopub", "status", {"execution_state": "dead"}), "s2c", "status",
     "close", "server_error"),
    (jupyter, jupyter_v1("iopub", "display_data", {"data": {"image/png": "", "text/plain":
                                                            "<Figure>"}, "metadata": {}},
                         (b"\x89PNG\r\n",)), "s2c", "display_data", "message", None),
    (jupyter, json.dumps({"channel": "iopub", "header": {"msg_type": "execute_result",
                                                         "msg_id": "a"},
                          "parent_header": {}, "metadata": {},
                          "content": {"data": {"text/plain": "42"}}, "buffers": []}),
     "s2c", "execute_result", "message", None),
    (jupyter, jupyter_legacy_binary({"channel": "shell", "header": {"msg_type": "comm_msg"},
                                     "parent_header": {}, "metadata": {},
                                     "content": {"comm_id": "c1"}}, [b"\x00\x01"]), "c2s",
     "comm_msg", "message", None),
    (jupyter, b"\x00" * 12, "s2c", "malformed", None, None),
    # generic encodings
    (json_, '{"type":"chat","body":"hi"}', "s2c", "chat", None, None),
    (json_, b'{"event":"tick","n":1}', "s2c", "tick", None, None),
    (json_, "[1,2,3]", "c2s", "array", None, None),
    (msgpack_, msgpack.packb({"action": "move", "blob": b"\x00\x01"}), "s2c", "move", None, None),
    (msgpack_, msgpack.packb([1, "two", 3.5]), "c2s", "array", None, None),
    (cbor_, cbor2.dumps({"op": "hello", "at": 1.5, "raw": b"\x01"}), "s2c", "hello", None, None),
    (cbor_, cbor2.dumps([1, {"x": [True, None]}]), "c2s", "array", None, None),
    (protobuf_, H("089601120568656c6c6f1a020801"), "s2c", "message", None, None),
]  # fmt: skip


def example(decoder: ModuleType, kind: str, n: int = 0) -> str | bytes:
    """The payload of the nth wire example of decoder with that kind."""
    return [e[1] for e in EXAMPLES if e[0] is decoder and e[3] == kind][n]


MODULES = [m for m in decoders.DECODERS if m.__name__.startswith("sentinel_ws_proxy.decoders.")]


def check(found: Decoded | None, decoder: ModuleType) -> None:
    """What every Decoded must be: plain JSON, a one-line summary, valid text."""
    if found is None:
        return
    assert isinstance(found, Decoded)
    assert found.protocol == decoder.NAME
    assert "\n" not in found.summary and len(found.summary) <= 400
    assert not RESERVED & set(found.fields), found.fields
    json.dumps(found.as_json(), allow_nan=False)
    if found.text is not None:
        found.text.encode("utf-8")
    if found.ending is not None:
        assert isinstance(found.ending, Ending) and found.ending.reason


def ident(example: tuple[Any, ...]) -> str:
    return f"{example[0].NAME}-{example[3]}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[ident(e) for e in EXAMPLES])
def test_wire_examples(example):
    decoder, payload, direction, kind, event, category = example
    found = decoders.decode(decoder, payload, direction)
    assert found is not None
    check(found, decoder)
    assert found.kind == kind, found.summary
    assert found.event == event, found.summary
    assert (found.ending.category if found.ending else None) == category, found.ending
    # called directly too: the wrapper must not have hidden an exception
    assert decoder.decode(payload, direction) == found


def test_registry_has_every_protocol_once_and_generic_last():
    names = [m.NAME for m in MODULES]
    assert len(names) == len(set(names))
    assert names[-4:] == ["json", "msgpack", "cbor", "protobuf"]
    assert {"graphql-ws", "subscriptions-transport-ws", "socket.io", "stomp", "mqtt", "signalr",
            "phoenix", "actioncable", "jupyter"} <= set(names)  # fmt: skip
    for module in MODULES:
        assert module.__doc__ and len(module.__doc__) > 200, module.NAME
        assert isinstance(module.SUBPROTOCOLS, tuple)


# -- summaries and reasons in the protocols' own words -------------------------------------


def summary(decoder: ModuleType, payload: str | bytes, direction: str = "s2c") -> Decoded:
    found = decoders.decode(decoder, payload, direction)
    assert found is not None
    return found


def test_graphql_ws_close_codes_quote_code_and_reason():
    judged = {code: decoders.close_ending(graphql_transport_ws, code, reason) for code, reason in [
        (4400, "Invalid message received"), (4401, "Unauthorized"), (4403, "Forbidden"),
        (4406, "Subprotocol not acceptable"), (4408, "Connection initialisation timeout"),
        (4409, "Subscriber for 1 already exists"), (4429, "Too many initialisation requests"),
        (4499, "Terminated"), (4500, "Cannot read properties of undefined (reading 'x')"),
    ]}  # fmt: skip
    assert {code: e.category for code, e in judged.items() if e} == {
        4400: "protocol_error", 4401: "protocol_error", 4403: "rejected",
        4406: "protocol_error", 4408: "protocol_error", 4409: "protocol_error",
        4429: "protocol_error", 4499: "client_done", 4500: "server_error",
    }  # fmt: skip
    assert judged[4403].reason == (
        "graphql-ws 4403 Forbidden: the server's onConnect refused the connection_init payload"
    )
    assert "subscribed before the server acknowledged connection_init" in judged[4401].reason
    assert "the client sent no connection_init in time" in judged[4408].reason
    assert "Subscriber for 1 already exists" in judged[4409].reason
    assert "Cannot read properties of undefined (reading 'x')" in judged[4500].reason
    assert judged[4500].reason.startswith("graphql-ws 4500 ")
    # an empty reason falls back to the library's name for the code
    assert decoders.close_ending(graphql_transport_ws, 4403, "").reason.startswith(
        "graphql-ws 4403 Forbidden:"
    )
    assert decoders.close_ending(graphql_transport_ws, 1000, "") is None
    assert decoders.close_ending(graphql_transport_ws, 1006, None) is None


def test_graphql_summaries():
    found = summary(graphql_transport_ws, example(graphql_transport_ws, "connection_init"), "c2s")
    assert found.summary == "connection_init with payload keys authToken"
    assert "abc" not in json.dumps(found.as_json())
    found = summary(graphql_transport_ws, example(graphql_transport_ws, "error"))
    assert found.summary.startswith('error 1: Cannot query field "nope"')
    found = summary(graphql_ws_legacy, '{"type":"connection_error","payload":{"message":"x"}}')
    assert found.ending == Ending("rejected", "subscriptions-transport-ws connection_error: x")


def test_socketio_endings_and_fields():
    found = summary(socketio, example(socketio, "open"))
    assert found.fields["pingInterval"] == 25000 and found.fields["pingTimeout"] == 20000
    found = summary(socketio, "41/admin,")
    assert found.ending == Ending(
        "app_error",
        "the server disconnected the client from /admin (io server disconnect): the client will "
        "not reconnect on its own",
        reconnect=False,
    )
    found = summary(socketio, '44{"message":"authentication failed","data":{"code":7}}')
    assert found.ending.reason == "Socket.IO connect_error on /: authentication failed"
    assert found.ending.reconnect is False and found.fields["data"] == {"code": 7}
    found = summary(socketio, '42/chat,17["msg",{"a":1},"b"]', "c2s")
    assert found.fields["namespace"] == "/chat" and found.fields["ack"] == 17
    assert found.fields["name"] == "msg"
    assert found.summary == 'EVENT /chat ack=17 msg {"a":1} b'
    found = summary(socketio, example(socketio, "EVENT", 2))  # msgpack
    assert json.loads(found.text) == {"type": 2, "nsp": "/", "data": ["chat", {"a": 1}], "id": 3}
    assert found.fields["parser"] == "msgpack" and found.fields["ack"] == 3
    found = summary(
        socketio, "b" + base64.b64encode(msgpack.packb({"type": 1, "nsp": "/"})).decode()
    )  # base64 msgpack DISCONNECT
    assert found.kind == "DISCONNECT"


def test_stomp_details():
    error = summary(stomp, example(stomp, "ERROR"))
    assert error.ending.reason == "STOMP ERROR: Bad CONNECT (Access refused for user 'guest')"
    connect = summary(stomp, example(stomp, "CONNECT"), "c2s")
    assert "login=guest" in connect.summary and "passcode" not in connect.summary
    assert connect.fields["headers"]["passcode"] == REDACTED  # never shown, even unredacted
    beat = summary(stomp, "\n", "s2c")
    assert beat.fields["from_server"] is True and beat.summary == "heart-beat from the server"
    assert summary(stomp, "\n", "c2s").fields["from_server"] is False
    partial = summary(stomp, "SEND\ndestination:/queue/a\n\nhel", "c2s")
    assert partial.fields["partial"] == "no NUL ends the frame"
    binary = summary(stomp, example(stomp, "SEND", 1), "c2s")
    assert binary.fields["body"] == "(3 bytes binary)" and binary.text is None
    text_in_binary = summary(stomp, stomp_frame("MESSAGE", {"destination": "/q"}, "hi").encode())
    assert text_in_binary.text == "MESSAGE\ndestination:/q\n\nhi"
    two = summary(stomp, stomp_frame("MESSAGE", {"destination": "/q"}, "a")
                  + stomp_frame("ERROR", {"message": "bye"}))  # fmt: skip
    assert two.kind == "ERROR" and two.fields["frames"] == ["MESSAGE", "ERROR"]
    escaped = summary(stomp, stomp_frame("MESSAGE", {"destination": "/a\\cb"}, "x"))
    assert escaped.fields["headers"]["destination"] == "/a:b"


def test_mqtt_details():
    connect = summary(mqtt, example(mqtt, "CONNECT", 1), "c2s")
    assert connect.fields["version"] == "5.0" and connect.fields["username"] == "guest"
    assert connect.fields["properties"]["authentication method"] == "token"
    assert "s3cret" not in json.dumps(connect.as_json()) and "tok123" not in connect.summary
    refused = summary(mqtt, H("20150086121f000f6261642063726564656e7469616c73"))
    assert refused.ending.reason == (
        "MQTT CONNACK refused the connection: 0x86 bad user name or password: bad credentials"
    )
    taken = summary(mqtt, H("e01d8e1b1f0018616e6f7468657220636c69656e7420746f6f6b206f766572"))
    assert "another client connected with the same client id" in taken.ending.reason
    publish = summary(mqtt, H("321a0009636861742f726f6f6d00077b2274657874223a226869227d"))
    assert publish.fields["topic"] == "chat/room" and publish.fields["payload"] == '{"text":"hi"}'
    assert publish.fields["qos"] == 1 and publish.fields["packet_id"] == 7
    assert publish.text == 'PUBLISH chat/room qos=1: {"text":"hi"}'
    both = summary(mqtt, H("d000c000"))
    assert both.fields["packets"] == ["PINGRESP", "PINGREQ"]
    split = H("321a0009636861742f726f6f6d00077b2274657874223a226869227d")
    cut = summary(mqtt, split[:10])
    assert cut.kind == "malformed" and "next message" in cut.summary
    tail = summary(mqtt, H("c000") + split[:10])
    assert tail.kind == "PINGREQ" and tail.fields["packets"] == ["PINGREQ", "partial"]


def test_signalr_details():
    close = summary(signalr, example(signalr, "Close"))
    assert close.ending == Ending("server_error",
                                  "SignalR close: Connection closed with an error. Boom",
                                  reconnect=True)  # fmt: skip
    assert summary(signalr, '{"type":7}' + RS).ending.reconnect is False
    pair = summary(signalr, "{}" + RS + '{"type":6}' + RS)
    assert pair.fields["records"] == ["handshake_response", "Ping"]
    packed = summary(signalr, example(signalr, "Invocation", 2), "c2s")
    assert packed.summary == "Invocation Send(a, 1) id=0"
    assert json.loads(packed.text) == [1, {}, "0", "Send", ["a", 1]]
    timeout = summary(signalr, '{"type":7,"error":"Server timeout elapsed without receiving a '
                      'message from the client."}' + RS)  # fmt: skip
    assert timeout.ending.category == "client_unresponsive"


def test_phoenix_details():
    refused = summary(phoenix, example(phoenix, "phx_reply", 1))
    assert refused.ending.reason == "Phoenix refused to join room:lobby: unauthorized"
    assert summary(phoenix, example(phoenix, "phx_error")).ending.reason == (
        "the channel room:lobby crashed on the server"
    )
    assert (
        summary(phoenix, example(phoenix, "phx_close")).ending.reason
        == "the server closed channel room:lobby"
    )
    beat = summary(phoenix, '[null,"4","phoenix","heartbeat",{}]', "c2s")
    assert beat.fields["from_server"] is False
    pushed = summary(phoenix, example(phoenix, "upload"), "c2s")
    assert pushed.fields["topic"] == "room:lobby" and pushed.fields["phx_event"] == "upload"
    assert json.loads(pushed.text)["payload"] == {"$bytes": 3}


def test_actioncable_details():
    gone = summary(actioncable, '{"type":"disconnect","reason":"server_restart","reconnect":true}')
    assert gone.ending.reconnect is True and "server_restart" in gone.ending.reason
    refused = summary(
        actioncable, '{"type":"disconnect","reason":"unauthorized","reconnect":false}'
    )
    assert refused.ending.reconnect is False and "unauthorized" in refused.ending.reason
    ping = summary(actioncable, '{"type":"ping","message":1700000000}')
    assert ping.fields["one_way"] is True and ping.fields["from_server"] is True
    said = summary(actioncable, example(actioncable, "message"), "c2s")
    assert said.fields["action"] == "speak"
    assert said.summary.startswith('message ChatChannel {"room":"1"}: ')
    rejected = summary(actioncable, example(actioncable, "reject_subscription"))
    assert rejected.ending.reason.startswith(
        "Action Cable rejected the subscription to ChatChannel"
    )


def test_jupyter_details():
    stream = summary(jupyter, example(jupyter, "stream"))
    assert stream.summary == "iopub stream stdout: hello"
    parts = json.loads(stream.text)
    assert parts["channel"] == "iopub" and parts["content"]["text"] == "hello\n"
    assert set(parts) == {"channel", "header", "parent_header", "metadata", "content"}
    assert stream.fields["parent_msg_id"] == "p0"
    request = summary(jupyter, example(jupyter, "execute_request"), "c2s")
    assert request.summary == "shell execute_request: print(1)"
    reply = summary(jupyter, example(jupyter, "execute_reply"))
    assert reply.summary == "shell execute_reply error ZeroDivisionError: division by zero"
    shown = summary(jupyter, example(jupyter, "display_data"))
    assert json.loads(shown.text)["buffers"] == ["(6 bytes)"]
    assert shown.summary == "iopub display_data: <Figure>"


def test_generic_text():
    found = summary(msgpack_, msgpack.packb({"action": "move", "blob": b"\x00\x01"}))
    assert json.loads(found.text) == {"action": "move", "blob": {"$base64": "AAE="}}
    found = summary(protobuf_, H("089601120568656c6c6f1a020801"))
    assert json.loads(found.text) == {"1": 150, "2": "hello", "3": {"1": 1}}
    found = summary(protobuf_, H("08010802"))
    assert json.loads(found.text) == {"1": [1, 2]}
    found = summary(cbor_, cbor2.dumps({1: b"\x01", "t": cbor2.CBORTag(99, "x")}))
    assert json.loads(found.text) == {"1": {"$base64": "AQ=="}, "t": {"$tag": 99, "value": "x"}}
    assert json_.decode("hello there", "s2c") is None
    assert json_.decode(b"\xff\xfe", "s2c") is None
    assert msgpack_.decode(b'{"a":1}', "s2c") is None
    assert cbor_.decode(b"\x82\x01", "s2c") is None  # an array of two with one item
    assert protobuf_.decode(b"\x00\x01", "s2c") is None  # field number 0


def test_cyclic_and_huge_values_are_cut_not_expanded():
    # CBOR shared references: an array holding itself, and a doubling "bomb"; a huge bignum
    cyclic = H("d81c81d81d00")
    found = decoders.decode(cbor_, cyclic, "s2c")
    check(found, cbor_)
    # 40 nested pairs of the same shared array: 2**40 leaves if expanded
    bomb = b"\x01"
    for i in range(40):
        bomb = b"\xd8\x1c\x82" + bomb + b"\xd8\x1d" + cbor2.dumps(i)
    found = decoders.decode(cbor_, bomb, "s2c")
    check(found, cbor_)
    assert found is not None and len(found.text) < 200_000
    big = cbor2.dumps(10**5000)
    check(decoders.decode(cbor_, big, "s2c"), cbor_)


# -- choosing a session's decoder ----------------------------------------------------------


@pytest.mark.parametrize(("subprotocol", "name"), [
    ("graphql-transport-ws", "graphql-ws"), ("graphql-ws", "subscriptions-transport-ws"),
    ("v12.stomp", "stomp"), ("v10.stomp", "stomp"), ("mqtt", "mqtt"), ("MQTT", "mqtt"),
    ("mqttv3.1", "mqtt"), ("actioncable-v1-json", "actioncable"),
    ("v1.kernel.websocket.jupyter.org", "jupyter"),
])  # fmt: skip
def test_choose_by_subprotocol(subprotocol, name):
    chosen = decoders.choose(subprotocol, "/anything", "", [("s2c", "garbage")])
    assert (chosen.NAME if chosen else None) == name


SNIFFED = [
    ("/socket.io/", "EIO=4&transport=websocket", [], "socket.io"),
    ("/ws", "", [("s2c", '0{"sid":"abc","upgrades":[]}')], "socket.io"),
    ("/api/kernels/0b4f/channels", "session_id=x", [], "jupyter"),
    ("/k", "", [("s2c", example(jupyter, "stream"))], "jupyter"),
    ("/graphql", "", [("c2s", '{"type":"connection_init"}'), ("s2c", '{"type":"connection_ack"}'),
                      ("c2s", '{"id":"1","type":"subscribe","payload":{}}')], "graphql-ws"),
    ("/graphql", "", [("c2s", '{"type":"connection_init","payload":{}}'),
                      ("c2s", '{"id":"1","type":"start","payload":{}}'),
                      ("s2c", '{"type":"connection_ack"}'), ("s2c", '{"type":"ka"}')],
     "subscriptions-transport-ws"),
    ("/hub", "id=abc", [("c2s", '{"protocol":"json","version":1}' + RS)], "signalr"),
    ("/hub", "", [("s2c", "{}" + RS)], "signalr"),
    ("/cable", "", [("s2c", '{"type":"welcome"}')], "actioncable"),
    ("/socket/websocket", "token=x&vsn=2.0.0", [], "phoenix"),
    ("/live", "", [("c2s", '["3","3","lv:phx-1","phx_join",{}]')], "phoenix"),
    ("/stomp", "", [("c2s", "CONNECT\naccept-version:1.2\n\n\x00")], "stomp"),
    ("/stomp", "", [("s2c", b"CONNECTED\nversion:1.2\n\n\x00")], "stomp"),
    ("/mqtt", "", [("c2s", example(mqtt, "CONNECT"))], "mqtt"),
    ("/api", "", [("s2c", '{"type":"hello"}'), ("c2s", "[1,2]")], "json"),
    # words graphql-ws and Phoenix use, in APIs of their own
    ("/feed", "", [("c2s", '{"type":"subscribe","product_ids":["BTC-USD"]}'),
                   ("s2c", '{"type":"next","n":1}')], "json"),
    ("/feed", "", [("c2s", '["a","b","ticker","update",{}]')], "json"),
    ("/api", "", [("s2c", b'{"type":"hello"}')], "json"),
    ("/api", "", [("s2c", msgpack.packb({"type": "hello", "n": 1}))], "msgpack"),
    ("/api", "", [("s2c", cbor2.dumps({"type": "hello", "n": [1, 2]}))], "cbor"),
    ("/api", "", [("s2c", H("089601120568656c6c6f")), ("c2s", H("0801"))], "protobuf"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "query", "first", "name"), SNIFFED,
                         ids=[f"{s[3]}-{i}" for i, s in enumerate(SNIFFED)])  # fmt: skip
def test_choose_by_sniffing(path, query, first, name):
    chosen = decoders.choose(None, path, query, first)
    assert (chosen.NAME if chosen else None) == name


@pytest.mark.parametrize("first", [
    [], [("s2c", "hello")], [("c2s", "ping"), ("s2c", "pong")], [("s2c", b"\x00\x01\x02")],
    [("s2c", '{"a":1}'), ("s2c", "not json")], [("s2c", "42")],
    [("s2c", bytes(random.Random(7).randrange(256) for _ in range(64)))],
    [("s2c", b"\x81\xa1a")],  # a truncated msgpack map
])  # fmt: skip
def test_nothing_chosen_for_unknown_traffic(first):
    assert decoders.choose(None, "/ws", "", first) is None


# -- redaction -----------------------------------------------------------------------------

REDACTIONS = [
    (graphql_transport_ws, '{"type":"connection_init","payload":{"authToken":"s3cret",'
     '"headers":{"Authorization":"Bearer s3cret2"}}}', 2),
    (graphql_transport_ws, b'{"type":"connection_init","payload":{"password":"s3cret"}}', 1),
    (graphql_ws_legacy, '{"type":"connection_init","payload":{"Authorization":"Bearer s3cret"}}',
     1),
    (socketio, '40{"token":"s3cret","user":"bob"}', 2),
    (socketio, '40/admin,{"token":"s3cret"}', 1),
    (socketio, msgpack.packb({"type": 0, "nsp": "/", "data": {"token": "s3cret"}}), 1),
    (stomp, "CONNECT\naccept-version:1.2\nlogin:guest\npasscode:s3cret\nAuthorization:Bearer "
     "s3cret2\n\n\x00", 2),
    (stomp, b"\nSTOMP\r\nlogin:guest\r\npasscode:s3cret\r\n\r\n\x00", 1),
    (mqtt, H("102000044d51545404c2003c00057765622d31000567756573740006733363726574"), 1),
    (mqtt, H("103700044d51545405c2001e16110000003c150005746f6b656e160006746f6b31323300057765"
             "622d35000567756573740006733363726574"), 2),
    (phoenix, '["3","3","lv:phx-F1","phx_join",{"url":"http://x/","session":"SFMyNTY.s3cret",'
     '"params":{"_csrf_token":"s3cret2"}}]', 2),
    (actioncable, json.dumps({"command": "subscribe", "identifier": json.dumps(
        {"channel": "ChatChannel", "token": "s3cret"})}), 1),
]  # fmt: skip


@pytest.mark.parametrize(("decoder", "payload", "count"), REDACTIONS,
                         ids=[f"{r[0].NAME}-{i}" for i, r in enumerate(REDACTIONS)])  # fmt: skip
def test_redact(decoder, payload, count):
    before = decoders.decode(decoder, payload, "c2s")
    found = decoder.redact(payload, "c2s")
    assert found is not None
    redacted, n = found
    assert n == count
    assert type(redacted) is type(payload)
    raw = redacted.encode() if isinstance(redacted, str) else redacted
    assert b"s3cret" not in raw and b"tok123" not in raw
    assert REDACTED.encode() in raw
    after = decoders.decode(decoder, redacted, "c2s")
    assert after is not None and after.kind == before.kind != "malformed"
    assert after.event == before.event
    # nothing left to redact the second time but the same placeholders
    again = decoder.redact(redacted, "c2s")
    assert again is None or again[0] == redacted


def test_redact_a_frame_cut_short_still_hides_its_passcode():
    assert stomp.redact("CONNECT\nlogin:guest\npasscode:s3cret", "c2s") == (
        "CONNECT\nlogin:guest\npasscode:[redacted]",
        1,
    )


def test_redact_keeps_names_and_readable_logins():
    text, _ = graphql_transport_ws.redact(REDACTIONS[0][1], "c2s")
    assert json.loads(text)["payload"] == {"authToken": REDACTED,
                                           "headers": {"Authorization": REDACTED}}  # fmt: skip
    frame, _ = stomp.redact(REDACTIONS[6][1], "c2s")
    assert "login:guest\npasscode:[redacted]\nAuthorization:[redacted]\n\n\x00" in frame
    packet, _ = mqtt.redact(REDACTIONS[8][1], "c2s")
    assert mqtt.decode(packet, "c2s").fields["username"] == "guest"
    assert packet.endswith(b"\x00\x05guest\x00\x0a[redacted]")
    packed, _ = socketio.redact(REDACTIONS[5][1], "c2s")
    assert msgpack.unpackb(packed)["data"] == {"token": REDACTED}


@pytest.mark.parametrize("decoder", [m for m in MODULES if hasattr(m, "redact")],
                         ids=lambda m: m.NAME)  # fmt: skip
def test_redact_refuses_what_carries_no_credentials(decoder):
    for payload, direction in [
        ('{"type":"connection_init","payload":{"a":1}}', "s2c"),
        ("42[\"chat\",\"hi\"]", "c2s"), ('{"type":"connection_init"}', "c2s"), ("40", "c2s"),
        ("SEND\ndestination:/q\n\nhi\x00", "c2s"), ("CONNECT\nlogin:guest\n\n\x00", "c2s"),
        (H("c000"), "c2s"), (H("100c00044d5154540402003c0000"), "c2s"), ("", "c2s"), (b"", "c2s"),
        ('["3","3","room:x","phx_join",{}]', "c2s"),
        (json.dumps({"command": "subscribe", "identifier": IDENT}), "c2s"),
    ]:  # fmt: skip
        assert decoder.redact(payload, direction) is None, (payload, direction)


def test_may_redact_refuses_cheaply():
    assert _util.may_redact('["3","3","room:x","phx_join",{}]', "c2s", "phx_join")
    assert not _util.may_redact('["3","3","room:x","phx_join",{}]', "s2c", "phx_join")
    assert not _util.may_redact(b"phx_join", "c2s", "phx_join")  # text only, unless binary
    marks = ("connection_init", '"payload"')
    assert _util.may_redact(b'{"type":"connection_init","payload":{}}', "c2s", *marks,
                            binary=True)  # fmt: skip
    assert not _util.may_redact('{"type":"connection_init"}', "c2s", *marks, binary=True)
    assert not _util.may_redact("phx_join" + " " * _util.REDACT_LIMIT, "c2s", "phx_join")


def test_mqtt_redact_and_secret_ranges_find_the_same_fields():
    """One walk over a CONNECT's fields serves both: the password and MQTT 5's
    authentication data, None until the packet is whole, [] without credentials."""
    for packet, secrets in [(REDACTIONS[8][1], [b"s3cret"]),
                            (REDACTIONS[9][1], [b"tok123", b"s3cret"])]:  # fmt: skip
        ranges = mqtt.secret_ranges(packet)
        assert [packet[a:b] for a, b in ranges] == secrets
        assert mqtt.secret_ranges(packet + H("c000")) == ranges
        assert all(mqtt.secret_ranges(packet[:cut]) is None for cut in range(1, len(packet)))
        redacted, count = mqtt.redact(packet, "c2s")
        assert count == len(secrets)
        masked = [redacted[a:b] for a, b in mqtt.secret_ranges(redacted)]
        assert masked == [REDACTED.encode()] * count
    assert mqtt.secret_ranges(H("100c00044d5154540402003c0000")) == []  # no password
    assert mqtt.secret_ranges(b"") == [] and mqtt.secret_ranges(H("c000")) == []
    # a 4-byte property overrunning its properties' length: redact leaves the broken packet
    # alone, the recorder still masks the password it finds after them
    odd = H("101c00044d5154540540003c031100000006636c69656e74000470617373")
    assert mqtt.redact(odd, "c2s") is None
    assert [odd[a:b] for a, b in mqtt.secret_ranges(odd)] == [b"pass"]


# -- fuzz: nothing raises, whatever arrives -------------------------------------------------

SEEDS = [e[1] for e in EXAMPLES] + [r[1] for r in REDACTIONS]


def mutations(rng: random.Random, count: int, own: list[str | bytes] | None = None):
    """Seeded variations of the examples (own's more often): random bytes, truncations, bit
    flips, insertions, concatenations, tails; half as text, half as binary."""
    for _ in range(count):
        pick = rng.random()
        base = rng.choice(own if own and rng.random() < 0.6 else SEEDS)
        raw = base.encode("utf-8") if isinstance(base, str) else base
        if pick < 0.15:
            out = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 48)))
        elif pick < 0.35:
            out = raw[: rng.randrange(0, len(raw) + 1)]
        elif pick < 0.6:
            buf = bytearray(raw)
            for _ in range(rng.randrange(1, 4)):
                if buf:
                    buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
            out = bytes(buf)
        elif pick < 0.75:
            cut = rng.randrange(len(raw) + 1)
            out = (
                raw[:cut]
                + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
                + raw[cut:]
            )
        elif pick < 0.85:
            other = rng.choice(SEEDS)
            out = raw + (other.encode("utf-8") if isinstance(other, str) else other)
        else:
            out = raw[rng.randrange(len(raw) + 1) :]
        if rng.random() < 0.5:
            yield out.decode("utf-8", "replace"), rng.choice(("c2s", "s2c"))
        else:
            yield out, rng.choice(("c2s", "s2c"))


ODD = ["", b"", "\x1e", "\x00", "0", "4", "40", "4" + "/" * 300, "[" * 5000, "{" * 5000,
       '{"type":' * 3000, b"\x91" * 5000, b"\xd8\x1c" * 3000, b"\x10\xff\xff\xff\xff",
       "\ud800", "CONNECT\n" + "a:b\n" * 300 + "\n\x00", b"\x0a" * 1000,
       b"\xff" * 8 + b"\x00" * 64, b"\x07" + b"\x00" * 7 + b"\x40" + b"\x00" * 7]  # fmt: skip


@pytest.mark.parametrize("decoder", MODULES, ids=lambda m: m.NAME)
def test_fuzz_never_raises(decoder):
    rng = random.Random(f"sentinel-{decoder.NAME}")
    own = [e[1] for e in EXAMPLES if e[0] is decoder] + [r[1] for r in REDACTIONS
                                                         if r[0] is decoder]  # fmt: skip
    inputs = [*((p, d) for p in ODD for d in ("c2s", "s2c")), *mutations(rng, 4000, own)]
    redact = getattr(decoder, "redact", None)
    close_code = getattr(decoder, "close_code", None)
    for payload, direction in inputs:
        found = decoder.decode(payload, direction)  # directly: the wrapper would hide a raise
        check(found, decoder)
        if redact is not None:
            redacted = redact(payload, direction)
            if redacted is not None:
                assert type(redacted[0]) is type(payload) and redacted[1] > 0
                check(decoder.decode(redacted[0], direction), decoder)
    for _ in range(300):
        first = [(rng.choice(("c2s", "s2c")), p) for p, _ in mutations(rng, rng.randrange(0, 5))]
        assert decoder.sniff(rng.choice(["", "/ws", "/socket.io/"]), "", first) in (True, False)
    assert decoder.sniff("", "", [("x", 5), None, "junk"]) in (True, False)  # type: ignore[list-item]
    if close_code is not None:
        for code in [*range(4000, 4600), 1000, 1006, -1, 10**9]:
            ending = close_code(code, rng.choice(["", "x" * 500, "\ud800", "Forbidden"]))
            assert ending is None or isinstance(ending, Ending)


def test_choose_and_decode_wrapper_with_garbage():
    rng = random.Random(11)
    for payload, direction in mutations(rng, 400):
        chosen = decoders.choose(None, "/ws", "", [(direction, payload)])
        check(decoders.decode(chosen, payload, direction), chosen) if chosen else None
