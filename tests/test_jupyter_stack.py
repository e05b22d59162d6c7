"""A notebook kernel through the proxy, on a real Jupyter server and kernel (issue 20): what
a cell printed travels in binary frames (the v1.kernel.websocket.jupyter.org subprotocol),
and `show --json` reads them as kernel messages, `search` finds the printed words, and the
verdict is right when the kernel is shut down, restarted, crashes or dies for good.

jupyter_server and ipykernel (the test extra) run one server for the module
(tests/stacks/jupyter/, ~1.5 s to start), each test with a kernel of its own, a proxy and a
recording of its own and a client speaking Jupyter's own serializers. What the server does
on the wire, learnt here: it never closes the socket for its kernel's sake; a REST shutdown
or restart is an iopub shutdown_reply (restart false or true); a crash the server restarts
is an iopub status "restarting", a kernel it gives up on an iopub status "dead" (and the
kernel is gone from the server: nothing to restart on that socket).

Skipped when jupyter_server or ipykernel is missing, unless SENTINEL_REQUIRE_STACKS=1
(as .ci/run sets), where that is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets
from click.testing import CliRunner

from sentinel_ws_proxy.cli import cli
from sentinel_ws_proxy.decoders import jupyter
from tests.conftest import recorded, running_proxy, within, ws_url
from tests.stacks import jupyter as J

pytestmark = pytest.mark.timeout(60)

REQUIRE = "SENTINEL_REQUIRE_STACKS"
PRINTED = "the answer is 42"
CELL = f'print("{PRINTED}")'
ENDED = "SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL"
QUIET = 1.0  # seconds of silence that show the server is not closing the socket


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reason = J.missing()
    if reason:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"the Jupyter stack is required ({REQUIRE}=1) but {reason}")
        pytest.skip(f"no Jupyter stack: {reason}")
    started = J.start(tmp_path_factory.mktemp("jupyter"))
    try:
        yield started
    finally:
        leaked = J.stop(started)
        assert not leaked, f"processes of the Jupyter server outlived it (killed): {leaked}"


@pytest.fixture
async def kernel(server) -> AsyncIterator[str]:
    kernel_id = await J.start_kernel(server)
    try:
        yield kernel_id
    finally:
        await J.rest(server, "DELETE", f"/api/kernels/{kernel_id}")  # 404 once deleted


@asynccontextmanager
async def through_proxy(
    server: J.Server, kernel_id: str, db: Path, *, v1: bool = True
) -> AsyncIterator[J.KernelClient]:
    """A kernel client connected through a recording proxy; closed (1000) on the way out,
    and the session's end recorded before this returns."""
    async with running_proxy(server.url, db) as proxy:
        session = J.KernelClient.new_session()
        url = ws_url(proxy.url, J.channels_path(kernel_id, server.token, session.session))
        ws = await within(
            websockets.connect(
                url,
                subprotocols=[J.V1] if v1 else None,
                origin=proxy.url,  # Jupyter wants Origin's host to be the Host it got
                max_size=None,
                open_timeout=J.STEP,
                close_timeout=J.STEP,
            )
        )
        try:
            yield J.KernelClient(ws, session)
        finally:
            await within(ws.close())
        await recorded(db, ENDED)


def cli_json(*args: str) -> Any:
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def show(db: Path, session_id: int = 1) -> dict[str, Any]:
    return cli_json("show", str(session_id), "--db", str(db))


def data_messages(shown: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in shown["messages"] if m["opcode"] in ("text", "binary")]


def kernel_text(message: dict[str, Any]) -> dict[str, Any]:
    """A recorded message as the kernel message it holds: the decoder's text for a binary
    frame, the payload itself for a JSON text frame."""
    raw = message["text"] if message["opcode"] == "binary" else message["payload"]
    return json.loads(raw)


