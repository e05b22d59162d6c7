"""Application protocols judged by their own words, on their reference implementations
(issue 20): graphql-ws, Socket.IO over JSON and msgpack, SignalR's, Phoenix's and Action
Cable's real clients, each through the proxy; the verdict, the protocol that judged it
and the app's own words checked.

The stacks live in tests/stacks/protocols/ (pinned by their lockfile, npm ci on first use).
"""

from __future__ import annotations

import asyncio
import shutil

import pytest

from sentinel_ws_proxy.analysis.report import Window, failure_report
from sentinel_ws_proxy.recording.reader import Recording
from tests.conftest import recorded, running_proxy
from tests.stacks import protocols as P

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def node_modules():
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("no node/npm on PATH (apt-get install nodejs npm)")
    P.ensure_node_modules()


async def through_proxy(db, stack: str, flags: tuple[str, ...], scenario: str) -> dict:
    """A stack's real server, the proxy recording to `db` in front of it, and its real
    client running `scenario` through the proxy; what the client saw."""
    process, port = P.start_server(stack, *flags)
    try:
        async with running_proxy(f"http://127.0.0.1:{port}", db) as proxy:
            url = P.ws_url(stack, int(proxy.url.rsplit(":", 1)[1]))
            client_flags = flags if stack == "socketio" else ()  # its parser, both ends
            result = await asyncio.to_thread(P.run_client, stack, scenario, url, *client_flags)
            await recorded(db, "SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL")
    finally:
        P.stop(process)
    return result


# stack, server flags, scenario, category, protocol that judged it (None: the close code
# alone), words the explanation quotes
CASES = [
    ("graphql-ws", (), "forbidden", "rejected", "graphql-ws", "4403"),
    ("graphql-ws", (), "internal_error", "server_error", "graphql-ws", "auth backend down"),
    ("graphql-ws", (), "terminate", "clean", "graphql-ws", "4499"),
    ("graphql-ws", (), "duplicate", "protocol_error", "graphql-ws", "4409"),
    ("graphql-ws", (), "init_timeout", "protocol_error", "graphql-ws", "4408"),
    ("socketio", ("--parser", "json"), "server_disconnect", "app_error", "socket.io", "not to"),
    ("socketio", ("--parser", "msgpack"), "server_disconnect", "app_error", "socket.io", "not to"),
    ("socketio", ("--parser", "json"), "ping_timeout", "client_unresponsive", "socket.io", "ping"),
    ("socketio", ("--parser", "msgpack"), "namespace_refused", "rejected", "socket.io",
     "not authorized"),
    ("signalr", (), "server_close_error", "server_error", "signalr", "Boom"),
    ("phoenix", (), "server_close", "app_error", "phoenix", "closed channel"),
    ("actioncable", (), "unauthorized_disconnect", "rejected", "actioncable", "unauthorized"),
]  # fmt: skip


@pytest.mark.parametrize(
    "stack,flags,scenario,category,judged_by,words",
    CASES,
    ids=[f"{c[0]}{'-' + c[1][1] if c[1] else ''}-{c[2]}" for c in CASES],
)
async def test_the_protocol_judges_its_own_ending(
    tmp_path, node_modules, stack, flags, scenario, category, judged_by, words
):
    db = tmp_path / "p.db"
    await through_proxy(db, stack, flags, scenario)
    with Recording(db) as recording:
        report = failure_report(recording, Window())
    judged = [v for s, v in report.classified.pairs() if s.accepted]
    assert judged, "no accepted session recorded"
    verdict = (
        judged[-1] if stack != "socketio" else next((v for v in judged if v.judged_by), judged[-1])
    )
    assert (verdict.category, verdict.judged_by) == (category, judged_by), verdict
    assert words in verdict.explanation, verdict


@pytest.mark.parametrize(
    "stack,flags,secret",
    [
        ("graphql-ws", (), "secret"),  # connection_init {"token": "secret"}
        ("socketio", ("--parser", "json"), "secret"),  # CONNECT auth {"token": "secret"}
        ("socketio", ("--parser", "msgpack"), "secret"),
    ],
    ids=["graphql-ws", "socketio-json", "socketio-msgpack"],
)
async def test_credentials_in_messages_are_not_recorded(tmp_path, node_modules, stack, flags,
                                                        secret):  # fmt: skip
    db = tmp_path / "s.db"
    result = await through_proxy(db, stack, flags, "ok")
    # The server got the credential (it accepted the client), the recording did not.
    assert result["closed"]["initiator"] == "client", result
    with Recording(db) as recording:
        payloads = [f.payload for s in recording.summaries() for f in recording.frame_rows(s.id)]
    stored = b"".join(p if isinstance(p, bytes) else p.encode() for p in payloads if p)
    assert secret.encode() not in stored
    assert b"[redacted]" in stored
