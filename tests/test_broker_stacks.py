"""STOMP and MQTT over WebSocket on a real broker: Debian's RabbitMQ (3.10, web-stomp and
web-mqtt) with @stomp/stompjs and mqtt.js (tests/stacks/broker/), each client through the
proxy; the verdict, the protocol that judged it and the broker's own words; the frames
`show --json` decodes; credentials kept out of the recording.

One broker for the module (it takes ~9 s to start), stopped however the tests end. Every
scenario runs once, all at the same time, each through a proxy and recording of its own;
the tests then read the recordings. Skipped when rabbitmq-server or node is missing,
unless SENTINEL_REQUIRE_STACKS=1 (as .ci/run sets), where that is a failure.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from sentinel_ws_proxy.analysis.report import Window, failure_report
from sentinel_ws_proxy.cli import cli
from sentinel_ws_proxy.decoders import mqtt, stomp
from sentinel_ws_proxy.recording.reader import Recording
from tests.conftest import recorded, running_proxy
from tests.stacks import broker as B

pytestmark = pytest.mark.timeout(120)

REQUIRE = "SENTINEL_REQUIRE_STACKS"
# name: (client script, scenario, sessions it opens)
SCENARIOS = {
    "stomp-ok": ("stomp_client.mjs", "ok", 1),
    "stomp-bad_login": ("stomp_client.mjs", "bad_login", 1),
    "stomp-bad_destination": ("stomp_client.mjs", "bad_destination", 1),
    "mqtt-ok_v311": ("mqtt_client.mjs", "ok_v311", 1),
    "mqtt-bad_password_v311": ("mqtt_client.mjs", "bad_password_v311", 1),
    "mqtt-takeover_v311": ("mqtt_client.mjs", "takeover_v311", 2),
}
ENDED = "SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL"


def missing(reason: str) -> None:
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"the broker stack is required ({REQUIRE}=1) but {reason}")
    pytest.skip(f"no RabbitMQ broker stack: {reason}")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    reason = B.rabbitmq_available() or B.node_available()
    if reason:
        missing(reason)
    B.ensure_node_modules()
    # start_rabbitmq stops what it started when it fails; stop_rabbitmq raises if a
    # process of the broker survives SIGKILL.
    started = B.start_rabbitmq(tmp_path_factory.mktemp("broker"))
    try:
        yield started
    finally:
        B.stop_rabbitmq(started)


@dataclass
class Run:
    db: Path
    client: dict | None  # the client's last JSON line (run_client)
    error: str | None  # why the run itself failed

    def check(self, broker: B.Broker) -> dict:
        assert self.error is None, f"{self.error}\n{broker.log_tail(20)}"
        assert self.client is not None
        assert self.client["ok"], json.dumps(self.client)[:3000]
        return self.client


@pytest.fixture(scope="module")
def runs(broker, tmp_path_factory) -> dict[str, Run]:
    base = tmp_path_factory.mktemp("recordings")
    return asyncio.run(run_all(broker, base))


async def run_all(broker: B.Broker, base: Path) -> dict[str, Run]:
    # The clients block their threads for seconds: a pool of their own, so that the
    # proxies' own use of the default executor (getaddrinfo for the upstream) never waits
    # behind them.
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(len(SCENARIOS), thread_name_prefix="broker-client") as pool:

        async def one(name: str, script: str, scenario: str, sessions: int) -> Run:
            db = base / f"{name}.db"
            upstream = broker.stomp_ws_url if script.startswith("stomp") else broker.mqtt_ws_url
            try:
                origin = "http://" + upstream.removeprefix("ws://").split("/", 1)[0]
                async with running_proxy(origin, db) as proxy:
                    url = f"ws://127.0.0.1:{int(proxy.url.rsplit(':', 1)[1])}/ws"
                    call = functools.partial(B.run_client, script, scenario, url, broker.user,
                                             broker.password)  # fmt: skip
                    client = await loop.run_in_executor(pool, call)
                    await recorded(db, ENDED, sessions)
            except Exception as exc:  # reported by the test that reads this run
                return Run(db, None, f"{name}: {type(exc).__name__}: {exc}")
            return Run(db, client, None)

        done = await asyncio.gather(*(one(n, *s) for n, s in SCENARIOS.items()))
    return dict(zip(SCENARIOS, done, strict=True))


def judged(db: Path) -> list:
    """(session row, verdict) of each accepted session, in order."""
    with Recording(db) as recording:
        report = failure_report(recording, Window())
    found = [(s, v) for s, v in report.classified.pairs() if s.accepted]
    assert found, "no accepted session recorded"
    return found


def shown(db: Path, session_id: int) -> dict:
    result = CliRunner().invoke(cli, ["show", str(session_id), "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def decoded(detail: dict, direction: str | None = None) -> list[dict]:
    """The decoded data messages of `show --json`, in order."""
    return [
        m["decoded"]
        for m in detail["messages"]
        if m["opcode"] in ("text", "binary")
        and m["decoded"] is not None
        and direction in (None, m["direction"])
    ]


def data_messages(db: Path, session_id: int) -> list:
    with Recording(db) as recording:
        return [m for m in recording.messages(session_id) if m.opcode in ("text", "binary")]


def stored_bytes(db: Path) -> bytes:
    """Everything the recording holds on disk (its WAL too)."""
    files = [db, db.with_name(db.name + "-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


# -- STOMP -----------------------------------------------------------------------------------


def test_stomp_ok_is_clean_and_decoded(broker, runs):
    run = runs["stomp-ok"]
    run.check(broker)
    [(s, verdict)] = judged(run.db)
    assert (verdict.category, verdict.judged_by) == ("clean", "stomp"), verdict
    assert "DISCONNECT" in verdict.explanation
    detail = shown(run.db, s.id)
    assert detail["session"]["judged_by"] == "stomp"
    kinds = [d["kind"] for d in decoded(detail)]
    for kind in ("CONNECT", "CONNECTED", "SUBSCRIBE", "SEND", "MESSAGE", "heartbeat", "DISCONNECT"):
        assert kind in kinds, kinds
    assert not [k for k in kinds if k == "malformed"], kinds
    connect = next(d for d in decoded(detail) if d["kind"] == "CONNECT")
    assert connect["headers"]["login"] == "sentinel"
    assert connect["headers"]["passcode"] == stomp.REDACTED
    message = next(d for d in decoded(detail) if d["kind"] == "MESSAGE")
    assert message["body"] == "hello from stompjs"


def test_stomp_bad_login_is_rejected_in_the_brokers_words(broker, runs):
    """RabbitMQ answers a wrong passcode with an ERROR and keeps the socket open: the
    client closes it 3 s later (1005), yet the refusal is what ended the session."""
    run = runs["stomp-bad_login"]
    client = run.check(broker)
    assert client["error"]["message"] == "Bad CONNECT"
    [(s, verdict)] = judged(run.db)
    assert (s.closed_by, s.close_code) == ("client", 1005)
    assert (verdict.category, verdict.judged_by) == ("rejected", "stomp"), verdict
    assert "Bad CONNECT" in verdict.explanation
    assert "Access refused for user 'sentinel'" in verdict.explanation


def test_stomp_error_inside_a_session_that_goes_on_is_evidence_not_the_ending(broker, runs):
    """An ERROR for a SEND to an invalid destination, then heart-beats and the client's
    DISCONNECT: RabbitMQ kept the session (the STOMP spec has the server close after an
    ERROR; RabbitMQ does not for this one), so the session ended as the client chose:
    clean. The ERROR stays in the recording, decoded with the broker's words."""
    run = runs["stomp-bad_destination"]
    client = run.check(broker)
    assert client["error"]["message"] == "Unknown destination"
    [(s, verdict)] = judged(run.db)
    assert (s.closed_by, s.close_code, s.close_reason) == ("server", 1000, "STOMP died")
    assert (verdict.category, verdict.judged_by) == ("clean", "stomp"), verdict
    assert "DISCONNECT" in verdict.explanation
    said = decoded(shown(run.db, s.id))
    kinds = [d["kind"] for d in said]
    assert kinds.index("ERROR") < kinds.index("DISCONNECT"), kinds
    error = said[kinds.index("ERROR")]
    assert error["event"] == "error" and error["headers"]["message"] == "Unknown destination"
    assert "is not a valid destination" in error["ending"]["reason"]


