"""A real Jupyter server and kernel (jupyter_server and ipykernel from PyPI) for
tests/test_jupyter_stack.py, and a small kernel client speaking Jupyter's own wire.

The server runs as a child process (``python -m jupyter_server``) on a free loopback port
with a known token, no browser, its root, home, config, data and runtime folders in a
temporary folder, and a marker in the environment of every process it starts, so that
``stop`` finds any kernel left behind (kernels run in sessions of their own, outside the
server's process group) and kills it.

The client builds and reads messages with jupyter_client's ``Session`` and jupyter_server's
own v1 serializers, over the ``v1.kernel.websocket.jupyter.org`` subprotocol (every message
a binary frame) or the legacy one (no subprotocol, JSON text frames).

    server = start(tmp_path)
    try:
        kernel = await start_kernel(server)
        async with websockets.connect(channels_url(...), subprotocols=[V1], ...) as ws:
            client = KernelClient(ws)
            replies = await client.execute('print("hi")')
    finally:
        leaked = stop(server)

Facts (jupyter_server 2.21, ipykernel 7.4): the server starts in about 1.5 s, a kernel in
about 0.3 s. The server keeps the WebSocket open when its kernel is shut down, restarted,
restarted by the server after a crash, or declared dead: it only says so on iopub
(shutdown_reply, status "restarting", status "dead"). After a restart its iopub socket
reconnects a little after the kernel answers on shell: ``KernelClient.nudge`` waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

V1 = "v1.kernel.websocket.jupyter.org"
REQUIRED = ("jupyter_server", "ipykernel", "jupyter_client")
MARKER_ENV = "SENTINEL_JUPYTER_STACK"  # in the environment of the server and its kernels
# The kernel restarter, quick and strict: a dead kernel is noticed within half a second and
# restarted once on the same ports (the WebSocket's channels stay connected); a second
# death within a minute leaves it dead (status "dead" on iopub).
RESTARTER = (
    "--KernelRestarter.time_to_dead=0.5",
    "--KernelRestarter.restart_limit=1",
    "--KernelRestarter.stable_start_time=60",
    "--KernelRestarter.random_ports_until_alive=False",
)
STEP = 10.0  # seconds any one exchange may take


def missing() -> str | None:
    """Why the stack cannot run here, or None."""
    absent = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if absent:
        return f"{', '.join(absent)} not installed (pip install -e '.[test]')"
    return None


@dataclasses.dataclass
class Server:
    process: subprocess.Popen
    port: int
    token: str
    home: Path
    log_path: Path
    marker: str
    startup_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(home: Path, *options: str, timeout: float = 30.0) -> Server:
    """A Jupyter server whose every file lives under ``home``, serving when this returns."""
    home.mkdir(parents=True, exist_ok=True)
    for sub in ("root", "config", "data", "runtime", "ipython"):
        (home / sub).mkdir(exist_ok=True)
    port, token, marker = free_port(), secrets.token_hex(16), secrets.token_hex(8)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER_", "IPYTHON")) and key != "PYTHONSTARTUP"
    }
    env.update(
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        PYDEVD_DISABLE_FILE_VALIDATION="1",  # debugpy's warning about frozen modules
        **{MARKER_ENV: marker},
    )
    args = [
        sys.executable, "-m", "jupyter_server",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={home / 'root'}", "--ServerApp.allow_root=True",
        *RESTARTER, *options,
    ]  # fmt: skip
    log_path = home / "server.log"
    began = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            args, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(process, port, token, home, log_path, marker)
    try:
        _wait_serving(server, timeout)
    except BaseException:
        stop(server)
        raise
    server.startup_seconds = time.monotonic() - began
    return server


def _wait_serving(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"the Jupyter server exited:\n{server.log_tail()}")
        with contextlib.suppress(OSError, urllib.error.URLError):
            request = urllib.request.Request(
                f"{server.url}/api/status", headers={"Authorization": f"token {server.token}"}
            )
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Jupyter server never served:\n{server.log_tail()}")
        time.sleep(0.1)


def stop(server: Server) -> list[str]:
    """Stop the server (it shuts its kernels down on SIGTERM), then kill whatever process of
    its own survived; returns those survivors ("pid cmdline"), for the caller to fail on."""
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    leaked = processes_of(server.marker)
    for pid, _ in leaked:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while processes_of(server.marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [f"{pid} {cmdline}" for pid, cmdline in leaked]


def processes_of(marker: str) -> list[tuple[int, str]]:
    """Live processes whose environment carries the marker (Linux /proc; none elsewhere)."""
    wanted = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if wanted not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie: gone, waiting for its parent
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append((int(entry.name), cmdline.strip()))
    return found


# -- the REST API ------------------------------------------------------------------------


async def rest(server: Server, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One call to the server's REST API with the token: (status, JSON body or None)."""

    def call() -> tuple[int, Any]:
        data = None if body is None and method != "POST" else json.dumps(body or {}).encode()
        request = urllib.request.Request(
            f"{server.url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=STEP) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    return await asyncio.wait_for(asyncio.to_thread(call), STEP + 5)


async def start_kernel(server: Server) -> str:
    status, model = await rest(server, "POST", "/api/kernels", {"name": "python3"})
    assert status == 201, (status, model, server.log_tail())
    return model["id"]


# -- the kernel client -------------------------------------------------------------------


def channels_path(kernel_id: str, token: str, session_id: str) -> str:
    return f"/api/kernels/{kernel_id}/channels?token={token}&session_id={session_id}"


class KernelClient:
    """Jupyter's messages over an open WebSocket (``websockets``' client): built by
    jupyter_client's Session, framed by jupyter_server's serializers for the subprotocol
    the server chose (v1 binary, or the legacy JSON text when none)."""

    def __init__(self, ws: Any, session: Any | None = None):
        from jupyter_client.session import Session

        self.ws = ws
        self.session = session or Session(username="sentinel-test")
        self.v1 = ws.subprotocol == V1
        self.received: list[dict[str, Any]] = []  # every message read, in order

    @staticmethod
    def new_session() -> Any:
        from jupyter_client.session import Session

        return Session(username="sentinel-test")

    async def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        from jupyter_client.jsonutil import json_default
        from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1

        msg = self.session.msg(msg_type, content)
        if self.v1:
            frame: bytes | str = serialize_msg_to_ws_v1(msg, channel, self.session.pack)
        else:
            frame = json.dumps({**msg, "channel": channel, "buffers": []}, default=json_default)
        await asyncio.wait_for(self.ws.send(frame), STEP)
        return msg["header"]["msg_id"]

    async def receive(self, seconds: float = STEP) -> dict[str, Any]:
        """The next message as {channel, header, parent_header, metadata, content, binary}."""
        from jupyter_server.services.kernels.connection.base import (
            deserialize_binary_message,
            deserialize_msg_from_ws_v1,
        )

        frame = await asyncio.wait_for(self.ws.recv(), seconds)
        if isinstance(frame, bytes) and self.v1:
            channel, parts = deserialize_msg_from_ws_v1(frame)
            names = ("header", "parent_header", "metadata", "content")
            message = {
                "channel": channel,
                **{n: json.loads(p) for n, p in zip(names, parts[:4], strict=True)},
            }
        elif isinstance(frame, bytes):
            message = deserialize_binary_message(frame)
        else:
            message = json.loads(frame)
        message["binary"] = isinstance(frame, bytes)
        self.received.append(message)
        return message

    async def until(self, wanted: Any, seconds: float = STEP) -> dict[str, Any]:
        """Read until a message for which ``wanted(message)`` holds; returns it."""
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no wanted message in {seconds} s: {self.summary()}")
            try:
                message = await self.receive(left)
            except asyncio.TimeoutError:
                raise TimeoutError(f"no wanted message in {seconds} s: {self.summary()}") from None
            if wanted(message):
                return message

    async def nudge(self, seconds: float = STEP) -> None:
        """After a restart, until iopub carries the new kernel's words: send kernel_info
        requests until an iopub message answers one (as jupyter_server's own nudge does on
        connecting). The server's iopub socket reconnects to the new kernel a little after
        the kernel answers on shell, and iopub drops what it published before that."""
        deadline = asyncio.get_running_loop().time() + seconds
        sent: set[str] = set()
        while asyncio.get_running_loop().time() < deadline:
            sent.add(await self.send("shell", "kernel_info_request", {}))
            with contextlib.suppress(TimeoutError):
                await self.until(
                    lambda m: m["channel"] == "iopub" and m["parent_header"].get("msg_id") in sent,
                    0.5,
                )
                return
        raise TimeoutError(f"iopub never answered a kernel_info_request: {self.summary()}")

    async def execute(self, code: str, seconds: float = STEP) -> dict[str, dict[str, Any]]:
        """Run code; returns its replies by msg_type once both the execute_reply and the
        kernel's idle status after it have come (shell and iopub are not ordered)."""
        msg_id = await self.send(
            "shell",
            "execute_request",
            {"code": code, "silent": False, "store_history": True, "user_expressions": {},
             "allow_stdin": False, "stop_on_error": True},
        )  # fmt: skip
        got: dict[str, dict[str, Any]] = {}

        def done(message: dict[str, Any]) -> bool:
            if message["parent_header"].get("msg_id") == msg_id:
                kind = message["header"]["msg_type"]
                if kind == "status":
                    kind = f"status:{message['content'].get('execution_state')}"
                got.setdefault(kind, message)
            return "execute_reply" in got and "status:idle" in got

        await self.until(done, seconds)
        return got

    def summary(self) -> str:
        return ", ".join(
            f"{m['channel']} {m['header'].get('msg_type')}"
            + (
                f" {m['content'].get('execution_state')}"
                if "execution_state" in m["content"]
                else ""
            )
            for m in self.received[-30:]
        )
