"""The opening handshake: headers, subprotocols, rejections and unreachable upstreams."""

from __future__ import annotations

import json
import socket

import aiohttp
import websockets

from tests.conftest import rows, running_proxy, within, ws_url

UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


async def test_client_headers_reach_upstream_and_upstream_headers_reach_client(upstream, db):
    url, _ = upstream
    sent = {
        "Cookie": "session=abc123",
        "Authorization": "Bearer very-secret",
        "Origin": "http://app.example",
        "User-Agent": "sentinel-test/1.0",
        "X-Custom": "kept",
    }
    async with running_proxy(url, db) as proxy, aiohttp.ClientSession() as http:
        ws = await within(http.ws_connect(ws_url(proxy.url, "/ws"), headers=sent))
        assert ws._response.headers["X-Upstream"] == "scripted"
        assert ws._response.headers["Set-Cookie"].startswith("upstream_session=")
        await ws.send_str("headers")
        seen = json.loads((await within(ws.receive())).data)
        await ws.close()
    for name, value in sent.items():
        assert seen[name] == value, name
    assert seen["X-Forwarded-For"] == "127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "http"
    # A loopback upstream gets the client's Host (here the proxy's address), as Vite's
    # proxy does (issue 19); a named remote upstream would get its own (tests/test_host.py).
    assert seen["Host"] == proxy.url.removeprefix("http://")


async def test_subprotocol_chosen_by_upstream_is_the_one_client_gets(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db) as proxy:
        ws = await within(
            websockets.connect(ws_url(proxy.url, "/ws"), subprotocols=["v2.other", "chat"])
        )
        assert ws.subprotocol == "chat"
        await ws.close()
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws"), subprotocols=["nope"]))
        assert ws.subprotocol is None
        await ws.close()
        await proxy.stop_once()
    assert [r["subprotocol"] for r in rows(db, "SELECT subprotocol FROM sessions ORDER BY id")] == [
        "chat",
        None,
    ]


async def test_rejected_handshake_relayed_with_status_headers_and_body(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db) as proxy, aiohttp.ClientSession() as http:
        headers = {**UPGRADE, "Origin": "http://evil.example"}
        async with http.get(f"{proxy.url}/ws/reject?x=1", headers=headers) as response:
            body = await response.read()
            assert response.status == 403
            assert response.headers["X-Reject-Reason"] == "origin"
            assert json.loads(body) == {
                "detail": "Origin not allowed",
                "origin": "http://evil.example",
            }
        await proxy.stop_once()
    (session,) = rows(db, "SELECT * FROM sessions")
    assert session["handshake_status"] == 403
    assert json.loads(session["handshake_body"]) == json.loads(body)
    assert json.loads(session["response_headers"])["x-reject-reason"] == "origin"
    assert session["error"] == "upstream answered 403 Forbidden"
    assert (session["path"], session["query"]) == ("/ws/reject", "x=1")
    assert session["closed_by"] == "server"


async def test_websockets_client_sees_the_403(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db) as proxy:
        try:
            await within(websockets.connect(ws_url(proxy.url, "/ws/reject")))
        except websockets.InvalidStatus as exc:
            assert exc.response.status_code == 403
            assert b"Origin not allowed" in exc.response.body
        else:
            raise AssertionError("the handshake should have been rejected")


async def test_upstream_redirect_is_relayed_not_followed(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db) as proxy, aiohttp.ClientSession() as http:
        async with http.get(
            f"{proxy.url}/ws/redirect", headers=UPGRADE, allow_redirects=False
        ) as response:
            assert response.status == 302
            assert response.headers["Location"] == "http://127.0.0.1:9/elsewhere"
        await proxy.stop_once()
    (session,) = rows(db, "SELECT handshake_status FROM sessions")
    assert session[0] == 302


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_upstream_gives_502_with_explanation_and_is_recorded(db):
    port = _closed_port()
    async with running_proxy(f"http://127.0.0.1:{port}", db) as proxy:
        try:
            await within(websockets.connect(ws_url(proxy.url, "/ws/mission-updates")))
        except websockets.InvalidStatus as exc:
            assert exc.response.status_code == 502
            text = exc.response.body.decode()
            assert "unreachable" in text and f"127.0.0.1:{port}" in text
        else:
            raise AssertionError("expected a 502")
        await proxy.stop_once()
    (session,) = rows(db, "SELECT * FROM sessions")
    assert session["handshake_status"] == 502
    assert f"cannot connect to 127.0.0.1:{port}" in session["error"]
    assert session["closed_by"] == "proxy"


async def test_upstream_that_never_answers_times_out_as_502(db):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts TCP, never speaks HTTP
    port = silent.getsockname()[1]
    try:
        async with running_proxy(f"http://127.0.0.1:{port}", db, connect_timeout=0.5) as proxy:
            try:
                await within(websockets.connect(ws_url(proxy.url, "/ws")))
            except websockets.InvalidStatus as exc:
                assert exc.response.status_code == 502
                assert b"no answer" in exc.response.body
            else:
                raise AssertionError("expected a 502")
            await proxy.stop_once()
    finally:
        silent.close()
    (session,) = rows(db, "SELECT error FROM sessions")
    assert "no answer" in session[0]


async def test_session_ids_continue_when_runs_append_to_one_file(upstream, db):
    url, _ = upstream
    for _ in range(2):
        async with running_proxy(url, db) as proxy:
            ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
            await ws.close()
            await proxy.stop_once()
    found = rows(db, "SELECT id, run_id FROM sessions ORDER BY id")
    assert [tuple(r) for r in found] == [(1, 1), (2, 2)]
    runs = rows(db, "SELECT id, ended_at FROM runs")
    assert all(r["ended_at"] is not None for r in runs)


async def test_an_invalid_client_handshake_is_judged_by_the_upstream(upstream, db):
    """Transparent: the proxy forwards what the client sent; the upstream's 400 comes back."""
    url, log = upstream
    async with running_proxy(url, db) as proxy, aiohttp.ClientSession() as http:
        bad = {k: v for k, v in UPGRADE.items() if k != "Sec-WebSocket-Key"}
        async with http.get(f"{proxy.url}/ws", headers=bad) as response:
            assert response.status == 400
            body = await response.text()
        await proxy.stop_once()
    (seen,) = log.handshake_headers  # it reached the upstream, as the client sent it
    assert "Sec-WebSocket-Key" not in seen and seen["Upgrade"] == "websocket"
    (session,) = rows(db, "SELECT handshake_status, handshake_body, closed_by FROM sessions")
    assert tuple(session) == (400, body, "server")
