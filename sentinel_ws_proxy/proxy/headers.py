"""Which headers cross the proxy, in each direction."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from multidict import CIMultiDict

# RFC 9110 section 7.6.1: meaningful for one connection only.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Negotiated by each leg of the WebSocket separately; aiohttp writes them.
WEBSOCKET_HANDSHAKE = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)

# Written again by whoever sends the message on; passing them would lie.
FRAMING = frozenset({"content-length", "host"})


def _connection_tokens(headers: CIMultiDict[str]) -> set[str]:
    """Headers named in Connection are hop-by-hop too (RFC 9110 section 7.6.1)."""
    tokens: set[str] = set()
    for value in headers.getall("Connection", []):
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def filter_headers(headers: CIMultiDict[str], *, drop: Iterable[str] = ()) -> CIMultiDict[str]:
    """A copy without hop-by-hop headers and without the names in ``drop``."""
    skip = HOP_BY_HOP | _connection_tokens(headers) | {d.lower() for d in drop}
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in skip)


def forwarded_request_headers(
    request: web.Request, *, websocket: bool, keep_host: bool = False
) -> CIMultiDict[str]:
    """The client's headers as the upstream should see them, plus X-Forwarded-*.

    Host is the client's with ``keep_host`` (aiohttp writes a Host it is given as it
    is), else left out for aiohttp to write the upstream's; see ProxyConfig.keep_host.
    """
    # X-Forwarded-Proto and -Host are the proxy's to say (as nginx does): a client's own
    # would pass as if the proxy had vouched for them. X-Forwarded-For is appended to.
    drop = {"x-forwarded-proto", "x-forwarded-host", "x-forwarded-for"}
    if not keep_host:
        drop.add("host")
    headers = filter_headers(
        request.headers, drop=drop | (WEBSOCKET_HANDSHAKE if websocket else set())
    )
    peer = request.remote or ""
    prior = ", ".join(request.headers.getall("X-Forwarded-For", []))
    headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    headers["X-Forwarded-Proto"] = request.scheme
    if request.host:
        headers["X-Forwarded-Host"] = request.host
    return headers


def relayed_response_headers(
    headers: CIMultiDict[str], *, websocket: bool, keep_length: bool = False
) -> CIMultiDict[str]:
    """The upstream's response headers as the client should see them."""
    drop = set(FRAMING) | (WEBSOCKET_HANDSHAKE if websocket else set())
    if keep_length:
        drop.discard("content-length")
    return filter_headers(headers, drop=drop)
