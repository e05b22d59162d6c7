"""An upgrade that reaches aiohttp (on a connection that first served plain HTTP, kept alive).

Browsers open a new connection for each WebSocket, so the front protocol sees
nearly every upgrade first; a client that reuses a kept-alive connection gets
here. The relay takes the connection over from aiohttp: aiohttp's protocol is
told the connection is gone (so it writes nothing more to it), and the
request head aiohttp parsed is relayed like any other.
"""

from __future__ import annotations

from aiohttp import web

from sentinel_ws_proxy.proxy.front import OpenWebSocket, taken_over
from sentinel_ws_proxy.proxy.handshake import Head, RequestHead


async def takeover(request: web.Request, open_websocket: OpenWebSocket) -> web.StreamResponse:
    transport = request.transport
    handler = request.protocol
    if transport is None or transport.is_closing():
        return web.Response(status=499)
    head = Head(b"", list(request.raw_headers), request.raw_path.encode("latin-1"), complete=True)
    version = f"{request.version.major}.{request.version.minor}"
    # Bytes the client sent after its head (aiohttp keeps them once it sees an upgrade).
    early = bytes(getattr(handler, "_message_tail", b"") or b"")
    front = taken_over(transport, early)  # type: ignore[arg-type]
    # aiohttp lets go: told the connection is gone (with no transport left to close),
    # it forgets it and writes nothing more to it.
    handler.transport = None
    handler.connection_lost(None)
    await open_websocket(front, RequestHead(head, request.method, version))
    return web.Response()  # never sent: aiohttp has no connection to write it to
