"""The proxy's client side towards the configured upstream, and only to it.

WebSocket upgrades go over connections of our own (``open_websocket``): the
request head is written as built by proxy/handshake.py and the response head
is read back as bytes, so the client gets exactly what the upstream sent.
Plain HTTP goes through one aiohttp session (``session``), which never
follows redirects: they go back to the browser as they came.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import aiohttp
from yarl import URL

# The recorded error of an upgrade the upstream took and closed unanswered (FIN or RST
# before any response head): reached, so not "unreachable"; the classifier tells them apart.
from sentinel_ws_proxy.protocol import CLOSED_WITHOUT_ANSWER as CLOSED_WITHOUT_ANSWER
from sentinel_ws_proxy.proxy.config import host_header_rule
from sentinel_ws_proxy.proxy.handshake import HeadError, ResponseReader

T = TypeVar("T")
DNS_TTL = 10.0


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """wait_for without its extra task where asyncio.timeout exists (3.11+): one per handshake."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


class UpstreamHandshake(asyncio.Protocol):
    """The upstream's side of an upgrade until its response head is in.

    For a 101 the relay then takes the connection over; anything that came
    after the head is kept for it. For a refusal the rest of the response is
    passed to the client as it arrives (``forward_to``), and recorded.
    """

    def __init__(self, body_limit: int):
        self.reader = ResponseReader(body_limit)
        self.transport: asyncio.Transport | None = None
        self.head: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Read here too, so a handshake given up on (a timeout) logs no unretrieved error.
        self.head.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.leftover = bytearray()
        self.forward_to: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.head.done():
            if self.reader.status == 101:
                self.leftover += data
                return
            if self.forward_to is not None:
                self.forward_to.write(data)
            self.reader.feed(data)
            if self.reader.done:
                self._end()
            return
        try:
            complete = self.reader.feed(data)
        except HeadError as exc:
            self.head.set_exception(UpstreamBadAnswer(str(exc)))
            return
        if complete:
            assert self.transport is not None
            self.transport.pause_reading()  # until the relay (or the client) is ready
            if self.reader.status == 101:
                self.leftover += self.reader.buffer
            self.head.set_result(None)
            if self.reader.status != 101 and self.reader.done:
                self._end()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.head.done():
            self.head.set_exception(UpstreamClosed(self._closed_how(exc)))
        self._end()

    def _closed_how(self, exc: BaseException | None) -> str:
        """CLOSED_WITHOUT_ANSWER, and how: a reset, part of a head."""
        details = []
        if isinstance(exc, ConnectionResetError):
            details.append("reset")
        elif isinstance(exc, OSError):
            details.append(exc.strerror or str(exc))
        if self.reader.buffer:
            details.append(f"after {len(self.reader.buffer):,} bytes of an unfinished head")
        return CLOSED_WITHOUT_ANSWER + (f" ({', '.join(details)})" if details else "")

    def _end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)

    @property
    def raw_head(self) -> bytes:
        head = self.reader.head
        return head.raw if head is not None else b""

    def body_so_far(self) -> bytes:
        """The refused response's bytes after its head that came with it."""
        return self.reader.raw_after_head


class UpstreamUnreachable(Exception):
    """No response head to an upgrade: ``str()`` is the recorded error.

    This class itself: the upstream could not be reached (refused, unresolvable, TLS
    refused) or sent no head within the deadline. Its subclasses: it was reached, and
    closed the connection first (UpstreamClosed) or answered with something not HTTP
    (UpstreamBadAnswer). The client gets a 502 either way.
    """

    reached = False

    def client_text(self, upstream: URL) -> str:
        """The body of the client's 502."""
        what = "" if self.reached else " unreachable"
        return f"sentinel-ws proxy: upstream {upstream}{what}: {self}\n"


class UpstreamClosed(UpstreamUnreachable):
    """The upstream accepted the connection and closed it before a response head."""

    reached = True


class UpstreamBadAnswer(UpstreamUnreachable):
    """The upstream's response head was not HTTP."""

    reached = True


