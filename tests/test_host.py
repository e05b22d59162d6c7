"""Issue 19 items 6 and 7: the Host the upstream gets, and upgrades an upstream closes unanswered.

Also the web view's heading while the recording is being classified (no false "0 failures").
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from sentinel_ws_proxy.proxy.config import ProxyConfig
from sentinel_ws_proxy.proxy.upstream import CLOSED_WITHOUT_ANSWER, Upstream
from sentinel_ws_proxy.settings import ConfigError, parse_upstream
from sentinel_ws_proxy.web.app import standalone
from sentinel_ws_proxy.web.view import RecordingView
from tests.conftest import recorded, rows, running_proxy, serve_app, within, ws_url
from tests.test_cli import cli_process, printed_url
from tests.test_web import chromium  # noqa: F401  (the fixture)

CLIENT_HOST = "Devbox.Test:5173"  # what a browser's address bar said; nothing resolves it
UPGRADE_LINES = [
    b"GET /ws?room=1 HTTP/1.1",
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"host: " + CLIENT_HOST.encode(),  # not first, not capitalised: kept as it came
    b"Origin: http://devbox.test:5173",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    b"Sec-WebSocket-Version: 13",
]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_upstream(handle: Handler, **ssl_options) -> AsyncIterator[int]:
    """An asyncio server on loopback running handle for each connection; yields its port."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0, **ssl_options)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await within(server.wait_closed())


