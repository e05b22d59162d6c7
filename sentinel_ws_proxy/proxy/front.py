"""Every connection's first bytes: a WebSocket upgrade for the relay, anything else for aiohttp.

The front protocol reads the first request head (over TCP or TLS alike). A
WebSocket upgrade stays here and becomes a relay; any other request, and
everything under ``/_sentinel/``, is handed with the bytes read so far to
aiohttp's own protocol, which serves the connection from then on (HTTP
passthrough and the proxy's endpoints). The front stays in between for one
thing aiohttp does differently from the servers behind it: a client that
half-closes after its request (python-engineio's polling does) still gets
its answer, where aiohttp would drop the connection at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from sentinel_ws_proxy.proxy.handshake import HeadError, RequestHead, head_end, parse_request

HEAD_TIMEOUT = 10.0  # a client that has not sent a whole request head by then is let go
EARLY_LIMIT = 64 * 1024  # bytes a client may send before its upgrade is answered

OpenWebSocket = Callable[["FrontProtocol", RequestHead], Coroutine[Any, Any, None]]


class Counter(Protocol):
    fronts: int
    slow_clients: int


class FrontProtocol(asyncio.Protocol):
    def __init__(
        self,
        open_websocket: OpenWebSocket,
        http: Callable[[], asyncio.Protocol],
        counter: Counter | None = None,
        head_timeout: float = HEAD_TIMEOUT,
    ):
        self._head_timeout = head_timeout
        self._open_websocket = open_websocket
        self._http = http
        self._counter = counter
        self._counted = False
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.task: asyncio.Future[None] | None = None
        self.lost = asyncio.get_running_loop().create_future()
        self._timer: asyncio.TimerHandle | None = None
        self.writable = asyncio.Event()
        self.writable.set()
        self._inner: asyncio.Protocol | None = None  # aiohttp's, once handed over

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(self._head_timeout, self._too_slow)
        if self._counter is not None:
            self._counter.fronts += 1
            self._counted = True

    def _uncount(self) -> None:
        if self._counted and self._counter is not None:
            self._counter.fronts -= 1
            self._counted = False

    def _too_slow(self) -> None:
        if self.transport is not None and self.task is None:
            if self._counter is not None:
                self._counter.slow_clients += 1
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)
            return
        self.buffer += data
        if self.task is not None:
            # Sent before the upgrade was answered: kept for the upstream.
            if len(self.buffer) > EARLY_LIMIT and self.transport is not None:
                self.transport.pause_reading()
            return
        try:
            end = head_end(self.buffer)
            if not end:
                return
            request = parse_request(bytes(self.buffer[:end]))
        except HeadError:
            self._hand_over()  # aiohttp answers a malformed request as it should
            return
        if request.wants_websocket and not request.path.startswith("/_sentinel"):
            self._cancel_timer()
            del self.buffer[:end]
            self.task = asyncio.ensure_future(self._open_websocket(self, request))
        else:
            self._hand_over()

    def _hand_over(self) -> None:
        self._cancel_timer()
        assert self.transport is not None
        self._inner = protocol = self._http()
        protocol.connection_made(self.transport)
        data, self.buffer = bytes(self.buffer), bytearray()
        protocol.data_received(data)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._uncount()  # from here on a relay or aiohttp counts the connection

    def eof_received(self) -> bool:
        # A client may half-close after its request: the answer still goes back, then
        # the connection closes (aiohttp's close() finishes the request in hand first).
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()
        return True

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()
            return
        self.writable.clear()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
            return
        self.writable.set()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_timer()
        if self._inner is not None:
            self._inner.connection_lost(exc)
        if not self.lost.done():
            self.lost.set_result(None)


class Refuse(asyncio.Protocol):
    """Past --max-connections: a 503 at once, and the connection closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        body = b"sentinel-ws proxy: too many connections (--max-connections)\n"
        transport.write(  # type: ignore[attr-defined]
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s"
            % (len(body), body)
        )
        transport.close()


def taken_over(transport: asyncio.Transport, early: bytes) -> FrontProtocol:
    """A front for a connection that arrived through aiohttp, its upgrade already read."""
    front = FrontProtocol(_never, lambda: asyncio.Protocol())
    front.transport = transport
    front.buffer += early
    front.task = asyncio.current_task()  # bytes that come now are kept for the upstream
    transport.set_protocol(front)
    return front


async def _never(front: FrontProtocol, request: RequestHead) -> None:
    raise AssertionError("a taken-over connection reads no further request head")
