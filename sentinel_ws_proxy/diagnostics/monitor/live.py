"""A live server watched: its status endpoints polled over HTTP and a WebSocket of its own."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import websockets
from websockets.asyncio.client import ClientConnection

from sentinel_ws_proxy.diagnostics.health import (
    DIAGNOSTICS_PATH,
    MISSIONS_PATH,
    STATUS_PATH,
    Target,
    count_listed,
)
from sentinel_ws_proxy.diagnostics.monitor.state import LiveState
from sentinel_ws_proxy.diagnostics.test_client import USER_AGENT, describe_failure
from sentinel_ws_proxy.protocol import close_code_name


def event_details(event: dict) -> str:
    parts = []
    if "mission_id" in event:
        parts.append(f"mission {event['mission_id']}")
    if "message" in event:
        parts.append(str(event["message"]))
    if "connection_id" in event and not parts:
        parts.append(str(event["connection_id"]))
    return ": ".join(parts)


class LiveMonitor:
    """Polls the status endpoints and holds a WebSocket of its own.

    Used as `async with`: the HTTP session and the socket are open inside it."""

    def __init__(self, target: Target, interval: float):
        self.target = target
        self.interval = interval
        self.state = LiveState(target.http, target.ws(), target.origin)
        self.changed = asyncio.Event()
        self._ws = None
        self._reconnect_now = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self._holder: asyncio.Future | None = None
        self._last_poll = 0.0

    async def __aenter__(self) -> LiveMonitor:
        timeout = aiohttp.ClientTimeout(total=self.target.timeout)
        self._http = aiohttp.ClientSession(timeout=timeout)
        self._holder = asyncio.ensure_future(self.hold_socket())
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._holder is not None:
                self._holder.cancel()
                await asyncio.gather(self._holder, return_exceptions=True)
            await self.close()
        finally:
            if self._http is not None:
                await self._http.close()

    def error(self, text: str) -> None:
        self.state.errors.appendleft((time.time(), text))
        self.changed.set()

    async def poll(self) -> None:
        http, s = self._http, self.state
        assert http is not None, "poll inside `async with LiveMonitor(...)`"
        try:
            async with http.get(self.target.http + STATUS_PATH) as r:
                body = await r.json(content_type=None) if r.status < 400 else {}
                s.server = f"up ({r.status})" if r.status < 400 else f"error {r.status}"
                if r.status in (404, 405):
                    s.server = f"up (no {STATUS_PATH}: {r.status})"
                if isinstance(body, dict) and body.get("status"):
                    s.server = f"{body['status']} ({r.status})"
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as exc:
            s.server = "down"
            self.error(f"status: {describe_failure(getattr(exc, 'os_error', exc), s.target, 0)[1]}")
        for path, apply in ((DIAGNOSTICS_PATH, self._diagnostics), (MISSIONS_PATH, self._missions)):
            try:
                async with http.get(self.target.http + path) as r:
                    if r.status == 200:
                        apply(await r.json(content_type=None))
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError):
                pass
        s.updated = time.time()
        self.changed.set()

    async def tick(self) -> None:
        """Poll again once `interval` has passed since the last poll (the dashboard redraws
        more often, for the socket's events)."""
        if time.monotonic() - self._last_poll >= self.interval:
            self._last_poll = time.monotonic()
            await self.poll()

    async def first_look(self) -> None:
        """For a snapshot: one poll, then a moment for the socket to connect and bring the
        first events."""
        await self.poll()
        deadline = time.monotonic() + min(max(self.interval, 0.5), self.target.timeout)
        while time.monotonic() < deadline and not self.state.events:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break

    def _diagnostics(self, body: Any) -> None:
        if isinstance(body, dict):
            self.state.active_connections = body.get("active_connections", "?")
            self.state.events_broadcast = body.get("events_broadcast", "?")
            self.state.last_event = body.get("last_event_time")

    def _missions(self, body: Any) -> None:
        count = count_listed(body, "missions")
        if count is not None:
            self.state.missions = count

    async def hold_socket(self) -> None:
        """Stay connected; reconnect with backoff (1 s doubling to 30 s) when dropped."""
        delay = 1.0
        while True:
            try:
                self._ws = await websockets.connect(
                    self.state.ws_url,
                    origin=self.target.origin,  # type: ignore[arg-type]
                    open_timeout=self.target.timeout,
                    user_agent_header=USER_AGENT,
                )
            except Exception as exc:
                self.state.websocket = "disconnected"
                self.error(
                    f"websocket: {describe_failure(exc, self.state.ws_url, self.target.timeout)[1]}"
                )
            else:
                delay = 1.0
                self.state.websocket = "connected"
                self.changed.set()
                await self._listen(self._ws)
            self.state.websocket = f"reconnecting in {delay:g} s"
            self.changed.set()
            self._reconnect_now.clear()
            try:
                await asyncio.wait_for(self._reconnect_now.wait(), delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, 30.0)
            self.state.reconnects += 1

    async def _listen(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                try:
                    event = json.loads(message)
                except (ValueError, TypeError):
                    event = {"event_type": "message", "message": str(message)[:80]}
                if not isinstance(event, dict):
                    event = {"event_type": "message", "message": str(event)[:80]}
                self.state.events.appendleft(
                    (time.time(), str(event.get("event_type", "?")), event_details(event))
                )
                self.changed.set()
        except websockets.ConnectionClosed:
            pass
        self.error(f"websocket closed: {ws.close_code} {close_code_name(ws.close_code)}")

    async def reconnect(self) -> None:
        """The `r` key: drop our socket and connect again at once."""
        if self._ws is not None:
            await self._ws.close()
        self._reconnect_now.set()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
