"""`sentinel-ws test`: connect once, report the handshake, the messages and the close.

Successor of the Sentinel tools' test_websocket.py, with the same defaults
(localhost, port 8001, path ws/mission-updates).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection

from sentinel_ws_proxy import __version__
from sentinel_ws_proxy.errors import UserError
from sentinel_ws_proxy.settings import format_hostport

USER_AGENT = f"sentinel-ws-test/{__version__}"
SAID = "; the server said: "
SERVER_FAILED = (
    "the server failed on this handshake (an exception in its handler, or no route for "
    "the path: Django Channels answers 500 for an unknown path)"
)


class UsageError(UserError, ValueError):
    """Bad input: exit status 2."""


def build_url(url: str | None, host: str, port: int, path: str) -> str:
    """The WebSocket URL from a URL argument (ws, wss, http, https) or host/port/path."""
    if url:
        for plain, secure in (("http://", "ws://"), ("https://", "wss://")):
            if url.startswith(plain):
                url = secure + url[len(plain) :]
        if not url.startswith(("ws://", "wss://")):
            raise UsageError(f"{url!r}: expected a ws://, wss://, http:// or https:// URL")
        return url
    return f"ws://{format_hostport(host, port)}/{path.lstrip('/')}"


def own_origin(url: str) -> str:
    """The Origin a page served by the target itself would send (http(s)://host[:port]).

    Servers behind an Origin check (Django Channels' AllowedHostsOriginValidator,
    Socket.IO's cors_allowed_origins) refuse a handshake without one, so the live
    tools send it by default, as the app's own page in a browser would.
    """
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    host = parts.hostname or "localhost"
    port = parts.port
    if port is None or port == {"http": 80, "https": 443}.get(scheme):
        return f"{scheme}://[{host}]" if ":" in host else f"{scheme}://{host}"
    return f"{scheme}://{format_hostport(host, port)}"


def choose_origin(url: str, origin: str | None, no_origin: bool) -> str | None:
    """--origin, --no-origin, or by default the target's own origin."""
    if origin and no_origin:
        raise UsageError("--origin and --no-origin exclude each other")
    if no_origin:
        return None
    if origin:
        if not origin.startswith(("http://", "https://")) and origin != "null":
            raise UsageError(
                f"--origin {origin!r}: expected http(s)://host[:port], as browsers send it"
            )
        return origin.rstrip("/")
    return own_origin(url)


def refusal(status: int, reason: str, body: bytes | bytearray | str | None) -> str:
    """How a refused handshake reads: the status, what it means, and what the server said."""
    meaning = {
        401: "the server wants credentials (a session cookie or token)",
        403: "the server refused this client (Origin, authentication or permissions)",
        404: "no WebSocket route at this path",
    }.get(status, SERVER_FAILED if status >= 500 else "")
    text = f"handshake refused with {status} {reason}".rstrip()
    if meaning:
        text += f": {meaning}"
    said = excerpt(body)
    return f"{text}{SAID}{said}" if said else text


def excerpt(body: bytes | bytearray | str | None, limit: int = 160) -> str:
    if not body:
        return ""
    text = body if isinstance(body, str) else bytes(body).decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_headers(values: tuple[str, ...]) -> list[tuple[str, str]]:
    headers = []
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header {value!r}: expected NAME:VALUE")
        headers.append((name.strip(), content.strip()))
    return headers


@dataclass
class Received:
    seconds: float  # since the connection opened
    kind: str  # text or binary
    data: str  # text, or hex for binary
    size: int


@dataclass
class TestResult:
    url: str
    origin: str | None = None  # the Origin header sent (None: none)
    ok: bool = False
    error: str | None = None
    error_kind: str | None = None  # refused, dns, tls, timeout, unreachable, rejected, handshake
    status: int | None = None
    open_ms: float | None = None
    subprotocol: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    sent: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None
    closed_by: str | None = None
    close_ms: float | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def describe_failure(exc: BaseException, url: str, timeout: float) -> tuple[str, str]:
    """(kind, plain sentence) for why the connection did not open."""
    where = url.split("/")[2] if "//" in url else url
    if isinstance(exc, ConnectionRefusedError):
        return "refused", f"connection refused: nothing is listening on {where}"
    if isinstance(exc, socket.gaierror):
        return "dns", f"cannot resolve the host name in {where} ({exc.strerror})"
    if isinstance(exc, ssl.SSLError):
        return "tls", f"TLS handshake with {where} failed: {exc.reason or exc}"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout", f"no WebSocket handshake from {where} within {timeout:g} s"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable", f"{where} is unreachable ({exc.strerror})"
    if isinstance(exc, websockets.InvalidStatus):
        response = exc.response
        return "rejected", refusal(response.status_code, response.reason_phrase, response.body)
    if isinstance(exc, websockets.InvalidHandshake):
        return "handshake", f"invalid WebSocket handshake from {where}: {exc}"
    if isinstance(exc, OSError):
        return "unreachable", f"cannot connect to {where}: {exc.strerror or exc}"
    return "handshake", f"{type(exc).__name__}: {exc}"


async def run_test(
    url: str,
    *,
    origin: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    subprotocols: list[str] | None = None,
    send: list[str] | None = None,
    timeout: float = 5.0,
) -> TestResult:
    """Open, send, listen for `timeout` seconds, close; report what happened."""
    result = TestResult(url=url, origin=origin)
    started = time.perf_counter()
    try:
        ws = await websockets.connect(
            url,
            origin=origin,  # type: ignore[arg-type]
            additional_headers=headers or [],
            subprotocols=subprotocols or None,  # type: ignore[arg-type]
            open_timeout=timeout,
            close_timeout=timeout,
            user_agent_header=USER_AGENT,
            max_size=None,
        )
    except websockets.InvalidURI as exc:
        raise UsageError(str(exc)) from None
    except websockets.InvalidStatus as exc:
        response = exc.response
        result.status = response.status_code
        result.response_headers = dict(response.headers.raw_items())
        result.body = (response.body or b"").decode("utf-8", errors="replace")
        result.error_kind = "rejected"
        result.error = refusal(response.status_code, response.reason_phrase, None)
        return result
    except Exception as exc:
        result.error_kind, result.error = describe_failure(exc, url, timeout)
        return result
    opened = time.perf_counter()
    result.open_ms = (opened - started) * 1000
    result.status = ws.response.status_code
    result.response_headers = dict(ws.response.headers.raw_items())
    result.subprotocol = ws.subprotocol
    await _converse(ws, result, send or [], timeout, opened)
    return result


async def _converse(
    ws: ClientConnection, result: TestResult, send: list[str], timeout: float, opened: float
) -> None:
    for text in send:
        await ws.send(text)
        result.sent.append(text)
    deadline = opened + timeout
    try:
        while (left := deadline - time.perf_counter()) > 0:
            try:
                message = await asyncio.wait_for(ws.recv(), left)
            except asyncio.TimeoutError:
                break
            seconds = time.perf_counter() - opened
            if isinstance(message, str):
                result.received.append(Received(seconds, "text", message, len(message.encode())))
            else:
                result.received.append(Received(seconds, "binary", message.hex(), len(message)))
    except websockets.ConnectionClosed:
        result.closed_by = "server"
    if result.closed_by is None:
        result.closed_by = "client"
        closing = time.perf_counter()
        await ws.close()
        result.close_ms = (time.perf_counter() - closing) * 1000
    else:
        await ws.wait_closed()
    received_close = ws.protocol.close_rcvd
    result.close_code = ws.close_code
    result.close_reason = ws.close_reason
    clean = received_close is not None and ws.protocol.close_sent is not None
    result.ok = clean and ws.close_code in (1000, 1001)
    if not result.ok:
        result.error_kind = "closed"
        result.error = (
            f"the connection ended without a close handshake ({ws.close_code})"
            if not clean
            else f"closed with {ws.close_code}"
        )
