"""Fault injection: every fault's effect on the wire and in the recording, the control API and
CLI, and the recovery report measured on a real reconnecting client."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from pathlib import Path

import aiohttp
import pytest
import websockets
from aiohttp.test_utils import make_mocked_request
from click.testing import CliRunner

from sentinel_ws_proxy.analysis.recovery import describe_backoff
from sentinel_ws_proxy.cli import cli
from sentinel_ws_proxy.faults.spec import FaultSpecError, parse_spec
from sentinel_ws_proxy.guard import allowed
from tests.conftest import recorded, rows, running_proxy, within, ws_url
from tests.test_cli import start_cli_proxy


def faults(*specs: str) -> tuple:
    return tuple(parse_spec(s) for s in specs)


class ReconnectingClient:
    """A client with the reconnection logic a frontend should have: exponential backoff
    (base, doubling, capped), reset after a successful open."""

    def __init__(self, url: str, agent: str, *, base: float = 0.05, cap: float = 0.4):
        self.url, self.agent, self.base, self.cap = url, agent, base, cap
        self.log: list[tuple[float, str, object]] = []
        self.opened = asyncio.Event()

    async def run(self, opens_wanted: int, max_attempts: int = 20) -> None:
        delay, opens = self.base, 0
        for _ in range(max_attempts):
            try:
                ws = await within(websockets.connect(self.url, user_agent_header=self.agent))
            except websockets.InvalidStatus as exc:
                retry = exc.response.headers.get("Retry-After")
                self.log.append((time.time(), "refused", (exc.response.status_code, retry)))
            else:
                opens += 1
                delay = self.base
                self.log.append((time.time(), "open", None))
                self.opened.set()
                if opens >= opens_wanted:
                    await ws.close()
                    return
                try:
                    async for _ in ws:
                        pass
                except websockets.ConnectionClosed:
                    pass
                self.log.append((time.time(), "closed", (ws.close_code, ws.close_reason)))
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.cap)
        raise AssertionError(f"never got {opens_wanted} opens: {self.log}")


def report(db: Path) -> dict:
    result = CliRunner().invoke(cli, ["failures", "--json", "--db", str(db)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize(
    "text,message",
    [
        ("explode", "unknown action 'explode'"),
        ("close cod=1011", "close has no setting 'cod'"),
        ("close code=1006", "cannot be sent in a close frame"),
        ("latency ms=fast", "is not a number"),
        ("stall hold=forever", "is not a duration"),
        ("drop probability=2", "between 0 and 1"),
        ("reject status=200", "HTTP error status"),
        ("close reason='unclosed", "No closing quotation"),
        ("", "empty fault spec"),
        ("bandwidth rate=fast", "is not a rate"),
        ("bandwidth rate=0KB/s", "is not a rate"),
        ("bandwidth code=1000", "bandwidth has no setting 'code'"),
    ],
)
def test_malformed_specs_get_one_line(text, message):
    with pytest.raises(FaultSpecError) as error:
        parse_spec(text)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_spec_values():
    spec = parse_spec("close code=4000 reason='server restart' after=1.5s every=2m count=3")
    assert (spec.action.code, spec.action.reason, spec.after, spec.every, spec.count) == (
        4000, "server restart", 1.5, 120.0, 3,
    )  # fmt: skip
    assert parse_spec("stall").action.dir == "s2c"
    assert parse_spec("latency ms=200").action.dir == "both"
    assert parse_spec("bandwidth rate=10KB/s").action.rate == 10240
    assert parse_spec("bandwidth rate=1.5MiB/s dir=s2c").action.rate == 1.5 * 1024 * 1024
    assert parse_spec("latency ms=200ms after=500ms").after == 0.5


def test_backoff_patterns():
    assert describe_backoff([0.1, 0.2, 0.4, 0.8])["pattern"] == "growing"
    capped = describe_backoff([0.1, 0.2, 0.4, 0.4, 0.4])
    assert capped == {"pattern": "exponential, capped", "capped_at": 0.4}
    assert describe_backoff([0.5, 0.5, 0.5])["pattern"] == "constant"
    assert describe_backoff([])["pattern"] == "no retry"


async def test_close_fault_looks_like_a_server_crash(upstream, db):
    url, log = upstream
    spec = "close code=1011 reason='simulated crash' after=0.2s count=1"
    async with running_proxy(url, db, faults=faults(spec)) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        started = time.monotonic()
        with pytest.raises(websockets.ConnectionClosed):
            await within(ws.recv())
        assert time.monotonic() - started >= 0.15
        assert (ws.close_code, ws.close_reason) == (1011, "simulated crash")
        assert await within(log.ends.get()) == (1001, "sentinel-ws fault")
        # count=1: the next connection is left alone.
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        await ws.send("still here")
        assert await within(ws.recv()) == "still here"
        await ws.close()
        await proxy.stop_once()
    first = rows(db, "SELECT * FROM sessions ORDER BY id")[0]
    assert (first["close_code"], first["closed_by"], first["fault_id"]) == (1011, "proxy", 1)
    (fault,) = rows(db, "SELECT * FROM faults")
    assert fault["spec"] == spec and fault["run_id"] == 1
    fired = rows(db, "SELECT fault_id, session_id, action FROM fault_events")
    assert [tuple(r) for r in fired] == [(1, 1, "close")]
    result = report(db)
    assert result["categories"] == {"clean": 1, "injected": 1}
    assert result["sessions"][0]["category"] == "injected"


async def test_abort_cuts_both_sides_without_a_close_frame(upstream, db):
    url, log = upstream
    async with running_proxy(url, db, faults=faults("abort after=0.1s")) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        with pytest.raises(websockets.ConnectionClosedError):
            await within(ws.recv())
        assert ws.close_code == 1006 and ws.protocol.close_rcvd is None
        assert await within(log.ends.get()) == ("lost", None)
        await proxy.stop_once()
    (session,) = rows(db, "SELECT * FROM sessions")
    assert (session["close_code"], session["closed_by"], session["fault_id"]) == (1006, "proxy", 1)


async def test_stall_keeps_tcp_open_and_answers_nothing_then_closes(upstream, db):
    url, _ = upstream
    spec = "stall dir=s2c then=close hold=0.6s code=1011 reason=stale"
    async with running_proxy(url, db, faults=faults(spec)) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        await ws.send("anyone?")  # reaches the server; its echo is held back
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        assert ws.state is websockets.State.OPEN  # TCP still up: a stale connection
        with pytest.raises(websockets.ConnectionClosed):
            await within(ws.recv())
        assert (ws.close_code, ws.close_reason) == (1011, "stale")
        await proxy.stop_once()
    held = rows(
        db, "SELECT direction, payload, fault_id, fault_action FROM frames WHERE opcode='text'"
    )
    assert [tuple(r) for r in held] == [
        ("c2s", "anyone?", None, None),
        ("s2c", "anyone?", 1, "stall"),
    ]
    actions = [r[0] for r in rows(db, "SELECT action FROM fault_events ORDER BY id")]
    assert actions == ["stall", "close"]


async def test_latency_delays_each_frame(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db, faults=faults("latency ms=150 dir=s2c")) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        for _ in range(2):
            started = time.monotonic()
            await ws.send("ping-pong")
            assert await within(ws.recv()) == "ping-pong"
            assert time.monotonic() - started >= 0.15
        await ws.close()
        await proxy.stop_once()
    delayed = rows(db, "SELECT count(*) FROM frames WHERE fault_action = 'delay'")
    assert delayed[0][0] == 2


async def test_bandwidth_holds_frames_to_the_rate(upstream, db):
    """bandwidth rate=200KB/s: 10 frames of 10,240 bytes take at least 0.45 s to arrive."""
    url, _ = upstream
    async with running_proxy(url, db, faults=faults("bandwidth rate=200KB/s dir=s2c")) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws"), compression=None))
        started = time.monotonic()
        for _ in range(10):
            await ws.send("binary 10240")
        got = [await within(ws.recv()) for _ in range(10)]
        took = time.monotonic() - started
        await ws.close()
        await proxy.stop_once()
    assert all(len(m) == 10240 and m == (bytes(range(256)) * 40) for m in got)  # intact
    # The link's lower bound: 102,400 bytes at 204,800 bytes a second, less the first frame.
    assert took >= 9 * 10240 / (200 * 1024) - 0.01, took
    (delayed,) = rows(db, "SELECT count(*) FROM fault_events WHERE action = 'delay'")
    assert delayed[0] == 10


async def test_drop_removes_matching_messages_only(upstream, db):
    url, log = upstream
    async with running_proxy(url, db, faults=faults("drop dir=c2s match=secret")) as proxy:
        # Uncompressed: a message dropped from a deflate stream with context takeover
        # leaves the receiver unable to inflate the next ones (see README).
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws"), compression=None))
        for text in ("public", "the secret plan", "public again"):
            await ws.send(text)
        assert await within(ws.recv()) == "public"
        assert await within(ws.recv()) == "public again"
        await ws.close()
        await proxy.stop_once()
    assert [d for kind, d in log.received if kind == "text"] == ["public", "public again"]
    (dropped,) = rows(db, "SELECT payload, fault_action FROM frames WHERE fault_id = 1")
    assert tuple(dropped) == ("the secret plan", "drop")


async def test_seeded_probability_is_repeatable(echo_upstream, tmp_path):
    dropped = []
    for attempt in range(2):
        db = tmp_path / f"r{attempt}.db"
        spec = "drop dir=c2s probability=0.5 seed=7"
        async with running_proxy(echo_upstream, db, faults=faults(spec)) as proxy:
            ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
            for i in range(30):
                await ws.send(f"m{i}")
            await ws.send("end")  # may itself be dropped; a short wait covers both cases
            await asyncio.sleep(0.3)
            await ws.close()
            await proxy.stop_once()
        dropped.append([r[0] for r in rows(db, "SELECT payload FROM frames WHERE fault_id = 1")])
    assert dropped[0] == dropped[1] and 5 < len(dropped[0]) < 25


async def test_reject_then_recovery_report_measures_the_backoff(echo_upstream, db):
    spec = "reject status=503 retry_after=1 count=5"
    async with running_proxy(echo_upstream, db, faults=faults(spec)) as proxy:
        client = ReconnectingClient(ws_url(proxy.url, "/ws"), "backoff-client", base=0.05, cap=0.2)
        await within(client.run(opens_wanted=1), 30)
        await proxy.stop_once()
    refusals = [detail for _, kind, detail in client.log if kind == "refused"]
    assert refusals == [(503, "1")] * 5
    result = report(db)
    assert result["categories"] == {"injected": 5, "clean": 1}
    (incident,) = result["recovery"]
    assert incident["session_id"] == 1 and incident["fault_id"] == 1
    assert incident["recovered"] is True and len(incident["retries"]) == 4  # then the 101
    # The client waited 0.05, 0.1, 0.2, 0.2, 0.2 s: measured, give or take scheduling.
    for measured, waited in zip(incident["gaps"], [0.05, 0.1, 0.2, 0.2, 0.2], strict=True):
        assert waited <= measured < waited + 0.15, incident["gaps"]
    assert incident["pattern"] == "exponential, capped"
    assert 0.15 <= incident["capped_at"] < 0.35
    failed = CliRunner().invoke(cli, ["sessions", "--failed", "--json", "--db", str(db)])
    assert json.loads(failed.output) == []  # injected sessions do not count against the app


async def test_client_that_gives_up_is_reported(echo_upstream, db):
    async with running_proxy(echo_upstream, db, faults=faults("reject status=503")) as proxy:
        client = ReconnectingClient(ws_url(proxy.url, "/ws"), "quitter", base=0.02, cap=0.02)
        with pytest.raises(AssertionError):
            await within(client.run(opens_wanted=1, max_attempts=3), 30)
        await proxy.stop_once()
    (incident,) = report(db)["recovery"]
    assert incident["recovered"] is False and incident["gave_up"] is True
    assert [r["status"] for r in incident["retries"]] == [503, 503]


async def test_connection_faults_rearm_on_reconnect_and_recovery_is_measured(upstream, db):
    url, _ = upstream
    spec = "close code=1012 after=0.2s path=/ws/*"
    async with running_proxy(url, db, faults=faults(spec)) as proxy:
        client = ReconnectingClient(ws_url(proxy.url, "/ws/live"), "steady", base=0.1, cap=0.1)
        await within(client.run(opens_wanted=3), 30)
        other = await within(websockets.connect(ws_url(proxy.url, "/other")))
        await asyncio.sleep(0.4)
        assert other.state is websockets.State.OPEN  # out of the fault's scope
        await other.close()
        await proxy.stop_once()
    closes = [detail for _, kind, detail in client.log if kind == "closed"]
    assert closes == [(1012, "")] * 2
    incidents = report(db)["recovery"]
    assert len(incidents) == 2 and all(i["recovered"] for i in incidents)
    assert all(0.1 <= i["recovered_after"] < 0.4 for i in incidents)


async def test_duration_removes_the_fault(echo_upstream, db):
    async with running_proxy(echo_upstream, db, faults=faults("reject duration=0.3s")) as proxy:
        with pytest.raises(websockets.InvalidStatus):
            await within(websockets.connect(ws_url(proxy.url, "/ws")))
        await asyncio.sleep(0.4)
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        await ws.close()
        assert proxy.proxy.faults.listing() == []
        await proxy.stop_once()
    (fault,) = rows(db, "SELECT created_at, removed_at FROM faults")
    assert 0.25 < fault["removed_at"] - fault["created_at"] < 1.5


async def test_runtime_api(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db) as proxy, aiohttp.ClientSession() as http:
        api = proxy.url + "/_sentinel"
        cli = {"X-Sentinel-WS": "cli"}  # what `sentinel-ws fault` sends with a plain spec
        async with http.post(api + "/faults", data="latency ms=1", headers=cli) as r:
            assert r.status == 201 and (await r.json())["id"] == 1
        async with http.post(api + "/faults", json={"spec": "drop match=x"}) as r:
            assert r.status == 201
        async with http.post(api + "/faults", data="bogus", headers=cli) as r:
            assert r.status == 400 and "unknown action" in (await r.json())["error"]
        async with http.get(api + "/faults") as r:
            listed = (await r.json())["faults"]
        assert [f["spec"] for f in listed] == ["latency ms=1", "drop match=x"]
        async with http.delete(api + "/faults/1", headers=cli) as r:
            assert r.status == 200
        async with http.delete(api + "/faults/99", headers=cli) as r:
            assert r.status == 404
        async with http.post(api + "/faults/reset", headers=cli) as r:
            assert (await r.json())["removed"] == 1
        # One live connection, acted on once.
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        await ws.send("hi")
        await within(ws.recv())
        (session_id,) = proxy.proxy.relays
        close = f"{api}/connections/{session_id}/close?code=4001&reason=bye"
        async with http.post(close, headers=cli) as r:
            assert r.status == 202
        with pytest.raises(websockets.ConnectionClosed):
            await within(ws.recv())
        assert (ws.close_code, ws.close_reason) == (4001, "bye")
        async with http.post(f"{api}/connections/999/abort", headers=cli) as r:
            assert r.status == 404
        await proxy.stop_once()
    (session,) = rows(db, "SELECT fault_id, close_code FROM sessions")
    assert session["close_code"] == 4001 and session["fault_id"] == 3


async def test_admin_token_is_required_when_set(echo_upstream, db):
    async with (
        running_proxy(echo_upstream, db, admin_token="s3cret") as proxy,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(proxy.url + "/_sentinel/faults") as r:
            assert r.status == 401
        headers = {"Authorization": "Bearer s3cret"}
        async with http.get(proxy.url + "/_sentinel/faults", headers=headers) as r:
            assert r.status == 200
        # The proxied app itself needs no token.
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        await ws.close()


class _Peer:
    def __init__(self, host: str):
        self.host = host

    def get_extra_info(self, name: str, default=None):
        return (self.host, 40000) if name == "peername" else default


def test_admin_api_answers_loopback_only_without_a_token():
    def request(host: str, auth: str | None = None):
        headers = {"Authorization": auth} if auth else {}
        return make_mocked_request(
            "GET", "/_sentinel/faults", headers=headers, transport=_Peer(host)
        )

    assert allowed(request("127.0.0.1"), None) and allowed(request("::1"), None)
    assert not allowed(request("192.0.2.10"), None)
    assert allowed(request("192.0.2.10", "Bearer t"), "t")
    assert not allowed(request("127.0.0.1"), "t")  # with a token, everyone presents it
    assert not allowed(request("127.0.0.1", "Bearer wrong"), "t")


async def test_fault_cli_against_a_running_proxy(tmp_path, echo_upstream):
    db = tmp_path / "r.db"
    process, url, banner = await start_cli_proxy(echo_upstream, db, "--fault", "latency ms=5")
    assert "fault 1       latency ms=5" in banner

    async def fault(*args: str) -> tuple[int, str]:
        result = await asyncio.to_thread(CliRunner().invoke, cli, ["fault", *args, "--proxy", url])
        return result.exit_code, result.output

    try:
        assert await fault("add", "close", "code=1011", "after=60s") == (
            0, "fault 2 added: close code=1011 after=60s\n",
        )  # fmt: skip
        code, out = await fault("list")
        assert code == 0 and "latency ms=5" in out and "close code=1011" in out
        # The proxy's --listen address works as well as its URL.
        listen = url.removeprefix("http://")
        listed = await asyncio.to_thread(
            CliRunner().invoke, cli, ["fault", "list", "--json", "--proxy", listen]
        )
        assert [f["spec"] for f in json.loads(listed.output)][:1] == ["latency ms=5"]
        code, out = await fault("add", "close", "cod=1")
        assert code == 2 and "close has no setting 'cod'" in out
        assert (await fault("remove", "1"))[0] == 0
        assert await fault("clear") == (0, "1 fault(s) removed\n")
        ws = await within(websockets.connect(ws_url(url, "/ws")))
        code, out = await fault("abort", "1")
        assert code == 0 and "session 1: abort" in out
        with pytest.raises(websockets.ConnectionClosedError):
            await within(ws.recv())
        code, out = await fault("remove", "77")
        assert code == 2 and "no fault 77" in out
    finally:
        process.send_signal(signal.SIGTERM)
        assert await within(process.wait(), 20) == 0
    code, out = await fault("list")
    assert code == 2 and "cannot reach the proxy" in out


def test_malformed_fault_on_the_command_line(tmp_path):
    result = CliRunner().invoke(
        cli, ["proxy", "--fault", "stall dir=up", "--db", str(tmp_path / "r.db")]
    )
    assert result.exit_code == 2 and "must be c2s, s2c or both" in result.output
    assert "Invalid value for '--fault'" in result.output and "Traceback" not in result.output


async def test_monitor_follow_shows_faults_as_they_fire(upstream, db):
    url, _ = upstream
    async with running_proxy(url, db, faults=faults("close code=1011 after=0.1s")) as proxy:
        ws = await within(websockets.connect(ws_url(proxy.url, "/ws")))
        with pytest.raises(websockets.ConnectionClosed):
            await within(ws.recv())
        await recorded(db, "SELECT count(*) FROM fault_events")
        await recorded(db, "SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL")
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, ["monitor", "--db", str(db), "--follow", "--once"]
        )
        await proxy.stop_once()
    flat = re.sub(r"[│|\s]+", " ", result.output)
    assert "Recent faults" in flat
    assert re.search(r"close 1 1 close code=1011 after=0.1s client 1011, upstream 1001", flat), flat
    assert "injected" in flat


async def test_web_pages_cannot_drive_the_admin_api(upstream, db):
    """A cross-site form post, a foreign Origin, a rebound DNS name: all refused."""
    url, _ = upstream
    async with running_proxy(url, db) as proxy, aiohttp.ClientSession() as http:
        api = proxy.url + "/_sentinel"
        port = proxy.url.rsplit(":", 1)[1]
        form = {"Content-Type": "text/plain"}  # what a <form enctype=text/plain> can send
        async with http.post(api + "/faults", data="abort", headers=form) as r:
            assert r.status == 415
        evil = {"Origin": "http://evil.example", "Content-Type": "application/json"}
        async with http.post(api + "/faults", json={"spec": "abort"}, headers=evil) as r:
            assert r.status == 403 and "Origin" in (await r.json())["error"]
        rebound = {"Host": f"evil.example:{port}"}
        async with http.get(api + "/status", headers=rebound) as r:
            assert r.status == 403 and "Host" in (await r.json())["error"]
        for name in ("localhost", "127.0.0.1"):
            async with http.get(api + "/status", headers={"Host": f"{name}:{port}"}) as r:
                assert r.status == 200
        same = {"Origin": proxy.url}
        async with http.post(api + "/faults", json={"spec": "latency ms=1"}, headers=same) as r:
            assert r.status == 201
        assert [f["spec"] for f in proxy.proxy.faults.listing()] == ["latency ms=1"]
        # The app behind the proxy is not the admin API: its own forms pass.
        async with http.post(proxy.url + "/api/form", data="x", headers=form) as r:
            assert r.status == 201


async def test_a_malformed_authorization_header_is_a_401_not_a_500(echo_upstream, db):
    async with running_proxy(echo_upstream, db, admin_token="s3cret") as proxy:
        host, port = proxy.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"GET /_sentinel/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s\xe9cret\r\n\r\n"
        )
        head = await within(reader.readuntil(b"\r\n\r\n"))
        assert head.startswith(b"HTTP/1.1 401")
        writer.close()


def test_an_empty_admin_token_is_refused():
    result = CliRunner().invoke(cli, ["proxy", "--admin-token", "", "--no-record"])
    assert result.exit_code == 2 and "must not be empty" in result.output


def test_readme_fault_table_is_the_registry():
    from pathlib import Path

    from sentinel_ws_proxy.faults.actions import actions_markdown

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = text.index("<!-- faults:start -->") + len("<!-- faults:start -->")
    assert text[start : text.index("<!-- faults:end -->")].strip() == actions_markdown()
