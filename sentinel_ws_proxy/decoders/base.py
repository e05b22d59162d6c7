"""What a decoder is: the sans-I/O contract every application protocol module follows.

A decoder module (one per protocol, in this package or a user's own, loaded with
``--decoder mypkg.mydecoder``) defines:

``NAME``
    The protocol's name as people know it ("graphql-ws", "socket.io", "stomp").
``SUBPROTOCOLS``
    The ``Sec-WebSocket-Protocol`` values that choose it outright (may be empty).
``sniff(path, query, first) -> bool``
    For a session without one of those subprotocols: whether its path, query or
    first few messages (``first``: up to 4 ``(direction, payload)`` pairs, payload
    ``str`` for text and ``bytes`` for binary) say it speaks this protocol.
``decode(payload, direction) -> Decoded | None``
    One whole message. None when it is not this protocol's. Never raises:
    a malformed packet is a Decoded of kind ``"malformed"`` with the complaint
    in ``summary``, so that a reader shows it raw beside what was wrong.
``close_code(code, reason) -> Ending | None`` (optional)
    What a WebSocket close code means in this protocol (graphql-ws's 44xx).
``session_end(said, closed_by, code, reason) -> Ending | None`` (optional)
    What the whole conversation says of an ending no single message explains: ``said``
    is every decoded message as ``(direction, Decoded)`` (MQTT 3.1.1: a broker that closes
    an accepted session the client never said DISCONNECT to).
``JOINS_MESSAGES`` and ``split(stream) -> (packets, rest)`` (optional)
    For a protocol whose packets may span WebSocket messages (MQTT from mqtt.js): readers
    join each direction's messages into a byte stream and decode whole packets.
``secret_ranges(packet_bytes) -> list[(start, end)] | None`` (optional)
    Where a client's first packet holds credentials, for the recorder to mask in place
    when the packet spans messages (None: not whole yet).
``redact(payload, direction) -> tuple[payload, int] | None`` (optional)
    Called by the recorder on a session's first client messages only; returns the
    payload with the credential fields replaced by ``REDACTED`` and how many were,
    or None when it holds none. Must be cheap to refuse (a prefix check first).

Decoders judge nothing by themselves: they say what the application said
(``Decoded.event``), and analysis/ turns those words into verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

REDACTED = "[redacted]"

# What a message means to a verdict, whatever the protocol:
#  open       the session's application handshake began (connection_init, CONNECT...)
#  ack        the server accepted it (connection_ack, CONNECTED, CONNACK 0...)
#  refused    the server refused it (CONNACK 5, STOMP ERROR on CONNECT, CONNECT_ERROR...)
#  error      an error inside an accepted session (graphql error, STOMP ERROR...)
#  ping/pong  application heartbeats; ``from_server`` on the Ending-less event tells who asks
#  close      the application ended the session (Socket.IO DISCONNECT, SignalR close,
#             Action Cable disconnect, Phoenix phx_close, MQTT DISCONNECT)
#  subscribe / complete / message   ordinary traffic worth naming
EventKind = Literal[
    "open", "ack", "refused", "error", "ping", "pong", "close",
    "subscribe", "complete", "message",
]  # fmt: skip

# The verdict categories a protocol's own words may imply (analysis/classify.py's names).
Category = Literal[
    "rejected",  # the application refused the client (credentials, authorization)
    "server_error",  # a handler crashed on the server
    "app_error",  # the server ended the session on purpose (told the client to go)
    "protocol_error",  # one side misused the protocol
    "client_unresponsive",  # the client missed the application's heartbeat
    "client_done",  # the client ended it on purpose (an expected ending)
    "clean",  # an orderly end both sides agreed on
]


@dataclass(frozen=True, slots=True)
class Ending:
    """How a protocol explains the end of a session: its category and its own words."""

    category: Category
    reason: str  # the application's words, quoted in the advice
    reconnect: bool | None = None  # whether the protocol told the client to come back


@dataclass(frozen=True, slots=True)
class Decoded:
    """One message, as its protocol reads."""

    protocol: str
    kind: str  # the packet type: "connection_init", "EVENT", "CONNACK", "ERROR"...
    summary: str  # one line for people
    fields: dict[str, Any] = field(default_factory=dict)  # plain JSON values
    # The message as readable text when its bytes are not (binary JSON, msgpack or CBOR
    # as JSON, a kernel message's parts): what `show` prints and `search` indexes.
    text: str | None = None
    event: EventKind | None = None
    ending: Ending | None = None  # for events that end or refuse the session

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"protocol": self.protocol, "kind": self.kind,
                                 "summary": self.summary, **self.fields}  # fmt: skip
        if self.event is not None:
            found["event"] = self.event
        if self.ending is not None:
            found["ending"] = {"category": self.ending.category, "reason": self.ending.reason,
                               "reconnect": self.ending.reconnect}  # fmt: skip
        return found


def malformed(protocol: str, why: str) -> Decoded:
    """A message that claims the protocol but breaks it: shown raw with the complaint."""
    return Decoded(protocol, "malformed", f"malformed {protocol} message: {why}")
