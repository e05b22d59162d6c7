"""A small stand-in for the Sentinel Dashboard backend, with ways to misbehave on purpose.

It serves the endpoints the Sentinel tools expect (status, missions,
diagnostics, WebSocket restart), a tiny frontend, and /ws/mission-updates,
which greets, sends heartbeats and mission events, answers health checks,
refuses foreign Origins with 403, and closes idle connections.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from sentinel_ws_proxy import __version__
from sentinel_ws_proxy.demo import pages
from sentinel_ws_proxy.serving import serve_app
from sentinel_ws_proxy.settings import is_loopback_host

WS_PATH = "/ws/mission-updates"
MISBEHAVIOURS = ("normal", "reject", "drop", "close_1011", "stale")


@dataclass(frozen=True)
class Behaviour:
    """How the WebSocket endpoint treats new connections."""

    heartbeat: float = 15.0
    ping_interval: float = 0.0  # > 0: WebSocket pings; no pong within half of it drops the socket
    idle_timeout: float = 300.0
    events_every: float = 0.0  # 0: mission events only when the API creates one
    allowed_origins: tuple[str, ...] = ()  # besides loopback origins, always allowed
    mode: str = "normal"  # one of MISBEHAVIOURS
    after: float = 5.0  # seconds before "drop" or "close_1011" strikes


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class Connection:
    id: str
    ws: web.WebSocketResponse
    client: str
    connected_at: str = field(default_factory=now_iso)
    last_activity: str = field(default_factory=now_iso)
    last_heard: float = field(default_factory=time.monotonic)


class DemoBackend:
    """State and handlers of the demo server."""

    def __init__(self, behaviour: Behaviour = Behaviour()):
        self.behaviour = behaviour
        self.started = time.time()
        self.connections: dict[str, Connection] = {}
        self.events_broadcast = 0
        self.last_event_time: str | None = None
        self._ids = itertools.count(1)
        self._mission_ids = itertools.count(4)
        self.missions = [
            {"id": 1, "name": "Survey north ridge", "status": "active"},
            {"id": 2, "name": "Relay calibration", "status": "planned"},
            {"id": 3, "name": "Supply drop", "status": "completed"},
        ]
        self._background: list[asyncio.Task] = []
        self._pending: set[asyncio.Future] = set()

    # -- app ------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.get("/", self.dashboard),
                web.get("/missions/{id}", self.mission_page),
                web.get("/api/system/status", self.status),
                web.get("/api/missions", self.list_missions),
                web.post("/api/missions", self.create_mission),
                web.get("/api/system/diagnostics/websockets", self.diagnostics),
                web.post("/api/system/websockets/restart", self.restart),
                web.post("/api/demo/behaviour", self.set_behaviour),
                web.get(WS_PATH, self.websocket),
            ]
        )
        app.on_startup.append(self._start_background)
        app.on_shutdown.append(self._close_all)
        app.on_cleanup.append(self._stop_background)
        return app

    async def _start_background(self, app: web.Application) -> None:
        self._background.append(asyncio.ensure_future(self._heartbeats()))
        self._background.append(asyncio.ensure_future(self._mission_events()))

    async def _stop_background(self, app: web.Application) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _close_all(self, app: web.Application) -> None:
        for conn in list(self.connections.values()):
            await conn.ws.close(code=1001, message=b"server shutting down")

    # -- pages and API ----------------------------------------------------

    async def dashboard(self, request: web.Request) -> web.Response:
        return web.Response(text=pages.dashboard(self.missions), content_type="text/html")

    async def mission_page(self, request: web.Request) -> web.Response:
        mission = self._mission(request.match_info["id"])
        return web.Response(text=pages.mission(mission), content_type="text/html")

    def _mission(self, raw_id: str) -> dict:
        for mission in self.missions:
            if str(mission["id"]) == raw_id:
                return mission
        raise web.HTTPNotFound(text=f"no mission {raw_id}")

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "version": f"sentinel-demo {__version__}",
                "uptime_seconds": round(time.time() - self.started, 3),
                "websocket": {"path": WS_PATH, "active_connections": len(self.connections)},
            }
        )

    async def list_missions(self, request: web.Request) -> web.Response:
        return web.json_response(self.missions)

    async def create_mission(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        mission = {
            "id": next(self._mission_ids),
            "name": str(body.get("name") or "New mission"),
            "status": "planned",
        }
        self.missions.append(mission)
        await self.broadcast(
            {
                "event_type": "mission_created",
                "mission_id": mission["id"],
                "message": f"{mission['name']} created",
            }
        )
        return web.json_response(mission, status=201)

    async def diagnostics(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "active_connections": len(self.connections),
                "events_broadcast": self.events_broadcast,
                "last_event_time": self.last_event_time,
                "connection_info": [
                    {
                        "connection_id": c.id,
                        "client_info": c.client,
                        "connected_at": c.connected_at,
                        "last_activity": c.last_activity,
                    }
                    for c in self.connections.values()
                ],
            }
        )

    async def restart(self, request: web.Request) -> web.Response:
        # A restart clears a wedged connection manager: stale mode ends here.
        if self.behaviour.mode == "stale":
            self.behaviour = replace(self.behaviour, mode="normal")
        closing = list(self.connections.values())
        for conn in closing:
            await conn.ws.close(code=1012, message=b"websocket system restarting")
        return web.json_response({"restarted": True, "closed_connections": len(closing)})

    async def set_behaviour(self, request: web.Request) -> web.Response:
        """Change how new connections are treated (the demo's scenarios use this)."""
        try:
            changes = await request.json()
            if changes.get("mode", "normal") not in MISBEHAVIOURS:
                raise ValueError(f"mode must be one of {', '.join(MISBEHAVIOURS)}")
            allowed = {"mode", "after", "heartbeat", "idle_timeout", "events_every"}
            unknown = set(changes) - allowed
            if unknown:
                raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
            self.behaviour = replace(self.behaviour, **changes)
        except (ValueError, TypeError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.behaviour.__dict__)

    # -- the WebSocket ----------------------------------------------------

    def origin_allowed(self, origin: str | None) -> bool:
        if not origin:
            return True  # not a browser: command-line clients send no Origin
        if origin in self.behaviour.allowed_origins:
            return True
        host = urlsplit(origin).hostname or ""
        return is_loopback_host(host)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        behaviour = self.behaviour
        origin = request.headers.get("Origin")
        if behaviour.mode == "reject":
            return web.json_response({"detail": "WebSocket connections are disabled"}, status=403)
        if not self.origin_allowed(origin):
            return web.json_response({"detail": "Origin not allowed", "origin": origin}, status=403)
        ws = web.WebSocketResponse(heartbeat=behaviour.ping_interval or None)
        await ws.prepare(request)
        conn = Connection(f"conn-{next(self._ids)}", ws, request.remote or "")
        self.connections[conn.id] = conn
        strike = None
        if behaviour.mode in ("drop", "close_1011"):
            strike = asyncio.get_running_loop().call_later(
                behaviour.after, self._misbehave, conn, request, behaviour.mode
            )
        try:
            await self.send(
                conn, {"event_type": "connection_established", "connection_id": conn.id}
            )
            await self._serve(conn, behaviour)
        finally:
            if strike is not None:
                strike.cancel()
            self.connections.pop(conn.id, None)
        return ws

    def _misbehave(self, conn: Connection, request: web.Request, mode: str) -> None:
        if mode == "drop" and request.transport is not None:
            request.transport.close()  # TCP gone, no close frame
        elif mode == "close_1011":
            task = asyncio.ensure_future(conn.ws.close(code=1011, message=b"internal error"))
            self._pending.add(task)  # keep a reference until it is done
            task.add_done_callback(self._pending.discard)

    async def _serve(self, conn: Connection, behaviour: Behaviour) -> None:
        while True:
            idle_left = behaviour.idle_timeout - (time.monotonic() - conn.last_heard)
            try:
                msg = await conn.ws.receive(timeout=max(idle_left, 0.001))
            except asyncio.TimeoutError:
                await conn.ws.close(code=1000, message=b"idle timeout")
                return
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
            conn.last_heard = time.monotonic()
            conn.last_activity = now_iso()
            if behaviour.mode == "stale":
                continue  # a stale connection: reads, never answers
            if msg.type is WSMsgType.TEXT:
                await self._answer(conn, msg.data)

    async def _answer(self, conn: Connection, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = {}
        if isinstance(message, dict) and message.get("type") == "health_check":
            await self.send(
                conn,
                {
                    "event_type": "health_check_response",
                    "status": "healthy",
                    "connection_id": conn.id,
                    "received": message,
                },
            )
        else:
            await self.send(conn, {"event_type": "echo", "message": text})

    async def send(self, conn: Connection, event: dict) -> None:
        if self.behaviour.mode == "stale" and event["event_type"] != "connection_established":
            return
        event = {**event, "timestamp": now_iso()}
        try:
            await conn.ws.send_str(json.dumps(event))
        except ConnectionError:
            return  # "failed to send event": the socket is gone
        conn.last_activity = event["timestamp"]

    async def broadcast(self, event: dict) -> None:
        self.events_broadcast += 1
        self.last_event_time = now_iso()
        for conn in list(self.connections.values()):
            await self.send(conn, event)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.behaviour.heartbeat)
            for conn in list(self.connections.values()):
                await self.send(conn, {"event_type": "heartbeat"})

    async def _mission_events(self) -> None:
        steps = itertools.cycle(("mission_updated", "mission_completed", "mission_created"))
        while True:
            every = self.behaviour.events_every
            await asyncio.sleep(every if every > 0 else 1.0)
            if every <= 0 or not self.connections:
                continue
            kind = next(steps)
            mission = self.missions[self.events_broadcast % len(self.missions)]
            await self.broadcast(
                {
                    "event_type": kind,
                    "mission_id": mission["id"],
                    "message": f"{mission['name']}: {kind.removeprefix('mission_')}",
                }
            )


async def start_demo_server(
    behaviour: Behaviour, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, DemoBackend, int]:
    """Start the demo backend; returns its runner (for cleanup), state and port."""
    backend = DemoBackend(behaviour)
    runner = web.AppRunner(backend.app(), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, backend, runner.addresses[0][1]


async def serve_demo_server(
    behaviour: Behaviour, host: str, port: int, on_ready: Callable[[str], None]
) -> None:
    """Run the demo backend until SIGINT or SIGTERM."""
    await serve_app(DemoBackend(behaviour).app(), host, port, on_ready)
