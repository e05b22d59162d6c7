"""The proxy's own endpoints under /_sentinel/ (never forwarded)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sentinel_ws_proxy import __version__, timefmt
from sentinel_ws_proxy.faults.actions import ACTIONS
from sentinel_ws_proxy.faults.spec import FaultSpec, FaultSpecError, parse_spec
from sentinel_ws_proxy.guard import PREFIX

if TYPE_CHECKING:
    from sentinel_ws_proxy.proxy.server import Proxy

ONE_CONNECTION = tuple(name for name, action in ACTIONS.items() if action.on_one_connection)


def iso(ts: float | None) -> str | None:
    return None if ts is None else timefmt.iso(ts, utc=True)


def status(proxy: Proxy) -> dict[str, Any]:
    stats = proxy.stats
    recorder = proxy.recorder
    relays = list(proxy.relays.values())
    frames, sizes = stats.frames(relays), stats.bytes(relays)
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
            "pending": recorder.queued(),
            "last_commit": iso(recorder.stats.last_commit),
            "commit_lag_ms": recorder.stats.lag_ms(),
            "backlog_bytes": recorder.backlog(),
            "throttled_seconds": round(recorder.stats.throttled_seconds, 3),
            "errors": recorder.stats.errors,
            "last_error": recorder.stats.last_error,
            "paused": recorder.stats.paused_since is not None,
            "repaired": recorder.stats.repaired,
            "lost": recorder.stats.dropped,
            "lost_because": dict(recorder.stats.lost),
            "writer_alive": recorder.alive(),
            "writer_failed": recorder.stats.crashed,
            "file_recreated": recorder.stats.recreated,
        },
        "counters": {
            "sessions": stats.sessions,
            "active_sessions": len(proxy.relays),
            "handshake_failures": stats.handshake_failures,
            "frames_c2s": frames["c2s"],
            "frames_s2c": frames["s2c"],
            "bytes_c2s": sizes["c2s"],
            "bytes_s2c": sizes["s2c"],
            "close_codes": {str(k): v for k, v in sorted(stats.close_codes.items())},
            "http_requests": stats.http_requests,
            "open_connections": len(relays) + proxy.fronts,
            "refused_connections": proxy.refused_connections,
            "slow_clients_closed": proxy.slow_clients,
            "accept_errors": proxy.accept_errors,
        },
    }


def diagnostics(proxy: Proxy) -> dict[str, Any]:
    """Shaped like the Sentinel /api/system/diagnostics/websockets endpoint."""
    relays = list(proxy.relays.values())
    redactor = proxy.config.redactor()
    return {
        "active_connections": len(relays),
        "events_broadcast": proxy.stats.events_broadcast(relays),
        "last_event_time": iso(proxy.stats.last_event_time(relays)),
        "connection_info": [
            {
                "session_id": relay.session_id,
                "client_info": relay.client_addr,
                "path": redactor.path(relay.path),
                "connected_at": iso(relay.opened_at),
                "last_activity": iso(relay.last_activity),
                "frames_c2s": relay.frames["c2s"],
                "frames_s2c": relay.frames["s2c"],
                "bytes_c2s": relay.bytes["c2s"],
                "bytes_s2c": relay.bytes["s2c"],
            }
            for relay in relays
        ],
    }


async def _spec_from(request: web.Request) -> FaultSpec:
    """A fault from a POST body: {"spec": "..."} as JSON, or the spec string itself."""
    body = await request.text()
    if request.content_type == "application/json":
        try:
            body = json.loads(body).get("spec", "")
        except (ValueError, AttributeError):
            raise FaultSpecError('expected a JSON body {"spec": "..."}') from None
    return parse_spec(body)


def routes(proxy: Proxy) -> list[web.RouteDef]:
    async def get_status(request: web.Request) -> web.Response:
        return web.json_response(status(proxy))

    async def get_diagnostics(request: web.Request) -> web.Response:
        return web.json_response(diagnostics(proxy))

    async def list_faults(request: web.Request) -> web.Response:
        actions = {
            name: {
                "summary": action.summary,
                "usage": action.usage(),
                "settings": {k: s.help for k, s in action.settings().items()},
                "on_one_connection": action.on_one_connection,
            }
            for name, action in ACTIONS.items()
        }
        return web.json_response({"faults": proxy.faults.listing(), "actions": actions})

    async def add_fault(request: web.Request) -> web.Response:
        try:
            spec = await _spec_from(request)
        except FaultSpecError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(proxy.faults.add(spec).as_json(), status=201)

    async def remove_fault(request: web.Request) -> web.Response:
        raw = request.match_info["fault_id"]
        if not raw.isdigit() or not proxy.faults.remove(int(raw)):
            return web.json_response({"error": f"no fault {raw}"}, status=404)
        return web.json_response({"removed": int(raw)})

    async def reset_faults(request: web.Request) -> web.Response:
        return web.json_response({"removed": proxy.faults.clear()})

    async def act_on_connection(request: web.Request) -> web.Response:
        raw, action = request.match_info["session_id"], request.match_info["action"]
        if action not in ONE_CONNECTION:
            return web.json_response(
                {"error": f"{action!r} does not act on one connection: {'|'.join(ONE_CONNECTION)}"},
                status=404,
            )
        relay = proxy.relays.get(int(raw)) if raw.isdigit() else None
        if relay is None:
            return web.json_response({"error": f"no open session {raw}"}, status=404)
        settings = " ".join(f"{k}={v}" for k, v in request.query.items())
        try:
            spec = parse_spec(f"{action} {settings}")
        except FaultSpecError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        fault = proxy.faults.act(relay, spec)
        return web.json_response(
            {"session_id": relay.session_id, "action": action, "fault": fault.id}, status=202
        )

    async def unknown(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "error": f"no such sentinel-ws endpoint: {request.path}",
                "endpoints": [
                    f"{PREFIX}/status",
                    f"{PREFIX}/diagnostics/websockets",
                    f"{PREFIX}/faults",
                    f"{PREFIX}/connections/{{session_id}}/{'|'.join(ONE_CONNECTION)}",
                ],
            },
            status=404,
        )

    return [
        web.get(f"{PREFIX}/status", get_status),
        web.get(f"{PREFIX}/diagnostics/websockets", get_diagnostics),
        web.get(f"{PREFIX}/faults", list_faults),
        web.post(f"{PREFIX}/faults", add_fault),
        web.post(f"{PREFIX}/faults/reset", reset_faults),
        web.delete(f"{PREFIX}/faults/{{fault_id}}", remove_fault),
        web.post(f"{PREFIX}/connections/{{session_id}}/{{action}}", act_on_connection),
        web.route("*", PREFIX + "{tail:(/.*)?}", unknown),
    ]
