"""The proxy's client side: one aiohttp session towards the configured upstream.

aiohttp's ``ws_connect`` hides what a debugging proxy needs most: on a refused
handshake it raises ``WSServerHandshakeError`` after discarding the body, and it
follows redirects (possibly to another host) before anyone can look. A trace
hook sees every response first; for a WebSocket handshake that did not get 101
it reads the body and raises :class:`UpstreamRejected`, which stops aiohttp
there. For a 101 it keeps the response, whose headers are relayed and whose
connection is the only public handle for dropping the TCP connection without
a close frame.
"""

from __future__ import annotations

import asyncio
import contextvars
import ssl
import sys
from collections.abc import Awaitable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TypeVar

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

T = TypeVar("T")
_handshake: contextvars.ContextVar[list[aiohttp.ClientResponse] | None] = contextvars.ContextVar(
    "sentinel_handshake", default=None
)


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """wait_for without its extra task where asyncio.timeout exists (3.11+): one per handshake."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


class UpstreamRejected(Exception):
    """The upstream answered a WebSocket handshake with something other than 101."""

    def __init__(self, status: int, reason: str, headers: CIMultiDictProxy[str], body: bytes):
        super().__init__(f"upstream answered {status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


class UpstreamUnreachable(Exception):
    """No answer from the upstream: refused, unresolvable, reset or timed out."""


@dataclass
class UpstreamSocket:
    ws: aiohttp.ClientWebSocketResponse
    response: aiohttp.ClientResponse

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self.response.headers

    def drop(self) -> None:
        """Close the TCP connection without a close frame."""
        self.response.close()


async def _capture(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object) -> None:
    box = _handshake.get()
    if box is None:
        return
    response: aiohttp.ClientResponse = params.response  # type: ignore[attr-defined]
    if response.status == 101:
        box.append(response)
        return
    body = await response.read()
    raise UpstreamRejected(response.status, response.reason or "", response.headers, body)


def _trace_config() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(_capture)
    trace.on_request_end.append(_capture)
    return trace


class Upstream:
    """Connections to one upstream origin, and only to it."""

    def __init__(
        self,
        base: URL,
        *,
        connect_timeout: float,
        close_timeout: float,
        tls: ssl.SSLContext | bool = True,
    ):
        self.base = base
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
                trace_configs=[_trace_config()],
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

    async def connect_websocket(
        self,
        url: URL,
        headers: CIMultiDict[str],
        protocols: list[str],
        *,
        compress: bool,
        max_msg_size: int,
    ) -> UpstreamSocket:
        box: list[aiohttp.ClientResponse] = []
        token = _handshake.set(box)
        try:
            ws = await within(
                self.connect_timeout,
                self.session.ws_connect(
                    url,
                    headers=headers,
                    protocols=protocols,
                    autoping=False,
                    autoclose=False,
                    compress=15 if compress else 0,
                    max_msg_size=max_msg_size,
                    decode_text=False,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self.close_timeout),
                ),
            )
        except UpstreamRejected:
            raise
        except asyncio.TimeoutError:
            raise UpstreamUnreachable(
                f"no answer from {self.base} within {self.connect_timeout:g} s"
            ) from None
        except aiohttp.WSServerHandshakeError as exc:
            # A 101 that is not a valid upgrade (bad accept key, missing headers).
            raise UpstreamUnreachable(
                f"invalid WebSocket handshake from upstream: {exc.message}"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnreachable(describe_client_error(exc, self.base)) from None
        finally:
            _handshake.reset(token)
        return UpstreamSocket(ws, box[-1])

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
        return f"{base.host}:{base.port} closed the connection without answering"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
