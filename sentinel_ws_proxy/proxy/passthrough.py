"""Plain HTTP through the proxy: any method, bodies streamed both ways, no redirects followed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

import aiohttp
from aiohttp import web

from sentinel_ws_proxy.events import Event, HttpRequest
from sentinel_ws_proxy.proxy.headers import forwarded_request_headers, relayed_response_headers
from sentinel_ws_proxy.proxy.upstream import Upstream, describe_client_error, within

CHUNK = 64 * 1024
ERROR_BODY = 1024
HEADERS_LINGER = 0.002  # seconds the headers wait for the body's first bytes


class Relayed(web.StreamResponse):
    """A response whose headers wait for the first bytes of the body, as web.Response's do."""

    _send_headers_immediately = False


async def relay_body(source: aiohttp.StreamReader, response: Relayed, keep: int) -> bytes:
    """Copy the body; return its first `keep` bytes.

    Headers go out with the first bytes of the body when those follow within
    HEADERS_LINGER, and the last chunk with the end of the body, as nginx sends
    them: a client that races its reads against its own close (python-socketio's
    polling transport closes its session on a 400 before reading the body) sees
    a whole response, as it does without a proxy, instead of losing the race to
    the proxy's extra hop.
    """
    kept = bytearray()
    chunk = source.read_nowait(CHUNK)  # what came with the headers
    if not chunk and not source.at_eof():
        try:  # the body's first bytes are usually a moment behind the headers
            chunk = await asyncio.wait_for(source.read(CHUNK), HEADERS_LINGER)
        except asyncio.TimeoutError:
            await response.write(b"")  # the headers now: the body may be long in coming (SSE)
            chunk = await source.read(CHUNK)
    while chunk and not source.at_eof():
        kept += chunk[: max(0, keep - len(kept))]
        await response.write(chunk)
        chunk = await source.read(CHUNK)
    kept += chunk[: max(0, keep - len(kept))]
    await response.write_eof(chunk)
    return bytes(kept)


async def pass_through(
    request: web.Request,
    upstream: Upstream,
    emit: Callable[[Event], None],
    *,
    timeout: float = 30.0,
) -> web.StreamResponse:
    started = time.time()
    rel = request.rel_url
    status: int | None = None
    error: str | None = None
    body = b""
    try:
        url = upstream.url_for(rel.raw_path, rel.raw_query_string, websocket=False)
        try:
            answer = await within(
                timeout,
                upstream.session.request(
                    request.method,
                    url,
                    headers=forwarded_request_headers(
                        request, websocket=False, keep_host=upstream.keep_host
                    ),
                    data=request.content if request.body_exists else None,
                    allow_redirects=False,
                ),
            )
        except asyncio.TimeoutError:
            status, error = 504, f"{upstream.base} did not start answering within {timeout:g} s"
            text = f"sentinel-ws proxy: {error} (--upstream-timeout)\n"
            return web.Response(status=504, text=text)
        async with answer as upstream_response:
            response = Relayed(
                status=upstream_response.status,
                reason=upstream_response.reason,
                headers=relayed_response_headers(
                    upstream_response.headers, websocket=False, keep_length=True
                ),
            )
            status = upstream_response.status
            await response.prepare(request)
            keep = ERROR_BODY if status >= 400 else 0  # why a request failed is in its body
            body = await relay_body(upstream_response.content, response, keep)
            return response
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        error = describe_client_error(exc, upstream.base)
        if status is not None:
            # Headers already went out; all we can do is cut the response short.
            raise
        status = 502
        return web.Response(
            status=502,
            text=f"sentinel-ws proxy: upstream {upstream.base} unreachable: {error}\n",
        )
    finally:
        emit(
            HttpRequest(
                started,
                request.remote or "",
                request.method,
                rel.path,
                rel.raw_query_string,
                status,
                (time.time() - started) * 1000,
                error,
                body,
                request.headers.get("User-Agent"),
                is_page_load(request.headers),
            )
        )


def is_page_load(headers: Mapping[str, str]) -> bool:
    """A document the browser navigated to (a load, a reload, a link): Chromium, Firefox
    and Safari mark it; sub-resources and fetch() say cors, no-cors or same-origin."""
    return headers.get("Sec-Fetch-Mode") == "navigate" and headers.get("Sec-Fetch-Dest") in (
        "document",
        "iframe",
    )
