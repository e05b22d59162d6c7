"""Scripted clients that walk through the Sentinel troubleshooting stories, through the proxy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import websockets
from websockets.asyncio.client import ClientConnection

from sentinel_ws_proxy.demo.server import WS_PATH, DemoBackend

STEP = 10.0  # no single step of a scenario may hang longer
ENDED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


@dataclass
class Context:
    proxy_url: str
    backend: DemoBackend
    http: aiohttp.ClientSession

    def ws_url(self, path: str = WS_PATH) -> str:
        return self.proxy_url.replace("http://", "ws://", 1) + path

    async def connect(self, agent: str, path: str = WS_PATH, **options: Any) -> ClientConnection:
        ws = await asyncio.wait_for(
            websockets.connect(self.ws_url(path), user_agent_header=agent, **options), STEP
        )
        return ws

    def behave(self, **changes) -> None:
        self.backend.behaviour = replace(self.backend.behaviour, **changes)


async def recv(ws: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), STEP)


async def wait_closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    try:
        while True:
            await recv(ws)
    except websockets.ConnectionClosed:
        return ws.close_code, ws.close_reason


@dataclass(frozen=True)
class Scenario:
    name: str
    story: str
    expected: str  # the category its (first) session should get
    agent: str  # its client's User-Agent: how its sessions are found in the recording
    run: Callable[[Context, str], Awaitable[str]]


async def clean(ctx: Context, agent: str) -> str:
    ws = await ctx.connect(agent)
    await recv(ws)  # connection_established
    await ws.send('{"type": "health_check"}')
    await recv(ws)
    async with ctx.http.post(f"{ctx.proxy_url}/api/missions", json={"name": "Demo"}) as r:
        await r.read()
    await recv(ws)  # mission_created, broadcast over the socket
    await ws.close()
    return "opened, health check answered, mission event received, closed 1000"


async def navigation(ctx: Context, agent: str) -> str:
    ws = await ctx.connect(agent)
    await recv(ws)
    await ws.close(1001, "page unload")
    await asyncio.sleep(0.05)  # the next page loads and opens its own socket
    ws = await ctx.connect(agent)
    await recv(ws)
    await ws.close()
    return "closed 1001 on navigation, reconnected 50 ms later from the same client"


async def killed_tab(ctx: Context, agent: str) -> str:
    ws = await ctx.connect(agent)
    await recv(ws)
    ws.transport.abort()
    await asyncio.sleep(0.1)
    return "TCP connection dropped without a close frame"


async def refused(ctx: Context, agent: str, **options: Any) -> int | None:
    """The status a refused handshake got (None if it was accepted after all)."""
    try:
        ws = await ctx.connect(agent, **options)
    except websockets.InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return None


async def wrong_origin(ctx: Context, agent: str) -> str:
    status = await refused(ctx, agent, origin="http://evil.example")
    return f"handshake refused with {status}" if status else "unexpectedly accepted"


async def wrong_path(ctx: Context, agent: str) -> str:
    status = await refused(ctx, agent, path="/ws/mission-update")
    return f"handshake answered {status}" if status else "unexpectedly accepted"


async def misbehaved(ctx: Context, agent: str, **behaviour: Any) -> tuple[int | None, str | None]:
    """Connect while the server misbehaves as told; the close the client saw."""
    before = ctx.backend.behaviour
    ctx.behave(**behaviour)
    try:
        ws = await ctx.connect(agent)
        await recv(ws)
        return await wait_closed(ws)
    finally:
        ctx.backend.behaviour = before


async def server_drop(ctx: Context, agent: str) -> str:
    code, _ = await misbehaved(ctx, agent, mode="drop", after=0.3)
    return f"server vanished mid-session; the client saw {code}"


async def server_error(ctx: Context, agent: str) -> str:
    code, reason = await misbehaved(ctx, agent, mode="close_1011", after=0.3)
    return f"server closed with {code} {reason!r}"


async def idle(ctx: Context, agent: str) -> str:
    code, reason = await misbehaved(ctx, agent, idle_timeout=1.5)
    return f"silent for 1.5 s; server closed with {code} {reason!r}"


async def server_restart(ctx: Context, agent: str) -> str:
    ws = await ctx.connect(agent)
    await recv(ws)
    restart = f"{ctx.proxy_url}/api/system/websockets/restart"
    async with ctx.http.post(restart) as r:
        await r.read()
    code, _ = await wait_closed(ws)
    await asyncio.sleep(0.2)  # the client's backoff
    ws = await ctx.connect(agent)
    await recv(ws)
    await ws.close()
    return f"the server restarted its WebSocket system ({code}); the client was back 0.2 s later"


async def frozen_client(ctx: Context, agent: str) -> str:
    before = ctx.backend.behaviour
    ctx.behave(ping_interval=1.2)  # aiohttp then waits 0.6 s for the pong
    try:
        # A client whose pings go unanswered: a frozen tab, a suspended laptop. With
        # autoping off, aiohttp hands the pings over instead of answering them.
        ws = await asyncio.wait_for(
            ctx.http.ws_connect(ctx.ws_url(), autoping=False, headers={"User-Agent": agent}),
            STEP,
        )
        pings = 0
        while (msg := await asyncio.wait_for(ws.receive(), STEP)).type not in ENDED:
            pings += msg.type is aiohttp.WSMsgType.PING
        await ws.close()
    finally:
        ctx.backend.behaviour = before
    return f"{pings} ping(s) from the server went unanswered; it dropped the client"


SCENARIOS = (
    Scenario("clean session", "a healthy connection", "clean", "demo/clean-client", clean),
    Scenario("page navigation", "disconnects when navigating between pages", "navigation",
             "demo/browser-navigating", navigation),
    Scenario("tab killed", "a browser tab killed mid-session", "client_gone",
             "demo/killed-tab", killed_tab),
    Scenario("wrong Origin", "WebSocket 403 Forbidden (CORS/Origin)", "rejected",
             "demo/foreign-page", wrong_origin),
    Scenario("wrong path", "a WebSocket path the server does not serve", "not_found",
             "demo/typo", wrong_path),
    Scenario("server drop", "failed to send event: the connection vanished", "server_drop",
             "demo/stale-server-client", server_drop),
    Scenario("server error", "the server's handler crashed (1011)", "server_error",
             "demo/crash-witness", server_error),
    Scenario("idle timeout", "the server closes idle connections", "idle_timeout",
             "demo/quiet-client", idle),
    Scenario("server restart", "the server restarts its WebSocket system (1012)",
             "server_restart", "demo/restart-witness", server_restart),
    Scenario("frozen client", "a client that stops answering the server's pings",
             "client_unresponsive", "demo/frozen-tab", frozen_client),
)  # fmt: skip

# The demo server closes idle connections after 1.5 s; classify with a threshold below it.
DEMO_IDLE_THRESHOLD = 1.0
