"""The proxy: one aiohttp app on one port for HTTP passthrough, WebSocket relay and /_sentinel/."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from aiohttp import web
from multidict import CIMultiDictProxy

from sentinel_ws_proxy.events import Event, SessionClosed, SessionOpened
from sentinel_ws_proxy.faults.engine import FaultEngine
from sentinel_ws_proxy.faults.spec import FaultSpec
from sentinel_ws_proxy.proxy import admin
from sentinel_ws_proxy.proxy.config import ProxyConfig, format_hostport
from sentinel_ws_proxy.proxy.headers import forwarded_request_headers, relayed_response_headers
from sentinel_ws_proxy.proxy.passthrough import pass_through
from sentinel_ws_proxy.proxy.relay import Relay
from sentinel_ws_proxy.proxy.stats import LiveStats
from sentinel_ws_proxy.proxy.upstream import Upstream, UpstreamRejected, UpstreamUnreachable
from sentinel_ws_proxy.recording.redact import Redactor
from sentinel_ws_proxy.recording.writer import RecordingWriter
from sentinel_ws_proxy.serving import bind, until_signalled

SHUTDOWN_REASON = "sentinel-ws proxy shutting down"


class Sink(Protocol):
    def handle(self, event: Event) -> None: ...


def _pairs(headers: CIMultiDictProxy[str] | dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(headers.items())


def _offers_deflate(request: web.Request) -> bool:
    return "permessage-deflate" in request.headers.get("Sec-WebSocket-Extensions", "")


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
        )
        self.relays: dict[int, Relay] = {}
        self.started_at = time.time()
        handlers = [self.stats.handle, *(s.handle for s in sinks)]
        if recorder is not None:
            handlers.insert(0, recorder.handle)
        self._handlers = handlers
        first = recorder.first_session_id if recorder is not None else 1
        self._session_ids = itertools.count(first)
        self.faults = FaultEngine(self.emit, recorder.first_fault_id if recorder is not None else 1)

    def emit(self, event: Event) -> None:
        for handle in self._handlers:
            handle(event)

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[admin.guard(self.config.admin_token)])
        app.add_routes(admin.routes(self))
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.relay_websocket(request)
        return await pass_through(request, self.upstream, self.emit)

    async def relay_websocket(self, request: web.Request) -> web.StreamResponse:
        session_id = next(self._session_ids)
        rel = request.rel_url
        url = self.upstream.url_for(rel.raw_path, rel.raw_query_string, websocket=True)
        opened = {
            "session_id": session_id,
            "ts": time.time(),
            "client_addr": request.remote or "",
            "path": rel.path,
            "query": rel.raw_query_string,
            "upstream_url": str(url),
            "request_headers": _pairs(request.headers),
        }
        probe = web.WebSocketResponse()
        if not probe.can_prepare(request).ok:
            return self._refuse(opened, 400, "invalid WebSocket handshake from the client")
        fault = self.faults.on_handshake(session_id, rel.path, request.remote or "")
        if fault is not None:
            return self._inject_rejection(opened, fault.id, fault.spec)

        protocols = [
            p.strip()
            for value in request.headers.getall("Sec-WebSocket-Protocol", [])
            for p in value.split(",")
            if p.strip()
        ]
        try:
            upstream = await self.upstream.connect_websocket(
                url,
                forwarded_request_headers(request, websocket=True),
                protocols,
                compress=_offers_deflate(request),
                max_msg_size=self.config.max_message,
            )
        except UpstreamRejected as rejected:
            return self._relay_rejection(opened, rejected)
        except UpstreamUnreachable as exc:
            text = f"sentinel-ws proxy: upstream {self.config.upstream} unreachable: {exc}\n"
            return self._refuse(opened, 502, str(exc), text)

        client_ws = web.WebSocketResponse(
            protocols=[upstream.ws.protocol] if upstream.ws.protocol else (),
            autoping=False,
            autoclose=False,
            max_msg_size=self.config.max_message,
            compress="permessage-deflate" in upstream.headers.get("Sec-WebSocket-Extensions", ""),
            timeout=self.config.close_timeout,
            decode_text=False,
        )
        client_ws.headers.extend(relayed_response_headers(upstream.headers, websocket=True))
        try:
            await client_ws.prepare(request)
        except (ConnectionError, RuntimeError) as exc:
            upstream.drop()
            return self._refuse(opened, 499, f"client went away during the handshake: {exc}")

        self.emit(
            SessionOpened(
                **opened,
                handshake_status=101,
                response_headers=_pairs(upstream.headers),
                subprotocol=upstream.ws.protocol,
            )
        )
        relay = Relay(
            session_id,
            request,
            client_ws,
            upstream,
            self.emit,
            close_timeout=self.config.close_timeout,
            recorder=self.recorder,
            faults=self.faults,
        )
        self.relays[session_id] = relay
        self.faults.attach(relay)
        try:
            closed = await relay.run()
        finally:
            self.faults.detach(relay)
            del self.relays[session_id]
        self.emit(closed)
        return client_ws

    def _relay_rejection(self, opened: dict, rejected: UpstreamRejected) -> web.Response:
        self.emit(
            SessionOpened(
                **opened,
                handshake_status=rejected.status,
                response_headers=_pairs(rejected.headers),
                handshake_body=rejected.body,
                error=f"upstream answered {rejected.status} {rejected.reason}".strip(),
            )
        )
        self.emit(SessionClosed(opened["session_id"], time.time(), None, None, "server", False))
        return web.Response(
            status=rejected.status,
            reason=rejected.reason or None,
            headers=relayed_response_headers(rejected.headers, websocket=False),
            body=rejected.body,
        )

    def _inject_rejection(self, opened: dict, fault_id: int, spec: FaultSpec) -> web.Response:
        error = f"refused by fault {fault_id} ({spec.text})"
        self.emit(SessionOpened(**opened, handshake_status=spec.status, error=error))
        self.emit(
            SessionClosed(
                opened["session_id"], time.time(), None, None, "proxy", False, fault_id=fault_id
            )
        )
        headers = {"Retry-After": str(spec.retry_after)} if spec.retry_after is not None else {}
        return web.json_response(
            {"detail": f"sentinel-ws fault {fault_id}: {spec.text}"},
            status=spec.status,
            headers=headers,
        )

    def _refuse(
        self, opened: dict, status: int, error: str, text: str | None = None
    ) -> web.Response:
        self.emit(SessionOpened(**opened, handshake_status=status, error=error))
        self.emit(SessionClosed(opened["session_id"], time.time(), None, None, "proxy", False))
        return web.Response(status=status, text=text or f"sentinel-ws proxy: {error}\n")

    async def close_all(self, reason: str = SHUTDOWN_REASON) -> None:
        """Close every open session with 1001 from the proxy, in parallel."""
        relays = list(self.relays.values())
        if relays:
            await asyncio.gather(
                *(r.close_from_proxy(1001, reason) for r in relays), return_exceptions=True
            )


class ProxyServer:
    """A proxy listening on its port, with its recorder; start() then stop()."""

    def __init__(self, config: ProxyConfig, *, sinks: Sequence[Sink] = ()):
        self.config = config
        self.sinks = sinks
        self.recorder: RecordingWriter | None = None
        self.proxy: Proxy | None = None
        self._runner: web.AppRunner | None = None
        self.port = config.listen_port

    async def start(self) -> None:
        config = self.config
        # Bind before touching the recording, so a busy port leaves no empty run behind.
        sock = bind(config.listen_host, config.listen_port)
        try:
            if config.db_path is not None:
                self.recorder = RecordingWriter(
                    config.db_path,
                    redactor=Redactor.build(config.redact, config.redact_headers),
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
        for spec in config.faults:
            self.proxy.faults.add(spec)
        self._runner = web.AppRunner(
            self.proxy.make_app(), access_log=None, shutdown_timeout=config.close_timeout
        )
        await self._runner.setup()
        await web.SockSite(self._runner, sock, ssl_context=config.listen_tls()).start()

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls_cert else "http"
        return f"{scheme}://{format_hostport(self.config.listen_host, self.port)}"

    async def stop(self) -> None:
        """Stop accepting, close open sessions, then flush every pending row."""
        assert self._runner is not None and self.proxy is not None
        for site in list(self._runner.sites):
            await site.stop()
        try:
            await asyncio.wait_for(self.proxy.close_all(), self.config.close_timeout + 1)
        except asyncio.TimeoutError:
            pass
        await self._runner.cleanup()
        await self.proxy.upstream.close()
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)


async def serve_until_signalled(
    config: ProxyConfig,
    *,
    sinks: Sequence[Sink] = (),
    on_ready: Callable[[ProxyServer], None] = lambda server: None,
) -> ProxyServer:
    """Run the proxy until SIGINT or SIGTERM, then shut down without losing a row."""
    server = ProxyServer(config, sinks=sinks)
    await server.start()
    on_ready(server)
    try:
        await until_signalled()
    finally:
        await server.stop()
    return server
