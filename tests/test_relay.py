"""Frames, closes and drops through the proxy, checked on the wire and in the recording."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import websockets
from aiohttp import WSMsgType

from tests.conftest import rows, running_proxy, within, ws_url


async def test_every_frame_kind_both_ways_forwarded_and_recorded_byte_exact(upstream, db):
    url, log = upstream
    async with running_proxy(url, db) as proxy, aiohttp.ClientSession() as http:
        ws = await within(http.ws_connect(ws_url(proxy.url, "/ws/mission-updates"), autoping=False))
        await ws.send_str("héllo ✓")
        assert (await within(ws.receive())).data == "héllo ✓"
        blob = bytes(range(256)) * 3
        await ws.send_bytes(blob)
        assert (await within(ws.receive())).data == blob
        await ws.ping(b"client-ping")
        pong = await within(ws.receive())
        assert (pong.type, pong.data) == (WSMsgType.PONG, b"client-ping")
        await ws.pong(b"unsolicited")
        await ws.send_str("ping server-ping")
        ping = await within(ws.receive())
        assert (ping.type, ping.data) == (WSMsgType.PING, b"server-ping")
        await ws.send_str("pong server-pong")
        pong = await within(ws.receive())
        assert (pong.type, pong.data) == (WSMsgType.PONG, b"server-pong")
        await ws.close()
        await proxy.stop_once()

    # The proxy answered nothing itself: the upstream saw the ping and the pong.
    assert ("ping", b"client-ping") in log.received
    assert ("pong", b"unsolicited") in log.received
    frames = [
        (r["direction"], r["opcode"], r["payload"], r["size"])
        for r in rows(db, "SELECT * FROM frames WHERE opcode != 'close' ORDER BY id")
    ]
    assert frames == [
        ("c2s", "text", "héllo ✓", len("héllo ✓".encode())),
        ("s2c", "text", "héllo ✓", len("héllo ✓".encode())),
        ("c2s", "binary", blob, len(blob)),
        ("s2c", "binary", blob, len(blob)),
        ("c2s", "ping", b"client-ping", 11),
        ("s2c", "pong", b"client-ping", 11),
        ("c2s", "pong", b"unsolicited", 11),
        ("c2s", "text", "ping server-ping", 16),
        ("s2c", "ping", b"server-ping", 11),
        ("c2s", "text", "pong server-pong", 16),
        ("s2c", "pong", b"server-pong", 11),
    ]
    (session,) = rows(db, "SELECT * FROM sessions")
    counted = rows(
        db, "SELECT direction, count(*) n, sum(size) b FROM frames GROUP BY direction ORDER BY 1"
    )
    assert (session["frames_c2s"], session["bytes_c2s"]) == (counted[0]["n"], counted[0]["b"])
    assert (session["frames_s2c"], session["bytes_s2c"]) == (counted[1]["n"], counted[1]["b"])


@pytest.mark.parametrize("code,reason", [(4001, "bye from client"), (1000, ""), (3000, "ünï")])
async def test_client_close_travels_with_code_and_reason_and_completes_fast(
    upstream, db, code, reason
):
    url, log = upstream
    async with running_proxy(url, db) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws"), close_timeout=5))
        await ws.send("hi")
        await within(ws.recv())
        started = time.perf_counter()
        await within(ws.close(code, reason))
        elapsed_ms = (time.perf_counter() - started) * 1000
        # The reply came back through the proxy (a timeout would leave no close_rcvd).
        assert ws.protocol.close_rcvd is not None
        assert (ws.protocol.close_rcvd.code, ws.protocol.close_rcvd.reason) == (code, reason)
        assert await within(log.ends.get()) == (code, reason)
        print(f"close handshake through the proxy: {elapsed_ms:.1f} ms")
        await proxy.stop_once()
    (session,) = rows(db, "SELECT * FROM sessions")
    assert (session["close_code"], session["close_reason"]) == (code, reason)
    assert (session["closed_by"], session["clean"]) == ("client", 1)
    closes = rows(db, "SELECT direction, close_code, close_reason FROM frames WHERE opcode='close'")
    assert [tuple(r) for r in closes] == [("c2s", code, reason), ("s2c", code, reason)]


async def test_server_close_travels_with_code_and_reason(upstream, db):
    url, log = upstream
    async with running_proxy(url, db) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        await ws.send("close 4002 server says bye")
        with pytest.raises(websockets.ConnectionClosed):
            await within(ws.recv())
        assert (ws.close_code, ws.close_reason) == (4002, "server says bye")
        # websockets echoes the code: the upstream got the client's reply.
        assert await within(log.ends.get()) == (4002, "server says bye")
        await proxy.stop_once()
    (session,) = rows(db, "SELECT * FROM sessions")
    assert (session["close_code"], session["closed_by"], session["clean"]) == (4002, "server", 1)


async def test_close_without_status_stays_without_status(upstream, db):
    url, log = upstream
    async with running_proxy(url, db) as proxy, aiohttp.ClientSession() as http:
        ws = await within(http.ws_connect(ws_url(proxy.url, "/ws"), autoclose=False))
        await ws.send_str("emptyclose")
        msg = await within(ws.receive())
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, 0)  # aiohttp's "no status code"
        await ws.send_frame(b"", WSMsgType.CLOSE)
        assert await within(log.ends.get()) == (0, "")
        await proxy.stop_once()
    (session,) = rows(db, "SELECT * FROM sessions")
    assert (session["close_code"], session["clean"]) == (1005, 1)
    assert {r["size"] for r in rows(db, "SELECT size FROM frames WHERE opcode='close'")} == {0}


async def test_upstream_drop_becomes_abrupt_close_for_client(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        await ws.send("drop")
        with pytest.raises(websockets.ConnectionClosedError):
            await within(ws.recv())
        assert ws.close_code == 1006
        assert ws.protocol.close_rcvd is None  # no close frame came through
        await proxy.stop_once()
    (session,) = rows(db, "SELECT * FROM sessions")
    assert (session["close_code"], session["closed_by"], session["clean"]) == (1006, "server", 0)


async def test_client_drop_becomes_abrupt_close_for_upstream(upstream, db):
    url, log = upstream
    async with running_proxy(url, db) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        await ws.send("hello")
        await within(ws.recv())
        ws.transport.abort()  # a killed tab: TCP gone, no close frame
        assert await within(log.ends.get()) == ("lost", None)
        await proxy.stop_once()
    (session,) = rows(db, "SELECT * FROM sessions")
    assert (session["close_code"], session["closed_by"], session["clean"]) == (1006, "client", 0)


async def test_unanswered_close_gives_up_after_close_timeout(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db, close_timeout=0.5) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws"), close_timeout=5))
        await ws.send("silence")
        await within(ws.close(4003, "anyone there?"))
        assert ws.protocol.close_rcvd is None  # the upstream never answered
        await proxy.stop_once()
    (session,) = rows(db, "SELECT * FROM sessions")
    assert (session["close_code"], session["closed_by"], session["clean"]) == (4003, "client", 0)


async def test_oversize_message_closes_that_side_with_1009(upstream, db):
    url, log = upstream
    limit = 64 * 1024
    async with running_proxy(url, db, max_message=limit) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws"), max_size=None))
        await ws.send("small")
        assert await within(ws.recv()) == "small"
        await ws.send(b"x" * (limit + 1))
        with pytest.raises(websockets.ConnectionClosedError):
            await within(ws.recv())
        assert ws.close_code == 1009
        code, reason = await within(log.ends.get())
        note = f"sentinel-ws: client sent a message over --max-message {limit}"
        assert (code, reason) == (1001, note)
        await proxy.stop_once()
    (session,) = rows(db, "SELECT * FROM sessions")
    assert (session["close_code"], session["closed_by"]) == (1009, "proxy")
    proxy_closes = rows(
        db, "SELECT direction, close_code FROM frames WHERE opcode='close' ORDER BY id"
    )
    assert ("s2c", 1009) in [tuple(r) for r in proxy_closes]


async def test_oversize_message_from_upstream_closes_upstream_side(upstream, db):
    url, log = upstream
    async with running_proxy(url, db, max_message=1024) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        await ws.send("binary 4096")
        with pytest.raises(websockets.ConnectionClosed):
            await within(ws.recv())
        assert ws.close_code == 1001
        assert await within(log.ends.get()) == (1009, "")
        await proxy.stop_once()
    (session,) = rows(db, "SELECT * FROM sessions")
    assert (session["close_code"], session["closed_by"]) == (1009, "proxy")


async def test_many_messages_over_several_connections_all_recorded(echo_upstream, db):
    connections, per_connection = 4, 5000

    async def talk(index: int) -> None:
        async with websockets.connect(ws_url(proxy.url, f"/ws?c={index}")) as ws:
            for batch in range(0, per_connection, 100):
                for i in range(batch, batch + 100):
                    await ws.send(f"{index}:{i}")
                for i in range(batch, batch + 100):
                    assert await within(ws.recv()) == f"{index}:{i}"

    async with running_proxy(echo_upstream, db) as proxy:
        await within(asyncio.gather(*(talk(i) for i in range(connections))), 60)
        await proxy.stop_once()
    (count,) = rows(db, "SELECT count(*) FROM frames WHERE opcode = 'text'")
    assert count[0] == 2 * connections * per_connection == 40_000
    per_session = rows(db, "SELECT frames_c2s, frames_s2c FROM sessions")
    assert all(r["frames_c2s"] == r["frames_s2c"] == per_connection + 1 for r in per_session)


async def test_payloads_over_max_payload_are_cut_in_the_recording_only(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db, max_payload=10) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        text = "ééééééééé!"  # 19 bytes: the cut falls inside a two-byte character
        await ws.send(text)
        assert await within(ws.recv()) == text  # the wire carries all of it
        await ws.send(b"0123456789abcdef")
        assert await within(ws.recv()) == b"0123456789abcdef"
        await ws.close()
        await proxy.stop_once()
    found = rows(db, "SELECT opcode, size, payload, truncated FROM frames WHERE direction='c2s'")
    assert tuple(found[0]) == ("text", 19, "ééééé", 1)
    assert tuple(found[1]) == ("binary", 16, b"0123456789", 1)


async def test_compression_is_negotiated_end_to_end_as_the_upstream_decides(db):
    async def echo(ws) -> None:
        async for message in ws:
            await ws.send(message)

    for upstream_compression, expected in (("deflate", "permessage-deflate"), (None, None)):
        async with websockets.serve(
            echo, "127.0.0.1", 0, compression=upstream_compression
        ) as server:
            url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            async with running_proxy(url, None) as proxy:
                ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
                agreed = ws.response.headers.get("Sec-WebSocket-Extensions")
                assert (agreed.split(";")[0] if agreed else None) == expected
                await ws.send("x" * 10_000)
                assert await within(ws.recv()) == "x" * 10_000
                await ws.close()


async def test_simultaneous_close_from_both_sides_completes(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db) as proxy, aiohttp.ClientSession() as http:
        ws = await within(http.ws_connect(ws_url(proxy.url, "/ws"), autoclose=False))
        # The upstream starts its close while ours is already on the way.
        await ws.send_str("close 4010 server")
        await ws.send_frame((4011).to_bytes(2, "big") + b"client", WSMsgType.CLOSE)
        msg = await within(ws.receive())
        assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4010, "server")
        await proxy.stop_once()
    (session,) = rows(db, "SELECT * FROM sessions")
    assert session["clean"] == 1
    assert session["closed_by"] in ("client", "server")


async def test_a_stuck_disk_slows_the_relay_instead_of_growing_memory(echo_upstream, db):
    """Hold SQLite's write lock: the recorder falls behind, relays pause, nothing is lost."""
    import sqlite3

    async with running_proxy(
        echo_upstream, db, backlog_high=64 * 1024, backlog_low=16 * 1024
    ) as proxy:
        blocker = sqlite3.connect(db, timeout=10)  # waits out a commit in progress
        blocker.execute("BEGIN IMMEDIATE")  # the writer thread now waits for the lock
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        payload = b"x" * 4096
        sent = 0

        async def send_all() -> None:
            nonlocal sent
            for _ in range(100):  # 400 KiB each way: far past the 64 KiB high mark
                await ws.send(payload)
                await ws.recv()
                sent += 1

        sending = asyncio.ensure_future(send_all())
        await asyncio.sleep(1.0)
        assert not sending.done()  # paused behind the stuck recorder
        assert proxy.recorder.backlog() > 16 * 1024
        paused_at = sent
        blocker.rollback()
        blocker.close()
        await within(sending, 30)
        assert paused_at < 100 and sent == 100
        assert proxy.recorder.stats.throttled_seconds > 0.5
        await ws.close()
        await proxy.stop_once()
    (count,) = rows(db, "SELECT count(*) FROM frames WHERE opcode = 'binary'")
    assert count[0] == 200


