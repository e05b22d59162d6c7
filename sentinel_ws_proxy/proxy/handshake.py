"""The opening handshake as bytes: request and response heads, parsed with httptools (llhttp).

The relay forwards heads nearly as they came: the upstream gets the client's
request line and headers in their order and case, with only the proxy's own
changes (Host unless it is kept, hop-by-hop headers, X-Forwarded-*); the client gets the
upstream's response head byte for byte, status line included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httptools

MAX_HEAD = 64 * 1024
HEAD_END = b"\r\n\r\n"

# RFC 9110 section 7.6.1: meaningful for one connection only. Upgrade and
# Connection stay: for a WebSocket they are what the whole request is about.
HOP_BY_HOP = frozenset(
    {
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
    }
)
# Set by the proxy, never taken from the client (as nginx does).
OURS = frozenset({b"host", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-for"})


class HeadError(Exception):
    """A head that is not HTTP: ``status`` is what to answer (400, 431)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def decode(value: bytes) -> str:
    """Header bytes as text: UTF-8 when they are, else Latin-1 (lossless either way)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


@dataclass
class Head:
    """What httptools reports of one head."""

    raw: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    url: bytes = b""
    reason: bytes = b""
    complete: bool = False
    body: bytearray = field(default_factory=bytearray)
    body_limit: int = 0
    message_done: bool = False

    # httptools callbacks (url and status may come in pieces)
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.complete = True

    def on_body(self, body: bytes) -> None:
        room = self.body_limit - len(self.body)
        if room > 0:
            self.body += body[:room]

    def on_message_complete(self) -> None:
        self.message_done = True

    def get(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    def text_headers(self) -> tuple[tuple[str, str], ...]:
        return tuple((decode(k), decode(v)) for k, v in self.headers)


def head_end(buffer: bytes | bytearray) -> int:
    """Length of the head at the start of buffer, or 0 while it is incomplete."""
    end = buffer.find(HEAD_END)
    if end >= 0:
        return end + 4
    if len(buffer) > MAX_HEAD:
        raise HeadError(431, f"request head larger than {MAX_HEAD // 1024} KiB")
    return 0


@dataclass
class RequestHead:
    head: Head
    method: str
    version: str

    @property
    def target(self) -> bytes:
        return self.head.url

    @property
    def path(self) -> str:
        return decode(self.head.url.partition(b"?")[0]) or "/"

    @property
    def query(self) -> str:
        return decode(self.head.url.partition(b"?")[2])

    @property
    def wants_websocket(self) -> bool:
        upgrade = self.head.get(b"upgrade")
        return upgrade is not None and b"websocket" in upgrade.lower()


def parse_request(raw: bytes) -> RequestHead:
    """A complete request head (ending in a blank line); raises HeadError if not HTTP/1."""
    head = Head(raw)
    parser = httptools.HttpRequestParser(head)
    _parse_whole(parser, head, raw, 400, "malformed request head")
    return RequestHead(head, parser.get_method().decode("latin-1"), parser.get_http_version())


def _parse_whole(parser: Any, head: Head, raw: bytes, status: int, what: str) -> None:
    """Feed a whole head to httptools; HeadError(status, what) unless it parsed."""
    try:
        parser.feed_data(raw)
    except httptools.HttpParserUpgrade:
        pass
    except httptools.HttpParserError as exc:
        # llhttp stops at some heads it has read whole (a 101 without Upgrade headers).
        if not head.complete:
            raise HeadError(status, f"{what} ({exc})") from None
    if not head.complete:
        raise HeadError(status, what)


class ResponseReader:
    """The upstream's answer to the upgrade: its head, then (when refused) its body."""

    def __init__(self, body_limit: int):
        self.buffer = bytearray()
        self.head: Head | None = None
        self.status = 0
        self.version = "1.1"
        self.head_length = 0
        self.raw_after_head = b""  # a refusal's bytes that came with its head
        self._body_limit = body_limit
        self._parser: httptools.HttpResponseParser | None = None

    def feed(self, data: bytes) -> bool:
        """Take bytes; True once the head is complete (then see head_length, status)."""
        if self.head is not None:
            self._feed_body(data)
            return True
        self.buffer += data
        end = head_end(self.buffer)
        if not end:
            return False
        raw = bytes(self.buffer[:end])
        head = Head(raw, body_limit=self._body_limit)
        parser = httptools.HttpResponseParser(head)
        _parse_whole(parser, head, raw, 502, "invalid HTTP response from upstream")
        self.head, self._parser, self.head_length = head, parser, end
        self.status = parser.get_status_code()
        self.version = parser.get_http_version()
        rest = bytes(self.buffer[end:])
        self.buffer.clear()
        if self.status != 101 and rest:
            self.raw_after_head = rest
            self._feed_body(rest)
        else:
            self.buffer += rest
        return True

    def _feed_body(self, data: bytes) -> None:
        if self._parser is None or self.head is None or self.head.message_done:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.head.message_done = True  # forward what comes; stop reading it

    @property
    def done(self) -> bool:
        return self.head is not None and self.head.message_done

    @property
    def status_line(self) -> str:
        assert self.head is not None
        return decode(self.head.raw.split(b"\r\n", 1)[0])


def upstream_request(
    request: RequestHead, *, host: str, peer: str, scheme: str, keep_host: bool = False
) -> bytes:
    """The head sent upstream: the client's, with hop-by-hop and X-Forwarded-* ours.

    Host is ``host`` (the upstream's), or with ``keep_host`` the client's, where and as
    the client wrote it (the upstream's when the client sent none); see
    ProxyConfig.keep_host.
    """
    head = request.head
    client_host = head.get(b"host")
    keep = keep_host and client_host is not None
    drop = set(HOP_BY_HOP) | (OURS - {b"host"} if keep else OURS)
    for name, value in head.headers:
        if name.lower() == b"connection":
            # Headers the client named as hop-by-hop, except the upgrade itself.
            tokens = {t.strip().lower() for t in value.split(b",")}
            drop |= tokens - {b"upgrade", b"keep-alive", b"host", b""}
    prior = b", ".join(v for k, v in head.headers if k.lower() == b"x-forwarded-for")
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("latin-1"), head.url)]
    if not keep:
        lines.append(b"Host: " + host.encode("ascii"))
    lines += [k + b": " + v for k, v in head.headers if k.lower() not in drop]
    lines.append(b"X-Forwarded-For: " + (prior + b", " if prior else b"") + peer.encode("latin-1"))
    lines.append(b"X-Forwarded-Proto: " + scheme.encode("ascii"))
    if client_host:
        lines.append(b"X-Forwarded-Host: " + client_host)
    return b"\r\n".join(lines) + HEAD_END


def simple_response(
    status: int, reason: str, body: bytes, content_type: str, extra: dict[str, str] | None = None
) -> bytes:
    """A whole response of the proxy's own (a 502, a fault's refusal), closing the connection."""
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
        "Connection": "close",
        **(extra or {}),
    }
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + body
