"""What a session's frames say that its row does not: the evidence some verdicts rest on.

Read for the sessions that need it only (a few SQL aggregates over the frames
index), so that classifying 100,000 sessions stays quick:

- when the disconnect began (the first close frame), so that a session already
  open before it is never taken for the reconnect;
- whether the server's close reply reached a client that had already gone
  (a browser that navigated away does not wait for it);
- the server's last ping and the client's last frame: a ping left unanswered
  before the server dropped the connection means a frozen client, not a
  crashed server;
- application-level refusals inside the messages (a Socket.IO connect_error).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType

from sentinel_ws_proxy.decoders import Decoded, Ending, close_ending, decode_all, judging
from sentinel_ws_proxy.recording.reader import Recording, join_messages
from sentinel_ws_proxy.recording.schema import SessionRow

CHUNK = 500
# Messages read from each end of a session: its protocol shows in its first ones, how it
# ended in its last ones.
FIRST, LAST = 4, 24
# Protocols whose server pings want the client's answer (Engine.IO, graphql-ws); Action
# Cable's and STOMP's heartbeats want none.
REPLIED_PINGS = frozenset({"socket.io", "graphql-ws"})
DENSE = 0.3  # sessions needing facts per id in their range: above it, read the range


@dataclass(slots=True)
class SessionFacts:
    first_close_at: float | None = None
    first_close_by: str | None = None  # source of the first close frame
    reply_not_delivered: bool = False  # a close came back after the first one, too late
    last_server_ping: float | None = None
    last_client_frame: float | None = None
    protocol: str | None = None  # the application protocol its decoder recognised
    app_ending: Ending | None = None  # how that protocol explains the end, in its words
    app_ping_unanswered: float | None = None  # the protocol's own ping nobody answered


def needs_facts(s: SessionRow) -> bool:
    """Sessions whose verdict may depend on their frames."""
    return bool(s.accepted and s.ended_at is not None and s.closed_by in ("client", "server"))


def gather(recording: Recording, sessions: Iterable[SessionRow]) -> dict[int, SessionFacts]:
    ids = [s.id for s in sessions if s.id is not None and needs_facts(s)]
    found: dict[int, SessionFacts] = {}
    wanted = set(ids)
    first_texts: dict[int, int] = {}
    for where, params in _ranges(ids):
        for sid, first_close, ping, client, late, first, text in recording.close_facts(
            where, params
        ):
            if sid not in wanted:
                continue
            if text is not None:
                first_texts[sid] = text
            found[sid] = SessionFacts(
                first_close_at=_number(first_close),
                first_close_by=None if first is None else ("server" if first % 2 else "client"),
                reply_not_delivered=bool(late),
                last_server_ping=_number(ping),
                last_client_frame=_number(client),
            )
    _protocol_facts(recording, {s.id: s for s in sessions if s.id in wanted}, first_texts, found)
    return found


def _ranges(ids: list[int]) -> Iterator[tuple[str, list[int]]]:
    """WHERE clauses covering the sessions: one id range when they are most of it (a
    single pass over the index, 2-3 times faster), else lists of ids."""
    if not ids:
        return
    low, high = min(ids), max(ids)
    if len(ids) >= DENSE * (high - low + 1):
        yield "session_id BETWEEN ? AND ?", [low, high]
        return
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        yield f"session_id IN ({','.join('?' * len(chunk))})", chunk


def _protocol_facts(
    recording: Recording,
    sessions: dict[int, SessionRow],
    first_texts: dict[int, int],
    found: dict[int, SessionFacts],
) -> None:
    """What each session's application protocol said: its decoder, the last thing it
    said that ends or refuses a session (a Socket.IO DISCONNECT, a STOMP ERROR, a
    graphql-ws close code...), and its own heartbeat left unanswered.

    Only sessions whose handshake or first client message names a protocol that judges
    are read (a few regular expressions over those messages): a recording of plain JSON
    sockets pays next to nothing for it."""
    chosen: dict[int, ModuleType] = {}
    unresolved: list[int] = []
    for sid, s in sessions.items():
        decoder = judging(s.subprotocol, s.path, s.query)
        if decoder is not None:
            chosen[sid] = decoder
        elif sid in first_texts:
            unresolved.append(sid)
    if unresolved:
        texts = recording.payload_heads([first_texts[sid] for sid in unresolved])
        for sid in unresolved:
            s = sessions[sid]
            decoder = judging(s.subprotocol, s.path, s.query, texts.get(sid))
            if decoder is not None:
                chosen[sid] = decoder
    if not chosen:
        return
    # A protocol whose packets span messages is read whole, from the start, where its
    # stream is aligned; the others from their first and last frames.
    whole = {sid for sid, d in chosen.items() if getattr(d, "JOINS_MESSAGES", False)}
    frames: dict[int, list] = defaultdict(list)
    for f in recording.edge_frames([sid for sid in chosen if sid not in whole], FIRST, LAST):
        frames[f.session_id].append(f)
    for sid, decoder in chosen.items():
        s = sessions[sid]
        messages = recording.messages(sid) if sid in whole else join_messages(frames.get(sid, []))
        ending = close_ending(decoder, s.close_code, s.close_reason)
        facts = found.setdefault(sid, SessionFacts())
        facts.protocol = decoder.NAME
        ping: float | None = None
        heard: list[tuple[str, Decoded]] = []
        for m, said in zip(messages, decode_all(decoder, messages), strict=True):
            if said is None:
                continue
            heard.append((m.direction, said))
            # The app's refusal or close explains the end; an error only when nothing else
            # (the close code) does.
            ended = said.event in ("refused", "close") or (said.event == "error" and not ending)
            if said.ending is not None and ended:
                ending = said.ending
            if said.event == "ping" and m.direction == "s2c":
                ping = m.ts
            elif m.direction == "c2s" and ping is not None and m.ts >= ping:
                ping = None
        judge = getattr(decoder, "session_end", None)
        if ending is None and judge is not None:
            try:
                ending = judge(heard, s.closed_by, s.close_code, s.close_reason)
            except Exception:  # a decoder's bug must not cost the verdict
                ending = None
        facts.app_ending = ending
        if decoder.NAME in REPLIED_PINGS:
            facts.app_ping_unanswered = ping


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
