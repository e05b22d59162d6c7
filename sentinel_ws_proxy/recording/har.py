"""HAR in and out, as Chrome DevTools writes WebSocket entries, and a JSONL export.

A WebSocket is an ordinary HAR entry (the GET of the ws:// URL, status 101)
with ``"_resourceType": "websocket"`` and ``"_webSocketMessages"``: each has
``type`` (send/receive), ``time`` (epoch seconds; Playwright writes
milliseconds), ``opcode`` (1 text, 2 binary; we also write 8 close, 9 ping,
10 pong) and ``data`` (text for opcode 1, base64 otherwise). What HAR has no
field for (who closed, clean or not) travels in ``_sentinel``, so a recording
exported and imported again keeps everything.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sentinel_ws_proxy import __version__
from sentinel_ws_proxy.events import (
    Direction,
    Event,
    Frame,
    SessionClosed,
    SessionOpened,
    whole_frame,
)
from sentinel_ws_proxy.protocol import status_phrase
from sentinel_ws_proxy.recording.jsonrows import row_from_json, row_to_json
from sentinel_ws_proxy.recording.reader import Message, Recording, join_messages, payload_bytes
from sentinel_ws_proxy.recording.redact import Redactor
from sentinel_ws_proxy.recording.schema import (
    ROW_TYPE,
    SCHEMA_VERSION,
    FrameRow,
    RecordingError,
    SessionRow,
)
from sentinel_ws_proxy.recording.transfer import Tables, append_tables, export_tables
from sentinel_ws_proxy.recording.writer import RecordingWriter
from sentinel_ws_proxy.timefmt import iso

OPCODE_NUMBERS = {"text": 1, "binary": 2, "close": 8, "ping": 9, "pong": 10}
OPCODE_NAMES = {n: name for name, n in OPCODE_NUMBERS.items()}
MILLISECONDS_ABOVE = 1e11  # an epoch time this large is in milliseconds


class HarError(RecordingError):
    """A file that is not a HAR we can read; the message says what is wrong."""


def _iso(ts: float) -> str:
    # HAR's own form: UTC, milliseconds, a Z.
    return iso(ts, utc=True)[:23] + "Z"


def _har_headers(headers_json: str | None) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in json.loads(headers_json or "{}").items()]


def _content(body: bytes, mime: str) -> dict[str, Any]:
    content: dict[str, Any] = {"size": len(body), "mimeType": mime}
    if body:
        try:
            content["text"] = body.decode("utf-8")
        except UnicodeDecodeError:
            content["text"] = base64.b64encode(body).decode("ascii")
            content["encoding"] = "base64"
    return content


def _opcode_number(opcode: str) -> int:
    if opcode.startswith("reserved-"):
        return int(opcode.removeprefix("reserved-"))
    return OPCODE_NUMBERS.get(opcode, 0)


def _message(message: Message) -> dict[str, Any]:
    """A DevTools message; its wire frames ride along in `_sentinel` for the way back."""
    opcode = _opcode_number(message.opcode)
    payload = message.payload
    text = opcode == 1 and isinstance(payload, str)
    data = payload if text else base64.b64encode(payload_bytes(payload)).decode("ascii")
    frames = []
    for f in message.frames:
        row = row_to_json(f)
        # A lone frame's payload is the message's data; keep it only where that would not say.
        if len(message.frames) == 1 and isinstance(f.payload, str) == text:
            del row["payload"]
        frames.append(row)
    return {
        "type": "send" if message.direction == "c2s" else "receive",
        "time": message.ts,
        "opcode": opcode,
        "data": data,
        "_sentinel": {"frames": frames},
    }


def har_entry(row: SessionRow, messages: list[Message]) -> dict[str, Any]:
    request_headers = json.loads(row.request_headers or "{}")
    response_headers = json.loads(row.response_headers or "{}")
    host = request_headers.get("host") or urlsplit(row.upstream_url or "").netloc
    query = f"?{row.query}" if row.query else ""
    status = row.handshake_status if isinstance(row.handshake_status, int) else 0
    status_text = status_phrase(status)
    body = payload_bytes(row.handshake_body)
    started = row.started_at if isinstance(row.started_at, int | float) else 0.0
    return {
        "startedDateTime": _iso(started),
        "time": 0 if row.duration is None else round(row.duration * 1000, 3),
        "request": {
            "method": "GET",
            "url": f"ws://{host}{row.path}{query}",
            "httpVersion": "HTTP/1.1",
            "headers": _har_headers(row.request_headers),
            "queryString": [{"name": k, "value": v} for k, v in parse_qsl(row.query or "", True)],
            "cookies": [],
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": {
            "status": status,
            "statusText": status_text,
            "httpVersion": "HTTP/1.1",
            "headers": _har_headers(row.response_headers),
            "cookies": [],
            "content": _content(body, response_headers.get("content-type", "")),
            "redirectURL": response_headers.get("location", ""),
            "headersSize": -1,
            "bodySize": len(body),
        },
        "cache": {},
        "timings": {"send": 0, "wait": 0, "receive": 0},
        "_resourceType": "websocket",
        "_webSocketMessages": [_message(m) for m in messages],
        # Everything HAR has no field for, exactly as recorded: the way back is exact.
        "_sentinel": {"session": row_to_json(row)},
    }


def export_har(recording: Recording, session_ids: Sequence[int] | None) -> dict[str, Any]:
    """The sessions as a HAR log; the rows they refer to travel in `log._sentinel`."""
    tables = export_tables(recording, session_ids)
    frames: dict[int, list[FrameRow]] = {}
    for f in tables.rows["frames"]:
        frames.setdefault(f.session_id, []).append(f)
    entries = [har_entry(s, join_messages(frames.get(s.id, []))) for s in tables.rows["sessions"]]
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "sentinel-ws", "version": __version__},
            "pages": [],
            "entries": entries,
            "_sentinel": {
                "schema_version": SCHEMA_VERSION,
                **{
                    table: [row_to_json(r) for r in tables.rows[table]]
                    for table in ("runs", "faults", "fault_events", "http_requests")
                },
            },
        }
    }


# -- import ------------------------------------------------------------------


def _parse_started(text: Any) -> float:
    if not isinstance(text, str):
        raise ValueError("missing startedDateTime")
    iso = text[:-1] + "+00:00" if text.endswith("Z") else text
    return datetime.fromisoformat(iso).timestamp()


def _seconds(value: Any) -> float:
    t = float(value)
    return t / 1000 if t > MILLISECONDS_ABOVE else t


def _payload(opcode: int, data: Any) -> bytes:
    text = "" if data is None else str(data)
    if opcode == 1:
        return text.encode("utf-8")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text.encode("utf-8")


def _is_websocket(entry: dict[str, Any]) -> bool:
    url = str(entry.get("request", {}).get("url", ""))
    return (
        entry.get("_resourceType") == "websocket"
        or "_webSocketMessages" in entry
        or url.startswith(("ws://", "wss://"))
    )


def har_events(entry: dict[str, Any], session_id: int) -> list[Event]:
    """The events of one HAR WebSocket entry; raises ValueError/KeyError/TypeError if malformed."""
    request, response = entry["request"], entry.get("response") or {}
    started = _parse_started(entry.get("startedDateTime"))
    url = urlsplit(request["url"])
    status = int(response.get("status") or 0)
    content = response.get("content") or {}
    body = content.get("text") or ""
    body_bytes = (
        base64.b64decode(body) if content.get("encoding") == "base64" else body.encode("utf-8")
    )
    events: list[Event] = [
        SessionOpened(
            session_id=session_id,
            ts=started,
            client_addr="",
            path=url.path or "/",
            query=url.query,
            upstream_url=request["url"],
            request_headers=tuple((h["name"], h["value"]) for h in request.get("headers", [])),
            handshake_status=status,
            response_headers=tuple((h["name"], h["value"]) for h in response.get("headers", [])),
            handshake_body=body_bytes,
            error=(
                "handshake failed; a browser HAR does not say with which status"
                if status in (-1, 0)
                else None
            ),
        )
    ]
    frames: list[Frame] = []
    for message in entry.get("_webSocketMessages") or []:
        kind, opcode = message.get("type"), message.get("opcode")
        if kind not in ("send", "receive") or opcode not in OPCODE_NAMES:
            continue  # Chrome's "error" pseudo-messages carry no frame
        if message.get("time") is None or message.get("data") is None:
            continue  # DevTools skips these too
        payload = _payload(opcode, message["data"])
        code = reason = None
        if opcode == 8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            reason = payload[2:].decode("utf-8", "replace")
        direction: Direction = "c2s" if kind == "send" else "s2c"
        frames.append(
            whole_frame(
                session_id,
                _seconds(message["time"]),
                direction,
                OPCODE_NAMES[opcode],
                payload,
                message=len(frames) + 1,
                close_code=code,
                close_reason=reason,
            )
        )
    events.extend(frames)
    events.append(_closed(session_id, started, frames, status))
    return events


def _closed(session_id: int, started: float, frames: list[Frame], status: int) -> SessionClosed:
    count = {"c2s": 0, "s2c": 0}
    size = {"c2s": 0, "s2c": 0}
    for f in frames:
        count[f.direction] += 1
        size[f.direction] += f.size
    data_times = [f.ts for f in frames if f.opcode != "close"]
    closes = [f for f in frames if f.opcode == "close"]
    if closes:
        first = closes[0]
        code, reason = first.close_code, first.close_reason
        by = "client" if first.direction == "c2s" else "server"
        clean = {f.direction for f in closes} == {"c2s", "s2c"}
        ended = closes[-1].ts
    else:
        # A browser capture says nothing about how the socket ended.
        code = reason = by = None
        clean = False
        ended = frames[-1].ts if frames else started
        if status in (-1, 0):
            by = "client"  # the browser gave up and says no more (Chromium, Playwright: -1)
        elif status != 101:
            by = "server"
    return SessionClosed(
        session_id,
        ended,
        code,
        reason,
        by,  # type: ignore[arg-type]
        clean,
        count["c2s"],
        count["s2c"],
        size["c2s"],
        size["s2c"],
        max(data_times) if data_times else None,
    )


def _sentinel_rows(entry: dict[str, Any], into: Tables) -> None:
    """An entry we exported: its session and wire frames exactly as they were recorded."""
    session = row_from_json(SessionRow, entry["_sentinel"]["session"])
    into.rows["sessions"].append(session)
    for message in entry.get("_webSocketMessages") or []:
        frames = message["_sentinel"]["frames"]
        for data in frames:
            if "payload" not in data:
                data = {**data, "payload": _message_payload(message)}
            into.rows["frames"].append(row_from_json(FrameRow, data))


def _message_payload(message: dict[str, Any]) -> str | bytes:
    data = message["data"]
    return data if message["opcode"] == 1 else base64.b64decode(data)


def read_har(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The HAR's log and its WebSocket entries."""
    try:
        har = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise HarError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HarError(f"{path} is not a HAR file: {exc}") from None
    log = har.get("log") if isinstance(har, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise HarError(f"{path} is not a HAR file: no log.entries list")
    sockets = [e for e in entries if isinstance(e, dict) and _is_websocket(e)]
    if not sockets:
        raise HarError(
            f"{path} holds {len(entries)} requests but no WebSocket: in Chrome DevTools, "
            "open the Network panel before the page opens its socket, keep it open while "
            "it runs, then right-click a request and choose 'Save all as HAR with content'"
        )
    return log, sockets  # type: ignore[return-value]


@dataclass
class Imported:
    sessions: int = 0
    frames: int = 0
    runs: list[int] = field(default_factory=list)


def import_har(path: Path, db: Path, *, redactor: Redactor, max_payload: int) -> Imported:
    """Append a HAR file's WebSocket entries to a recording.

    Entries we exported come back exactly, with the runs, faults and HTTP
    requests that travelled along; a browser's entries are recorded as a new
    run, redacted as the proxy would.
    """
    log, entries = read_har(path)
    ours, theirs = Tables(), []
    for index, entry in enumerate(entries):
        try:
            if isinstance(entry.get("_sentinel"), dict) and "session" in entry["_sentinel"]:
                _sentinel_rows(entry, ours)
            else:
                theirs.append(entry)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise HarError(
                f"{path}: entry {index + 1} is not a usable WebSocket entry ({exc})"
            ) from None
    extra = log.get("_sentinel") or {}
    try:
        for table in ("runs", "faults", "fault_events", "http_requests"):
            ours.rows[table] = [row_from_json(ROW_TYPE[table], r) for r in extra.get(table, [])]
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise HarError(f"{path}: log._sentinel is not usable ({exc})") from None
    done = Imported()
    if ours.count("sessions"):
        offsets = append_tables(db, ours)
        done.sessions += ours.count("sessions")
        done.frames += ours.count("frames")
        done.runs += [r.id + offsets["runs"] for r in ours.rows["runs"]]
    if theirs:
        run_id, sessions, frames = _import_browser_entries(path, db, theirs, redactor, max_payload)
        done.sessions += sessions
        done.frames += frames
        done.runs.append(run_id)
    return done


def _import_browser_entries(
    path: Path, db: Path, entries: list[dict[str, Any]], redactor: Redactor, max_payload: int
) -> tuple[int, int, int]:
    writer = RecordingWriter(
        db, redactor=redactor, max_payload=max_payload, listen="import", upstream=f"har:{path.name}"
    )
    # Parse everything first: a malformed entry must not leave half an import behind.
    batches: list[list[Event]] = []
    next_id = _next_session_id(db)
    for index, entry in enumerate(entries):
        try:
            batches.append(har_events(entry, next_id + index))
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise HarError(
                f"{path}: entry {index + 1} is not a usable WebSocket entry ({exc})"
            ) from None
    writer.open()
    if writer.first_session_id != next_id:
        writer.close()
        raise HarError(f"{db} changed while importing; try again")
    frames = 0
    for events in batches:
        for event in events:
            writer.handle(event)
            frames += isinstance(event, Frame)
    writer.close()
    return writer.run_id, len(batches), frames


def _next_session_id(db: Path) -> int:
    if not db.exists():
        return 1
    with Recording(db) as recording:
        row = recording.conn.execute("SELECT coalesce(max(id), 0) + 1 FROM sessions").fetchone()
        return int(row[0])