# -- MQTT 3.1.1 --------------------------------------------------------------------------------


def test_mqtt_ok_is_clean_with_pings_decoded(broker, runs):
    """mqtt.js writes every packet in pieces, one WebSocket message each, except the
    2-byte PINGREQ; RabbitMQ sends one message per packet. What the server says and the
    client's pings decode; the client's other packets only when their pieces are joined."""
    run = runs["mqtt-ok_v311"]
    client = run.check(broker)
    assert client["client"]["pings"]["pingresp"] > 0
    [(s, verdict)] = judged(run.db)
    assert verdict.category == "clean", verdict
    detail = shown(run.db, s.id)
    kinds = [d["kind"] for d in decoded(detail)]
    for kind in ("CONNACK", "SUBACK", "PUBLISH", "PUBACK", "PINGREQ", "PINGRESP"):
        assert kind in kinds, kinds
    server = decoded(detail, "s2c")
    assert "malformed" not in [d["kind"] for d in server]
    assert next(d for d in server if d["kind"] == "PUBLISH")["payload"] == "hello from mqtt.js"
    # The client's CONNECT: a dozen messages, whole again once joined.
    pieces = connect_pieces(run.db, s.id)
    assert len(pieces) >= 10, [p.hex() for p in pieces]
    connect = mqtt.decode(b"".join(pieces), "c2s")
    assert connect.kind == "CONNECT" and connect.fields["username"] == "sentinel", connect
    assert connect.fields["password"] is True


