"""The project's vocabulary: what happened on a proxied connection.

The proxy produces these events, the recorder stores them, and every diagnostic
command consumes them, live or read back from a recording. They carry raw data
(unredacted headers, whole payloads); sinks decide what to keep.

They are NamedTuples rather than frozen dataclasses: just as immutable, and
five times cheaper to create (180 ns against 600 ns), which matters for the
one Frame made per relayed message.
"""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

Direction = Literal["c2s", "s2c"]
ClosedBy = Literal["client", "server", "proxy"]
Source = Literal["client", "server", "proxy"]
Headers = tuple[tuple[str, str], ...]


class SessionOpened(NamedTuple):
    """A WebSocket upgrade was answered, accepted (101) or not.

    A rejected or failed handshake is a session too: it is opened with the
    status the client got and closed at once.
    """

    session_id: int
    ts: float
    client_addr: str
    path: str
    query: str
    upstream_url: str
    request_headers: Headers
    handshake_status: int
    response_headers: Headers = ()
    handshake_body: bytes = b""
    subprotocol: str | None = None
    error: str | None = None
    response_line: str | None = None  # the status line the client received
    upstream_host: str | None = None  # the Host header the upstream got (see --host-header)


class Meaning:
    """What a field means as a column of the recording (the README's words), and the value
    it nearly always holds, if one: the schema is derived from the event (schema.py)."""

    __slots__ = ("text", "usual")
    NONE: object = object()

    def __init__(self, text: str, usual: object = NONE):
        self.text = text
        self.usual = usual


class Frame(NamedTuple):
    """One WebSocket frame as it crossed the wire (or as the proxy made it).

    Its fields are the recording's ``frames`` table, in order after ``id``: declared here
    once, with their meanings, and the schema's FrameRow derived from them, so the
    recorder stores a Frame as it is. The payload is already in its recorded form:
    unmasked, inflated for a compressed message, cut to the message's first
    ``--max-payload`` bytes, and text (``str``) for a text frame whose bytes are valid
    UTF-8 on their own. Build one by keyword (or with whole_frame).
    """

    session_id: Annotated[int, Meaning("the session")]
    ts: Annotated[float, Meaning("when the frame's first byte reached the proxy")]
    direction: Annotated[Direction, Meaning("`c2s` (client to server) or `s2c`")]
    source: Annotated[
        Source,
        Meaning(
            "`client`, `server`, or `proxy` for frames the proxy made (shutdown, faults, limits)"
        ),
    ]
    message: Annotated[
        int | None, Meaning("the message this frame belongs to, numbered per session and direction")
    ]
    opcode: Annotated[
        str, Meaning("`text`, `binary`, `continuation`, `ping`, `pong`, `close` or `reserved-N`")
    ]
    fin: Annotated[int, Meaning("1 on the last frame of a message")]
    rsv: Annotated[int, Meaning("the RSV1-3 bits as a number (4 = RSV1)")]
    masked: Annotated[int, Meaning("1 when the frame was masked")]
    compressed: Annotated[
        int, Meaning("1 when its message is compressed (permessage-deflate); `payload` is inflated")
    ]
    size: Annotated[int, Meaning("payload bytes, after inflating")]
    wire_size: Annotated[int, Meaning("payload bytes on the wire")]
    payload: Annotated[
        str | bytes,
        Meaning(
            "the unmasked payload (TEXT for text, BLOB otherwise), each message's first"
            " `--max-payload` bytes"
        ),
    ]
    truncated: Annotated[int, Meaning("1 when `payload` was cut")]
    # From here on usually at their usual value: the writer leaves them out of the INSERT
    # then (binding six NULLs costs more than the rest of the row).
    forwarded: Annotated[
        int,
        Meaning(
            "0 when the proxy received it and did not pass it on (a fault, the other side gone)",
            usual=1,
        ),
    ] = 1
    close_code: Annotated[int | None, Meaning("a close frame's code", usual=None)] = None
    close_reason: Annotated[str | None, Meaning("a close frame's reason", usual=None)] = None
    violation: Annotated[
        str | None,
        Meaning(
            "what breaks RFC 6455 in this frame, in words; the frame was forwarded all the same",
            usual=None,
        ),
    ] = None
    # A fault that dropped, delayed or held back this frame, and what it did.
    fault_id: Annotated[int | None, Meaning("the fault that acted on the frame", usual=None)] = None
    fault_action: Annotated[
        str | None,
        Meaning(
            "`drop`, `delay` or `stall` (recordings before 0.3: `dropped`, `delayed`, "
            "`stalled`; readers show either under the new name)",
            usual=None,
        ),
    ] = None


def stored_payload(data: bytes, limit: int, *, text: bool) -> tuple[str | bytes, int]:
    """(value to store, truncated flag): text as str when it decodes, the rest as bytes."""
    truncated = len(data) > limit
    kept = data[:limit] if truncated else data
    if text:
        try:
            # A cut may split a multi-byte character; drop the partial tail only.
            return kept.decode("utf-8", errors="ignore" if truncated else "strict"), truncated
        except UnicodeDecodeError:
            return kept, truncated
    return kept, truncated


def whole_frame(
    session_id: int,
    ts: float,
    direction: Direction,
    opcode: str,
    payload: bytes,
    *,
    source: Source | None = None,
    message: int | None = None,
    max_payload: int = 1 << 62,
    close_code: int | None = None,
    close_reason: str | None = None,
    forwarded: int = 1,
) -> Frame:
    """A one-frame message (the usual case), for code that builds frames by hand."""
    kept, truncated = stored_payload(payload, max_payload, text=opcode == "text")
    return Frame(
        session_id=session_id,
        ts=ts,
        direction=direction,
        source=source or ("client" if direction == "c2s" else "server"),
        message=message,
        opcode=opcode,
        fin=1,
        rsv=0,
        masked=int(direction == "c2s"),
        compressed=0,
        size=len(payload),
        wire_size=len(payload),
        payload=kept,
        truncated=int(truncated),
        forwarded=forwarded,
        close_code=close_code,
        close_reason=close_reason,
    )


class SessionClosed(NamedTuple):
    """The end of a session: who ended it, how, and what passed through it."""

    session_id: int
    ts: float
    close_code: int | None
    close_reason: str | None
    closed_by: ClosedBy | None
    clean: bool
    frames_c2s: int = 0
    frames_s2c: int = 0
    bytes_c2s: int = 0
    bytes_s2c: int = 0
    last_frame_at: float | None = None  # the last frame other than a close
    fault_id: int | None = None  # the fault that refused or ended the session


class HttpRequest(NamedTuple):
    """A plain HTTP request passed through to the upstream."""

    ts: float
    client_addr: str
    method: str
    path: str
    query: str
    status: int | None
    duration_ms: float
    error: str | None = None
    body: bytes = b""  # the first bytes of an error response (status 400 and up)
    user_agent: str | None = None
    navigate: bool = False  # a browser's page load (Sec-Fetch-Mode: navigate, Dest: document)


class FaultAdded(NamedTuple):
    fault_id: int
    ts: float
    spec: str


class FaultRemoved(NamedTuple):
    fault_id: int
    ts: float


class FaultFired(NamedTuple):
    """A fault acted: on a handshake, a connection or a frame."""

    fault_id: int
    session_id: int | None
    ts: float
    action: str  # reject, close, abort, stall, drop, delay
    detail: str = ""


Event = SessionOpened | Frame | SessionClosed | HttpRequest | FaultAdded | FaultRemoved | FaultFired
