"""`sentinel-ws monitor`'s terminal: the Live dashboard loop, its keys, and the three ways
to run it (live against a server, following a recording, replaying one), each either
redrawn until `q` or printed once as a snapshot."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live

from sentinel_ws_proxy.analysis.report import Window
from sentinel_ws_proxy.cli.monitor_view import render_live, render_recording, snapshot
from sentinel_ws_proxy.diagnostics.health import Target
from sentinel_ws_proxy.diagnostics.monitor.follow import FollowMonitor
from sentinel_ws_proxy.diagnostics.monitor.live import LiveMonitor
from sentinel_ws_proxy.diagnostics.monitor.replay import ReplayMonitor
from sentinel_ws_proxy.diagnostics.monitor.state import RecordingSource


class Keys:
    """Single key presses from a terminal (cbreak mode), as an async queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self._saved: Any = None
        self._fd: int | None = None

    def __enter__(self) -> Keys:
        if not sys.stdin.isatty():
            return self
        import termios
        import tty

        self._fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        asyncio.get_running_loop().add_reader(self._fd, self._read)
        return self

    def _read(self) -> None:
        data = os.read(self._fd, 32).decode(errors="ignore")  # type: ignore[arg-type]
        for key in data:
            self.queue.put_nowait(key.lower())

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            import termios

            asyncio.get_running_loop().remove_reader(self._fd)
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    async def next(self, timeout: float) -> str | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None


def quiet_logging() -> None:
    # Nothing may print into the dashboard: library warnings go nowhere.
    logging.getLogger().addHandler(logging.NullHandler())
    for name in ("aiohttp", "websockets", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


async def dashboard(
    console: Console,
    render: Callable[[], RenderableType],
    tick: Callable[[], Awaitable[None]],
    interval: float,
    on_key: dict[str, Callable[[], Awaitable[None]]] | None = None,
) -> None:
    """Redraw every `interval` seconds until `q` (or Ctrl-C)."""
    quiet_logging()
    with Live(render(), console=console, screen=True, auto_refresh=False) as live, Keys() as keys:
        while True:
            await tick()
            live.update(render(), refresh=True)
            key = await keys.next(interval)
            if key == "q":
                return
            if key and on_key and key in on_key:
                await on_key[key]()


async def monitor_live(target: Target, interval: float, console: Console, *, once: bool) -> int:
    async with LiveMonitor(target, interval) as monitor:
        if once:
            await monitor.first_look()
            print(snapshot(render_live(monitor.state, keys=False)), end="")
            return 0 if monitor.state.server != "down" else 1
        await dashboard(
            console,
            lambda: render_live(monitor.state),
            monitor.tick,
            min(interval, 0.25),
            {"r": monitor.reconnect},
        )
        return 0


async def monitor_follow(
    path: Path, window: Window, interval: float, console: Console, *, once: bool
) -> int:
    return await _watch_recording(FollowMonitor(path, window), interval, console, once=once)


async def monitor_replay(
    path: Path, window: Window, speed: float, interval: float, console: Console, *, once: bool
) -> int:
    return await _watch_recording(ReplayMonitor(path, window, speed), interval, console, once=once)


async def _watch_recording(
    monitor: RecordingSource, interval: float, console: Console, *, once: bool
) -> int:
    try:
        if once:
            monitor.catch_up()
            print(snapshot(render_recording(monitor.state, keys=False)), end="")
            return 0

        async def tick() -> None:
            monitor.tick(interval)

        await dashboard(console, lambda: render_recording(monitor.state), tick, interval)
        return 0
    finally:
        monitor.close()
