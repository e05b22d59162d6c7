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

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sentinel_ws_proxy.decoders import decode, socketio
from sentinel_ws_proxy.recording.reader import Recording
from sentinel_ws_proxy.recording.schema import SessionRow

CHUNK = 500
DENSE = 0.3  # sessions needing facts per id in their range: above it, read the range


@dataclass(slots=True)
class SessionFacts:
    first_close_at: float | None = None
    first_close_by: str | None = None  # source of the first close frame
    reply_not_delivered: bool = False  # a close came back after the first one, too late
    last_server_ping: float | None = None
    last_client_frame: float | None = None
    app_error: str | None = None  # an application-level refusal, in the app's words


def needs_facts(s: SessionRow) -> bool:
    """Sessions whose verdict may depend on their frames."""
    return bool(s.accepted and s.ended_at is not None and s.closed_by in ("client", "server"))


def gather(recording: Recording, sessions: Iterable[SessionRow]) -> dict[int, SessionFacts]:
    ids = [s.id for s in sessions if s.id is not None and needs_facts(s)]
    socketio = {s.id for s in sessions if s.id is not None and _socketio(s)}
    found: dict[int, SessionFacts] = {}
    wanted = set(ids)
    for where, params in _ranges(ids):
        for sid, first_close, ping, client, late, first in recording.close_facts(where, params):
            if sid not in wanted:
                continue
            found[sid] = SessionFacts(
                first_close_at=_number(first_close),
                first_close_by=None if first is None else ("server" if first % 2 else "client"),
                reply_not_delivered=bool(late),
                last_server_ping=_number(ping),
                last_client_frame=_number(client),
            )
    for sid in socketio:
        message = _socketio_error(recording, sid)
        if message is not None:
            found.setdefault(sid, SessionFacts()).app_error = message
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


def _socketio(s: SessionRow) -> bool:
    return "/socket.io" in (s.path or "")


def _socketio_error(recording: Recording, session_id: int) -> str | None:
    text = recording.first_server_text(session_id, ("44", "41"))
    found = decode(socketio, text, "s2c")
    return None if found is None or found.ending is None else found.ending.reason


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
