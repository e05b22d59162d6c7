"""A flood of small frames through the recording proxy: does memory stay bounded, does the
recording keep up, is every frame recorded?

Four clients send 16-byte frames as fast as they can (not waiting for answers) to an
upstream that takes them all, for 60 s. Every second: the proxy's RSS, the events and
bytes waiting for the disk, the commit lag, the time relays were paused. At the end:
frames sent against frames recorded. Prints numbers; asserts nothing.

    python benchmarks/flood.py [--seconds 60] [--clients 4] [--size 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROOT, free_port, rss_mb, start, stop, wait_listening

SINK = """
import asyncio, sys, websockets
async def sink(ws):
    async for message in ws:
        if message == "done":
            await ws.send("got it")
async def main():
    async with websockets.serve(sink, "127.0.0.1", int(sys.argv[1]), compression=None,
                                max_size=None, ping_interval=None):
        await asyncio.Future()
try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
asyncio.run(main())
"""


def status(http: str) -> dict:
    with urllib.request.urlopen(http + "/_sentinel/status", timeout=10) as response:
        return json.load(response)["recording"]


async def flood(url: str, seconds: float, size: int) -> int:
    message = b"x" * size
    sent = 0
    deadline = time.monotonic() + seconds
    async with websockets.connect(url, compression=None, ping_interval=None) as ws:
        while time.monotonic() < deadline:
            for _ in range(100):
                await ws.send(message)
            sent += 100
            await asyncio.sleep(0)  # send() rarely waits: let the other clients run too
        await ws.send("done")
        await asyncio.wait_for(ws.recv(), 600)  # everything arrived upstream
    return sent


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sentinel-flood-"))
    port = free_port()
    upstream = start([sys.executable, "-c", SINK, str(port)])
    wait_listening(port)
    db = tmp / "flood.db"
    proxy_port = free_port()
    proxy = start(
        [sys.executable, "-m", "sentinel_ws_proxy", "proxy", "--listen",
         f"127.0.0.1:{proxy_port}", "--upstream", f"http://127.0.0.1:{port}",
         "--db", str(db), "--quiet"],
        cwd=ROOT,
    )  # fmt: skip
    wait_listening(proxy_port)
    http = f"http://127.0.0.1:{proxy_port}"
    url = f"ws://127.0.0.1:{proxy_port}/flood"
    samples = []
    try:
        floods = asyncio.gather(*(flood(url, args.seconds, args.size) for _ in range(args.clients)))
        task = asyncio.ensure_future(floods)
        started = time.monotonic()
        while not task.done():
            await asyncio.sleep(1.0)
            rec = await asyncio.to_thread(status, http)
            rss = rss_mb(proxy.pid)[0]
            samples.append((time.monotonic() - started, rss, rec))
            print(
                f"{samples[-1][0]:5.0f} s  RSS {rss:6.0f} MB  waiting {rec['pending']:>8,} events"
                f" {rec['backlog_bytes'] / 1e6:6.1f} MB  lag p99 {rec['commit_lag_ms']['p99']} ms"
                f"  paused {rec['throttled_seconds']:.1f} s",
                flush=True,
            )
        sent = sum(await task)
        final = await asyncio.to_thread(status, http)
    finally:
        stop(proxy)
        stop(upstream)
    conn = sqlite3.connect(db)
    recorded = conn.execute(
        "SELECT count(*) FROM frames WHERE direction = 'c2s' AND opcode = 'binary'"
    ).fetchone()[0]
    conn.close()
    peak = max(rss for _, rss, _ in samples)
    p99 = max((r["commit_lag_ms"]["p99"] or 0) for _, _, r in samples)
    seconds = samples[-1][0] if samples else args.seconds
    print()
    print("| measure | value |\n|---|---|")
    print(f"| clients × frame size | {args.clients} × {args.size} B |")
    print(f"| frames sent | {sent:,} ({sent / seconds:,.0f}/s) |")
    print(f"| frames recorded | {recorded:,} |")
    print(f"| peak RSS | {peak:.0f} MB |")
    print(f"| commit lag p99 (worst 1 s sample) | {p99:.0f} ms |")
    print(f"| relays paused for the disk | {final['throttled_seconds']:.1f} s |")
    print(f"| rows lost | {final['lost']} |")
    print()
    print(f"- RSS under 200 MB: {'met' if peak < 200 else 'MISSED'} ({peak:.0f} MB)")
    print(f"- commit lag p99 under 500 ms: {'met' if p99 < 500 else 'MISSED'} ({p99:.0f} ms)")
    print(f"- every frame recorded: {'met' if recorded == sent else 'MISSED'}")
    with contextlib.suppress(OSError):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--size", type=int, default=16)
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
