"""The proxy side by side with the alternatives, in one run, on this machine.

Starts a websockets echo server, then measures each path to it: direct, our
proxy recording every frame, and, when installed, nginx as a WebSocket reverse
proxy (Debian's package, one worker: one core, like us) and mitmdump in reverse
mode writing its flow file. Prints a table with ratios to direct and to nginx,
checks the targets, and writes JSON. Asserts nothing: numbers, not tests.

    python benchmarks/run.py [--quick] [--out benchmarks/results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parent.parent
ECHO = """
import asyncio, sys, websockets
async def echo(ws):
    if ws.request.path == "/sink":  # take everything, answer once at the end
        async for message in ws:
            if message == "done":
                await ws.send("got it")
        return
    async for message in ws:
        await ws.send(message)
async def main():
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), compression=None,
                                max_size=None, ping_interval=None, backlog=4096):
        await asyncio.Future()
try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
asyncio.run(main())
"""
NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
worker_rlimit_nofile 80000;
events {{ worker_connections 40000; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 3600s;
    }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {timeout} s")


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, in MB."""
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


@dataclass
class Path_:
    name: str
    url: str
    process: subprocess.Popen | None = None
    results: dict[str, float | None] = field(default_factory=dict)
    echoed: int = 0  # messages echoed through this path, for the exactness check


# -- measurements -------------------------------------------------------------------


async def throughput(url: str, size: int, seconds: float, conns: int = 4, inflight: int = 64):
    message: str | bytes = "x" * size if size <= 1024 else os.urandom(size)
    deadline = time.perf_counter() + seconds

    async def one() -> int:
        async with websockets.connect(
            url, compression=None, max_size=None, ping_interval=None
        ) as ws:
            sent = done = 0
            for _ in range(inflight):
                await ws.send(message)
                sent += 1
            while True:
                await ws.recv()
                done += 1
                if time.perf_counter() < deadline:
                    await ws.send(message)
                    sent += 1
                elif done == sent:
                    return done

    started = time.perf_counter()
    counts = await asyncio.gather(*(one() for _ in range(conns)))
    return sum(counts) / (time.perf_counter() - started), sum(counts)


async def rtt(url: str, count: int) -> tuple[float, float, int]:
    async with websockets.connect(url, compression=None, ping_interval=None) as ws:
        times = []
        for _ in range(count):
            started = time.perf_counter()
            await ws.send("x" * 64)
            await ws.recv()
            times.append((time.perf_counter() - started) * 1e6)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)], count


async def handshakes(url: str, seconds: float, workers: int = 4) -> float:
    deadline = time.perf_counter() + seconds

    async def worker() -> int:
        done = 0
        while time.perf_counter() < deadline:
            ws = await websockets.connect(url, compression=None, ping_interval=None)
            await ws.close()
            done += 1
        return done

    started = time.perf_counter()
    total = sum(await asyncio.gather(*(worker() for _ in range(workers))))
    return total / (time.perf_counter() - started)


async def close_ms(url: str, count: int = 200) -> float:
    times = []
    for _ in range(count):
        ws = await websockets.connect(url, compression=None, ping_interval=None)
        started = time.perf_counter()
        await ws.close()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def idle(url: str, count: int, pid: int | None) -> dict[str, float | None]:
    """Hold `count` idle connections; the proxy's memory; then check every one still works."""
    conns = []
    for start in range(0, count, 250):
        batch = [
            websockets.connect(url, compression=None, ping_interval=None, open_timeout=60)
            for _ in range(min(250, count - start))
        ]
        conns += await asyncio.gather(*batch)
    await asyncio.sleep(1.0)
    current, peak = rss_mb(pid) if pid else (None, None)
    alive = 0
    for start in range(0, len(conns), 500):
        waiters = await asyncio.gather(*(ws.ping() for ws in conns[start : start + 500]))
        done = await asyncio.gather(
            *(asyncio.wait_for(w, 30) for w in waiters), return_exceptions=True
        )
        alive += sum(not isinstance(d, BaseException) for d in done)
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    return {"idle_rss_mb": current, "idle_peak_rss_mb": peak, "idle_alive": alive}


async def one_connection(url: str, total: int, pid: int | None) -> dict[str, float | None]:
    """`total` bytes client to server through one connection in 64 KiB frames."""
    chunk = os.urandom(64 * 1024)
    peak = 0.0
    started = time.perf_counter()
    async with websockets.connect(
        url.replace("/ws", "/sink"), compression=None, max_size=None, ping_interval=None
    ) as ws:
        sent = 0
        while sent < total:
            await ws.send(chunk)
            sent += len(chunk)
            if pid and sent % (64 * 1024 * 256) == 0:
                peak = max(peak, rss_mb(pid)[0])
        await ws.send("done")
        await asyncio.wait_for(ws.recv(), 120)  # the sink says when it has everything
    seconds = time.perf_counter() - started
    return {"gib_seconds": seconds, "gib_rss_mb": peak or None}