def decoded_kinds(shown: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(direction, channel, msg_type) of every data message, as the decoder read it."""
    return [
        (m["direction"], m["decoded"]["channel"], m["decoded"]["msg_type"])
        for m in data_messages(shown)
    ]


def status_said(shown: dict[str, Any]) -> list[str]:
    return [
        m["decoded"]["execution_state"]
        for m in data_messages(shown)
        if m["decoded"]["kind"] == "status"
    ]


def assert_cell_recorded(db: Path, shown: dict[str, Any], *, binary: bool) -> None:
    """Every data message a decoded kernel message; the printed words found by search in
    the iopub stream message, the request and the execute_reply read."""
    messages = data_messages(shown)
    assert messages, shown["session"]
    assert {m["opcode"] for m in messages} == {"binary" if binary else "text"}
    for m in messages:
        decoded = m["decoded"]
        assert decoded["protocol"] == jupyter.NAME, m
        assert decoded["kind"] == decoded["msg_type"] != "malformed", decoded
        if binary:
            assert m["text"], m  # the frame's bytes as readable JSON
        found = kernel_text(m)
        assert found["channel"] == decoded["channel"]
        assert found["header"]["msg_type"] == decoded["msg_type"]
        assert isinstance(found["content"], dict)
    kinds = decoded_kinds(shown)
    assert ("c2s", "shell", "execute_request") in kinds, kinds
    assert ("s2c", "iopub", "stream") in kinds, kinds
    assert ("s2c", "shell", "execute_reply") in kinds, kinds
    stream = next(m for m in messages if m["decoded"]["kind"] == "stream")
    assert kernel_text(stream)["content"] == {"name": "stdout", "text": f"{PRINTED}\n"}
    assert stream["decoded"]["summary"] == f"iopub stream stdout: {PRINTED}"
    reply = next(m for m in messages if m["decoded"]["kind"] == "execute_reply")
    assert reply["decoded"]["status"] == "ok"
    assert kernel_text(reply)["content"]["status"] == "ok"

    found = cli_json("search", PRINTED, "--db", str(db))
    hits = found["hits"]
    assert hits, found
    assert {h["session_id"] for h in hits} == {shown["session"]["id"]}
    assert stream["id"] in {h["id"] for h in hits if h["direction"] == "s2c"}, hits


def verdict(shown: dict[str, Any]) -> tuple[str, str | None]:
    return shown["session"]["category"], shown["session"]["judged_by"]


# -- a cell, both protocols ------------------------------------------------------------


async def test_v1_binary_frames_are_decoded_found_and_a_client_close_is_clean(
    tmp_path, server, kernel
):
    db = tmp_path / "v1.db"
    async with through_proxy(server, kernel, db) as client:
        assert client.ws.subprotocol == J.V1
        replies = await client.execute(CELL)
        assert replies["stream"]["content"]["text"] == f"{PRINTED}\n", client.summary()
        assert replies["execute_reply"]["content"]["status"] == "ok"
        assert all(m["binary"] for m in client.received)
    shown = show(db)
    session = shown["session"]
    assert session["subprotocol"] == J.V1
    assert_cell_recorded(db, shown, binary=True)
    assert (session["close_code"], session["closed_by"]) == (1000, "client")
    assert verdict(shown) == ("clean", None), session["explanation"]


async def test_legacy_json_protocol_is_decoded_found_and_clean(tmp_path, server, kernel):
    """No subprotocol offered: jupyter_server still speaks the legacy protocol, a JSON text
    frame per message with its channel inside; the decoder is chosen by the path."""
    db = tmp_path / "legacy.db"
    async with through_proxy(server, kernel, db, v1=False) as client:
        assert client.ws.subprotocol is None
        replies = await client.execute(CELL)
        assert replies["stream"]["content"]["text"] == f"{PRINTED}\n", client.summary()
        assert not any(m["binary"] for m in client.received)
    shown = show(db)
    assert shown["session"]["subprotocol"] is None
    assert_cell_recorded(db, shown, binary=False)
    assert verdict(shown) == ("clean", None), shown["session"]["explanation"]


# -- the kernel's life while the socket is open ----------------------------------------


async def quiet(client: J.KernelClient, seconds: float = QUIET) -> None:
    """Nothing more from the server for a while, and the socket still open."""
    try:
        extra = await client.receive(seconds)
    except asyncio.TimeoutError:
        assert client.ws.close_code is None, client.ws.close_code
        return
    raise AssertionError(f"the server said more than expected: {extra}")


async def test_rest_shutdown_keeps_the_socket_open_and_the_client_close_is_clean(
    tmp_path, server, kernel
):
    """DELETE /api/kernels/<id> with the socket open: the kernel says shutdown_reply
    (restart false) on iopub, and the server leaves the socket open; the client closes it
    (as JupyterLab does after shutting down a kernel): an orderly, clean end."""
    db = tmp_path / "shutdown.db"
    async with through_proxy(server, kernel, db) as client:
        await client.execute(CELL)
        status, _ = await J.rest(server, "DELETE", f"/api/kernels/{kernel}")
        assert status == 204
        said = await client.until(lambda m: m["header"]["msg_type"] == "shutdown_reply")
        assert (said["channel"], said["content"]) == ("iopub", {"status": "ok", "restart": False})
        await client.until(lambda m: m["content"].get("execution_state") == "idle")
        await quiet(client)
    shown = show(db)
    kinds = decoded_kinds(shown)
    assert ("s2c", "iopub", "shutdown_reply") in kinds, kinds
    shutdown = next(m for m in data_messages(shown) if m["decoded"]["kind"] == "shutdown_reply")
    assert kernel_text(shutdown)["content"]["restart"] is False
    assert shutdown["decoded"]["event"] == "message"  # a reply, nothing ended by it
    closes = [m for m in shown["messages"] if m["opcode"] == "close"]
    assert [(m["direction"], m["close_code"]) for m in closes] == [
        ("c2s", 1000),
        ("s2c", 1000),
    ]
    assert verdict(shown) == ("clean", None), shown["session"]["explanation"]


async def test_rest_restart_keeps_the_socket_and_the_session_goes_on(tmp_path, server, kernel):
    """POST /api/kernels/<id>/restart: shutdown_reply (restart true) on iopub, then the new
    kernel on the same socket, which runs the next cell; no "restarting" status (that is
    the server's word for a crash it restarts); a clean end."""
    db = tmp_path / "restart.db"
    async with through_proxy(server, kernel, db) as client:
        await client.execute(CELL)
        status, model = await J.rest(server, "POST", f"/api/kernels/{kernel}/restart")
        assert status == 200, model
        said = await client.until(lambda m: m["header"]["msg_type"] == "shutdown_reply")
        assert said["content"] == {"status": "ok", "restart": True}
        await client.nudge()
        replies = await client.execute('print("after the restart")')
        assert replies["stream"]["content"]["text"] == "after the restart\n", client.summary()
    shown = show(db)
    states = status_said(shown)
    assert "restarting" not in states and "dead" not in states, states
    restarted = next(m for m in data_messages(shown) if m["decoded"]["kind"] == "shutdown_reply")
    assert kernel_text(restarted)["content"]["restart"] is True
    assert verdict(shown) == ("clean", None), shown["session"]["explanation"]


CRASH = "import os; os._exit(1)"


async def crash(client: J.KernelClient, then: str) -> dict[str, Any]:
    """Kill the kernel from inside and wait for the server's status word about it."""
    await client.send(
        "shell",
        "execute_request",
        {"code": CRASH, "silent": False, "store_history": False, "user_expressions": {},
         "allow_stdin": False, "stop_on_error": True},
    )  # fmt: skip
    return await client.until(lambda m: m["content"].get("execution_state") == then)


async def test_a_crash_the_server_restarts_is_an_error_inside_a_clean_session(
    tmp_path, server, kernel
):
    """The kernel dies; the server restarts it (status "restarting", the decoder's error
    event) on the same socket, which runs the next cell; the client then closes: the
    session ended cleanly, the crash is a message of it, not its ending."""
    db = tmp_path / "crash.db"
    async with through_proxy(server, kernel, db) as client:
        await client.execute(CELL)
        await crash(client, "restarting")
        await client.nudge()
        replies = await client.execute('print("alive again")')
        assert replies["stream"]["content"]["text"] == "alive again\n", client.summary()
    shown = show(db)
    restarting = [m for m in data_messages(shown) if m["decoded"].get("execution_state")
                  == "restarting"]  # fmt: skip
    assert len(restarting) == 1, status_said(shown)
    assert restarting[0]["decoded"]["event"] == "error"
    assert "ending" not in restarting[0]["decoded"]
    assert verdict(shown) == ("clean", None), shown["session"]["explanation"]


async def test_a_kernel_dead_for_good_is_a_server_error_in_jupyters_words(tmp_path, server, kernel):
    """The kernel dies, is restarted, dies again within the restarter's window: the server
    gives up and says status "dead" on iopub, and keeps the socket open; the client closes
    it. The ending is the kernel's death: server_error, judged by the jupyter decoder."""
    db = tmp_path / "dead.db"
    async with through_proxy(server, kernel, db) as client:
        await crash(client, "restarting")
        await client.nudge()  # the restarted kernel, up
        await crash(client, "dead")
        await quiet(client)
        # Nothing to restart on this socket: the server forgot the kernel ("died, removing
        # from map"); a client starts a new kernel, on a new socket.
        status, _ = await J.rest(server, "GET", f"/api/kernels/{kernel}")
        assert status == 404
    shown = show(db)
    dead = [m for m in data_messages(shown) if m["decoded"].get("execution_state") == "dead"]
    assert len(dead) == 1, status_said(shown)
    assert dead[0]["decoded"]["event"] == "close"
    assert dead[0]["decoded"]["ending"]["category"] == "server_error"
    session = shown["session"]
    assert (session["close_code"], session["closed_by"]) == (1000, "client")
    assert verdict(shown) == ("server_error", jupyter.NAME), session["explanation"]
    assert "the Jupyter kernel died (status dead)" in session["explanation"]


async def test_the_chosen_subprotocol_stays_readable_in_the_response_headers(
    tmp_path, server, kernel
):
    db = tmp_path / "headers.db"
    async with through_proxy(server, kernel, db) as client:
        assert client.ws.subprotocol == J.V1
    session = show(db)["session"]
    assert session["request_headers"]["sec-websocket-protocol"] == J.V1
    assert session["response_headers"]["sec-websocket-protocol"] == J.V1
