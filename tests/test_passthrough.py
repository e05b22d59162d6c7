"""Plain HTTP through the proxy, its own /_sentinel/ endpoints, and where it may connect."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os

import aiohttp
import websockets
from click.testing import CliRunner

from sentinel_ws_proxy.cli import cli
from sentinel_ws_proxy.proxy.log import SessionLog
from sentinel_ws_proxy.recording.redact import REDACTED, Redactor
from tests.conftest import rows, running_proxy, serve_app, within, ws_url


async def test_post_body_status_and_headers_pass_through(upstream, db):
    url, _ = upstream
    body = os.urandom(1024 * 1024 + 7)
    async with running_proxy(url, db) as proxy, aiohttp.ClientSession() as http:
        async with http.post(
            f"{proxy.url}/api/items?page=2", data=body, headers={"X-Trace": "t1"}
        ) as response:
            assert response.status == 201
            assert response.headers["X-Echo"] == "1"
            echoed = await response.json()
        assert echoed["method"] == "POST"
        assert (echoed["path"], echoed["query"]) == ("/api/items", "page=2")
        assert echoed["body_len"] == len(body)
        assert echoed["body_sha256"] == hashlib.sha256(body).hexdigest()
        assert echoed["headers"]["X-Trace"] == "t1"
        assert echoed["headers"]["X-Forwarded-For"] == "127.0.0.1"
        await proxy.stop_once()
    (req,) = rows(db, "SELECT * FROM http_requests")
    assert (req["method"], req["path"], req["query"], req["status"]) == (
        "POST",
        "/api/items",
        "page=2",
        201,
    )


async def test_every_method_and_streamed_response(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db) as proxy, aiohttp.ClientSession() as http:
        for method in ("GET", "PUT", "PATCH", "DELETE", "OPTIONS"):
            async with http.request(method, f"{proxy.url}/api/x") as response:
                assert (await response.json())["method"] == method
        async with http.head(f"{proxy.url}/api/x") as response:
            assert response.status == 200
        async with http.get(f"{proxy.url}/api/big") as response:
            assert len(await response.read()) == 16 * 65536


async def test_redirects_are_returned_not_followed(upstream, db):
    url, _ = upstream
    async with (
        running_proxy(url, db) as proxy,
        aiohttp.ClientSession() as http,
        http.get(f"{proxy.url}/api/redirect", allow_redirects=False) as response,
    ):
        assert response.status == 302
        assert response.headers["Location"] == "http://127.0.0.1:9/elsewhere"


async def test_sentinel_endpoints_are_answered_by_the_proxy(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db) as proxy, aiohttp.ClientSession() as http:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws/mission-updates")))
        await ws.send("one")
        await within(ws.recv())
        async with http.get(f"{proxy.url}/_sentinel/diagnostics/websockets") as response:
            diag = await response.json()
        assert diag["active_connections"] == 1
        assert diag["events_broadcast"] == 1
        assert diag["last_event_time"] is not None
        (conn,) = diag["connection_info"]
        assert conn["client_info"] == "127.0.0.1"
        assert conn["path"] == "/ws/mission-updates"
        assert (conn["frames_c2s"], conn["frames_s2c"]) == (1, 1)
        assert conn["connected_at"] and conn["last_activity"]
        async with http.get(f"{proxy.url}/_sentinel/status") as response:
            status = await response.json()
        assert status["upstream"] == url
        assert status["recording"]["path"] == str(db)
        assert status["counters"]["active_sessions"] == 1
        assert status["uptime_seconds"] >= 0
        async with http.get(f"{proxy.url}/_sentinel/nope") as response:
            assert response.status == 404
        await ws.close()


async def test_proxy_only_connects_to_its_upstream(db):
    hits: list[str] = []

    async def handler(request):
        hits.append(request.path)
        return aiohttp.web.Response(text="upstream")

    async def elsewhere(request):
        hits.append("ELSEWHERE " + request.path)
        return aiohttp.web.Response(text="elsewhere")

    up, other = aiohttp.web.Application(), aiohttp.web.Application()
    up.router.add_route("*", "/{tail:.*}", handler)
    other.router.add_route("*", "/{tail:.*}", elsewhere)
    async with serve_app(up) as url, serve_app(other) as other_url, running_proxy(url, db) as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")
        other_host = other_url.removeprefix("http://")
        for target in (f"http://{other_host}/x", f"//{other_host}/y"):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                f"GET {target} HTTP/1.1\r\nHost: {other_host}\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            reply = await within(reader.read())
            writer.close()
            assert b"elsewhere" not in reply
    # Both requests went to the configured upstream, and only there.
    assert hits == ["/x", f"//{other_host}/y"], hits


async def test_redaction_on_by_default(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db, redact_headers=("X-Api-Key",)) as proxy:
        ws = await within(
            websockets.connect(
                ws_url(proxy.url, "/ws?token=abc&room=7&api_key=k"),
                additional_headers={
                    "Cookie": "sid=secret",
                    "Authorization": "Bearer t",
                    "X-Api-Key": "key",
                },
            )
        )
        await ws.close()
        await proxy.stop_once()
    (session,) = rows(db, "SELECT * FROM sessions")
    headers = json.loads(session["request_headers"])
    assert headers["cookie"] == headers["authorization"] == headers["x-api-key"] == "[redacted]"
    assert json.loads(session["response_headers"])["set-cookie"] == "[redacted]"
    assert session["query"] == "token=[redacted]&room=7&api_key=[redacted]"
    assert "abc" not in session["upstream_url"]
    assert session["cookie_hash"] and "secret" not in session["cookie_hash"]
    # Not anywhere in the files either (the WAL included, if one is left).
    raw = b"".join(f.read_bytes() for f in db.parent.glob(db.name + "*"))
    assert b"sid=secret" not in raw and b"Bearer t" not in raw


async def test_redaction_off_keeps_values(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db, redact=False) as proxy:
        ws = await within(
            websockets.connect(
                ws_url(proxy.url, "/ws?token=abc"), additional_headers={"Cookie": "sid=secret"}
            )
        )
        await ws.close()
        await proxy.stop_once()
    (session,) = rows(db, "SELECT * FROM sessions")
    assert json.loads(session["request_headers"])["cookie"] == "sid=secret"
    assert session["query"] == "token=abc"


async def test_http_to_unreachable_upstream_is_502_and_recorded(db):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with running_proxy(f"http://127.0.0.1:{port}", db) as proxy:
        async with aiohttp.ClientSession() as http, http.get(f"{proxy.url}/api/x") as response:
            assert response.status == 502
            assert "unreachable" in await response.text()
        await proxy.stop_once()
    (req,) = rows(db, "SELECT status, error FROM http_requests")
    assert req["status"] == 502 and "cannot connect" in req["error"]


def test_redaction_covers_what_real_apps_use():
    r = Redactor.build(True, extra_params=["tenant"])
    query = "sid=1&PHPSESSID=2&code=3&state=4&X-Amz-Credential=5&X-Amz-Signature=6&page=7"
    assert r.query(query) == (
        f"sid={REDACTED}&PHPSESSID={REDACTED}&code={REDACTED}&state={REDACTED}"
        f"&X-Amz-Credential={REDACTED}&X-Amz-Signature={REDACTED}&page=7"
    )
    assert r.query("a=1;session_id=2;b=3;tenant=acme") == (
        f"a=1;session_id={REDACTED};b=3;tenant={REDACTED}"
    )
    assert r.path("/app;jsessionid=ABC123") == f"/app;jsessionid={REDACTED}"
    assert r.path("/plain/path") == "/plain/path"
    assert r.url("ws://h:1/ws;jsessionid=A?token=t&x=1") == (
        f"ws://h:1/ws;jsessionid={REDACTED}?token={REDACTED}&x=1"
    )
    headers = r.headers(
        [
            ("X-API-Key", "k"),
            ("X-CSRF-Token", "c"),
            ("Sec-WebSocket-Protocol", "graphql-ws, Bearer.eyJhbGciOiJIUzI1NiJ9.e30.sig"),
        ],
        protocol="graphql-ws",
    )
    assert headers == [
        ("X-API-Key", REDACTED),
        ("X-CSRF-Token", REDACTED),
        ("Sec-WebSocket-Protocol", f"graphql-ws, {REDACTED}"),
    ]
    assert r.protocols("v12.stomp, mqtt, 3f9a8c7d6e5b4a3928171605f4e3d2c1", None) == (
        f"v12.stomp, mqtt, {REDACTED}"
    )


async def test_credentials_never_reach_the_recording_the_log_or_the_exports(upstream, db):
    url, _ = upstream
    token = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyIjoiYWRhIn0.c2lnbmF0dXJl"
    lines: list[str] = []
    log = SessionLog(lines.append, Redactor())
    async with running_proxy(url, db, sinks=[log]) as proxy:
        ws = await within(
            websockets.connect(
                ws_url(proxy.url, "/ws;jsessionid=J5E55I0N?sid=S1D&page=2"),
                subprotocols=["chat", token],
                additional_headers={"X-API-Key": "apikey-123"},
            )
        )
        assert ws.subprotocol == "chat"
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{proxy.url}/_sentinel/diagnostics/websockets") as r,
        ):
            diagnostics = await r.text()
        await ws.close()
        await proxy.stop_once()
    secrets = ("J5E55I0N", "S1D", "apikey-123", token)
    everything = " ".join(str(tuple(r)) for r in rows(db, "SELECT * FROM sessions"))
    shown = CliRunner().invoke(cli, ["show", "1", "--db", str(db)]).output
    har = CliRunner().invoke(cli, ["export", "1", "--db", str(db)]).output
    for secret in secrets:
        for where, text in (
            ("recording", everything),
            ("log", " ".join(lines)),
            ("show", shown),
            ("har", har),
            ("diagnostics", diagnostics),
        ):
            assert secret not in text, (secret, where)
    assert "page=2" in everything and "chat" in everything


async def test_a_client_that_half_closes_after_its_request_still_gets_the_answer(upstream, db):
    """python-engineio's polling does this; aiohttp alone would drop the connection."""
    url, _ = upstream
    async with running_proxy(url, db) as proxy:
        host, port = proxy.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET /api/big HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        writer.write_eof()  # nothing more from this side
        answer = await within(reader.read())
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200")
        assert answer.count(b"x") >= 16 * 65536 and answer.endswith(b"0\r\n\r\n")  # whole


