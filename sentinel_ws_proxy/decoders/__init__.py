"""Application protocols inside WebSocket messages: decoded for people, judged by
their own words, their credentials redacted.

Each protocol is one module (see base.py for what it defines). A session's decoder
is chosen by its negotiated subprotocol first, then by sniffing its path, query and
first messages, in the order of DECODERS (specific protocols before generic JSON).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from sentinel_ws_proxy.decoders import (
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
from sentinel_ws_proxy.decoders.base import Decoded, Ending, malformed
from sentinel_ws_proxy.errors import UserError

__all__ = [
    "DECODERS",
    "Decoded",
    "Ending",
    "by_name",
    "choose",
    "decode",
    "decode_message",
    "for_session",
    "load",
]

Payload = str | bytes
First = Sequence[tuple[str, Payload]]

# Sniffing order: path- and handshake-specific protocols first, then those recognised by
# their messages' shape, then the generic encodings (each only when the first messages
# really parse): JSON before msgpack before CBOR before schema-less protobuf.
DECODERS: list[ModuleType] = [
    socketio,
    jupyter,
    graphql_transport_ws,
    graphql_ws_legacy,
    signalr,
    actioncable,
    phoenix,
    stomp,
    mqtt,
    json_,
    msgpack_,
    cbor_,
    protobuf_,
]


def load(module_path: str) -> ModuleType:
    """A user's own decoder, by module path (``--decoder mypkg.mydecoder``), put first."""
    try:
        module = importlib.import_module(module_path)
    except Exception as exc:  # an ImportError or the module's own bug: said plainly
        raise UserError(f"cannot load decoder {module_path!r}: {exc}") from None
    missing = [name for name in ("NAME", "sniff", "decode") if not hasattr(module, name)]
    if missing:
        raise UserError(
            f"{module_path!r} is not a decoder: it lacks {', '.join(missing)} "
            "(see 'Writing a decoder' in the README)"
        )
    if module not in DECODERS:
        DECODERS.insert(0, module)
        _by_handshake.clear()
        _patterns.clear()
    return module


def by_name(name: str) -> ModuleType | None:
    return next((d for d in DECODERS if name == d.NAME), None)


def choose(
    subprotocol: str | None, path: str | None, query: str | None, first: First = ()
) -> ModuleType | None:
    """The decoder a session speaks: by its subprotocol, else by sniffing."""
    if subprotocol:
        chosen = subprotocol.strip().lower()
        for decoder in DECODERS:
            if chosen in getattr(decoder, "SUBPROTOCOLS", ()):
                return decoder
    for decoder in DECODERS:
        try:
            if decoder.sniff(path or "", query or "", first):
                return decoder
        except Exception:  # a decoder's bug must not cost the reader the session
            continue
    return None


def judging(
    subprotocol: str | None, path: str | None, query: str | None, first_client: object = None
) -> ModuleType | None:
    """The decoder whose words may explain a session's end, chosen cheaply for the whole
    recording: by the handshake, else (given the session's first client message) only
    among protocols whose FIRST_MESSAGE pattern it matches. Generic readers (JSON,
    msgpack...) never judge."""
    key = (subprotocol, path, query)
    found = _by_handshake.get(key, _UNSEEN)
    if found is _UNSEEN:
        found = choose(subprotocol, path, query, ())
        if found is not None and getattr(found, "GENERIC", False):
            found = None
        if len(_by_handshake) < 10_000:
            _by_handshake[key] = found
    if found is not None or not isinstance(first_client, str):
        return found  # type: ignore[return-value]
    head = first_client[:1024]
    patterns = _first_messages()
    if not patterns or not _any_first.search(head):
        return None  # one test for all of them: most sessions speak none
    for decoder, pattern in patterns:
        if pattern.search(head) and choose(None, path, query, [("c2s", first_client)]) is decoder:
            return decoder
    return None


_UNSEEN = object()
_by_handshake: dict[tuple[str | None, str | None, str | None], object] = {}
_patterns: list[tuple[ModuleType, Any]] = []


def _first_messages() -> list[tuple[ModuleType, Any]]:
    """(decoder, FIRST_MESSAGE) of the decoders that have one, made once per registry."""
    global _any_first
    if not _patterns or _patterns[-1][0] is not DECODERS[-1]:
        _patterns[:] = [(d, d.FIRST_MESSAGE) for d in DECODERS if hasattr(d, "FIRST_MESSAGE")]
        _any_first = re.compile("|".join(f"(?:{p.pattern})" for _, p in _patterns) or "(?!)", re.S)
        _patterns.append((DECODERS[-1], None))  # the marker of which registry it was
    return _patterns[:-1]


_any_first: Any = None


def decode(decoder: ModuleType | None, payload: Payload | None, direction: str) -> Decoded | None:
    """One message as its protocol reads it; a decoder that raises is a malformed message."""
    if decoder is None or payload is None:
        return None
    try:
        return decoder.decode(payload, direction)
    except Exception as exc:
        return malformed(decoder.NAME, f"the decoder failed: {type(exc).__name__}: {exc}")


def decode_message(decoder: ModuleType | None, message: object) -> Decoded | None:
    """A whole data message as its protocol reads it; control frames (close, ping, pong)
    are the WebSocket's own, never the application's."""
    if getattr(message, "opcode", None) not in ("text", "binary"):
        return None
    return decode(decoder, message.payload, message.direction)  # type: ignore[attr-defined]


def decode_all(decoder: ModuleType | None, messages: Sequence[object]) -> list[Decoded | None]:
    """Each message as its protocol reads it, in order. For a protocol whose packets may
    span messages (``JOINS_MESSAGES``: MQTT from mqtt.js), each direction's messages are
    joined into a stream: a packet is read on the message that completes it, and the
    messages before are marked as its parts."""
    if decoder is None or not getattr(decoder, "JOINS_MESSAGES", False):
        return [decode_message(decoder, m) for m in messages]
    out: list[Decoded | None] = []
    rest: dict[str, bytes] = {}
    for m in messages:
        payload = getattr(m, "payload", None)
        if getattr(m, "opcode", None) != "binary" or not isinstance(payload, bytes | bytearray):
            out.append(decode_message(decoder, m))
            continue
        direction = m.direction  # type: ignore[attr-defined]
        try:
            packets, rest[direction] = decoder.split(rest.get(direction, b"") + bytes(payload))
        except Exception as exc:
            rest[direction] = b""
            out.append(malformed(decoder.NAME, f"the decoder failed: {exc}"))
            continue
        if packets:
            out.append(decode(decoder, b"".join(packets), direction))
        else:
            out.append(Decoded(decoder.NAME, "part", "part of a packet that the next message "
                               "completes", {"bytes": len(payload)}))  # fmt: skip
    return out


def close_ending(decoder: ModuleType | None, code: int | None, reason: str | None) -> Ending | None:
    """What a close code means in the session's protocol, if it says."""
    judge = getattr(decoder, "close_code", None)
    if judge is None or code is None:
        return None
    try:
        return judge(code, reason or "")
    except Exception:
        return None


def for_session(
    subprotocol: str | None, path: str | None, query: str | None, messages: Sequence[object]
) -> ModuleType | None:
    """The decoder of a recorded session, from its handshake and first data messages
    (read models with ``direction``, ``opcode`` and ``payload``)."""
    first: list[tuple[str, Payload]] = []
    for m in messages:
        if getattr(m, "opcode", None) in ("text", "binary"):
            first.append((m.direction, m.payload))  # type: ignore[attr-defined]
            if len(first) == 4:
                break
    return choose(subprotocol, path, query, first)
