"""Real reference implementations of WebSocket application protocols, for putting the proxy
between a real client and a real server and checking what the recording says.

Everything here is Node (>= 20): package.json/package-lock.json pin graphql 16.15.0, graphql-ws
6.4.2, ws 8.23.1, socket.io/socket.io-client 4.8.4, socket.io-msgpack-parser 3.0.2,
@microsoft/signalr 11.0.0 (with its own ws 7.5.14), phoenix 1.8.16, @rails/actioncable 8.1.400.
ensure_node_modules() runs `npm ci` once (about 3 s, 20 MB). Each stack NAME has
NAME/server.mjs (listens on 127.0.0.1:0, prints {"port": N} first, then one JSON line per event
it observed, runs until SIGTERM) and NAME/client.mjs (`node client.mjs SCENARIO WS_URL [flags]`,
prints one final JSON line, exits 0; 2 = harness error, e.g. a wait that timed out). lib/wire.mjs
wraps the client's ws socket so the result lists every frame the client sent and received.
`python -m tests.stacks.protocols.runner [--proxy]` runs them all and prints the wire.

    with server("graphql-ws") as (process, port):
        result = run_client("graphql-ws", "forbidden", ws_url("graphql-ws", proxy_port))
        assert result["closed"]["code"] == 4403
        server_events(process)  # [{"event": "onConnect", "token": "bad"}, ...]

What goes on the wire, as observed (c2s = client to server; "close 1005" = a close frame with
no status code; the peer answering a close frame echoes it, ws echoing the same code and reason).

graphql-ws  (subprotocol graphql-transport-ws; WS_URL ws://HOST:PORT/graphql; server flags
--init-timeout MS (1000), --keepalive MS (12000: WebSocket ping frames), --slow MS (3000)).
createClient (lazy: false, retryAttempts: 0) unless marked raw. connection_init payload
{"token": T}; the server's onConnect: "secret" -> connection_ack {"user":"alice"}, "bad" ->
false, "crash" -> throws, "slow" -> acks after --slow ms, "ping" -> acks, then sends a WebSocket
ping frame "keepalive" and {"type":"ping","payload":{"from":"server"}}.
  ok              init, ack, subscribe countdown(3), next x3, complete; client dispose():
                  c2s close 1000 "Normal Closure", echoed
  forbidden       init {"token":"bad"}; s2c close 4403 "Forbidden", echoed
  unauthorized    raw: subscribe before any init; s2c close 4401 "Unauthorized"
  bad_request     raw: init, ack, text "this is not json"; s2c close 4400 "Invalid message received"
  duplicate       createClient with generateID -> "dup": init, ack, two subscribe id "dup";
                  s2c close 4409 "Subscriber for dup already exists"
  too_many_inits  raw: init, ack, init; s2c close 4429 "Too many initialisation requests"
  init_timeout    raw: opens and sends nothing; after --init-timeout s2c close 4408
                  "Connection initialisation timeout"
  terminate       init, ack, subscribe ticks, one next, client.terminate(): a close frame IS sent,
                  c2s close 4499 "Terminated" (graphql-ws calls ws.close(4499, "Terminated") and
                  drops its handlers), echoed by the server; the client library reports a
                  synthetic 4499 with wasClean false
  internal_error  init {"token":"crash"}: onConnect throws; s2c close 4500 "auth backend down".
                  graphql-ws 6.4.2 sends 4500 whenever message handling throws (a hook such as
                  onConnect/onSubscribe throwing, or a client sending a server-only type like
                  "next"), or on a ws 'error' event; the reason is the error message unless
                  isProd (NODE_ENV=production), then "Internal server error"
  ack_timeout     init {"token":"slow"} with connectionAckWaitTimeout 300: no ack in time,
                  c2s close 4504 "Connection acknowledgement timeout", echoed
  operation_error errors inside the protocol, no close: an invalid query -> {"type":"error",
                  "payload":[{"message":"Cannot query field ..."}]}; subscription boom -> next,
                  then error [{"message":"boom"}]; a query -> next, complete; dispose: close 1000
  ping            client keepAlive 150 ms: c2s {"type":"ping"} / s2c {"type":"pong"} (twice);
                  s2c WebSocket ping "keepalive" (c2s pong) and s2c {"type":"ping","payload":
                  {"from":"server"}} -> c2s {"type":"pong","payload":{"from":"server"}}; close 1000
  subprotocol     raw, no Sec-WebSocket-Protocol: 101 without a subprotocol, then s2c close 4406
                  "Subprotocol not acceptable"
  (4005/4004 are client-side codes; 4504 is produced by ack_timeout.)

socketio  (Engine.IO 4 over a WebSocket only; WS_URL ws://HOST:PORT, the client uses
/socket.io/?EIO=4&transport=websocket; server and client take --parser json|msgpack; server
--ping-interval MS (500) --ping-timeout MS (1000)). Every session starts s2c text
0{"sid":...,"upgrades":[],"pingInterval":500,"pingTimeout":1000,"maxPayload":1000000}
(Engine.IO frames stay text with msgpack; Socket.IO packets become binary msgpack maps
{type, nsp, data[, id][, options]}). Engine.IO heartbeat: s2c text "2", c2s text "3".
Both sides close the WebSocket with close() and no code: close frames are 1005.
  ok                 c2s 40{"token":"secret"}, s2c 40{"sid":...}, s2c 42["welcome",{...}],
                     c2s 420["echo",...] -> s2c 430[...], c2s 451-1["upload",{"_placeholder":
                     true,"num":0}] + binary 01020304 -> s2c 431[{"bytes":4}] (msgpack: one
                     binary frame with the bytes inline), "2"/"3", c2s 41 (msgpack 82a474797065
                     01a36e7370a12f), c2s close 1005, echoed. Server: "client namespace disconnect"
  server_disconnect  c2s 42["kick"]; server socket.disconnect(true): s2c 41 (msgpack
                     {type:1,nsp:"/"}), then BOTH sides close at once (the server closes the
                     engine, the client closes on the 41): a race, the close frames cross; through
                     the proxy the server's was first in every run (closed_by server). Client
                     "io server disconnect"; server "server namespace disconnect"/"forced close"
  namespace_refused  c2s 40{"token":"wrong"}; s2c 44{"message":"not authorized","data":
                     {"reason":"bad token"}} (msgpack type 4); client connect_error, then
                     socket.disconnect(): c2s close 1005 (no 41, the namespace never connected)
  ping_timeout       raw peer: open, CONNECT, then ignores s2c "2"; after pingInterval +
                     pingTimeout (about 1.5 s) s2c close 1005, echoed. The server logs
                     disconnect "ping timeout" (engine_close "ping timeout"); nothing in the
                     frames names the reason

signalr  (JSON hub protocol over a plain WebSocket, no subprotocol, no /negotiate:
skipNegotiation; WS_URL ws://HOST:PORT/hub, given to the client as http://; server
--ping-interval MS (15000)). Every message ends with \x1e. Every session: c2s
{"protocol":"json","version":1}, s2c {}, c2s {"type":6} (the client pings right after the
handshake). The client stops with ws.close() and no code: c2s close 1005, echoed.
  ok                  c2s {"type":1,"invocationId":"0","target":"Echo",...} -> s2c {"type":3,
                      "invocationId":"0","result":"hello"}; c2s Broadcast (no invocationId) ->
                      s2c {"type":1,"target":"ReceiveMessage",...}; stop(): c2s {"type":7}, close
  server_close_error  c2s CloseWithError -> s2c {"type":7,"error":"Connection closed with an
                      error. Boom","allowReconnect":true}; the client closes (no {"type":7} of its
                      own); onclose "Server returned an error on close: ... Boom". (ASP.NET Core
                      would also close right after its close message; this server waits 1 s for
                      the client so the initiator is deterministic)
  ping                keepAlive 200 ms, ?serverPingMs=200: {"type":6} both ways (>= 2 each)
  server_timeout      serverTimeout 600 ms; c2s GoSilent -> s2c {"type":3,"invocationId":"0"},
                      then the server says nothing; a c2s ping, then c2s close 1005; onclose
                      "Server timeout elapsed without receiving a message from the server."
  invoke_error        s2c {"type":3,"invocationId":"0","error":"Failed to invoke 'NoSuchMethod'
                      ... Method does not exist."}; stop(): c2s {"type":7}, close 1005

phoenix  (serializer 2.0.0, text frames [join_ref, ref, topic, event, payload]; WS_URL
ws://HOST:PORT/socket, the client connects to /socket/websocket?token=...&vsn=2.0.0; client
--heartbeat MS (500)). socket.disconnect() closes with no code: c2s close 1005, echoed.
  ok               c2s ["7","7","room:lobby","phx_join",{"user":"alice"}] -> s2c phx_reply
                   {"status":"ok","response":{"welcome":"alice"}}; new_msg -> phx_reply ok and
                   s2c ["7",null,"room:lobby","new_msg",{"body":"hi"}]; heartbeat
                   [null,"10","phoenix","heartbeat",{}] -> phx_reply ok; phx_leave -> phx_reply ok
                   and s2c ["7","7","room:lobby","phx_close",{}]; close 1005
  join_refused     phx_join private:secret -> s2c phx_reply {"status":"error","response":
                   {"reason":"unauthorized"}}; close 1005
  channel_crash    c2s "crash" (never replied) -> s2c ["7","7","room:lobby","phx_error",{}]; the
                   client rejoins 100 ms later with a new join_ref ("9") -> phx_reply ok; close
  server_close     c2s "kick" -> s2c ["7","7","room:lobby","phx_close",{}]; close 1005
  connect_refused  token=bad: HTTP 403 to the upgrade (what Phoenix answers when connect/3
                   returns :error); no WebSocket, the client sees 1006
  (refs are the client's counter and differ if the client's timing does.)

actioncable  (subprotocol actioncable-v1-json; WS_URL ws://HOST:PORT/cable, the client appends
?token=...; server --ping-interval MS (300; Rails: 3000)). consumer.disconnect() closes with
no code: c2s close 1005, echoed. s2c {"type":"ping","message":<unix s>} may appear anywhere.
  ok                       s2c {"type":"welcome"}; c2s {"command":"subscribe","identifier":
                           "{\"channel\":\"ChatChannel\",\"room\":\"lobby\"}"} -> s2c
                           confirm_subscription; c2s {"command":"message",...,"data":
                           "{\"message\":\"hi\",\"action\":\"speak\"}"} -> s2c {"identifier":...,
                           "message":{...}}; a ping; c2s unsubscribe; close 1005
  unauthorized_disconnect  token=bad: s2c {"type":"disconnect","reason":"unauthorized",
                           "reconnect":false} then at once s2c close 1000 (as Rails); the client
                           closes on the disconnect message too (c2s close 1005): the close frames
                           cross; the proxy recorded closed_by server, code 1000
  subscription_rejected    welcome; subscribe SecretChannel -> s2c {"identifier":...,"type":
                           "reject_subscription"}; close 1005
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.stacks import npm

HERE = Path(__file__).resolve().parent

#: Stack name -> the scenarios its client knows (``node <name>/client.mjs SCENARIO WS_URL``).
SCENARIOS: dict[str, tuple[str, ...]] = {
    "graphql-ws": (
        "ok", "forbidden", "unauthorized", "bad_request", "duplicate", "too_many_inits",
        "init_timeout", "terminate", "internal_error", "ack_timeout", "operation_error", "ping",
        "subprotocol",
    ),
    "socketio": ("ok", "server_disconnect", "namespace_refused", "ping_timeout"),
    "signalr": ("ok", "server_close_error", "ping", "server_timeout", "invoke_error"),
    "phoenix": ("ok", "join_refused", "channel_crash", "server_close", "connect_refused"),
    "actioncable": ("ok", "unauthorized_disconnect", "subscription_rejected"),
}  # fmt: skip

#: Stack name -> the path a client connects to (Socket.IO adds /socket.io/ itself; Phoenix adds
#: /websocket?token=...&vsn=2.0.0; Action Cable gets ?token=... appended).
PATHS: dict[str, str] = {
    "graphql-ws": "/graphql",
    "socketio": "/",
    "signalr": "/hub",
    "phoenix": "/socket",
    "actioncable": "/cable",
}


class StackUnavailable(RuntimeError):
    """node or npm is missing, or `npm ci` failed: the stacks cannot run here."""


class ClientFailed(RuntimeError):
    """A client exited non-zero or printed no JSON: a harness error, not a protocol outcome."""

    def __init__(self, message: str, result: dict | None = None):
        super().__init__(message)
        self.result = result


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise StackUnavailable(
            f"`{name}` is not on PATH: the protocol stacks in {HERE} need Node.js 20+ and npm"
        )
    return path


def ensure_node_modules() -> Path:
    """Run `npm ci` in this directory once, when node_modules is missing or older than the
    lockfile. Returns the node_modules path; raises StackUnavailable when node/npm is
    missing or npm fails."""
    try:
        return npm.ensure_node_modules(HERE)
    except npm.NpmFailed as exc:
        raise StackUnavailable(str(exc)) from None


def _script(name: str, role: str) -> Path:
    if name not in SCENARIOS:
        raise ValueError(f"unknown stack {name!r}; known: {', '.join(SCENARIOS)}")
    return HERE / name / f"{role}.mjs"


def start_server(
    name: str, *args: str, timeout: float = 15.0, log_dir: str | os.PathLike | None = None
) -> tuple[subprocess.Popen, int]:
    """Start NAME's server (`node NAME/server.mjs ARGS...`) on 127.0.0.1 and an ephemeral port.

    Its stdout goes to a file (first line {"port": N}, then one JSON line per event the server
    observed; see server_events), its stderr to another; never to a pipe. Returns the process
    (with .stdout_path and .stderr_path set) and the port.
    """
    ensure_node_modules()
    node = _tool("node")
    folder = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix=f"proto-{name}-"))
    folder.mkdir(parents=True, exist_ok=True)
    stamp = f"{name}-server-{os.getpid()}-{time.monotonic_ns()}"
    out_path, err_path = folder / f"{stamp}.out", folder / f"{stamp}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen(
            [node, str(_script(name, "server")), *args],
            cwd=HERE, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
        )  # fmt: skip
    process.stdout_path = out_path  # type: ignore[attr-defined]
    process.stderr_path = err_path  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while True:
        text = out_path.read_text(errors="replace")
        if "\n" in text:
            first = text.split("\n", 1)[0]
            try:
                return process, int(json.loads(first)["port"])
            except (ValueError, KeyError, TypeError) as exc:
                stop(process)
                raise StackUnavailable(
                    f'{name} server printed {first!r}, not {{"port": N}}'
                ) from exc
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            why = (
                "exited"
                if process.returncode is not None
                else f"printed no port within {timeout} s"
            )
            raise StackUnavailable(
                f"{name} server {why}; stderr:\n" + err_path.read_text(errors="replace")[-3000:]
            )
        time.sleep(0.02)


def server_events(process: subprocess.Popen) -> list[dict]:
    """The JSON lines the server printed after its port line (what the server observed)."""
    events = []
    lines = Path(process.stdout_path).read_text(errors="replace").splitlines()  # type: ignore[attr-defined]
    for line in lines[1:]:
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events


def stop(process: subprocess.Popen, timeout: float = 5.0) -> int | None:
    """SIGTERM the process, wait for it, SIGKILL it if it lingers. Returns its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    return process.returncode