async def raw_upstream(respond) -> tuple[asyncio.Server, str]:
    """An HTTP server that writes its answer as `respond(writer)` says: headers and body apart."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:  # the proxy keeps its upstream connections alive
                await reader.readuntil(b"\r\n\r\n")
                await respond(writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


HEAD = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
BODY = b'30\r\n"http://evil.example is not an accepted origin."\r\n0\r\n\r\n'


def requests_that_close_before_reading(url: str, times: int) -> int:
    """python-engineio on a 400: close the session, then read the body. How many were lost."""

    async def main() -> int:
        lost = 0
        for _ in range(times):
            http = aiohttp.ClientSession()
            response = await asyncio.wait_for(http.get(url), 10)
            await http.close()
            try:
                text = await asyncio.wait_for(response.text(), 10)
            except (RuntimeError, aiohttp.ClientError, asyncio.TimeoutError):
                lost += 1
            else:
                assert text == '"http://evil.example is not an accepted origin."'
        return lost

    return asyncio.run(main())


async def test_headers_leave_with_the_body_that_follows_them(db):
    """uvicorn writes a 400's headers and body apart, a moment from each other; a proxy
    that sends them apart widens the moment, and python-engineio loses the body."""

    async def respond(writer):
        writer.write(HEAD)
        await asyncio.sleep(0)
        writer.write(BODY)

    server, url = await raw_upstream(respond)
    async with server, running_proxy(url, db) as proxy:
        # The client on a loop of its own, as in its own process: a real race.
        target = proxy.url + "/socket.io/?EIO=4&transport=polling"
        lost = await within(asyncio.to_thread(requests_that_close_before_reading, target, 10), 60)
    assert lost == 0


async def test_headers_do_not_wait_for_a_body_that_is_long_in_coming(db):
    async def respond(writer):
        writer.write(HEAD)
        await asyncio.sleep(1.0)  # a long poll, an event stream
        writer.write(BODY)

    server, url = await raw_upstream(respond)
    async with server, running_proxy(url, db) as proxy, aiohttp.ClientSession() as http:
        started = asyncio.get_running_loop().time()
        async with await within(http.get(proxy.url + "/events")) as response:
            headers_after = asyncio.get_running_loop().time() - started
            assert response.status == 400
            assert (await within(response.text())).endswith('origin."')
    assert headers_after < 0.9  # the headers came before the body did