async def settle(path: Path_) -> None:
    """Let our recorder finish writing before the next measurement starts."""
    if path.name != "sentinel":
        return
    for _ in range(600):
        recording = (await asyncio.to_thread(sentinel_status, path.url))["recording"]
        if recording["pending"] == 0 and recording["backlog_bytes"] == 0:
            return
        await asyncio.sleep(0.05)


async def measure(path: Path_, args: argparse.Namespace) -> None:
    r = path.results
    url = path.url
    if args.idle:
        # First, on a fresh process: the peak then is what idle connections cost.
        print(f"  {path.name}: {args.idle} idle connections…", flush=True)
        pid = path.process.pid if path.process else None
        r.update(await idle(url, args.idle, pid))
    await settle(path)
    print(f"  {path.name}: throughput 64 B…", flush=True)
    r["msgs_per_s_64B"], n = await throughput(url, 64, args.seconds)
    path.echoed += n
    await settle(path)
    print(f"  {path.name}: throughput 16 KiB…", flush=True)
    r["msgs_per_s_16KiB"], n = await throughput(url, 16 * 1024, args.seconds, inflight=16)
    path.echoed += n
    await settle(path)
    print(f"  {path.name}: round trips…", flush=True)
    r["rtt_p50_us"], r["rtt_p99_us"], n = await rtt(url, args.rtt)
    path.echoed += n
    await settle(path)
    print(f"  {path.name}: handshakes…", flush=True)
    r["handshakes_per_s"] = await handshakes(url, args.seconds)
    r["close_ms"] = await close_ms(url)
    if path.process is not None:
        r["peak_rss_mb"] = rss_mb(path.process.pid)[1]
    if args.gib and path.name == "direct":
        print(f"  {path.name}: {args.gib} GiB through one connection…", flush=True)
        r.update(await one_connection(url, int(args.gib * (1 << 30)), None))
    elif args.gib and path.name == "sentinel":
        # On a fresh process, recording to a file of its own, as for the idle connections:
        # what the peak then shows is what the stream costs.
        print(f"  {path.name}: {args.gib} GiB through one connection…", flush=True)
        process, fresh, _ = start_sentinel(args.upstream_of[path.name], args.tmp, "gib.db")
        try:
            r.update(await one_connection(fresh, int(args.gib * (1 << 30)), process.pid))
        finally:
            stop(process)


# -- the paths --------------------------------------------------------------------


def start(cmd: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def start_sentinel(
    upstream: int, tmp: Path, name: str = "bench.db", *, record: bool = True
) -> tuple[subprocess.Popen, str, Path]:
    db = tmp / name
    process = start(
        [sys.executable, "-m", "sentinel_ws_proxy", "proxy", "--listen", "127.0.0.1:0",
         "--upstream", f"http://127.0.0.1:{upstream}", "--quiet",
         *(["--db", str(db)] if record else ["--no-record"])],
        cwd=ROOT,
    )  # fmt: skip
    for line in process.stdout:  # type: ignore[union-attr]
        found = re.search(r"Point your frontend at (http://\S+)", line)
        if found:
            return process, found.group(1).replace("http://", "ws://") + "/ws", db
    raise RuntimeError("the proxy did not start")


def start_nginx(upstream: int, tmp: Path) -> tuple[subprocess.Popen, str] | None:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        return None
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, upstream=upstream))
    process = start([binary, "-c", str(conf), "-e", str(tmp / "nginx-error.log")])
    wait_listening(port)
    return process, f"ws://127.0.0.1:{port}/ws"


def start_mitmdump(
    upstream: int, tmp: Path, binary: str | None
) -> tuple[subprocess.Popen, str] | None:
    binary = binary or shutil.which("mitmdump")
    if binary is None:
        return None
    port = free_port()
    process = start(
        [binary, "--mode", f"reverse:http://127.0.0.1:{upstream}", "--listen-host", "127.0.0.1",
         "--listen-port", str(port), "-w", str(tmp / "flows.mitm"), "-q"],
    )  # fmt: skip
    wait_listening(port, 60)
    return process, f"ws://127.0.0.1:{port}/ws"


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


def sentinel_status(url: str) -> dict:
    http = url.replace("ws://", "http://").rsplit("/", 1)[0]
    with urllib.request.urlopen(http + "/_sentinel/status", timeout=10) as response:
        return json.load(response)


# -- report ----------------------------------------------------------------------------

