"""Plain HTTP through the proxy: any method, bodies streamed both ways, no redirects followed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

from sentinel_ws_proxy.events import Event, HttpRequest
from sentinel_ws_proxy.proxy.headers import forwarded_request_headers, relayed_response_headers
from sentinel_ws_proxy.proxy.upstream import Upstream, describe_client_error, within

CHUNK = 64 * 1024
ERROR_BODY = 1024


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
                    headers=forwarded_request_headers(request, websocket=False),
                    data=request.content if request.body_exists else None,
                    allow_redirects=False,
                ),
            )
        except asyncio.TimeoutError:
            status, error = 504, f"{upstream.base} did not start answering within {timeout:g} s"
            text = f"sentinel-ws proxy: {error} (--upstream-timeout)\n"
            return web.Response(status=504, text=text)
        async with answer as upstream_response:
            response = web.StreamResponse(
                status=upstream_response.status,
                reason=upstream_response.reason,
                headers=relayed_response_headers(
                    upstream_response.headers, websocket=False, keep_length=True
                ),
            )
            status = upstream_response.status
            await response.prepare(request)
            keep = ERROR_BODY if status >= 400 else 0  # why a request failed is in its body
            async for chunk in upstream_response.content.iter_chunked(CHUNK):
                if len(body) < keep:
                    body += chunk[: keep - len(body)]
                await response.write(chunk)
            await response.write_eof()
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
            )
        )
