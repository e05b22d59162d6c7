"""A recorded session in the shape replay needs: the handshake, then frames with offsets."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sentinel_ws_proxy.protocol import payload_bytes
from sentinel_ws_proxy.recording.reader import Recording
from sentinel_ws_proxy.recording.schema import RecordingError

DATA_OPCODES = ("text", "binary", "ping", "pong")


@dataclass(frozen=True)
class RecordedFrame:
    offset: float  # seconds since the session's upgrade request
    direction: str
    opcode: str
    payload: bytes
    close_code: int | None = None
    close_reason: str | None = None
    truncated: bool = False

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class RecordedSession:
    id: int
    path: str
    query: str
    handshake_status: int
    request_headers: dict[str, str]
    response_headers: dict[str, str]
    handshake_body: bytes
    subprotocol: str | None
    upstream_url: str
    close_code: int | None
    close_reason: str | None
    closed_by: str | None
    clean: bool
    duration: float | None
    frames: tuple[RecordedFrame, ...]

    def sent_by(self, direction: str) -> list[RecordedFrame]:
        return [f for f in self.frames if f.direction == direction and f.opcode in DATA_OPCODES]

    @property
    def server_close(self) -> RecordedFrame | None:
        return next((f for f in self.frames if f.opcode == "close" and f.direction == "s2c"), None)

    @property
    def truncated(self) -> int:
        return sum(f.truncated for f in self.frames)


def load_session(recording: Recording, session_id: int) -> RecordedSession:
    row = recording.session_row(session_id)
    started = row.started_at or 0.0
    frames = tuple(
        RecordedFrame(
            offset=max(0.0, m.ts - started),
            direction=m.direction,
            opcode=m.opcode,
            payload=m.payload_bytes,
            close_code=m.close_code,
            close_reason=m.close_reason,
            truncated=m.truncated,
        )
        # What the proxy made itself (shutdown closes, faults) was not the app's doing.
        for m in recording.messages(session_id)
        if m.source != "proxy"
    )
    return RecordedSession(
        id=row.id or 0,
        path=row.path or "/",
        query=row.query or "",
        handshake_status=row.handshake_status or 0,
        request_headers=json.loads(row.request_headers or "{}"),
        response_headers=json.loads(row.response_headers or "{}"),
        handshake_body=payload_bytes(row.handshake_body),
        subprotocol=row.subprotocol,
        upstream_url=row.upstream_url or "",
        close_code=row.close_code,
        close_reason=row.close_reason,
        closed_by=row.closed_by,
        clean=bool(row.clean),
        duration=row.duration,
        frames=frames,
    )


def choose_sessions(
    recording: Recording, session_ids: Sequence[int], run_id: int | None
) -> list[RecordedSession]:
    """The sessions named, or a run's, or (by default) the latest run's, in recorded order."""
    if session_ids and run_id is not None:
        raise RecordingError("give sessions or a run, not both")
    if not session_ids:
        if run_id is None:
            run_id = recording.latest_run_id()
            if run_id is None:
                raise RecordingError(f"{recording.path} holds no sessions")
        session_ids = recording.session_ids_of_run(run_id)
        if not session_ids:
            raise RecordingError(f"run {run_id} has no sessions in {recording.path}")
    return [load_session(recording, sid) for sid in session_ids]