ROWS = [
    ("msgs_per_s_64B", "echoed msgs/s, 64 B", "{:,.0f}", "higher"),
    ("msgs_per_s_16KiB", "echoed msgs/s, 16 KiB", "{:,.0f}", "higher"),
    ("rtt_p50_us", "RTT p50 (µs)", "{:,.0f}", "lower"),
    ("rtt_p99_us", "RTT p99 (µs)", "{:,.0f}", "lower"),
    ("handshakes_per_s", "handshakes/s", "{:,.0f}", "higher"),
    ("close_ms", "close handshake (ms)", "{:.2f}", "lower"),
    ("idle_peak_rss_mb", "peak RSS, idle conns (MB)", "{:,.0f}", "lower"),
    ("peak_rss_mb", "peak RSS, whole run (MB)", "{:,.0f}", "lower"),
    ("idle_alive", "idle conns still working", "{:,.0f}", "higher"),
    ("gib_seconds", "1 GiB through one connection (s)", "{:.1f}", "lower"),
    ("gib_rss_mb", "RSS during that (MB)", "{:,.0f}", "lower"),
]


def table(paths: list[Path_]) -> str:
    by = {p.name: p.results for p in paths}
    names = [p.name for p in paths]
    lines = ["| metric | " + " | ".join(names) + " | sentinel ÷ direct | sentinel ÷ nginx |",
             "|---" * (len(names) + 3) + "|"]  # fmt: skip
    for key, label, fmt, _ in ROWS:
        cells = []
        for name in names:
            value = by[name].get(key)
            cells.append("-" if value is None else fmt.format(value))
        ours = by.get("sentinel", {}).get(key)

        def ratio(other: str, ours=ours, key=key) -> str:
            theirs = by.get(other, {}).get(key)
            return f"{ours / theirs:.2f}×" if ours and theirs else "-"

        lines.append(
            f"| {label} | " + " | ".join(cells) + f" | {ratio('direct')} | {ratio('nginx')} |"
        )
    return "\n".join(lines)


def targets(paths: list[Path_], extra: dict) -> list[tuple[str, bool | None, str]]:
    """Issue 11's targets, each with what this run measured."""
    by = {p.name: p.results for p in paths}
    ours, direct = by.get("sentinel", {}), by.get("direct", {})
    nginx, mitm = by.get("nginx"), by.get("mitmdump")
    out: list[tuple[str, bool | None, str]] = []

    def ratio(name: str, key: str, other: dict, ok: Callable[[float], bool], fmt: str) -> None:
        if other and ours.get(key) and other.get(key):
            r = ours[key] / other[key]
            out.append((name, ok(r), fmt.format(r)))

    ratio("64 B echo ≥ 1.0× nginx", "msgs_per_s_64B", nginx, lambda r: r >= 1.0, "{:.2f}×")
    ratio("64 B echo ≥ 15× mitmdump", "msgs_per_s_64B", mitm, lambda r: r >= 15, "{:.1f}×")
    ratio("RTT p50 ≤ 1.25× direct", "rtt_p50_us", direct, lambda r: r <= 1.25, "{:.2f}×")
    ratio("RTT p99 ≤ 2× direct", "rtt_p99_us", direct, lambda r: r <= 2.0, "{:.2f}×")
    ratio("handshakes/s ≥ 0.8× nginx", "handshakes_per_s", nginx, lambda r: r >= 0.8, "{:.2f}×")
    ratio("close handshake ≤ 1.5× nginx", "close_ms", nginx, lambda r: r <= 1.5, "{:.2f}×")
    ratio("16 KiB echo ≥ 0.6× nginx", "msgs_per_s_16KiB", nginx, lambda r: r >= 0.6, "{:.2f}×")
    if ours.get("idle_peak_rss_mb") is not None:
        out.append(
            (
                f"{extra['idle']:,} idle connections: RSS < 150 MB, all answering",
                ours["idle_peak_rss_mb"] < 150 and ours["idle_alive"] == extra["idle"],
                f"{ours['idle_peak_rss_mb']:.0f} MB, {ours['idle_alive']:,.0f} answering",
            )
        )
    lag = extra.get("commit_lag_ms") or {}
    if lag.get("p99") is not None:
        out.append(("commit lag p99 < 500 ms", lag["p99"] < 500, f"{lag['p99']:.1f} ms"))
    if "recorded" in extra:
        ok = extra["recorded"] == extra["expected_rows"]
        done = f"{extra['recorded']:,} of {extra['expected_rows']:,}"
        out.append(("every relayed frame recorded", ok, done))
    if ours.get("gib_rss_mb") is not None:
        rss = ours["gib_rss_mb"]
        out.append(("1 GiB through one connection: RSS < 150 MB", rss < 150, f"{rss:.0f} MB"))
    return out