def _frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A masked client frame, built by hand."""
    mask = b"\x01\x02\x03\x04"
    head = bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)])
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


UPGRADE_HEAD = (
    "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def _read_frame(reader) -> tuple[int, bytes]:
    b0, b1 = await within(reader.readexactly(2))
    return b0 & 0x0F, await within(reader.readexactly(b1 & 0x7F))


async def test_an_upgrade_on_a_kept_alive_http_connection_is_relayed(upstream, db):
    """A client that first fetched plain HTTP on the connection: aiohttp hands it over."""
    url, log = upstream
    async with running_proxy(url, db) as proxy:
        host = proxy.url.removeprefix("http://")
        reader, writer = await asyncio.open_connection(*host.rsplit(":", 1))
        writer.write(f"GET /api/first HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = await within(reader.readuntil(b"\r\n\r\n"))
        assert head.startswith(b"HTTP/1.1 200")
        length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(
            b"content-length")).split(b":")[1])  # fmt: skip
        await within(reader.readexactly(length))
        writer.write(UPGRADE_HEAD.format(path="/ws/kept", host=host).encode())
        head = await within(reader.readuntil(b"\r\n\r\n"))
        assert head.startswith(b"HTTP/1.1 101")
        writer.write(_frame(1, b"same connection"))
        assert await _read_frame(reader) == (1, b"same connection")
        writer.close()
        await proxy.stop_once()
    assert ("text", "same connection") in log.received
    (session,) = rows(db, "SELECT path, handshake_status FROM sessions")
    assert tuple(session) == ("/ws/kept", 101)
    (request,) = rows(db, "SELECT path, status FROM http_requests")
    assert tuple(request) == ("/api/first", 200)


async def test_a_message_of_exactly_max_message_passes(echo_upstream, db):
    async with running_proxy(echo_upstream, db, max_message=1000) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws"), compression=None))
        await ws.send(b"x" * 1000)
        assert await within(ws.recv()) == b"x" * 1000
        await ws.send(b"y" * 1001)
        with pytest.raises(websockets.ConnectionClosedError):
            await within(ws.recv())
        assert ws.close_code == 1009
        await proxy.stop_once()
    refused = rows(db, "SELECT size, forwarded FROM frames WHERE size = 1001")
    assert [tuple(r) for r in refused] == [(1001, 0)]
    own = rows(db, "SELECT direction, close_code FROM frames WHERE source = 'proxy'")
    assert sorted(tuple(r) for r in own) == [("c2s", 1001), ("s2c", 1009)]


async def test_a_close_of_the_proxy_own_goes_between_fragments(upstream, db):
    """RFC 6455 5.4: control frames may come between a message's fragments."""
    url, _ = upstream
    async with running_proxy(url, db) as proxy:
        host = proxy.url.removeprefix("http://")
        reader, writer = await asyncio.open_connection(*host.rsplit(":", 1))
        writer.write(UPGRADE_HEAD.format(path="/ws", host=host).encode())
        assert (await within(reader.readuntil(b"\r\n\r\n"))).startswith(b"HTTP/1.1 101")
        writer.write(_frame(1, b"first half ", fin=False))
        await asyncio.sleep(0.1)
        (relay,) = proxy.proxy.relays.values()
        assert relay.c2s.parser.in_message  # mid-message
        relay.close_from_proxy(1001, "going between")
        assert await _read_frame(reader) == (8, (1001).to_bytes(2, "big") + b"going between")
        writer.write(_frame(8, (1001).to_bytes(2, "big")))  # the client's answer
        assert await within(reader.read()) == b""
        writer.close()
        await proxy.stop_once()
    c2s = rows(db, "SELECT opcode, fin, source, forwarded FROM frames WHERE direction='c2s'")
    assert [tuple(r) for r in c2s] == [
        ("text", 0, "client", 1),
        ("close", 1, "proxy", 1),
        ("close", 1, "client", 0),  # answered the proxy: not passed on
    ]


async def test_a_half_closed_client_still_gets_the_server_close(upstream, db):
    url, log = upstream
    async with running_proxy(url, db) as proxy:
        host = proxy.url.removeprefix("http://")
        reader, writer = await asyncio.open_connection(*host.rsplit(":", 1))
        writer.write(UPGRADE_HEAD.format(path="/ws", host=host).encode())
        await within(reader.readuntil(b"\r\n\r\n"))
        writer.write(_frame(8, (4000).to_bytes(2, "big") + b"done sending"))
        writer.write_eof()  # nothing more from this side; it still reads
        assert await _read_frame(reader) == (8, (4000).to_bytes(2, "big") + b"done sending")
        assert await within(reader.read()) == b""
        writer.close()
        await proxy.stop_once()
    assert await within(log.ends.get()) == (4000, "done sending")
    (session,) = rows(db, "SELECT close_code, closed_by, clean FROM sessions")
    assert tuple(session) == (4000, "client", 1)