def connect_pieces(db: Path, session_id: int) -> list[bytes]:
    """The client's messages before the server's first: its CONNECT, written in pieces."""
    pieces = []
    for m in data_messages(db, session_id):
        if m.direction != "c2s":
            break
        pieces.append(bytes(m.payload))
    return pieces


def test_mqtt_bad_password_is_rejected_in_the_brokers_words(broker, runs):
    """RabbitMQ 3.10 sends no CONNACK for a wrong password (the CONNACK 4 it queues goes
    after its close): it closes with 1002 "unauthenticated", which mqtt.close_code reads."""
    run = runs["mqtt-bad_password_v311"]
    client = run.check(broker)
    assert client["refused"] == {"by": "close", "code": 1002, "reason": "unauthenticated"}
    [(s, verdict)] = judged(run.db)
    assert (s.closed_by, s.close_code) == ("server", 1002)
    assert (verdict.category, verdict.judged_by) == ("rejected", "mqtt"), verdict
    assert "1002 'unauthenticated'" in verdict.explanation
    assert "bad user name or password" in verdict.explanation


def test_mqtt_takeover_the_first_client_is_closed_by_the_broker(broker, runs):
    """A second client with the same client id: RabbitMQ drops the first with 1000 "MQTT
    died", its close for every session it ends, the client's DISCONNECT included."""
    run = runs["mqtt-takeover_v311"]
    client = run.check(broker)
    assert client["second"]["connack"]["code"] == 0
    (first, _), (_, second_verdict) = judged(run.db)
    assert (first.closed_by, first.close_code, first.close_reason) == (
        "server", 1000, "MQTT died",
    )  # fmt: skip
    kinds = [d["kind"] for d in decoded(shown(run.db, first.id), "s2c")]
    assert kinds == ["CONNACK"], kinds
    assert second_verdict.category == "clean", second_verdict


def test_mqtt_takeover_is_judged_a_failure(broker, runs):
    """The broker closed an accepted session the client never said DISCONNECT to (the
    client's DISCONNECT, which mqtt.js writes in two messages, read from its joined byte
    stream): the broker's doing, not an orderly end."""
    run = runs["mqtt-takeover_v311"]
    run.check(broker)
    (_, verdict), (_, second) = judged(run.db)
    assert (verdict.category, verdict.judged_by) == ("app_error", "mqtt"), verdict
    assert "same client id" in verdict.explanation
    assert second.category == "clean", second


# -- credentials ---------------------------------------------------------------------------


def test_no_password_reaches_the_recordings(broker, runs):
    for name, run in runs.items():
        run.check(broker)
        assert broker.password.encode() not in stored_bytes(run.db), name
    # STOMP: the CONNECT is one message, its passcode redacted in place.
    db = runs["stomp-ok"].db
    connect = data_messages(db, judged(db)[0][0].id)[0].payload
    assert connect.startswith("CONNECT\n") and "login:sentinel\npasscode:[redacted]\n" in connect


def test_an_mqtt_connect_in_pieces_has_its_password_masked(broker, runs):
    """mqtt.js writes CONNECT field by field: 10 | 3c | 0004 | 'MQTT' | 04 | c2 | 0001 |
    0015 | client id | 0008 | 'sentinel' | 000f | password, 13 messages. Per-message
    redaction (mqtt.redact) sees none of it whole; the recorder joins the pieces until the
    packet is whole and masks the password's own message with '*'."""
    for name in ("mqtt-ok_v311", "mqtt-bad_password_v311"):
        run = runs[name]
        run.check(broker)
        sid = judged(run.db)[0][0].id
        pieces = connect_pieces(run.db, sid)
        assert [mqtt.redact(p, "c2s") for p in pieces] == [None] * len(pieces)
        joined = b"".join(pieces)
        [(start, stop)] = mqtt.secret_ranges(joined)
        password = joined[start:stop]
        assert password == b"*" * len(password) and len(password) >= len(broker.password)
        assert pieces[-1] == password, [p.hex() for p in pieces]  # the password's own message
        assert mqtt.decode(joined, "c2s").kind == "CONNECT"