async def main_async(args: argparse.Namespace) -> dict:
    # Two sockets a proxied connection, plus the client's and the server's own: every
    # process started from here inherits room for them (raising the hard limit needs root).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (4 * args.idle + 4096, 4 * args.idle + 4096))
        hard = 4 * args.idle + 4096
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # A proxy holds two sockets per connection: past the limit it cannot hold them all.
    most = (hard - 100) // 2
    if args.idle > most:
        print(f"note: {args.idle:,} idle connections need more than this machine's open-file "
              f"limit ({hard:,}) allows a proxy; measuring {most:,}")  # fmt: skip
        args.idle = most
    tmp = Path(tempfile.mkdtemp(prefix="sentinel-bench-"))
    # One echo server per path: thousands of closed connections leave TIME_WAIT entries
    # that would otherwise use up the ports towards a shared one.
    upstreams: list[subprocess.Popen] = []

    def echo_server() -> int:
        port = free_port()
        upstreams.append(start([sys.executable, "-c", ECHO, str(port)]))
        wait_listening(port)
        return port

    paths = [Path_("direct", f"ws://127.0.0.1:{echo_server()}/ws")]
    extra: dict = {"idle": args.idle}
    try:
        args.tmp = tmp
        args.upstream_of = {"sentinel": echo_server()}
        process, url, db = start_sentinel(args.upstream_of["sentinel"], tmp)
        paths.append(Path_("sentinel", url, process))
        if not args.no_relay_only:
            # The relay alone: what recording every frame costs is the difference.
            bare, bare_url, _ = start_sentinel(echo_server(), tmp, record=False)
            paths.append(Path_("not recording", bare_url, bare))
        if not args.no_nginx and (found := start_nginx(echo_server(), tmp)):
            paths.append(Path_("nginx", found[1], found[0]))
        if not args.no_mitmdump and (found := start_mitmdump(echo_server(), tmp, args.mitmdump)):
            paths.append(Path_("mitmdump", found[1], found[0]))
        for path in paths:
            print(f"measuring {path.name} ({path.url})", flush=True)
            if path.name in ("mitmdump", "not recording"):
                saved = args.idle, args.gib
                # mitmdump holding thousands of sockets takes minutes; the relay alone's
                # memory is the recording proxy's, less the recorder.
                args.idle, args.gib = 0, 0
                await measure(path, args)
                args.idle, args.gib = saved
            else:
                await measure(path, args)
            if path.name == "sentinel":
                extra["commit_lag_ms"] = sentinel_status(path.url)["recording"]["commit_lag_ms"]
        sentinel = next(p for p in paths if p.name == "sentinel")
        stop(sentinel.process)
        conn = sqlite3.connect(db)
        extra["recorded"] = conn.execute(
            "SELECT count(*) FROM frames WHERE opcode IN ('text', 'binary')"
            " AND session_id IN (SELECT id FROM sessions WHERE path = '/ws')"
        ).fetchone()[0]
        conn.close()
        extra["expected_rows"] = 2 * sentinel.echoed
    finally:
        for path in paths:
            stop(path.process)
        for upstream in upstreams:
            stop(upstream)
    return {"paths": paths, "extra": extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput measurement")
    parser.add_argument("--rtt", type=int, default=3000, help="round trips for RTT")
    parser.add_argument("--idle", type=int, default=10000, help="idle connections (0: skip)")
    parser.add_argument(
        "--gib", type=float, default=1.0, help="GiB through one connection (0: skip)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 s runs, 1,000 idle connections, no GiB"
    )
    parser.add_argument("--no-nginx", action="store_true")
    parser.add_argument("--no-mitmdump", action="store_true")
    parser.add_argument(
        "--no-relay-only", action="store_true", help="skip sentinel-ws with --no-record"
    )
    parser.add_argument("--mitmdump", help="path to mitmdump (default: on PATH)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.json")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rtt, args.idle, args.gib = 1.0, 1000, 1000, 0
    with contextlib.suppress(ImportError):
        import uvloop  # the load generator must not be the bottleneck

        uvloop.install()
    outcome = asyncio.run(main_async(args))
    paths, extra = outcome["paths"], outcome["extra"]
    print()
    print(table(paths))
    print()
    for name, ok, detail in targets(paths, extra):
        mark = "met" if ok else ("MISSED" if ok is False else "-")
        print(f"- {name}: {detail} ({mark})")
    lag = extra.get("commit_lag_ms")
    if lag:
        print(f"- commit lag: p50 {lag['p50']} ms, p99 {lag['p99']} ms, max {lag['max']} ms")
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "paths": {p.name: p.results for p in paths},
        "extra": extra,
        "targets": [{"target": n, "met": ok, "measured": d} for n, ok, d in targets(paths, extra)],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
