"""The pages stack's Python backend: app sockets behind Vite, and a page app of its own.

    python -m tests.stacks.pages.backend --port P [--rotate-cookie] [--tick 1.0]

prints ``backend ready http://127.0.0.1:P`` once it listens (``--port 0`` picks one).

- ``/ws/app``, ``/ws/events``: the Vite page's app sockets (through Vite's proxy). Each sends
  ``{"type": "hello", ...}`` on connect and ``{"type": "tick", "n": ...}`` every ``--tick``
  seconds, and answers a client's text with ``{"type": "echo", ...}``.
- ``/api/hello``: JSON.
- ``/`` and ``/other.html``: a page app served by this server itself (no Vite), whose page keeps
  ``/ws/a`` and ``/ws/b`` open (``?n=1``: only ``/ws/a``) with the same probe and backoff as
  the Vite page (``public/probe.js``, served at ``/probe.js``).
- ``--rotate-cookie``: every HTTP response (pages and ``/api``) sets a fresh ``csrftoken``
  (64 random letters and digits, as Django's masked token changes on every answer); a
  ``sessionid`` cookie is set once and then kept, as Django's session is.
- ``/api/seen``: what this server saw, for ground truth: HTTP requests with their Sec-Fetch-*
  headers and cookies, and every socket with the close code it received or sent.

SIGTERM or SIGINT closes open sockets with 1001 and exits; SIGKILL drops them (no close frame).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import secrets
import signal
import string
import time
from pathlib import Path

from aiohttp import WSMsgType, web

HERE = Path(__file__).resolve().parent
PROBE = HERE / "public" / "probe.js"

TOKEN_CHARS = string.ascii_letters + string.digits

SOCKETS = web.AppKey("sockets", set)
SEEN = web.AppKey("seen", dict)
OPTIONS = web.AppKey("options", argparse.Namespace)
IDS = web.AppKey("ids", itertools.count)
STOPPING = web.AppKey("stopping", list)

PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>cookie pages: {name}</title>
    <link rel="icon" href="data:," />
    <script src="/probe.js"></script>
  </head>
  <body data-page="{name}">
    <h1>{name}</h1>
    <p><a id="next" href="/{next}">{next}</a></p>
    <pre id="status"></pre>
    <script>
      const n = Number(new URLSearchParams(location.search).get("n") ?? "2");
      const paths = ["/ws/a", "/ws/b"].slice(0, n);
      document.body.dataset.paths = paths.join(" ");
      for (const a of document.querySelectorAll("a[href]")) a.search = location.search;
      for (const path of paths) window.__probe.keep(path);
      fetch("/api/hello").then((r) => r.json())
        .then((b) => {{ document.body.dataset.api = b.hello; }})
        .catch(() => {{ document.body.dataset.api = "failed"; }});
      const status = document.getElementById("status");
      setInterval(() => {{
        status.textContent = JSON.stringify(window.__probe.state(), null, 1);
      }}, 250);
    </script>
  </body>
</html>
"""


def new_token() -> str:
    return "".join(secrets.choice(TOKEN_CHARS) for _ in range(64))


@web.middleware
async def cookies_and_seen(request: web.Request, handler):
    h = request.headers
    upgrade = h.get("Upgrade", "").lower() == "websocket"
    if request.path != "/api/seen":
        request.app[SEEN]["requests"].append(
            {
                "t": time.time(),
                "method": request.method,
                "path": request.path_qs,
                "upgrade": upgrade,
                "host": h.get("Host"),
                "origin": h.get("Origin"),
                "sec_fetch_mode": h.get("Sec-Fetch-Mode"),
                "sec_fetch_dest": h.get("Sec-Fetch-Dest"),
                "sec_fetch_site": h.get("Sec-Fetch-Site"),
                "cookie": h.get("Cookie"),
            }
        )
    response = await handler(request)
    if request.app[OPTIONS].rotate_cookie and not upgrade and request.path != "/api/seen":
        response.set_cookie("csrftoken", new_token(), path="/", samesite="Lax")
        if "sessionid" not in request.cookies:
            response.set_cookie("sessionid", secrets.token_hex(16), path="/", httponly=True)
    return response


