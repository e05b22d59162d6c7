"""`sentinel-ws replay`: a stand-in server that answers as the recorded server did.

Each incoming WebSocket connection gets the next recorded session: its
handshake status (and body, for a refusal), its subprotocol, its
server-to-client frames at the recorded gaps divided by the speed, and its
ending (a close frame with the recorded code, or a dropped connection).
In sync mode, a server frame that originally followed client frames waits
for the client to send them, and differences are reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from sentinel_ws_proxy.protocol import close_payload
from sentinel_ws_proxy.proxy.headers import relayed_response_headers
from sentinel_ws_proxy.proxy.passthrough import pass_through
from sentinel_ws_proxy.proxy.upstream import Upstream
from sentinel_ws_proxy.recording.redact import REDACTED
from sentinel_ws_proxy.replay.recorded import DATA_OPCODES, RecordedFrame, RecordedSession
from sentinel_ws_proxy.serving import serve_app

OPCODES = {
    "text": WSMsgType.TEXT,
    "binary": WSMsgType.BINARY,
    "ping": WSMsgType.PING,
    "pong": WSMsgType.PONG,
}
NAMES = {v: k for k, v in OPCODES.items()}
SYNC_TIMEOUT = 30.0  # how long sync mode waits for the client's next frame
CLOSE_TIMEOUT = 5.0
STOP_TIMEOUT = 1.0  # how long a stopping replay waits for the clients' close replies
GOING_AWAY = RecordedFrame(0, "s2c", "close", b"", 1001, "replay stopped")


def same_payload(expected: RecordedFrame, opcode: str, payload: bytes) -> bool:
    if expected.opcode != opcode:
        return False
    if expected.payload == payload:
        return True
    if opcode == "text":
        try:
            return json.loads(expected.payload) == json.loads(payload)
        except ValueError:
            return False
    return False


def preview(payload: bytes, limit: int = 60) -> str:
    text = payload.decode("utf-8", errors="replace")
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


@dataclass
class Progress:
    session_id: int
    client: str
    started_at: float
    frames_total: int
    frames_sent: int = 0
    state: str = "playing"
    mismatches: list[str] = field(default_factory=list)


class Player:
    """Plays one recorded session to one connected client."""

    def __init__(
        self,
        session: RecordedSession,
        ws: web.WebSocketResponse,
        request: web.Request,
        progress: Progress,
        *,
        speed: float,
        sync: bool,
        report: Callable[[str], None],
    ):
        self.session = session
        self.ws = ws
        self.request = request
        self.progress = progress
        self.speed = speed
        self.sync = sync
        self.report = report
        self.incoming: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.client_done = asyncio.Event()
        self.halt = asyncio.Event()  # the client left, or the replay is stopping
        self.stopping = False
        self.finished = asyncio.Event()
        self.client_close: tuple[int, str] | None = None
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()

    async def play(self) -> None:
        reader = asyncio.ensure_future(self._read_client())
        try:
            await self._frames()
            await self._ending()
            if self.stopping:
                await self._wait_client(STOP_TIMEOUT)  # the client's close reply
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            transport = self.request.transport
            if transport is not None:
                transport.close()
            if not self.stopping:
                self.progress.state = "done"
            self.finished.set()

    async def _frames(self) -> None:
        waiting_for: list[RecordedFrame] = []
        for frame in self.session.frames:
            if frame.opcode == "close":
                return
            if frame.direction == "c2s":
                if self.sync and frame.opcode in DATA_OPCODES:
                    waiting_for.append(frame)
                continue
            if self.sync and waiting_for:
                if not await self._expect(waiting_for):
                    return
                # Keep the recorded gaps from the client's last frame onwards.
                self._t0 = self._loop.time() - waiting_for[-1].offset / self._speed_divisor
                waiting_for = []
            if not await self._wait_until(frame.offset):
                return
            if self.halt.is_set():
                return
            try:
                await self.ws.send_frame(frame.payload, OPCODES[frame.opcode])
            except ConnectionError:
                return
            self.progress.frames_sent += 1

    @property
    def _speed_divisor(self) -> float:
        return self.speed if self.speed > 0 else float("inf")

    async def _wait_until(self, offset: float) -> bool:
        """Sleep until the frame's time; False if the client left or the replay stops."""
        if self.speed > 0:
            delay = self._t0 + offset / self.speed - self._loop.time()
            if delay > 0:
                try:
                    await asyncio.wait_for(self.halt.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        return not self.halt.is_set()

    async def stop(self) -> None:
        """The replay is stopping: close with 1001 (going away), as a server shutting down."""
        if self.stopping or self.client_done.is_set():
            return
        self.stopping = True
        self.halt.set()
        self.progress.state = "stopped"
        await self._send_close(GOING_AWAY)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.finished.wait(), STOP_TIMEOUT + 1)

    async def _expect(self, frames: list[RecordedFrame]) -> bool:
        for frame in frames:
            index = self.session.frames.index(frame)
            got = await self._next_client_frame()
            if got is None:
                self._mismatch(f"frame {index}: the client closed instead of sending it")
                return False
            opcode, payload = got
            if not same_payload(frame, opcode, payload):
                self._mismatch(
                    f"frame {index}: expected {frame.opcode} {preview(frame.payload)}, "
                    f"got {opcode} {preview(payload)}"
                )
        return True

    async def _next_client_frame(self) -> tuple[str, bytes] | None:
        getter = asyncio.ensure_future(self.incoming.get())
        closed = asyncio.ensure_future(self.client_done.wait())
        done, _ = await asyncio.wait(
            {getter, closed}, timeout=SYNC_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        closed.cancel()
        if getter in done:
            return getter.result()
        getter.cancel()
        return None

    def _mismatch(self, text: str) -> None:
        line = f"session {self.session.id}, {text}"
        self.progress.mismatches.append(line)
        self.report(f"mismatch: {line}")

    async def _read_client(self) -> None:
        while True:
            msg = await self.ws.receive()
            name = NAMES.get(msg.type)
            if name is not None:
                self.incoming.put_nowait((name, msg.data))
                continue
            if msg.type is WSMsgType.CLOSE:
                self.client_close = (msg.data or 1005, msg.extra or "")
            self.client_done.set()
            self.halt.set()
            return

    async def _ending(self) -> None:
        if self.stopping:
            return
        session = self.session
        closes = [f for f in session.frames if f.opcode == "close"]
        first = closes[0] if closes else None
        if first is not None and first.direction == "s2c":
            # The server (or the proxy, towards the client) started the close.
            if await self._wait_until(first.offset):
                await self._send_close(first)
                await self._wait_client(CLOSE_TIMEOUT)
            return
        if first is None and session.closed_by == "server" and session.duration is not None:
            # The server vanished without a close frame: so do we.
            await self._wait_until(session.duration)
            return
        # The client ended it (or it never ended): wait for this client to do the same.
        await self._wait_client(None)
        if self.client_close is not None and not self.stopping:
            reply = session.server_close
            if reply is not None:
                await self._send_close(reply)
            else:
                code, reason = self.client_close
                await self._send_close(RecordedFrame(0, "s2c", "close", b"", code, reason))

    async def _send_close(self, frame: RecordedFrame) -> None:
        try:
            await self.ws.send_frame(
                close_payload(frame.close_code, frame.close_reason or ""), WSMsgType.CLOSE
            )
        except ConnectionError:
            pass

    async def _wait_client(self, timeout: float | None) -> None:
        try:
            await asyncio.wait_for(self.client_done.wait(), timeout)
        except asyncio.TimeoutError:
            pass


NO_HTTP = (
    "sentinel-ws replay: this server plays the WebSocket sessions recorded in {source} "
    "(see /_sentinel/status); it serves no pages. To load your app's page from this same "
    "origin, start the replay with --http-upstream URL (your frontend or dev server, e.g. "
    "--http-upstream http://localhost:5173): every request that is not a WebSocket "
    "handshake goes there.\n"
)


def _is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


class ReplayServer:
    """Hands recorded sessions to incoming connections, in order."""

    def __init__(
        self,
        sessions: list[RecordedSession],
        *,
        source: str,
        speed: float = 1.0,
        sync: bool = False,
        loop: bool = False,
        report: Callable[[str], None] = lambda line: None,
        http_upstream: Upstream | None = None,
    ):
        if not sessions:
            raise ValueError("nothing to replay")
        self.http_upstream = http_upstream
        self.sessions = sessions
        self.source = source
        self.speed = speed
        self.sync = sync
        self.loop = loop
        self.report = report
        self.next_index = 0
        self.played: list[Progress] = []
        self.finished = asyncio.Event()
        self._active = 0
        self._players: set[Player] = set()

    @property
    def mismatches(self) -> list[str]:
        return [m for p in self.played for m in p.mismatches]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_sentinel/status", self.status)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_shutdown.append(self._going_away)
        app.on_cleanup.append(self._close_upstream)
        return app

    async def _going_away(self, app: web.Application) -> None:
        await asyncio.gather(*(player.stop() for player in list(self._players)))

    async def _close_upstream(self, app: web.Application) -> None:
        if self.http_upstream is not None:
            await self.http_upstream.close()

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status_json())

    def status_json(self) -> dict[str, Any]:
        return {
            "replaying": self.source,
            "sessions": [s.id for s in self.sessions],
            "next": self.sessions[self.next_index].id
            if self.next_index < len(self.sessions)
            else None,
            "mode": "sync" if self.sync else "timed",
            "speed": self.speed,
            "loop": self.loop,
            "http_upstream": str(self.http_upstream.base) if self.http_upstream else None,
            "played": [p.__dict__ for p in self.played],
        }

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if not _is_upgrade(request):
            if self.http_upstream is not None:
                return await pass_through(request, self.http_upstream, lambda event: None)
            return web.Response(status=404, text=NO_HTTP.format(source=self.source))
        if self.next_index >= len(self.sessions):
            return web.Response(status=503, text="sentinel-ws replay: every session was played\n")
        session = self.sessions[self.next_index]
        if request.path != session.path:
            return web.Response(
                status=404,
                text=f"sentinel-ws replay: the next recorded session (#{session.id}) "
                f"is on {session.path}, not {request.path}\n",
            )
        self.next_index += 1
        if self.loop and self.next_index == len(self.sessions):
            self.next_index = 0
        self._active += 1
        try:
            return await self._serve(request, session)
        finally:
            self._active -= 1
            if not self.loop and self.next_index >= len(self.sessions) and not self._active:
                self.finished.set()

    async def _serve(self, request: web.Request, session: RecordedSession) -> web.StreamResponse:
        progress = Progress(
            session.id, request.remote or "", time.time(), len(session.sent_by("s2c"))
        )
        self.played.append(progress)
        self.report(f"connection from {progress.client}: playing session {session.id}")
        recorded = CIMultiDict((k, v) for k, v in session.response_headers.items() if v != REDACTED)
        if session.handshake_status != 101:
            progress.state = "done"
            return web.Response(
                status=session.handshake_status,
                headers=relayed_response_headers(recorded, websocket=False),
                body=session.handshake_body,
            )
        ws = web.WebSocketResponse(
            protocols=(session.subprotocol,) if session.subprotocol else (),
            autoping=False,
            autoclose=False,
            decode_text=False,
            max_msg_size=0,
        )
        ws.headers.extend(relayed_response_headers(recorded, websocket=True))
        await ws.prepare(request)
        player = Player(
            session, ws, request, progress, speed=self.speed, sync=self.sync, report=self.report
        )
        self._players.add(player)
        try:
            await player.play()
        finally:
            self._players.discard(player)
        return ws


async def serve_replay(
    server: ReplayServer, host: str, port: int, on_ready: Callable[[str], None]
) -> None:
    """Serve until every session was played (without --loop), or SIGINT/SIGTERM."""
    await serve_app(server.app(), host, port, on_ready, until=server.finished)
