"""Real peers on loopback: a scripted aiohttp upstream, a websockets echo server, the proxy."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import websockets
from aiohttp import WSMsgType, web

from sentinel_ws_proxy.proxy.config import ProxyConfig
from sentinel_ws_proxy.proxy.server import ProxyServer
from sentinel_ws_proxy.settings import parse_upstream

STEP = 10.0  # seconds any single await in a test may take


async def within(aw, seconds: float = STEP):
    """Await with a deadline, so a hang fails with a message instead of stalling."""
    return await asyncio.wait_for(aw, seconds)


@dataclass
class UpstreamLog:
    """What the scripted upstream saw, for assertions."""

    received: list[tuple[str, bytes | str]] = field(default_factory=list)
    handshake_headers: list[dict[str, str]] = field(default_factory=list)
    # (close code, reason) for a close frame, ("lost", None) for a TCP loss.
    ends: asyncio.Queue = field(default_factory=asyncio.Queue)
    ignore_close: bool = False


def scripted_upstream(log: UpstreamLog) -> web.Application:
    """An aiohttp server whose WebSocket obeys text commands ("close 4001 bye", "drop"...)."""

    async def ws_handler(request: web.Request) -> web.StreamResponse:
        log.handshake_headers.append(dict(request.headers))
        ws = web.WebSocketResponse(
            protocols=("chat",), autoping=False, autoclose=False, max_msg_size=64 * 1024 * 1024
        )
        ws.headers["X-Upstream"] = "scripted"
        ws.headers["Set-Cookie"] = "upstream_session=s3cr3t; HttpOnly"
        await ws.prepare(request)
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT:
                log.received.append(("text", msg.data))
                if not await run_command(request, ws, msg.data):
                    break
            elif msg.type is WSMsgType.BINARY:
                log.received.append(("binary", msg.data))
                await ws.send_bytes(msg.data)
            elif msg.type is WSMsgType.PING:
                log.received.append(("ping", msg.data))
                await ws.pong(msg.data)
            elif msg.type is WSMsgType.PONG:
                log.received.append(("pong", msg.data))
            elif msg.type is WSMsgType.CLOSE:
                log.ends.put_nowait((msg.data, msg.extra))
                if not log.ignore_close:
                    await ws.close(code=msg.data or 1000, message=(msg.extra or "").encode())
                else:
                    await asyncio.sleep(30)
                break
            else:
                log.ends.put_nowait(("lost", None))
                break
        return ws

    async def run_command(request: web.Request, ws: web.WebSocketResponse, text: str) -> bool:
        verb, _, arg = text.partition(" ")
        if verb == "close":
            code, _, reason = arg.partition(" ")
            await ws.send_frame(int(code).to_bytes(2, "big") + reason.encode(), WSMsgType.CLOSE)
            reply = await ws.receive()
            log.ends.put_nowait(
                (reply.data, reply.extra) if reply.type is WSMsgType.CLOSE else ("lost", None)
            )
            request.transport.close()
            return False
        if verb == "emptyclose":
            await ws.send_frame(b"", WSMsgType.CLOSE)
            reply = await ws.receive()
            log.ends.put_nowait((reply.data, reply.extra))
            request.transport.close()
            return False
        if verb == "sequence":
            # Known frames at known gaps, then a server close: material for replay.
            await ws.send_str("s0")
            await asyncio.sleep(0.1)
            await ws.send_bytes(b"\x01\x02")
            await asyncio.sleep(0.2)
            await ws.ping(b"p")
            await asyncio.sleep(0.3)
            await ws.send_str("s3")
            await ws.send_frame((4001).to_bytes(2, "big") + b"done", WSMsgType.CLOSE)
            reply = await ws.receive()
            log.ends.put_nowait((reply.data, reply.extra))
            request.transport.close()
            return False
        if verb == "idle":
            # Go quiet, then close as a server with an idle timeout would.
            await asyncio.sleep(float(arg))
            await ws.send_frame((4000).to_bytes(2, "big") + b"idle timeout", WSMsgType.CLOSE)
            reply = await ws.receive()
            log.ends.put_nowait((reply.data, reply.extra))
            request.transport.close()
            return False
        if verb == "drop":
            request.transport.close()
            return False
        if verb == "ping":
            await ws.ping(arg.encode())
        elif verb == "pong":
            await ws.pong(arg.encode())
        elif verb == "headers":
            await ws.send_str(json.dumps(log.handshake_headers[-1]))
        elif verb == "binary":
            await ws.send_bytes(bytes(range(256)) * (int(arg) // 256) + b"\x00" * (int(arg) % 256))
        elif verb == "silence":
            log.ignore_close = True
        else:
            await ws.send_str(text)
        return True

    async def reject(request: web.Request) -> web.Response:
        return web.json_response(
            {"detail": "Origin not allowed", "origin": request.headers.get("Origin")},
            status=403,
            headers={"X-Reject-Reason": "origin"},
        )

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, text="no such endpoint")

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://127.0.0.1:9/elsewhere"})

    async def api_echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "headers": dict(request.headers),
                "body_len": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
            },
            headers={"X-Echo": "1", "Set-Cookie": "a=b"},
            status=201 if request.method == "POST" else 200,
        )

    async def api_big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        for _ in range(16):
            await response.write(b"x" * 65536)
        await response.write_eof()
        return response

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/ws/reject", reject)
    app.router.add_get("/ws/missing", not_found)
    app.router.add_get("/ws/redirect", redirect)
    app.router.add_route("*", "/api/redirect", redirect)
    app.router.add_get("/api/big", api_big)
    app.router.add_route("*", "/api/{tail:.*}", api_echo)
    app.router.add_get("/{tail:.*}", ws_handler)
    return app


@contextlib.asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, UpstreamLog]]:
    log = UpstreamLog()
    async with serve_app(scripted_upstream(log)) as url:
        yield url, log


@pytest.fixture
async def echo_upstream() -> AsyncIterator[str]:
    """A websockets server that echoes every message (a second, independent implementation)."""

    async def echo(ws) -> None:
        async for message in ws:
            await ws.send(message)

    async with websockets.serve(echo, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def running_proxy(
    upstream_url: str, db: Path | None, *, sinks=(), **options
) -> AsyncIterator[ProxyServer]:
    options.setdefault("listen_port", 0)
    config = ProxyConfig(
        listen_host="127.0.0.1",
        upstream=parse_upstream(upstream_url),
        db_path=db,
        **options,
    )
    server = ProxyServer(config, sinks=sinks)
    await within(server.start())
    stopped = False

    async def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            await within(server.stop(), 20)

    server.stop_once = stop  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        await stop()


def ws_url(http_url: str, path: str) -> str:
    return http_url.replace("http://", "ws://", 1) + path


def rows(db: Path, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def recorded(db: Path, count_sql: str, at_least: int = 1, seconds: float = 10) -> None:
    """Wait until the writer has committed what count_sql counts: rows land a few ms
    after the event (batches), later on a loaded machine; a fixed sleep guesses."""
    deadline = time.monotonic() + seconds
    while rows(db, count_sql)[0][0] < at_least:
        assert time.monotonic() < deadline, f"never recorded: {count_sql} >= {at_least}"
        await asyncio.sleep(0.02)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "rec.db"


# -- Chromium, driven by Playwright (Debian's chromium, no browser download) ------------

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("SENTINEL_CHROMIUM") or shutil.which("chromium")
    path = path or shutil.which("chromium-browser")
    if path is None:
        missing("no chromium on PATH (apt-get install chromium)")
    return path


def missing(reason: str) -> None:
    if os.environ.get("SENTINEL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test required but {reason}")
    pytest.skip(reason)


@pytest.fixture
def async_playwright():
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("playwright is not installed (pip install -e '.[test]')")
    return async_playwright


@pytest.fixture(scope="module")
def localhost_certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, as a development server has."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key