class Upstream:
    """Connections to one upstream origin, and only to it."""

    def __init__(
        self,
        base: URL,
        *,
        connect_timeout: float,
        close_timeout: float,
        tls: ssl.SSLContext | bool = True,
        keep_host: bool | None = None,
    ):
        self.base = base
        # Whether requests keep the client's Host (ProxyConfig.keep_host); None: the
        # auto rule for this upstream (kept for one on this machine).
        self.keep_host = (
            host_header_rule("auto", base.host or "")[0] if keep_host is None else keep_host
        )
        self._addresses: tuple[float, list[tuple[Any, ...]]] | None = None
        self.ws_tls: ssl.SSLContext | None = None
        if base.scheme == "https":
            if isinstance(tls, ssl.SSLContext):
                self.ws_tls = tls
            else:
                self.ws_tls = ssl.create_default_context()
                if tls is False:
                    self.ws_tls.check_hostname = False
                    self.ws_tls.verify_mode = ssl.CERT_NONE
        self.connect_timeout = connect_timeout
        self.close_timeout = close_timeout
        # True: verify against the system's CAs; an SSLContext: against chosen
        # ones (--upstream-ca); False: no verification (--insecure-upstream).
        self.tls = tls
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # Many browsers' cookies must never mix in one jar.
                cookie_jar=aiohttp.DummyCookieJar(),
                # A debugging proxy must not cap concurrent connections.
                connector=aiohttp.TCPConnector(limit=0, ssl=self.tls),
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self.connect_timeout, sock_read=None
                ),
                # Send only what the client sent: no invented User-Agent or Accept.
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                auto_decompress=False,
            )
        return self._session

    def url_for(self, raw_path: str, raw_query: str, *, websocket: bool) -> URL:
        """The upstream URL for a request path; the host always comes from the config."""
        if not raw_path.startswith("/"):
            raw_path = "/" + raw_path
        scheme = self.base.scheme
        if websocket:
            scheme = "wss" if scheme == "https" else "ws"
        authority = self.base.raw_authority
        target = f"{scheme}://{authority}{raw_path}" + (f"?{raw_query}" if raw_query else "")
        url = URL(target, encoded=True)
        if url.host != self.base.host or url.port != self.base.port:
            raise ValueError(f"refusing to forward to {url.host}:{url.port}")
        return url

    def websocket_url(self, raw_target: str) -> str:
        """The ws:// or wss:// URL an upgrade goes to, for the record (connections only
        ever go to the configured host, whatever the target says)."""
        scheme = "wss" if self.base.scheme == "https" else "ws"
        return f"{scheme}://{self.base.raw_authority}{raw_target}"

    @property
    def authority(self) -> str:
        """Host[:port] as the upstream expects it in Host (sent unless keep_host)."""
        return self.base.raw_authority

    async def _resolve(self) -> list[tuple[Any, ...]]:
        """The upstream's addresses, looked up at most every 10 s (as aiohttp caches DNS)."""
        now = time.monotonic()
        if self._addresses is not None and now - self._addresses[0] < DNS_TTL:
            return self._addresses[1]
        loop = asyncio.get_running_loop()
        host, port = self.base.host or "", self.base.port or 0
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise UpstreamUnreachable(f"cannot resolve {host}") from None
        addresses = [info[4] for info in infos]
        self._addresses = (now, addresses)
        return addresses

    async def open_websocket(
        self, head: bytes, body_limit: int
    ) -> tuple[asyncio.Transport, UpstreamHandshake]:
        """Connect, send the upgrade request, and wait for the response head."""
        try:
            return await within(self.connect_timeout, self._open(head, body_limit))
        except asyncio.TimeoutError:
            raise UpstreamUnreachable(
                f"no answer from {self.base} within {self.connect_timeout:g} s"
            ) from None

    async def _open(
        self, head: bytes, body_limit: int
    ) -> tuple[asyncio.Transport, UpstreamHandshake]:
        loop = asyncio.get_running_loop()
        host, port = self.base.host or "", self.base.port or 0
        last: OSError | None = None
        for address in await self._resolve():
            try:
                transport, protocol = await loop.create_connection(
                    lambda: UpstreamHandshake(body_limit),
                    address[0],
                    address[1],
                    ssl=self.ws_tls,
                    server_hostname=host if self.ws_tls else None,
                )
                break
            except ssl.SSLCertVerificationError as exc:
                raise UpstreamUnreachable(
                    f"the TLS certificate of {host}:{port} is not trusted "
                    f"({exc.verify_message}); pass --upstream-ca FILE (or --insecure-upstream)"
                    " for a development certificate"
                ) from None
            except ssl.SSLError as exc:
                raise UpstreamUnreachable(
                    f"TLS handshake with {host}:{port} failed: {exc}"
                ) from None
            except OSError as exc:
                last = exc
        else:
            reason = (last.strerror or str(last)) if last else "no address"
            raise UpstreamUnreachable(f"cannot connect to {host}:{port}: {reason}")
        transport.write(head)
        try:
            await protocol.head
        except BaseException:
            transport.abort()
            raise
        return transport, protocol  # type: ignore[return-value]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def describe_client_error(exc: BaseException, base: URL) -> str:
    """One plain sentence for why the upstream could not be reached."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = getattr(exc.certificate_error, "verify_message", None) or exc.certificate_error
        return (
            f"the TLS certificate of {base.host}:{base.port} is not trusted ({reason}); "
            "pass --upstream-ca FILE (or --insecure-upstream) for a development certificate"
        )
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS handshake with {base.host}:{base.port} failed: {exc.os_error}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {base.host}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or str(exc.os_error)
        return f"cannot connect to {base.host}:{base.port}: {reason}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return CLOSED_WITHOUT_ANSWER
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