@contextlib.contextmanager
def server(
    name: str, *args: str, log_dir: str | os.PathLike | None = None
) -> Iterator[tuple[subprocess.Popen, int]]:
    """start_server as a context manager that stops the server on exit."""
    process, port = start_server(name, *args, log_dir=log_dir)
    try:
        yield process, port
    finally:
        stop(process)


def ws_url(name: str, port: int, host: str = "127.0.0.1") -> str:
    """The WS_URL a client of NAME takes for a server (or proxy) on PORT."""
    return f"ws://{host}:{port}{PATHS[name]}"


def run_client(name: str, scenario: str, ws_url: str, *args: str, timeout: float = 20) -> dict:
    """Run `node NAME/client.mjs SCENARIO WS_URL ARGS...` and return its final JSON line.

    The result holds "events" (what the client library reported, in order, with "t" in ms
    since the client started), "connections" (one per WebSocket the client opened: its "wire",
    every frame the client sent or received, with dir "out"/"in", op text/binary/ping/pong/
    close/http/open/closed, and its close summary) and "closed" (the summary of the last
    connection: "code" the close code the client received (1005 = empty close frame, 1006 =
    none), "reason", "initiator" ("client"/"server": who sent the first close frame as the
    client saw it), "clean", "sent", "received"). Raises ClientFailed on a harness error
    (non-zero exit, a scenario that timed out, no JSON).
    """
    if scenario not in SCENARIOS.get(name, ()):
        raise ValueError(f"unknown scenario {scenario!r} for {name!r}")
    ensure_node_modules()
    proc = subprocess.run(
        [_tool("node"), str(_script(name, "client")), scenario, ws_url, *args],
        cwd=HERE, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    result = None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                result = json.loads(line)
                break
    if proc.returncode != 0 or result is None or "error" in result:
        raise ClientFailed(
            f"{name} client {scenario} exited {proc.returncode}: "
            + (result.get("error", "") if result else "no JSON line")
            + "\nstderr:\n"
            + proc.stderr[-3000:],
            result,
        )
    return result
