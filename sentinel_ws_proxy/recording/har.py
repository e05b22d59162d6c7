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
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sentinel_ws_proxy import __version__
from sentinel_ws_proxy.events import Event, Frame, SessionClosed, SessionOpened
from sentinel_ws_proxy.recording.reader import Recording
from sentinel_ws_proxy.recording.redact import Redactor
from sentinel_ws_proxy.recording.schema import RecordingError
from sentinel_ws_proxy.recording.writer import RecordingWriter

OPCODE_NUMBERS = {"text": 1, "binary": 2, "close": 8, "ping": 9, "pong": 10}
OPCODE_NAMES = {n: name for name, n in OPCODE_NUMBERS.items()}
MILLISECONDS_ABOVE = 1e11  # an epoch time this large is in milliseconds


class HarError(RecordingError):
    """A file that is not a HAR we can read; the message says what is wrong."""


def _iso(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _raw(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


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


def _message(frame: dict[str, Any]) -> dict[str, Any]:
    payload = _raw(frame["payload"])
    opcode = OPCODE_NUMBERS[frame["opcode"]]
    if opcode == 1 and isinstance(frame["payload"], str):
        data = frame["payload"]
    else:
        data = base64.b64encode(payload).decode("ascii")
    return {
        "type": "send" if frame["direction"] == "c2s" else "receive",
        "time": frame["ts"],
        "opcode": opcode,
        "data": data,
    }


def har_entry(row: dict[str, Any], frames: list[dict[str, Any]]) -> dict[str, Any]:
    request_headers = json.loads(row["request_headers"] or "{}")
    response_headers = json.loads(row["response_headers"] or "{}")
    host = request_headers.get("host") or urlsplit(row["upstream_url"] or "").netloc
    query = f"?{row['query']}" if row["query"] else ""
    status = row["handshake_status"]
    try:
        status_text = HTTPStatus(status).phrase
    except ValueError:
        status_text = ""
    body = _raw(row["handshake_body"])
    ended = row["ended_at"]
    return {
        "startedDateTime": _iso(row["started_at"]),
        "time": 0 if ended is None else round((ended - row["started_at"]) * 1000, 3),
        "request": {
            "method": "GET",
            "url": f"ws://{host}{row['path']}{query}",
            "httpVersion": "HTTP/1.1",
            "headers": _har_headers(row["request_headers"]),
            "queryString": [
                {"name": k, "value": v} for k, v in parse_qsl(row["query"] or "", True)
            ],
            "cookies": [],
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": {
            "status": status,
            "statusText": status_text,
            "httpVersion": "HTTP/1.1",
            "headers": _har_headers(row["response_headers"]),
            "cookies": [],
            "content": _content(body, response_headers.get("content-type", "")),
            "redirectURL": response_headers.get("location", ""),
            "headersSize": -1,
            "bodySize": len(body),
        },
        "cache": {},
        "timings": {"send": 0, "wait": 0, "receive": 0},
        "_resourceType": "websocket",
        "_webSocketMessages": [_message(f) for f in frames],
        "_sentinel": {
            "session_id": row["id"],
            "started_at": row["started_at"],  # startedDateTime keeps only milliseconds
            "client_addr": row["client_addr"],
            "upstream_url": row["upstream_url"],
            "subprotocol": row["subprotocol"],
            "error": row["error"],
            "ended_at": ended,
            "close_code": row["close_code"],
            "close_reason": row["close_reason"],
            "closed_by": row["closed_by"],
            "clean": bool(row["clean"]),
            "truncated_messages": [i for i, f in enumerate(frames) if f["truncated"]],
        },
    }


def export_har(recording: Recording, session_ids: Iterable[int]) -> dict[str, Any]:
    entries = [
        har_entry(recording.session_row(sid), recording.frame_rows(sid)) for sid in session_ids
    ]
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "sentinel-ws", "version": __version__},
            "pages": [],
            "entries": entries,
        }
    }


def export_jsonl(recording: Recording, session_ids: Iterable[int]) -> Iterator[str]:
    """One JSON object per line: each session's row, then its frames, in recorded order."""
    for sid in session_ids:
        row = recording.session_row(sid)
        yield json.dumps({"event": "session", **_plain(row)}, ensure_ascii=False)
        for frame in recording.frame_rows(sid):
            yield json.dumps({"event": "frame", **_plain(frame)}, ensure_ascii=False)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, bytes):
            out[key] = base64.b64encode(value).decode("ascii")
            out[f"{key}_encoding"] = "base64"
        elif key.endswith("_headers") and isinstance(value, str):
            out[key] = json.loads(value)
        else:
            out[key] = value
    return out


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
    extra = entry.get("_sentinel") or {}
    started = extra.get("started_at") or _parse_started(entry.get("startedDateTime"))
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
            client_addr=extra.get("client_addr") or "",
            path=url.path or "/",
            query=url.query,
            upstream_url=extra.get("upstream_url") or request["url"],
            request_headers=tuple((h["name"], h["value"]) for h in request.get("headers", [])),
            handshake_status=status,
            response_headers=tuple((h["name"], h["value"]) for h in response.get("headers", [])),
            handshake_body=body_bytes,
            subprotocol=extra.get("subprotocol"),
            error=extra.get("error"),
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
        frames.append(
            Frame(
                session_id,
                _seconds(message["time"]),
                "c2s" if kind == "send" else "s2c",
                OPCODE_NAMES[opcode],  # type: ignore[arg-type]
                payload,
                code,
                reason,
            )
        )
    events.extend(frames)
    events.append(_closed(session_id, started, frames, extra, status))
    return events


def _closed(
    session_id: int, started: float, frames: list[Frame], extra: dict[str, Any], status: int
) -> SessionClosed:
    count = {"c2s": 0, "s2c": 0}
    size = {"c2s": 0, "s2c": 0}
    for f in frames:
        count[f.direction] += 1
        size[f.direction] += len(f.payload)
    data_times = [f.ts for f in frames if f.opcode != "close"]
    closes = [f for f in frames if f.opcode == "close"]
    if "closed_by" in extra:
        code, reason, by, clean = (
            extra.get("close_code"),
            extra.get("close_reason"),
            extra.get("closed_by"),
            bool(extra.get("clean")),
        )
        ended = extra.get("ended_at") or (frames[-1].ts if frames else started)
    elif closes:
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
        if status != 101:
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


def read_har(path: Path) -> list[dict[str, Any]]:
    """The WebSocket entries of a HAR file."""
    try:
        har = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise HarError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HarError(f"{path} is not a HAR file: {exc}") from None
    entries = har.get("log", {}).get("entries") if isinstance(har, dict) else None
    if not isinstance(entries, list):
        raise HarError(f"{path} is not a HAR file: no log.entries list")
    return [e for e in entries if isinstance(e, dict) and _is_websocket(e)]


def import_har(
    path: Path, db: Path, *, redactor: Redactor, max_payload: int
) -> tuple[int, int, int]:
    """Append a HAR file's WebSocket entries to a recording: (run id, sessions, frames)."""
    entries = read_har(path)
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
