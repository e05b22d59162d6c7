"""A real STOMP-over-WebSocket and MQTT-over-WebSocket broker for tests.

Debian's ``rabbitmq-server`` runs as an ordinary child process (no system
service) with the ``rabbitmq_web_stomp`` and ``rabbitmq_web_mqtt`` plugins,
its own node name, data, log and config under a temporary directory, its own
epmd on a free port, and only the two WebSocket listeners open (the AMQP,
STOMP and MQTT TCP listeners are disabled). Real clients are Node scripts in
this directory (``stomp_client.mjs`` with @stomp/stompjs, ``mqtt_client.mjs``
with mqtt.js); each prints one final JSON line of what it observed.

    reason = rabbitmq_available() or node_available()
    if reason: pytest.skip(reason)
    ensure_node_modules()
    broker = start_rabbitmq(tmp_path)
    try:
        result = run_client("stomp_client.mjs", "ok", broker.stomp_ws_url,
                            broker.user, broker.password)
    finally:
        stop_rabbitmq(broker)

Facts about the Debian package (3.10.8, bookworm): it starts in about 9 s
here; its MQTT plugin speaks MQTT 3.1 and 3.1.1 only (MQTT 5 arrived in
RabbitMQ 3.13), so a v5 CONNECT is refused (see README.md here).
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.stacks import npm

HERE = Path(__file__).resolve().parent
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQ_LIB = "/usr/lib/rabbitmq/lib"
PLUGINS = ("rabbitmq_web_stomp", "rabbitmq_web_mqtt")
USER = "sentinel"
PASSWORD = "sentinel-secret"
MARKER_ENV = "SENTINEL_BROKER_NODE"  # set in the environment of every process of a broker
_ids = itertools.count(1)  # thread-safe under the GIL


@dataclasses.dataclass
class Broker:
    process: subprocess.Popen  # the rabbitmq-server script; leader of its process group
    epmd: subprocess.Popen  # our own epmd, on epmd_port
    stomp_ws_url: str  # ws://127.0.0.1:P/ws
    mqtt_ws_url: str  # ws://127.0.0.1:Q/ws
    user: str
    password: str
    nodename: str
    epmd_port: int
    base: Path  # everything of this node lives under here
    log_path: Path  # RabbitMQ's own log file
    output_path: Path  # stdout and stderr of the server script
    startup_seconds: float  # from spawn to both WebSocket listeners accepting
    version: str | None = None
    vhost: str = "/"

    @property
    def stomp_port(self) -> int:
        return int(self.stomp_ws_url.rsplit(":", 1)[1].split("/")[0])

    @property
    def mqtt_port(self) -> int:
        return int(self.mqtt_ws_url.rsplit(":", 1)[1].split("/")[0])

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.output_path, lines) + "\n" + _tail(self.log_path, lines)


def rabbitmq_version() -> str | None:
    found = sorted(glob.glob(os.path.join(RABBITMQ_LIB, "rabbitmq_server-*")))
    return found[-1].rsplit("-", 1)[1] if found else None


def rabbitmq_available() -> str | None:
    """None when a broker can be started here, else the reason why not."""
    if not os.path.exists(RABBITMQ_SERVER):
        return f"{RABBITMQ_SERVER} missing (apt-get install rabbitmq-server)"
    for tool in ("erl", "epmd"):
        if shutil.which(tool) is None:
            return f"{tool} not on PATH (Erlang is missing)"
    for plugin in PLUGINS:
        if not glob.glob(os.path.join(RABBITMQ_LIB, "rabbitmq_server-*", "plugins", plugin + "-*")):
            return f"RabbitMQ plugin {plugin} not installed"
    return None


def node_available() -> str | None:
    """None when the Node clients can run (node and npm present), else the reason."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} not on PATH"
    return None


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return f"({path}: no such file)"
    return f"--- {path} ---\n" + "\n".join(text.splitlines()[-lines:])


