"""The proxy: one aiohttp app on one port for HTTP passthrough, WebSocket relay and /_sentinel/.

Optional fronts (the web app of `proxy --web`) are composed in by the caller, the
command line: the proxy knows them only as mounts, installers of routes on its app.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aiohttp import web

from sentinel_ws_proxy.events import ClosedBy, Event, SessionClosed, SessionOpened
from sentinel_ws_proxy.faults.engine import FaultEngine, Rejection
from sentinel_ws_proxy.guard import guard
from sentinel_ws_proxy.protocol import GOING_AWAY, status_phrase
from sentinel_ws_proxy.proxy import admin
from sentinel_ws_proxy.proxy.config import ProxyConfig
from sentinel_ws_proxy.proxy.frames import Deflate
from sentinel_ws_proxy.proxy.front import FrontProtocol, Refuse
from sentinel_ws_proxy.proxy.handshake import RequestHead, decode, simple_response, upstream_request
from sentinel_ws_proxy.proxy.log import Notices, quiet_aiohttp
from sentinel_ws_proxy.proxy.passthrough import pass_through
from sentinel_ws_proxy.proxy.relay import RECORDER, Relay
from sentinel_ws_proxy.proxy.stats import LiveStats
from sentinel_ws_proxy.proxy.takeover import takeover
from sentinel_ws_proxy.proxy.upstream import Upstream, UpstreamHandshake, UpstreamUnreachable
from sentinel_ws_proxy.recording.writer import RecordingWriter
from sentinel_ws_proxy.serving import Signals, bind, raise_open_file_limit
from sentinel_ws_proxy.settings import format_hostport

SHUTDOWN_REASON = "sentinel-ws proxy shutting down"
THROTTLE_POLL = 0.005  # how often paused relays look whether the recorder has caught up
FLUSH_NOTICE = 10_000  # at shutdown, say how many rows are left to write past this many
STOP_RETRY = 30.0  # at shutdown, how long a disk that refuses writes is retried


def _quiet(line: str) -> None:
    pass


class Sink(Protocol):
    def handle(self, event: Event) -> None: ...


# A mount: adds a front's routes (or a sub-app) to the proxy's app, behind the proxy's
# guard and before the route that forwards everything else upstream.
Mount = Callable[[web.Application], None]


class Proxy:
    """Relays every request to the configured upstream and reports each event to its sinks."""

    def __init__(
        self,
        config: ProxyConfig,
        *,
        recorder: RecordingWriter | None = None,
        sinks: Sequence[Sink] = (),
    ):
        self.config = config
        self.recorder = recorder
        self.stats = LiveStats()
        self.upstream = Upstream(
            config.upstream,
            connect_timeout=config.connect_timeout,
            close_timeout=config.close_timeout,
            tls=config.upstream_tls(),
            keep_host=config.keep_host,
        )
        self.relays: dict[int, Relay] = {}
        self.handshakes: set[asyncio.Future[None]] = set()
        self.started_at = time.time()
        handlers = [self.stats.handle, *(s.handle for s in sinks)]
        if recorder is not None:
            handlers.insert(0, recorder.handle)
        self._handlers = handlers
        # Frames, the hot path, go to the sinks that want them: the recorder, and sinks
        # that say so (wants_frames); the relay calls a lone one directly.
        frame_sinks = [recorder.handle] if recorder is not None else []
        frame_sinks += [s.handle for s in sinks if getattr(s, "wants_frames", False)]
        self.emit_frame: Callable[[Event], None] = (
            frame_sinks[0]
            if len(frame_sinks) == 1
            else (lambda e: [h(e) for h in frame_sinks])
            if frame_sinks
            else _ignore
        )
        first = recorder.first_session_id if recorder is not None else 1
        self._session_ids = itertools.count(first)
        self.faults = FaultEngine(self.emit, recorder.first_fault_id if recorder is not None else 1)
        self.throttled = False
        self._throttled_since = 0.0
        self.fronts = 0  # connections whose first request head is still being read
        self.accept_errors = 0
        self.slow_clients = 0  # let go for not sending a request head in time
        self.refused_connections = 0
        self.notices = Notices()

    def emit(self, event: Event) -> None:
        """Everything but frames, to every sink."""
        for handle in self._handlers:
            handle(event)

    def make_app(self, mounts: Sequence[Mount] = ()) -> web.Application:
        app = web.Application(middlewares=[guard(self.config.admin_token)])
        for install in mounts:
            install(app)
        app.add_routes(admin.routes(self))
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    def front(self, http: web.Server) -> asyncio.Protocol:
        open_now = len(self.relays) + len(http.connections) + self.fronts
        if open_now >= self.config.max_connections:
            self.refused_connections += 1
            self.notices.say(
                "max-connections",
                f"refusing connections: {open_now:,} open, --max-connections "
                f"{self.config.max_connections:,}",
            )
            return Refuse()
        return FrontProtocol(self.open_websocket, http, self, self.config.head_timeout)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        # An upgrade here came on a connection that served plain HTTP first (keep-alive).
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await takeover(request, self.open_websocket)
        return await pass_through(
            request, self.upstream, self.emit, timeout=self.config.upstream_timeout
        )

    # -- a WebSocket upgrade ----------------------------------------------------------

    async def open_websocket(self, front: FrontProtocol, request: RequestHead) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.handshakes.add(task)
        try:
            await self._open_websocket(front, request)
        finally:
            if task is not None:
                self.handshakes.discard(task)

    async def _open_websocket(self, front: FrontProtocol, request: RequestHead) -> None:
        transport = front.transport
        assert transport is not None
        session_id = next(self._session_ids)
        peer = transport.get_extra_info("peername")
        client_addr = str(peer[0]) if peer else ""
        raw_path, _, raw_query = request.target.decode("latin-1").partition("?")
        # Built once; each way the handshake ends fills in the rest (_replace).
        opened = SessionOpened(
            session_id=session_id,
            ts=time.time(),
            client_addr=client_addr,
            path=request.path,
            query=raw_query,
            upstream_url="",
            request_headers=request.head.text_headers(),
            handshake_status=0,
        )
        if not raw_path.startswith("/"):
            self._answer(front, opened, 400, "the request target must be a path (origin-form)")
            return
        opened = opened._replace(
            upstream_url=self.upstream.websocket_url(request.target.decode("latin-1"))
        )
        rejection = self.faults.on_handshake(session_id, request.path, client_addr)
        if rejection is not None:
            self._inject_rejection(front, opened, rejection)
            return
        scheme = "https" if transport.get_extra_info("sslcontext") else "http"
        head = upstream_request(
            request,
            host=self.upstream.authority,
            keep_host=self.upstream.keep_host,
            peer=client_addr,
            scheme=scheme,
        )
        client_host = request.head.get(b"host")
        kept = self.upstream.keep_host and client_host is not None
        opened = opened._replace(
            upstream_host=client_host.decode("latin-1") if kept else self.upstream.authority
        )
        try:
            upstream, handshake = await self.upstream.open_websocket(head, self.config.max_payload)
        except UpstreamUnreachable as exc:
            self._answer(front, opened, 502, str(exc), exc.client_text(self.config.upstream))
            return
        except asyncio.CancelledError:
            self._answer(front, opened, 503, "the proxy shut down during the handshake")
            raise
        if front.lost.done():
            upstream.abort()
            self._record_refusal(opened, 499, "client went away during the handshake", "client")
            return
        if handshake.reader.status == 101:
            self._start_relay(front, opened, upstream, handshake)
        else:
            await self._relay_refusal(front, opened, upstream, handshake)

    def _start_relay(
        self,
        front: FrontProtocol,
        opened: SessionOpened,
        upstream: asyncio.Transport,
        handshake: UpstreamHandshake,
    ) -> None:
        client = front.transport
        assert client is not None and handshake.reader.head is not None
        response = handshake.reader.head
        client.write(handshake.raw_head)
        extensions = response.get(b"sec-websocket-extensions")
        protocol = response.get(b"sec-websocket-protocol")
        config = self.config
        relay = Relay(
            opened.session_id,
            client=client,
            server=upstream,
            client_addr=opened.client_addr,
            path=opened.path,
            emit=self.emit_frame,
            max_payload=config.max_payload,
            deflate=Deflate.parse(decode(extensions) if extensions else None),
            close_timeout=config.close_timeout,
            max_message=config.max_message,
            faults=self.faults,
            after_feed=self._after_feed if self.recorder is not None else None,
            on_finished=self._finished,
        )
        self.emit(
            opened._replace(
                handshake_status=101,
                response_headers=response.text_headers(),
                subprotocol=decode(protocol) if protocol else None,
                response_line=handshake.reader.status_line,
            )
        )
        self.relays[relay.session_id] = relay
        self.faults.attach(relay)
        for leg in relay.legs.values():
            if self.throttled:
                leg.hold(RECORDER)
        leftover, early = bytes(handshake.leftover), bytes(front.buffer)
        if leftover:
            relay.s2c.feed(leftover)
        if early:
            relay.c2s.feed(early)
        for leg in relay.legs.values():
            if not leg.holds and not leg.lost:
                leg.transport.resume_reading()

    def _finished(self, relay: Relay, closed: SessionClosed) -> None:
        self.stats.relay_ended(relay)
        self.faults.detach(relay)
        self.relays.pop(relay.session_id, None)
        self.emit(closed)

    async def _relay_refusal(
        self,
        front: FrontProtocol,
        opened: SessionOpened,
        upstream: asyncio.Transport,
        handshake: UpstreamHandshake,
    ) -> None:
        """A refused upgrade reaches the client as the upstream sent it: status, headers, body."""
        client = front.transport
        reader = handshake.reader
        assert client is not None and reader.head is not None
        client.write(handshake.raw_head + reader.raw_after_head)
        handshake.forward_to = client
        upstream.resume_reading()
        if not reader.done:
            ended = asyncio.ensure_future(asyncio.shield(handshake.ended))
            await asyncio.wait(
                [ended, asyncio.ensure_future(asyncio.shield(front.lost))],
                timeout=self.config.connect_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        upstream.close()
        client.close()
        status, reason = reader.status, decode(reader.head.reason)
        self.emit(
            opened._replace(
                handshake_status=status,
                response_headers=reader.head.text_headers(),
                handshake_body=bytes(reader.head.body),
                error=f"upstream answered {status} {reason}".strip(),
                response_line=reader.status_line,
            )
        )
        self.emit(SessionClosed(opened.session_id, time.time(), None, None, "server", False))

    def _inject_rejection(
        self, front: FrontProtocol, opened: SessionOpened, rejection: Rejection
    ) -> None:
        said = f"sentinel-ws fault {rejection.fault_id}: {rejection.spec}"
        body = json.dumps({"detail": said}).encode()
        error = f"refused by fault {rejection.fault_id} ({rejection.spec})"
        self._answer(
            front, opened, rejection.status, error, body, "application/json",
            rejection.headers, rejection.fault_id,
        )  # fmt: skip

    def _answer(
        self,
        front: FrontProtocol,
        opened: SessionOpened,
        status: int,
        error: str,
        body: str | bytes | None = None,
        content_type: str = "text/plain; charset=utf-8",
        extra: dict[str, str] | None = None,
        fault_id: int | None = None,
    ) -> None:
        """An answer of the proxy's own instead of the upstream's."""
        data = (
            body if isinstance(body, bytes) else (body or f"sentinel-ws proxy: {error}\n").encode()
        )
        phrase = status_phrase(status, "Unknown")
        if front.transport is not None and not front.lost.done():
            front.transport.write(simple_response(status, phrase, data, content_type, extra))
            front.transport.close()
        self._record_refusal(
            opened, status, error, "proxy", fault_id, f"HTTP/1.1 {status} {phrase}"
        )

    def _record_refusal(
        self,
        opened: SessionOpened,
        status: int,
        error: str,
        closed_by: ClosedBy,
        fault_id: int | None = None,
        response_line: str | None = None,
    ) -> None:
        self.emit(
            opened._replace(handshake_status=status, error=error, response_line=response_line)
        )
        self.emit(
            SessionClosed(
                opened.session_id, time.time(), None, None, closed_by, False, fault_id=fault_id
            )
        )

    # -- keeping the recorder up ------------------------------------------------------

    def _after_feed(self) -> None:
        recorder = self.recorder
        if not self.throttled and recorder is not None and recorder.behind():
            self.throttled = True
            self._throttled_since = time.monotonic()
            for relay in self.relays.values():
                for leg in relay.legs.values():
                    leg.hold(RECORDER)
            asyncio.get_running_loop().call_later(THROTTLE_POLL, self._check_throttle)

    def _check_throttle(self) -> None:
        recorder = self.recorder
        if recorder is not None and not recorder.caught_up():
            asyncio.get_running_loop().call_later(THROTTLE_POLL, self._check_throttle)
            return
        self.throttled = False
        if recorder is not None:
            recorder.stats.throttled_seconds += time.monotonic() - self._throttled_since
        for relay in list(self.relays.values()):
            for leg in relay.legs.values():
                leg.release(RECORDER)

    def drop_all(self) -> None:
        """Cut every open session's connections at once (a hurried stop)."""
        for relay in list(self.relays.values()):
            relay.inject_abort(None)

    async def close_all(self, reason: str = SHUTDOWN_REASON) -> None:
        """Close every open session with 1001 from the proxy, in parallel; drop the stragglers."""
        for task in list(self.handshakes):
            task.cancel()
        waiting = [r.close_from_proxy(GOING_AWAY, reason) for r in list(self.relays.values())]
        if waiting:
            await asyncio.wait(waiting, timeout=self.config.close_timeout + 0.5)
        for relay in list(self.relays.values()):
            relay.inject_abort(None)
        if self.handshakes:
            await asyncio.wait(list(self.handshakes), timeout=1.0)


