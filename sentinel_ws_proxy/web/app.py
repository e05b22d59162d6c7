"""`sentinel-ws web` and `proxy --web`: the recording in the browser, under /_sentinel/ui/.

A JSON API over RecordingView, the page and its two assets (no build step, no
CDN), and a server-sent event stream that says when the recording changed.
The same app is mounted in the proxy by `proxy --web` (its own traffic answered
by the proxy, never forwarded nor recorded) and served alone by `sentinel-ws web`;
in both the admin API's guard (guard.py) applies: loopback clients, a Host naming
this machine, no other Origin.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from sentinel_ws_proxy.guard import guard
from sentinel_ws_proxy.recording.har import export_har
from sentinel_ws_proxy.recording.schema import RecordingError
from sentinel_ws_proxy.recording.search import SearchError
from sentinel_ws_proxy.recording.transfer import export_tables, to_jsonl
from sentinel_ws_proxy.web.view import RecordingView

PREFIX = "/_sentinel/ui"
POLL = 0.25  # seconds between looks at the recording for the live stream
KEEPALIVE = 15.0  # seconds between comments on an idle event stream
ASSETS = {
    "app.js": "text/javascript",
    "app.css": "text/css",
}
# The page runs only its own script: a recorded payload can never become code.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STOPPING = web.AppKey("stopping", asyncio.Event)


def asset(name: str) -> bytes:
    return resources.files("sentinel_ws_proxy.web").joinpath("static", name).read_bytes()


@web.middleware
async def hardened(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.update(SECURITY_HEADERS)
    return response


def ui_app(view: RecordingView) -> web.Application:
    """The app, to mount at PREFIX."""
    app = web.Application(middlewares=[hardened])
    app[STOPPING] = asyncio.Event()

    async def stop_streams(app: web.Application) -> None:
        app[STOPPING].set()

    app.on_shutdown.append(stop_streams)

    def api(method: Callable[[web.Request], Any]) -> Callable[[web.Request], Awaitable[Any]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                found = await asyncio.to_thread(method, request)
            except RecordingError as exc:
                return web.json_response({"error": str(exc)}, status=404)
            except (SearchError, ValueError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            if isinstance(found, web.StreamResponse):
                return found
            return web.json_response(found, dumps=_dumps)

        return handle

    def session_id(request: web.Request) -> int:
        raw = request.match_info["session_id"]
        if not raw.isdigit():
            raise RecordingError(f"no session {raw!r}")
        return int(raw)

    def export(request: web.Request) -> web.Response:
        sid = session_id(request)
        fmt = request.query.get("format", "har")
        recording = view.recording()
        recording.session_row(sid)  # a clear 404 for an unknown session
        if fmt == "jsonl":
            body = "\n".join(to_jsonl(export_tables(recording, [sid]))) + "\n"
            kind = "application/x-ndjson"
        elif fmt == "har":
            body = json.dumps(export_har(recording, [sid]), indent=2, ensure_ascii=False)
            kind = "application/json"
        else:
            raise ValueError(f"format {fmt!r}: har or jsonl")
        return web.Response(
            text=body,
            content_type=kind,
            headers={"Content-Disposition": f'attachment; filename="session-{sid}.{fmt}"'},
        )

    def search(request: web.Request) -> dict[str, Any]:
        raw = request.query.get("session")
        within = int(raw) if raw and raw.isdigit() else None
        return view.search(request.query.get("q", ""), within)

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=asset("index.html"), content_type="text/html", charset="utf-8")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.Response(body=asset(name), content_type=ASSETS[name], charset="utf-8")

    async def live(request: web.Request) -> web.StreamResponse:
        """`change` whenever the recording changed; the page fetches what it shows."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        await response.write(b"retry: 1000\n\n")
        seen = await asyncio.to_thread(view.version)
        quiet = 0.0
        stopping = request.app[STOPPING]
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), POLL)
            except asyncio.TimeoutError:
                pass
            now = await asyncio.to_thread(view.version)
            quiet += POLL
            if now != seen:
                seen, quiet = now, 0.0
                await response.write(f"event: change\ndata: {now[0]}.{now[1]}\n\n".encode())
            elif quiet >= KEEPALIVE:
                quiet = 0.0
                await response.write(b": still here\n\n")
        return response

    app.add_routes(
        [
            web.get("/", page),
            web.get("/static/{name}", static),
            web.get("/api/summary", api(lambda r: view.summary())),
            web.get("/api/sessions", api(lambda r: view.sessions(dict(r.query)))),
            web.get("/api/sessions/{session_id}", api(lambda r: view.session(session_id(r)))),
            web.get(
                "/api/sessions/{session_id}/messages",
                api(lambda r: view.messages(session_id(r), _int(r.query.get("after")))),
            ),
            web.get("/api/sessions/{session_id}/export", api(export)),
            web.get("/api/chains", api(lambda r: view.chains(dict(r.query)))),
            web.get("/api/search", api(search)),
            web.get("/api/live", live),
        ]
    )
    return app


def mount(parent: web.Application, view: RecordingView) -> None:
    """The app under PREFIX of another app (the proxy's); PREFIX alone redirects."""

    async def to_slash(request: web.Request) -> web.Response:
        raise web.HTTPFound(PREFIX + "/")

    async def close(app: web.Application) -> None:
        view.close()

    parent.router.add_get(PREFIX, to_slash)
    parent.add_subapp(PREFIX, ui_app(view))
    parent.on_cleanup.append(close)


def proxy_mount(db: Path) -> Callable[[web.Application], None]:
    """`proxy --web`: the app over the recording `db`, mounted on the proxy's own app when
    the proxy builds it (its recording exists by then), behind the proxy's guard."""

    def install(proxy_app: web.Application) -> None:
        mount(proxy_app, RecordingView(db))

    return install


def standalone(view: RecordingView, token: str | None = None) -> web.Application:
    """`sentinel-ws web`: the app, guarded as the admin API is; / leads to it."""
    app = web.Application(middlewares=[guard(token)])

    async def home(request: web.Request) -> web.Response:
        raise web.HTTPFound(PREFIX + "/")

    app.router.add_get("/", home)
    mount(app, view)
    return app


def _int(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_bytes)


def _bytes(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON")
