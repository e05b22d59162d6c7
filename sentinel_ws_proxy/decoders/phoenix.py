"""Phoenix Channels over WebSocket (Elixir's Phoenix, LiveView; the ``phoenix`` JS client).

Serializer 2.0.0 (``vsn=2.0.0``) sends JSON arrays ``[join_ref, ref, topic, event,
payload]`` and, for binary payloads, binary messages (a kind byte: 0 push, 1 reply,
2 broadcast; then field sizes, the fields and the payload); serializer 1.0.0 sends
objects ``{topic, event, payload, ref}``. The socket is at ``.../websocket``.

==========================  =========  =====================================================
message                     event      ending
==========================  =========  =====================================================
phx_join                    subscribe
phx_reply to a join, ok     ack        (the reply whose ref is its join_ref)
phx_reply to a join, error  refused    rejected, quoting ``payload.response.reason``
                                       ("unmatched topic": protocol_error, "join crashed":
                                       server_error)
phx_reply to a push         message    (``error`` when its status is error)
heartbeat on "phoenix"      ping       (the client asks; one a 30 s by default)
its phx_reply               pong
phx_error                   error      server_error: the channel <topic> crashed on the
                                       server (the client rejoins: reconnect True)
phx_close                   close      app_error: the server closed channel <topic> (it
                                       also follows the client's own phx_leave)
phx_leave                   close      client_done
other events                message
==========================  =========  =====================================================

Redacts: the values of a phx_join's payload keys named like credentials (token,
password, secret, authorization...): LiveView's ``session`` token, a channel's params.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sentinel_ws_proxy.decoders import _util
from sentinel_ws_proxy.decoders.base import Decoded, Ending, malformed

NAME = "phoenix"
SUBPROTOCOLS: tuple[str, ...] = ()
# What the client's first message looks like: a join (or the heartbeat) (cheap to test).
FIRST_MESSAGE = re.compile(r'"(phx_join|heartbeat)"')
KINDS = {0: "push", 1: "reply", 2: "broadcast"}


def sniff(path: str, query: str, first: Sequence[tuple[str, Any]]) -> bool:
    if (path or "").rstrip("/").endswith("/websocket") and "vsn=" in (query or ""):
        return True
    for _, payload in _util.firsts(first):
        found = _message(payload) if isinstance(payload, str) else None
        if found is not None and (found["event"].startswith("phx_") or found["topic"] == "phoenix"):
            return True
    return False


def _message(text: str) -> dict[str, Any] | None:
    """A text message as {join_ref, ref, topic, event, payload}, or None."""
    value = _util.load(text)
    if isinstance(value, list) and len(value) == 5:
        join_ref, ref, topic, event, payload = value
        if isinstance(topic, str) and isinstance(event, str):
            return {"join_ref": join_ref, "ref": ref, "topic": topic, "event": event,
                    "payload": payload, "vsn": "2.0.0"}  # fmt: skip
        return None
    if isinstance(value, dict) and isinstance(value.get("topic"), str) and isinstance(
        value.get("event"), str
    ) and "payload" in value:  # fmt: skip
        return {"join_ref": value.get("join_ref"), "ref": value.get("ref"),
                "topic": value["topic"], "event": value["event"],
                "payload": value["payload"], "vsn": "1.0.0"}  # fmt: skip
    return None


def decode(payload: str | bytes, direction: str) -> Decoded | None:
    if isinstance(payload, (bytes, bytearray)):
        message = _binary(bytes(payload), direction)
        if message is None:
            return malformed(NAME, "a binary message that is not a Phoenix push/reply/broadcast")
    elif isinstance(payload, str):
        message = _message(payload)
        if message is None:
            return malformed(NAME, "not [join_ref, ref, topic, event, payload] JSON")
    else:
        return None
    return _decoded(message, direction, isinstance(payload, (bytes, bytearray)))


def _binary(raw: bytes, direction: str) -> dict[str, Any] | None:
    if len(raw) < 5 or raw[0] not in KINDS:
        return None
    kind = KINDS[raw[0]]
    if kind == "push":
        # The client's pushes carry join_ref, ref, topic, event sizes; the server's no ref.
        sizes = list(raw[1:5]) if direction == "c2s" else [raw[1], 0, raw[2], raw[3]]
        pos = 5 if direction == "c2s" else 4
    elif kind == "reply":
        sizes, pos = list(raw[1:5]), 5
    else:
        sizes, pos = [0, 0, raw[1], raw[2]], 3
    if len(sizes) < 4 or pos > len(raw) or pos + sum(sizes) > len(raw):
        return None
    parts = []
    for size in sizes:
        parts.append(raw[pos : pos + size].decode("utf-8", "replace"))
        pos += size
    join_ref, ref, topic, event = parts
    data = raw[pos:]
    shown = {"$bytes": len(data)}
    if kind == "reply":
        return {"join_ref": join_ref, "ref": ref, "topic": topic, "event": "phx_reply",
                "payload": {"status": event, "response": shown}, "vsn": "2.0.0"}  # fmt: skip
    return {"join_ref": join_ref or None, "ref": ref or None, "topic": topic, "event": event,
            "payload": shown, "vsn": "2.0.0"}  # fmt: skip


def _decoded(m: dict[str, Any], direction: str, binary: bool) -> Decoded:
    topic, event, payload = m["topic"], m["event"], m["payload"]
    join_ref, ref = m["join_ref"], m["ref"]
    fields: dict[str, Any] = {"topic": topic, "phx_event": event, "ref": _util.plain(ref),
                              "join_ref": _util.plain(join_ref)}  # fmt: skip
    text = _util.dumps(m) if binary else None
    where = _util.short(topic, 80)

    def done(kind_event: str | None, summary: str, ending: Ending | None = None) -> Decoded:
        return Decoded(NAME, event, _util.short(summary), fields, text, kind_event,  # type: ignore[arg-type]
                       ending)  # fmt: skip

    if topic == "phoenix" and event == "heartbeat":
        fields.update(_util.pinged(direction))
        return done("ping", "heartbeat")
    if event == "phx_reply":
        status = payload.get("status") if isinstance(payload, dict) else None
        response = payload.get("response") if isinstance(payload, dict) else None
        fields["status"] = _util.plain(status)
        if topic == "phoenix":
            fields.update(_util.pinged(direction))
            return done("pong", f"heartbeat reply {_util.shown(status, 20)}")
        to_join = join_ref is not None and ref is not None and str(join_ref) == str(ref)
        unknown = join_ref is None  # serializer 1.0.0: which push it answers is unknown
        if status == "ok":
            if to_join or unknown:
                return done("ack", f"joined {where}" if to_join else f"reply ok on {where}")
            return done("message", f"reply ok on {where}: {_util.shown(response)}")
        reason = response.get("reason") if isinstance(response, dict) else None
        said = _util.words(reason if reason is not None else response)
        fields["response"] = _util.plain(response)
        if to_join or (unknown and reason is not None):
            if reason == "unmatched topic":
                category = "protocol_error"
                why = f" (no channel on the socket matches {topic})"
            elif reason == "join crashed":
                category, why = "server_error", " (the channel's join callback crashed)"
            else:
                category, why = "rejected", ""
            ending = Ending(category, f"Phoenix refused to join {topic}: {said}{why}",  # type: ignore[arg-type]
                            reconnect=None)  # fmt: skip
            return done("refused", f"join {where} refused: {said}", ending)
        return done("error", f"reply {_util.shown(status, 20)} on {where}: {said}")
    if event == "phx_join":
        keys = sorted(str(k) for k in payload) if isinstance(payload, dict) else []
        if keys:
            fields["payload_keys"] = keys
        said = f" with {', '.join(keys)}" if keys else ""
        return done("subscribe", f"join {where}{said}")
    if event == "phx_leave":
        return done(
            "close",
            f"leave {where}",
            Ending("client_done", f"the client left the Phoenix channel {topic}"),
        )
    if event == "phx_error":
        ending = Ending("server_error", f"the channel {topic} crashed on the server",
                        reconnect=True)  # fmt: skip
        return done("error", f"channel {where} crashed (phx_error)", ending)
    if event == "phx_close":
        ending = Ending("app_error", f"the server closed channel {topic}", reconnect=False)
        return done("close", f"channel {where} closed (phx_close)", ending)
    return done("message", f"{_util.short(event, 60)} on {where}: {_util.shown(payload)}")


def redact(payload: str | bytes, direction: str) -> tuple[str | bytes, int] | None:
    if not _util.may_redact(payload, direction, "phx_join"):
        return None
    value = _util.load(payload)
    if isinstance(value, list) and len(value) == 5 and value[3] == "phx_join":
        value[4], count = _util.redact_secrets(value[4])
    elif isinstance(value, dict) and value.get("event") == "phx_join":
        value["payload"], count = _util.redact_secrets(value.get("payload"))
    else:
        return None
    return (_util.dumps(value), count) if count else None