def _ignore(event: Event) -> None:
    pass


class ProxyServer:
    """A proxy listening on its port, with its recorder; start() then stop()."""

    def __init__(
        self, config: ProxyConfig, *, sinks: Sequence[Sink] = (), mounts: Sequence[Mount] = ()
    ):
        self.config = config
        self.sinks = sinks
        self.mounts = mounts
        self.recorder: RecordingWriter | None = None
        self.proxy: Proxy | None = None
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self.port = config.listen_port
        self.open_files: tuple[int, int] | None = None  # (soft, hard) after raising

    async def start(self) -> None:
        config = self.config
        self.open_files = raise_open_file_limit()
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_error)
        # Bind before touching the recording, so a busy port leaves no empty run behind.
        sock = bind(config.listen_host, config.listen_port)
        try:
            if config.db_path is not None:
                self.recorder = RecordingWriter(
                    config.db_path,
                    redactor=config.redactor(),
                    max_payload=config.max_payload,
                    listen=config.listen,
                    upstream=str(config.upstream),
                    backlog_high=config.backlog_high,
                    backlog_low=config.backlog_low,
                )
                self.recorder.open()
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self.proxy = Proxy(config, recorder=self.recorder, sinks=self.sinks)
        quiet_aiohttp(self.proxy.notices)
        for spec in config.faults:
            self.proxy.faults.add(spec)
        self._runner = web.AppRunner(
            self.proxy.make_app(self.mounts),
            access_log=None,
            shutdown_timeout=config.close_timeout,
            keepalive_timeout=config.keepalive_timeout,
        )
        await self._runner.setup()
        http = self._runner.server
        assert http is not None
        proxy = self.proxy
        self._server = await asyncio.get_running_loop().create_server(
            lambda: proxy.front(http), sock=sock, ssl=config.listen_tls(), backlog=1024
        )

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Failed accepts (out of file descriptors...) and the like: one line a second."""
        if self.proxy is None:
            loop.default_exception_handler(context)
            return
        exc = context.get("exception")
        message = context.get("message", "")
        if "accept" in message:
            self.proxy.accept_errors += 1
        self.proxy.notices.say(message, f"{message}: {exc}" if exc else message)

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls_cert else "http"
        return f"{scheme}://{format_hostport(self.config.listen_host, self.port)}"

    async def abort_start(self) -> None:
        """Undo a start that failed or was cancelled half-way: nothing may be left running."""
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.proxy is not None:
            await self.proxy.upstream.close()
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close, give_up_after=STOP_RETRY)

    async def stop(
        self, *, hurry: asyncio.Event | None = None, say: Callable[[str], None] = _quiet
    ) -> None:
        """Stop accepting, close open sessions, then write every pending row.

        Setting ``hurry`` (a second Ctrl-C) drops the sessions still closing
        instead of waiting for their peers; rows already received are written all
        the same.
        """
        assert self._runner is not None and self.proxy is not None
        if self._server is not None:
            self._server.close()  # stop accepting
        proxy = self.proxy
        if proxy.relays:
            say(f"closing {len(proxy.relays)} open sessions (Ctrl-C again: drop them now)…")
        closing = asyncio.ensure_future(proxy.close_all())
        hurried = asyncio.ensure_future((hurry or asyncio.Event()).wait())
        await asyncio.wait([closing, hurried], return_when=asyncio.FIRST_COMPLETED)
        if not closing.done():
            say(f"dropping {len(proxy.relays)} sessions without waiting for their peers…")
            proxy.drop_all()
            await closing
        hurried.cancel()
        await self._runner.cleanup()
        await proxy.upstream.close()
        if self.recorder is not None:
            pending = self.recorder.queued()
            if pending > FLUSH_NOTICE:
                say(f"writing {pending:,} recorded events to {self.recorder.path}…")
            await asyncio.to_thread(self.recorder.close, give_up_after=STOP_RETRY)


async def serve_until_signalled(
    config: ProxyConfig,
    *,
    sinks: Sequence[Sink] = (),
    mounts: Sequence[Mount] = (),
    on_ready: Callable[[ProxyServer], None] = lambda server: None,
    say: Callable[[str], None] = _quiet,
) -> ProxyServer:
    """Run the proxy until SIGINT or SIGTERM, then shut down without losing a row.

    A second signal drops open sessions instead of waiting for their peers and
    still writes every row received; a third abandons what is not written yet,
    says how much, and exits with status 3.
    """
    server = ProxyServer(config, sinks=sinks, mounts=mounts)

    def abandon() -> None:
        lost = server.recorder.abandon() if server.recorder is not None else 0
        say(f"third signal: exiting now; {lost:,} recorded events were not written")
        os._exit(3)

    # Handlers first: a Ctrl-C that lands while the proxy starts (or right after its
    # banner) must stop it like any other, not raise KeyboardInterrupt past the recorder.
    signals = Signals(abandon)
    try:
        try:
            await server.start()
        except BaseException:
            await server.abort_start()
            raise
        if not signals.first.is_set():
            on_ready(server)
        await signals.first.wait()
        await server.stop(hurry=signals.second, say=say)
    finally:
        signals.remove()
    return server
