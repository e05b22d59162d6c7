"""Running a server from the command line: bind plainly, stop on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

from sentinel_ws_proxy.settings import ConfigError, format_hostport

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
T = TypeVar("T")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a ConfigError that says plainly why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=1024)
    except OSError as exc:
        where = format_hostport(host, port)
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"cannot listen on {where}: the port is already in use") from None
        if isinstance(exc, socket.gaierror):
            raise ConfigError(f"cannot listen on {where}: unknown host {host!r}") from None
        raise ConfigError(f"cannot listen on {where}: {exc.strerror or exc}") from None


def raise_open_file_limit() -> tuple[int, int] | None:
    """Lift this process's open-file soft limit to its hard limit: (soft, hard), or None.

    Each proxied WebSocket holds two sockets; a soft limit of 1024 (a common
    default) would refuse the 500th browser tab with no other sign than a reset.
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{format_hostport(host, port)}"


async def until_signalled(*also: asyncio.Event) -> None:
    """Wait for SIGINT or SIGTERM (or any of the given events)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)  # Windows: KeyboardInterrupt instead
    waiters = [asyncio.ensure_future(e.wait()) for e in (stop, *also)]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


class Signals:
    """SIGINT and SIGTERM counted while installed: the first asks for a stop, the second
    for a hurried one, the third calls ``on_third`` (the loop still runs for all three)."""

    def __init__(self, on_third: Callable[[], None]):
        self.first = asyncio.Event()
        self.second = asyncio.Event()
        self.count = 0
        self._on_third = on_third
        self._loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.add_signal_handler(sig, self._got)

    def _got(self) -> None:
        self.count += 1
        if self.count == 1:
            self.first.set()
        elif self.count == 2:
            self.second.set()
        else:
            self._on_third()

    def remove(self) -> None:
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.remove_signal_handler(sig)


async def serve_app(
    app: web.Application,
    host: str,
    port: int,
    on_ready: Callable[[str], None],
    *,
    until: asyncio.Event | None = None,
) -> None:
    """Serve an app until a signal (or `until` is set), then shut it down."""
    sock = bind(host, port)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        on_ready(url_of(sock))
        await until_signalled(*((until,) if until else ()))
    finally:
        await runner.cleanup()


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, on uvloop where it is installed (a dependency everywhere but Windows).

    SENTINEL_WS_LOOP=asyncio keeps the standard loop, to compare the two.
    """
    if os.environ.get("SENTINEL_WS_LOOP", "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)