async def socket_handler(request: web.Request) -> web.StreamResponse:
    app = request.app
    ws = web.WebSocketResponse(autoping=True, heartbeat=None)
    await ws.prepare(request)
    record = {
        "id": next(app[IDS]),
        "path": request.path,
        "opened": time.time(),
        "closed": None,
        "close_code": None,
        "ended_by": None,
        "cookie": request.headers.get("Cookie"),
        "host": request.headers.get("Host"),
        "origin": request.headers.get("Origin"),
    }
    app[SEEN]["sockets"].append(record)
    app[SOCKETS].add(ws)

    async def ticker() -> None:
        for n in itertools.count(1):
            await asyncio.sleep(app[OPTIONS].tick)
            await ws.send_str(json.dumps({"type": "tick", "path": request.path, "n": n}))

    tick = None
    try:
        hello = {"type": "hello", "path": request.path, "id": record["id"], "t": time.time()}
        await ws.send_str(json.dumps(hello))
        tick = asyncio.ensure_future(ticker())
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(json.dumps({"type": "echo", "data": msg.data}))
            elif msg.type is WSMsgType.CLOSE:
                record["ended_by"] = record["ended_by"] or "client"
                break
            elif msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED):
                record["ended_by"] = record["ended_by"] or ("server" if app[STOPPING] else "lost")
                break
            elif msg.type is WSMsgType.ERROR:
                record["ended_by"] = record["ended_by"] or "error"
                break
    except (ConnectionError, asyncio.CancelledError):
        record["ended_by"] = record["ended_by"] or "lost"
        raise
    finally:
        if tick is not None:
            tick.cancel()
        app[SOCKETS].discard(ws)
        record["closed"] = time.time()
        record["close_code"] = ws.close_code
    return ws


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": "world", "t": time.time()})


async def seen(request: web.Request) -> web.Response:
    return web.json_response(request.app[SEEN])


def page(name: str, next_page: str):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            text=PAGE.format(name=name, next=next_page),
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    return handler


async def probe(request: web.Request) -> web.Response:
    return web.Response(
        body=PROBE.read_bytes(),
        content_type="text/javascript",
        headers={"Cache-Control": "no-store"},
    )


async def close_sockets(app: web.Application) -> None:
    """On SIGTERM/SIGINT: 1001 to every open socket, as a server going down says."""
    app[STOPPING].append(time.time())
    for ws in list(app[SOCKETS]):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code=1001, message=b"server shutdown"), 2)


def make_app(options: argparse.Namespace) -> web.Application:
    app = web.Application(middlewares=[cookies_and_seen])
    app[OPTIONS] = options
    app[SOCKETS] = set()
    app[SEEN] = {"requests": [], "sockets": []}
    app[IDS] = itertools.count(1)
    app[STOPPING] = []
    app.on_shutdown.append(close_sockets)
    for path in ("/ws/app", "/ws/events", "/ws/a", "/ws/b"):
        app.router.add_get(path, socket_handler)
    app.router.add_get("/api/hello", hello)
    app.router.add_get("/api/seen", seen)
    app.router.add_get("/probe.js", probe)
    app.router.add_get("/", page("index", "other.html"))
    app.router.add_get("/index.html", page("index", "other.html"))
    app.router.add_get("/other.html", page("other", "index.html"))
    return app


async def serve(options: argparse.Namespace) -> None:
    runner = web.AppRunner(make_app(options), shutdown_timeout=2.0)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    site = web.TCPSite(runner, options.host, options.port, reuse_address=True)
    await site.start()
    port = runner.addresses[0][1]
    print(f"backend ready http://{options.host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tick", type=float, default=1.0, help="seconds between ticks")
    parser.add_argument("--rotate-cookie", action="store_true")
    options = parser.parse_args(argv)
    asyncio.run(serve(options))


if __name__ == "__main__":
    main()
