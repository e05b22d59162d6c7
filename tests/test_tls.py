"""An https/wss upstream: verified by default, trusted with --upstream-ca, or not verified."""

from __future__ import annotations

import json
import ssl

import aiohttp
import pytest
import websockets
from aiohttp import web
from click.testing import CliRunner

from sentinel_ws_proxy.cli import cli
from tests.conftest import UpstreamLog, rows, running_proxy, scripted_upstream, within, ws_url


@pytest.fixture
async def tls_upstream(localhost_certificate):
    cert, key = localhost_certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(scripted_upstream(UpstreamLog()), shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_untrusted_certificate_is_a_502_that_says_what_to_do(tls_upstream, db):
    async with running_proxy(tls_upstream, db) as proxy:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await within(websockets.connect(ws_url(proxy.url, "/ws")))
        assert refused.value.response.status_code == 502
        assert b"is not trusted" in refused.value.response.body
        assert b"--upstream-ca" in refused.value.response.body
        await proxy.stop_once()
    (session,) = rows(db, "SELECT handshake_status, error, upstream_url FROM sessions")
    assert session["handshake_status"] == 502 and "not trusted" in session["error"]
    assert session["upstream_url"].startswith("wss://127.0.0.1:")


@pytest.mark.parametrize("trust", ["ca", "insecure"])
async def test_trusted_or_unverified_upstream_works(tls_upstream, localhost_certificate, db, trust):
    options = (
        {"upstream_ca": localhost_certificate[0]} if trust == "ca" else {"insecure_upstream": True}
    )
    async with running_proxy(tls_upstream, db, **options) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        await ws.send("over TLS")
        assert await within(ws.recv()) == "over TLS"
        await ws.close()
        async with (
            aiohttp.ClientSession() as http,
            http.post(proxy.url + "/api/echo", data=b"body") as response,
        ):
            assert response.status == 201 and (await response.json())["body_len"] == 4
        await proxy.stop_once()
    (session,) = rows(db, "SELECT handshake_status, clean FROM sessions")
    assert tuple(session) == (101, 1)


def test_bad_ca_file_is_one_line(tmp_path):
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a localhost_certificate")
    result = CliRunner().invoke(
        cli, ["proxy", "--upstream-ca", str(bogus), "--db", str(tmp_path / "r.db")]
    )
    assert result.exit_code == 2 and "--upstream-ca" in result.output
    assert len(result.output.strip().splitlines()) == 1


async def test_the_proxy_itself_can_serve_wss(localhost_certificate, db, upstream):
    url, _ = upstream
    cert, key = localhost_certificate
    async with running_proxy(url, db, tls_cert=cert, tls_key=key) as proxy:
        assert proxy.url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        wss = proxy.url.replace("https://", "wss://") + "/ws"
        ws = await within(websockets.connect(wss, ssl=trust))
        await ws.send("secure hello")
        assert await within(ws.recv()) == "secure hello"
        await ws.send("headers")
        seen = json.loads(await within(ws.recv()))
        assert seen["X-Forwarded-Proto"] == "https"
        await ws.close()
        await proxy.stop_once()


def test_bad_tls_files_are_one_line(tmp_path, localhost_certificate):
    for args, message in (
        (["--tls-cert", str(tmp_path / "missing.pem")], "--tls-cert"),
        (["--tls-key", str(localhost_certificate[1])], "--tls-key goes with --tls-cert"),
    ):
        result = CliRunner().invoke(cli, ["proxy", *args, "--db", str(tmp_path / "r.db")])
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