def _clean_env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_", "ERLANG_"))
    }
    env["HOME"] = str(home)  # Erlang writes its own .erlang.cookie here
    env.setdefault("LANG", "C.UTF-8")
    env["LC_ALL"] = "C.UTF-8"
    return env


def start_rabbitmq(tmpdir, timeout: float = 60.0) -> Broker:
    """Start an isolated RabbitMQ with web-stomp and web-mqtt; return when both accept."""
    reason = rabbitmq_available()
    if reason:
        raise RuntimeError(reason)
    n = next(_ids)
    nodename = f"sentinel-{os.getpid()}-{n}@localhost"
    base = Path(tmpdir) / f"rabbitmq-{n}"
    home, mnesia, logs = base / "home", base / "mnesia", base / "log"
    for d in (home, mnesia, logs):
        d.mkdir(parents=True, exist_ok=True)
    node_port, dist_port, epmd_port, stomp_port, mqtt_port = _free_ports(5)

    config = base / "rabbitmq.conf"
    config.write_text(
        "\n".join(
            [
                "listeners.tcp = none",  # no AMQP listener
                "stomp.listeners.tcp = none",  # no plain STOMP listener
                "mqtt.listeners.tcp = none",  # no plain MQTT listener
                "web_stomp.tcp.ip = 127.0.0.1",
                f"web_stomp.tcp.port = {stomp_port}",
                "web_mqtt.tcp.ip = 127.0.0.1",
                f"web_mqtt.tcp.port = {mqtt_port}",
                f"default_user = {USER}",  # created on first boot of the empty node
                f"default_pass = {PASSWORD}",
                "mqtt.allow_anonymous = false",
                "disk_free_limit.absolute = 1MB",  # no disk alarm blocking publishers in CI
                "log.console = false",
                "log.file.level = info",
                "",
            ]
        )
    )
    plugins = base / "enabled_plugins"
    plugins.write_text("[" + ",".join(PLUGINS) + "].\n")

    env = _clean_env(home)
    env.update(
        RABBITMQ_NODENAME=nodename,
        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
        RABBITMQ_NODE_PORT=str(node_port),
        RABBITMQ_DIST_PORT=str(dist_port),
        RABBITMQ_MNESIA_BASE=str(mnesia),
        RABBITMQ_LOG_BASE=str(logs),
        RABBITMQ_CONFIG_FILE=str(config),
        RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),  # absent
        RABBITMQ_ENABLED_PLUGINS_FILE=str(plugins),
        RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),  # absent: ignore /etc
        RABBITMQ_PID_FILE=str(base / "rabbitmq.pid"),
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        ERL_EPMD_PORT=str(epmd_port),
        ERL_EPMD_ADDRESS="127.0.0.1",
    )
    env[MARKER_ENV] = nodename
    output_path = base / "server-output.log"
    log_path = logs / f"{nodename}.log"

    # Our own epmd, in the foreground, so that erl does not daemonize one that
    # would outlive the broker; erl finds it on ERL_EPMD_PORT.
    with open(base / "epmd-output.log", "wb") as epmd_out:
        epmd = subprocess.Popen(
            ["epmd", "-port", str(epmd_port), "-address", "127.0.0.1"],
            stdin=subprocess.DEVNULL,
            stdout=epmd_out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + 10
    while not _accepts(epmd_port):
        if epmd.poll() is not None or time.monotonic() > deadline:
            epmd.kill()
            epmd.wait()
            raise RuntimeError(
                f"epmd on port {epmd_port} did not start:\n" + _tail(base / "epmd-output.log", 20)
            )
        time.sleep(0.05)

    started = time.monotonic()
    with open(output_path, "wb") as out:
        process = subprocess.Popen(
            [RABBITMQ_SERVER],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=base,
            start_new_session=True,
        )
    broker = Broker(
        process=process,
        epmd=epmd,
        stomp_ws_url=f"ws://127.0.0.1:{stomp_port}/ws",
        mqtt_ws_url=f"ws://127.0.0.1:{mqtt_port}/ws",
        user=USER,
        password=PASSWORD,
        nodename=nodename,
        epmd_port=epmd_port,
        base=base,
        log_path=log_path,
        output_path=output_path,
        startup_seconds=0.0,
        version=rabbitmq_version(),
    )
    deadline = started + timeout
    try:
        while not (_accepts(stomp_port) and _accepts(mqtt_port)):
            if process.poll() is not None:
                raise RuntimeError(
                    f"RabbitMQ {nodename} exited with {process.returncode} before its "
                    f"WebSocket listeners opened\n{broker.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"RabbitMQ {nodename}: web-stomp port {stomp_port} and web-mqtt port "
                    f"{mqtt_port} not both accepting after {timeout:.0f} s\n{broker.log_tail()}"
                )
            time.sleep(0.1)
    except BaseException:
        stop_rabbitmq(broker, grace=0)
        raise
    broker.startup_seconds = time.monotonic() - started
    return broker


def _marked(marker: bytes) -> set[int]:
    """Live processes whose environment holds `marker`: the server script, beam,
    erl_child_setup, inet_gethost (the last two run in sessions of their own, so
    a process-group signal misses them) and any epmd erl may have daemonized."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker not in f.read().split(b"\0"):
                    continue
        except OSError:
            continue
        if _alive(int(entry)):
            found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _signal(pgids: list[int], pids: set[int], sig: int) -> None:
    for pgid in pgids:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_rabbitmq(broker: Broker, grace: float = 5.0) -> None:
    """Stop the broker and every process it started, epmd included.

    SIGTERM (RabbitMQ shuts down cleanly in 1-3 s), SIGKILL after `grace`
    seconds, then wait until no process carrying this broker's marker in its
    environment is left. Idempotent; raises if something survives SIGKILL."""
    marker = f"{MARKER_ENV}={broker.nodename}".encode()
    proc, epmd = broker.process, broker.epmd
    pids = _marked(marker)
    if proc.poll() is None or pids - {epmd.pid}:
        _signal([proc.pid], pids - {epmd.pid}, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc.poll() is not None and not (_marked(marker) - {epmd.pid}):
                break
            time.sleep(0.05)
    deadline = time.monotonic() + 10
    while True:
        # epmd last: the node unregisters from it while shutting down.
        _signal([proc.pid, epmd.pid], _marked(marker), signal.SIGKILL)
        for child in (proc, epmd):
            try:
                child.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        left = _marked(marker)
        if not left and proc.poll() is not None and epmd.poll() is not None:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"RabbitMQ {broker.nodename}: processes {sorted(left)} survived SIGKILL"
            )
        time.sleep(0.05)


# ---- Node clients ---------------------------------------------------------


def ensure_node_modules(timeout: float = 300.0) -> None:
    """`npm ci` once when node_modules is missing or older than package-lock.json."""
    reason = node_available()
    if reason:
        raise RuntimeError(reason)
    npm.ensure_node_modules(HERE, timeout)


def run_client(script: str, scenario: str, ws_url: str, *args: str, timeout: float = 20) -> dict:
    """Run a Node client of this directory; return the JSON of its last JSON line.

    The dict also carries "exit_code" and, for diagnosis, "stderr" (tail)."""
    cmd = ["node", str(HERE / script), scenario, ws_url, *map(str, args)]
    try:
        done = subprocess.run(
            cmd,
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise RuntimeError(
            f"{script} {scenario} did not finish in {timeout} s\n"
            f"stdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}"
        ) from None
    for line in reversed(done.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                continue
            result["exit_code"] = done.returncode
            result["stderr"] = done.stderr[-2000:]
            return result
    raise RuntimeError(
        f"{script} {scenario} printed no JSON line (exit {done.returncode})\n"
        f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    )
