"""The proxy's own endpoints under /_sentinel/ (never forwarded)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sentinel_ws_proxy import __version__

if TYPE_CHECKING:
    from sentinel_ws_proxy.proxy.server import Proxy

PREFIX = "/_sentinel"


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


def status(proxy: Proxy) -> dict[str, Any]:
    stats = proxy.stats
    recorder = proxy.recorder
    return {
        "version": __version__,
        "started_at": iso(proxy.started_at),
        "uptime_seconds": round(time.time() - proxy.started_at, 3),
        "listen": proxy.config.listen,
        "upstream": str(proxy.config.upstream),
        "recording": None
        if recorder is None
        else {
            "path": str(recorder.path),
            "run_id": recorder.run_id,
            "rows_written": recorder.stats.rows_written,
            "pending": recorder.stats.pending,
            "last_commit": iso(recorder.stats.last_commit),
            "commit_lag_ms": recorder.stats.lag_ms(),
            "backlog_bytes": recorder.backlog(),
            "throttled_seconds": round(recorder.stats.throttled_seconds, 3),
            "errors": recorder.stats.errors,
            "dropped": recorder.stats.dropped,
        },
        "counters": {
            "sessions": stats.sessions,
            "active_sessions": len(proxy.relays),
            "handshake_failures": stats.handshake_failures,
            "frames_c2s": stats.frames["c2s"],
            "frames_s2c": stats.frames["s2c"],
            "bytes_c2s": stats.bytes["c2s"],
            "bytes_s2c": stats.bytes["s2c"],
            "close_codes": {str(k): v for k, v in sorted(stats.close_codes.items())},
            "http_requests": stats.http_requests,
        },
    }


def diagnostics(proxy: Proxy) -> dict[str, Any]:
    """Shaped like the Sentinel /api/system/diagnostics/websockets endpoint."""
    return {
        "active_connections": len(proxy.relays),
        "events_broadcast": proxy.stats.events_broadcast,
        "last_event_time": iso(proxy.stats.last_event_time),
        "connection_info": [
            {
                "session_id": relay.session_id,
                "client_info": relay.client_addr,
                "path": relay.path,
                "connected_at": iso(relay.opened_at),
                "last_activity": iso(relay.last_activity),
                "frames_c2s": relay.frames["c2s"],
                "frames_s2c": relay.frames["s2c"],
                "bytes_c2s": relay.bytes["c2s"],
                "bytes_s2c": relay.bytes["s2c"],
            }
            for relay in list(proxy.relays.values())
        ],
    }


def routes(proxy: Proxy) -> list[web.RouteDef]:
    async def get_status(request: web.Request) -> web.Response:
        return web.json_response(status(proxy))

    async def get_diagnostics(request: web.Request) -> web.Response:
        return web.json_response(diagnostics(proxy))

    async def unknown(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "error": f"no such sentinel-ws endpoint: {request.path}",
                "endpoints": [f"{PREFIX}/status", f"{PREFIX}/diagnostics/websockets"],
            },
            status=404,
        )

    return [
        web.get(f"{PREFIX}/status", get_status),
        web.get(f"{PREFIX}/diagnostics/websockets", get_diagnostics),
        web.route("*", PREFIX + "{tail:(/.*)?}", unknown),
    ]