def head_catcher(heads: list[bytes]) -> Handler:
    """Keeps each request head as bytes, answers 204 (a refused upgrade, for an upgrade)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            heads.append(await within(reader.readuntil(b"\r\n\r\n")))
            writer.write(b"HTTP/1.1 204 No Content\r\nX-Seen: 1\r\nConnection: close\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()

    return handle


def host_lines(head: bytes) -> list[bytes]:
    return [line for line in head.split(b"\r\n") if line.lower().startswith(b"host:")]


async def raw_exchange(proxy_url: str, request: bytes) -> bytes:
    """Send request bytes to the proxy; everything it answers until it closes."""
    host, port = urlsplit(proxy_url).hostname, urlsplit(proxy_url).port
    reader, writer = await within(asyncio.open_connection(host, port))
    try:
        writer.write(request)
        return await within(reader.read())
    finally:
        writer.close()


# -- the Host rule ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "keep", "upstream"])
async def test_upgrade_host_is_the_clients_for_a_loopback_upstream_unless_told(mode, db):
    heads: list[bytes] = []
    async with (
        raw_upstream(head_catcher(heads)) as port,
        running_proxy(f"http://127.0.0.1:{port}", db, host_header=mode) as proxy,
    ):
        answer = await raw_exchange(proxy.url, b"\r\n".join(UPGRADE_LINES) + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 204 No Content\r\nX-Seen: 1\r\n")
    (head,) = heads
    lines = head.split(b"\r\n")
    proxy_authority = proxy.url.removeprefix("http://").encode()
    if mode == "upstream":
        assert lines[:2] == [UPGRADE_LINES[0], b"Host: 127.0.0.1:%d" % port]
        assert host_lines(head) == [lines[1]]
    else:
        # The client's Host, where and as the client wrote it; nothing else changed.
        assert lines[: len(UPGRADE_LINES)] == UPGRADE_LINES
        assert host_lines(head) == [b"host: " + CLIENT_HOST.encode()]
    # X-Forwarded-* as before, whichever Host went.
    assert b"X-Forwarded-Host: " + CLIENT_HOST.encode() in lines
    assert b"X-Forwarded-Proto: http" in lines and b"X-Forwarded-For: 127.0.0.1" in lines
    assert proxy_authority not in head  # the proxy never put its own name in


@pytest.mark.parametrize("mode", ["auto", "upstream"])
async def test_plain_http_host_is_the_clients_for_a_loopback_upstream_unless_told(mode, db):
    """aiohttp writes a Host it is given as it is, and only that one."""
    heads: list[bytes] = []
    async with (
        raw_upstream(head_catcher(heads)) as port,
        running_proxy(f"http://127.0.0.1:{port}", db, host_header=mode) as proxy,
        aiohttp.ClientSession() as http,
        http.get(proxy.url + "/page?x=1", headers={"Host": CLIENT_HOST}) as response,
    ):
        assert response.status == 204 and response.headers["X-Seen"] == "1"
    (head,) = heads
    assert head.startswith(b"GET /page?x=1 HTTP/1.1\r\n")
    expected = CLIENT_HOST if mode == "auto" else f"127.0.0.1:{port}"
    assert host_lines(head) == [b"Host: " + expected.encode()]
    assert b"\r\nX-Forwarded-Host: " + CLIENT_HOST.encode() + b"\r\n" in head


def origin_checking_server(seen: list[str]) -> web.Application:
    """Like Jupyter or Django's CSRF check: an Origin that is not this Host is refused."""

    async def ws(request: web.Request) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        seen.append(host)
        if urlsplit(request.headers.get("Origin", "")).netloc != host:
            return web.Response(status=403, text=f"Origin does not match Host {host}")
        socket_ = web.WebSocketResponse()
        await socket_.prepare(request)
        await socket_.send_str(host)
        await socket_.close()
        return socket_

    async def page(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Host", ""))
        return web.json_response({"host": request.headers.get("Host")})

    app = web.Application()
    app.router.add_get("/ws", ws)
    app.router.add_get("/page", page)
    return app


@pytest.mark.parametrize("mode", ["auto", "upstream"])
async def test_a_page_served_through_the_proxy_passes_an_origin_check(mode, db):
    """The browser's Origin is the proxy's address: kept Host matches it, a rewritten one not."""
    seen: list[str] = []
    async with (
        serve_app(origin_checking_server(seen)) as upstream_url,
        running_proxy(upstream_url, db, host_header=mode) as proxy,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(proxy.url + "/page") as response:
            page_host = (await response.json())["host"]
        proxy_authority = proxy.url.removeprefix("http://")
        upstream_authority = upstream_url.removeprefix("http://")
        try:
            ws = await within(http.ws_connect(ws_url(proxy.url, "/ws"), origin=proxy.url))
        except aiohttp.WSServerHandshakeError as exc:
            status = exc.status
        else:
            status = 101
            assert (await within(ws.receive())).data == proxy_authority
            await ws.close()
    if mode == "auto":
        assert (page_host, status) == (proxy_authority, 101)
        assert seen == [proxy_authority, proxy_authority]
    else:
        assert (page_host, status) == (upstream_authority, 403)
        assert seen == [upstream_authority, upstream_authority]
        # The advice names the cause and the option (issue 19 item 6).
        from sentinel_ws_proxy.analysis.report import Window, failure_report
        from sentinel_ws_proxy.recording.reader import Recording

        with Recording(db) as recording:
            (verdict,) = failure_report(recording, Window()).classified.verdicts
        assert verdict.category == "rejected"
        said = " ".join(verdict.evidence)
        assert f"upstream got Host {upstream_authority}" in said and "--host-header keep" in said


async def test_tls_upstream_gets_its_own_name_in_sni_whatever_host_says(localhost_certificate, db):
    cert, key = localhost_certificate
    names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _context: names.append(name)
    heads: list[bytes] = []
    async with raw_upstream(head_catcher(heads), ssl=context) as port:
        upstream = f"https://localhost:{port}"
        async with running_proxy(upstream, db, upstream_ca=cert) as proxy:
            assert proxy.config.keep_host  # localhost is loopback
            await raw_exchange(proxy.url, b"\r\n".join(UPGRADE_LINES) + b"\r\n\r\n")
            async with (
                aiohttp.ClientSession() as http,
                http.get(proxy.url + "/page", headers={"Host": CLIENT_HOST}) as response,
            ):
                assert response.status == 204
    assert names == ["localhost", "localhost"]
    assert [host_lines(h) for h in heads] == [
        [b"host: " + CLIENT_HOST.encode()],
        [b"Host: " + CLIENT_HOST.encode()],
    ]


def test_auto_rule_keeps_host_for_this_machine_and_rewrites_it_for_a_named_remote():
    """A decision on the configuration only: nothing connects anywhere."""

    def config(upstream: str, mode: str = "auto") -> ProxyConfig:
        return ProxyConfig(upstream=parse_upstream(upstream), host_header=mode)

    for local in (
        "http://localhost:8001",
        "http://LOCALHOST:8001",
        "http://127.0.0.1:8001",
        "http://127.3.2.1:8001",
        "http://[::1]:8001",
        f"http://{socket.gethostname()}:8001",
        "https://localhost",
    ):
        assert config(local).keep_host, local
    for remote in ("https://api.example.com", "http://10.1.2.3:8001", "http://[2001:db8::1]:80"):
        assert not config(remote).keep_host, remote
        assert config(remote, "keep").keep_host
    assert not config("http://localhost:8001", "upstream").keep_host

    assert config("http://localhost:8001").host_header_choice == "kept (loopback upstream)"
    assert (
        config(f"http://{socket.gethostname()}:8001").host_header_choice
        == "kept (upstream on this machine)"
    )
    assert (
        config("https://api.example.com").host_header_choice
        == "rewritten to api.example.com (remote upstream)"
    )
    assert (
        config("http://localhost:8001", "upstream").host_header_choice
        == "rewritten to localhost:8001 (--host-header upstream)"
    )
    assert config("https://api.example.com", "keep").host_header_choice == (
        "kept (--host-header keep)"
    )
    with pytest.raises(ConfigError, match="--host-header 'sometimes'"):
        config("http://localhost:8001", "sometimes")
    # An Upstream made without a config (replay's pages) follows the auto rule.
    for url, keep in (("http://127.0.0.1:8001", True), ("https://api.example.com", False)):
        made = Upstream(parse_upstream(url), connect_timeout=1, close_timeout=1)
        assert made.keep_host is keep


@pytest.mark.parametrize(
    ("options", "line"),
    [
        ((), "kept (loopback upstream)"),
        (("--host-header", "upstream"), "rewritten to 127.0.0.1:9 (--host-header upstream)"),
    ],
)
async def test_banner_says_which_host_the_upstream_gets(options, line):
    process = await cli_process(
        "proxy", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9", "--no-record",
        *options,
    )  # fmt: skip
    try:
        assert await printed_url(process, r"^  host header   (.+)$") == line
        await printed_url(process, r"^(Point your frontend)")
        process.send_signal(signal.SIGINT)
        assert await within(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# -- an upgrade the upstream closes without answering ----------------------------------


async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def close_after_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await within(reader.readuntil(b"\r\n\r\n"))
    writer.close()


async def reset_after_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await within(reader.readuntil(b"\r\n\r\n"))
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # linger 0: an RST, not a FIN


async def half_a_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await within(reader.readuntil(b"\r\n\r\n"))
    writer.write(b"HTTP/1.1 101 Swi")
    await writer.drain()
    writer.close()


@pytest.mark.parametrize(
    ("handle", "detail"),
    [
        (close_at_once, None),
        (close_after_head, ""),
        (reset_after_head, " (reset)"),
        (half_a_head, " (after 16 bytes of an unfinished head)"),
    ],
)
async def test_upgrade_closed_without_an_answer_is_a_502_that_says_so(handle, detail, db):
    async with (
        raw_upstream(handle) as port,
        running_proxy(f"http://127.0.0.1:{port}", db) as proxy,
    ):
        answer = await raw_exchange(proxy.url, b"\r\n".join(UPGRADE_LINES) + b"\r\n\r\n")
        await proxy.stop_once()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    text = body.decode()
    assert CLOSED_WITHOUT_ANSWER in text and "unreachable" not in text
    assert text.startswith(f"sentinel-ws proxy: upstream http://127.0.0.1:{port}: ")
    (session,) = rows(db, "SELECT handshake_status, closed_by, error FROM sessions")
    assert (session["handshake_status"], session["closed_by"]) == (502, "proxy")
    assert session["error"].startswith(CLOSED_WITHOUT_ANSWER)
    if detail is not None:  # closing at once may race the proxy's write: FIN or RST
        assert session["error"] == CLOSED_WITHOUT_ANSWER + detail


async def test_plain_http_closed_without_an_answer_is_recorded_so(db):
    async with (
        raw_upstream(close_after_head) as port,
        running_proxy(f"http://127.0.0.1:{port}", db) as proxy,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(proxy.url + "/page") as response:
            assert response.status == 502
            assert CLOSED_WITHOUT_ANSWER in await response.text()
        await recorded(db, "SELECT COUNT(*) FROM http_requests")
    (request,) = rows(db, "SELECT status, error FROM http_requests")
    assert (request["status"], request["error"]) == (502, CLOSED_WITHOUT_ANSWER)


async def test_refused_and_silent_upstreams_are_still_unreachable_and_timeout(db):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused_port = closed.getsockname()[1]
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel accepts; nobody reads or answers
    try:
        for port, options in (
            (refused_port, {}),
            (silent.getsockname()[1], {"connect_timeout": 0.3}),
        ):
            async with running_proxy(f"http://127.0.0.1:{port}", db, **options) as proxy:
                answer = await raw_exchange(proxy.url, b"\r\n".join(UPGRADE_LINES) + b"\r\n\r\n")
                assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
                assert b"unreachable" in answer
                await proxy.stop_once()
    finally:
        silent.close()
    errors = [r["error"] for r in rows(db, "SELECT error FROM sessions ORDER BY id")]
    assert errors[0].startswith(f"cannot connect to 127.0.0.1:{refused_port}")
    assert errors[1].startswith("no answer from") and errors[1].endswith("within 0.3 s")


# -- the web view's heading while classifying ------------------------------------------


async def test_web_heading_says_classifying_never_a_false_zero_failures(db, chromium):  # noqa: F811
    page = chromium
    async with (
        serve_app(origin_checking_server([])) as upstream_url,
        running_proxy(upstream_url, db) as proxy,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(proxy.url + "/page") as response:
            assert response.status == 200
        await proxy.stop_once()

    async def classifying(route) -> None:
        response = await route.fetch()
        summary = await response.json()
        summary.update(classifying=True, failures=0, categories={})
        await route.fulfill(response=response, body=json.dumps(summary))

    async with serve_app(standalone(RecordingView(db))) as base:
        await page.route("**/api/summary", classifying)
        await page.goto(base + "/_sentinel/ui/")
        await page.wait_for_selector("body[data-ready]", state="attached")
        counts = await page.text_content("#summary-counts")
        assert "classifying…" in counts and "failures" not in counts, counts
        await page.unroute("**/api/summary")  # the page asks again until it is told
        await page.wait_for_function(
            "() => document.querySelector('#summary-counts').textContent.includes('0 failures')"
        )
