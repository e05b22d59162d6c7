"""Page stacks for the page model: a Vite app (HMR socket + app sockets through Vite's proxy to a
Python backend) and a standalone aiohttp page app that rotates its CSRF cookie, driven by
Chromium through Playwright. Plain functions, no asserts: the tests decide what to check.

Servers (processes in their own process group, output to a temporary file):

    backend = start_backend()                      # Backend: .url, .port, .restart(), .stop()
    ensure_node_modules()                          # npm ci, once, when node_modules is stale
    vite = Vite.start(backend.url)                 # .url, .port, .restart(), .stop()
    process, port = start_vite(backend.url)        # the same, as a bare process
    stop_process(process)                          # SIGTERM the group, SIGKILL if it lingers

Scenarios (async; ``browser`` is a Playwright Browser, ``base_url`` our proxy's URL in front of
Vite or of the cookie app). Each opens its own context and page unless given ``page=``, leaves
them open (so the caller can stop the proxy first), and returns a ``Truth``: wall-clock times
(``time.time()``) of each action, every socket as the page's probe saw it (``probe.js``: url,
kind hmr/ping/app, created, opened, closed, close code), the sockets as Chromium's network layer
reported them to Playwright (created, closed), and the tab's page loads.

    truth = await navigate(browser, base_url, n=2)          # index -> other.html -> index
    truth = await reload(browser, base_url, n=2)
    truth = await close_tab(browser, base_url, n=2)         # context closed for good
    truth = await backend_restart(browser, base_url, backend, n=2)
    truth = await dev_server_restart(browser, base_url, vite, n=2)

``n`` is the number of app sockets: on the Vite page 0, 1 (``/ws/app``) or 2 (and
``/ws/events``), each beside the HMR socket; on the cookie app (``cookie=True``) 1 (``/ws/a``)
or 2 (and ``/ws/b``).

Ground truth has limits: when a navigation, reload or tab close tears a page down, neither the
page's JS nor CDP reports those sockets' closes (no ``close`` event, no
``Network.webSocketClosed``); the truth there is the ``pagehide`` time and the next
document request (``Truth.loads``, ``Truth.documents``). The proxy's recording and the
backend's ``/api/seen`` (close code each socket delivered) are the witnesses of the wire.

What Vite's client does when the dev server dies (vite 8, ``dist/client/client.mjs``): the HMR
socket's close emits ``vite:ws:disconnect``; the client then opens a socket with subprotocol
``vite-ping`` to the same URL (no token) at once and then every second while the tab is
visible (from a SharedWorker when there is one, so neither the page's probe nor CDP sees them;
the proxy does), and when one opens (Vite accepts it and closes it with 1000) it calls
``location.reload()``. So the page reloads up to ~1 s after Vite is back, and the app sockets,
retrying on their own backoff meanwhile, may or may not have reconnected to the new Vite (and
then close with 1001 on the reload) first: a race, whose outcome ``Truth.sockets`` tells.
``down_for`` keeps Vite down longer, so more retries fail first.

Tools: ``missing_tools()`` says what is absent (node/npm, chromium, playwright) in words, for a
skip reason; Vite 8 needs Node ^20.19 or >= 22.12.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import conftest
from tests.stacks import npm

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
NODE_MODULES = HERE / "node_modules"

STEP = 15.0  # seconds any single wait may take
HMR = "hmr"

# Chromium as the rest of the suite drives it (the sockets are same-origin: Local Network
# Access checks need no switching off).
CHROMIUM_FLAGS = conftest.CHROMIUM_FLAGS


def missing_tools() -> str | None:
    """Why the pages stack cannot run here, or None."""
    import importlib.util
    import shutil

    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"no {tool} on PATH (apt-get install nodejs npm)"
    if not (os.environ.get("SENTINEL_CHROMIUM") or shutil.which("chromium")):
        return "no chromium on PATH (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


def chromium_executable() -> str:
    import shutil

    return os.environ.get("SENTINEL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


# -- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A server in its own process group, its output in a file (a full pipe would block it)."""
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by stop_process)
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    process.log = log  # type: ignore[attr-defined]
    return process


def output_of(process: subprocess.Popen) -> str:
    log = process.log  # type: ignore[attr-defined]
    if log.closed:
        return ""
    log.seek(0)
    return log.read()


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 5.0) -> str:
    """Signal the process's whole group (npx, node and their children), SIGKILL it after
    ``timeout``; returns what it printed."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)
    # Children that outlived the leader (a detached esbuild, say) go with the group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    text = output_of(process)
    process.log.close()  # type: ignore[attr-defined]
    return text


def wait_for_output(process: subprocess.Popen, marker: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = output_of(process)
        if marker in text:
            return text
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before {marker!r}:\n{text}")
        time.sleep(0.02)
    raise TimeoutError(f"no {marker!r} after {timeout} s:\n{output_of(process)}")


def wait_http(url: str, process: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    """Until ``url`` answers 200."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}:\n{output_of(process)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except Exception as e:  # connection refused, 5xx while starting
            last = e
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer 200 in {timeout} s ({last})")


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


# -- the Python backend --------------------------------------------------------------------


@dataclass
class Backend:
    """``python -m tests.stacks.pages.backend``; ``restart()`` keeps the port."""

    port: int
    rotate_cookie: bool = False
    tick: float = 1.0
    process: subprocess.Popen | None = None
    outputs: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Backend:
        args = [sys.executable, "-m", "tests.stacks.pages.backend", "--port", str(self.port)]
        args += ["--tick", str(self.tick)] + (["--rotate-cookie"] if self.rotate_cookie else [])
        self.process = spawn(args, cwd=ROOT)
        text = wait_for_output(self.process, "backend ready ", timeout)
        self.port = int(text.split("backend ready ", 1)[1].split()[0].rsplit(":", 1)[1])
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            self.outputs.append(stop_process(self.process, sig))
            self.process = None

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def seen(self) -> dict:
        """What the backend saw: requests (Sec-Fetch-*, cookies) and sockets (close codes)."""
        return get_json(self.url + "/api/seen")


def start_backend(port: int = 0, *, rotate_cookie: bool = False, tick: float = 1.0) -> Backend:
    return Backend(port, rotate_cookie, tick).start()


def stop_backend(backend: Backend, sig: int = signal.SIGTERM) -> None:
    backend.stop(sig)


# -- Vite ----------------------------------------------------------------------------------


def ensure_node_modules(timeout: float = 300.0) -> None:
    """``npm ci`` from the committed lockfile when node_modules is missing or stale."""
    npm.ensure_node_modules(HERE, timeout)


def start_vite(
    backend_url: str, port: int | None = None, timeout: float = 30.0
) -> tuple[subprocess.Popen, int]:
    """Vite's dev server on 127.0.0.1:port (a free one by default), proxying /api and /ws to
    ``backend_url``; returns once it serves the page."""
    port = port or free_port()
    vite = NODE_MODULES / ".bin" / "vite"
    args = [str(vite), "--port", str(port), "--strictPort", "--host", "127.0.0.1"]
    process = spawn(args, cwd=HERE, env={"BACKEND": backend_url, "NO_COLOR": "1"})
    try:
        wait_http(f"http://127.0.0.1:{port}/", process, timeout)
    except Exception:
        stop_process(process, signal.SIGKILL)
        raise
    return process, port


def stop_vite(process: subprocess.Popen, sig: int = signal.SIGTERM) -> str:
    return stop_process(process, sig)


@dataclass
class Vite:
    backend_url: str
    port: int = 0
    process: subprocess.Popen | None = None
    outputs: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, backend_url: str, port: int | None = None) -> Vite:
        ensure_node_modules()
        process, port = start_vite(backend_url, port)
        return cls(backend_url, port, process)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            self.outputs.append(stop_vite(self.process, sig))
            self.process = None

    def relaunch(self) -> None:
        self.process, _ = start_vite(self.backend_url, self.port)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.relaunch()

    def seen(self) -> list[dict]:
        """Requests and upgrades that reached Vite, with Host and Sec-Fetch-*."""
        return get_json(self.url + "/__seen")


# -- ground truth ----------------------------------------------------------------------------


@dataclass
class Truth:
    """What happened, as the page and Chromium saw it (times: epoch seconds)."""

    scenario: str
    base_url: str
    actions: list[dict] = field(default_factory=list)  # {"action", "t", ...}
    network: list[dict] = field(default_factory=list)  # Chromium's sockets (CDP)
    documents: list[dict] = field(default_factory=list)  # Chromium's document requests (CDP)
    history: list[dict] = field(default_factory=list)  # the probe's per-tab log
    sockets: list[dict] = field(default_factory=list)  # the probe's sockets, across loads
    page: Any = None
    context: Any = None

    def act(self, action: str, **extra) -> float:
        t = time.time()
        self.actions.append({"action": action, "t": t, **extra})
        return t

    @property
    def loads(self) -> list[dict]:
        """The tab's page loads: ``load`` (1, 2, ...), ``page``, and the times ``started``
        (navigation start: the document's timeOrigin), ``loaded`` and ``pagehide``."""
        out: dict[int, dict] = {}
        for e in self.history:
            if e.get("type") in ("load-start", "load", "pagehide"):
                row = out.setdefault(e["load"], {"load": e["load"], "page": e.get("page")})
                key = {"load-start": "started", "load": "loaded", "pagehide": "pagehide"}
                row[key[e["type"]]] = e["t"]
        return [out[k] for k in sorted(out)]

    def to_dict(self) -> dict:
        return dict(
            scenario=self.scenario,
            base_url=self.base_url,
            actions=self.actions,
            network=self.network,
            documents=self.documents,
            loads=self.loads,
            history=self.history,
            sockets=self.sockets,
        )


async def watch(page, truth: Truth) -> None:
    """Chromium's own view of the page's sockets and document loads, through a CDP session
    (Network.webSocket*, Network.requestWillBeSent): the browser's monotonic timestamps put
    on the wall clock with the ``wallTime`` of the same events. Playwright's ``websocket``
    events are no substitute: they report no close for the sockets a navigation tears down."""
    cdp = await page.context.new_cdp_session(page)
    offset: list[float] = []  # wallTime - timestamp, from the first event that has both
    by_id: dict[str, dict] = {}

    def wall(params: dict) -> float:
        if "wallTime" in params and not offset:
            offset.append(params["wallTime"] - params["timestamp"])
        return params["timestamp"] + offset[0] if offset else time.time()

    def created(params: dict) -> None:
        entry = {
            "url": params["url"],
            "created": None,
            "status": None,
            "opened": None,
            "closed": None,
            "error": None,
        }
        by_id[params["requestId"]] = entry
        truth.network.append(entry)

    def handshake(params: dict) -> None:
        entry = by_id.get(params["requestId"])
        if entry is not None:
            entry["created"] = wall(params)

    def response(params: dict) -> None:
        entry = by_id.get(params["requestId"])
        if entry is not None:
            entry["status"] = params["response"].get("status")
            entry["opened"] = wall(params)

    def closed(params: dict) -> None:
        entry = by_id.get(params["requestId"])
        if entry is not None:
            entry["closed"] = wall(params)

    def error(params: dict) -> None:
        entry = by_id.get(params["requestId"])
        if entry is not None:
            entry["error"] = params.get("errorMessage")
            entry["closed"] = entry["closed"] or wall(params)

    def request(params: dict) -> None:
        wall(params)
        if params.get("type") == "Document":
            truth.documents.append({"url": params["request"]["url"], "t": params["wallTime"]})

    cdp.on("Network.webSocketCreated", created)
    cdp.on("Network.webSocketWillSendHandshakeRequest", handshake)
    cdp.on("Network.webSocketHandshakeResponseReceived", response)
    cdp.on("Network.webSocketClosed", closed)
    cdp.on("Network.webSocketFrameError", error)
    cdp.on("Network.requestWillBeSent", request)
    await cdp.send("Network.enable")


def sockets_from_history(history: list[dict]) -> list[dict]:
    """One row per socket across the tab's loads, from the probe's log."""
    rows: dict[tuple[int, int], dict] = {}
    for e in history:
        if not e.get("type", "").startswith("ws-"):
            continue
        key = (e["load"], e["id"])
        row = rows.setdefault(
            key,
            {
                "load": e["load"],
                "id": e["id"],
                "page": e.get("page"),
                "path": e.get("path"),
                "kind": e.get("kind"),
                "created": None,
                "opened": None,
                "closed": None,
                "code": None,
                "wasClean": None,
            },
        )
        if e["type"] == "ws-created":
            row["created"] = e["t"]
        elif e["type"] == "ws-open":
            row["opened"] = e["t"]
        elif e["type"] == "ws-close":
            row.update(closed=e["t"], code=e["code"], wasClean=e["wasClean"])
    return sorted(rows.values(), key=lambda r: (r["created"] or 0, r["load"], r["id"]))


async def finish(truth: Truth) -> Truth:
    """Read the probe's history from the tab (when it still has a page)."""
    page = truth.page
    if page is not None and not page.is_closed():
        with contextlib.suppress(Exception):
            truth.history = await asyncio.wait_for(page.evaluate("window.__probe.history()"), 5)
    truth.sockets = sockets_from_history(truth.history)
    return truth


def page_url(base_url: str, path: str = "/", n: int = 1) -> str:
    return f"{base_url.rstrip('/')}{path}?n={n}"


async def paths_of(page) -> list[str]:
    """The socket paths the current page keeps (app sockets), plus "hmr" on the Vite page."""
    paths = await page.evaluate("document.body.dataset.paths || ''")
    keep = [p for p in paths.split() if p]
    if await page.evaluate("!!document.querySelector('script[src=\"/@vite/client\"]')"):
        keep.append(HMR)
    return keep


async def wait_all_open(page, *, timeout: float = STEP, min_opens: dict | None = None) -> dict:
    """Until every socket the page keeps is open (and, per path, opened at least
    ``min_opens[path]`` times in this load); returns the probe's state."""
    await page.wait_for_function("() => window.__probe && document.body.dataset.paths != null")
    keep = await paths_of(page)
    need = {p: (min_opens or {}).get(p, 1) for p in keep}
    await page.wait_for_function(
        """need => { const s = window.__probe.state();
                    return Object.entries(need).every(([p, n]) =>
                        s[p] && s[p].readyState === 1 && s[p].opens >= n); }""",
        arg=need,
        timeout=timeout * 1000,
    )
    return await page.evaluate("window.__probe.state()")


async def open_page(browser, base_url: str, truth: Truth, *, path: str = "/", n: int = 1):
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(STEP * 1000)
    await watch(page, truth)
    truth.page, truth.context = page, context
    truth.act("goto", url=page_url(base_url, path, n))
    await page.goto(page_url(base_url, path, n))
    await wait_all_open(page)
    truth.act("all open")
    return page


async def _start(scenario, browser, base_url, page, n, path="/") -> tuple[Truth, Any]:
    truth = Truth(scenario, base_url)
    if page is None:
        page = await open_page(browser, base_url, truth, path=path, n=n)
    else:
        truth.page, truth.context = page, page.context
        await watch(page, truth)
        await wait_all_open(page)
        truth.act("all open")
    return truth, page


async def settle(seconds: float = 0.3) -> None:
    """A moment for the proxy to see closes that follow the last open (none is awaited)."""
    await asyncio.sleep(seconds)


# -- scenarios -------------------------------------------------------------------------------


async def navigate(browser, base_url: str, *, n: int = 1, page=None) -> Truth:
    """index -> other.html -> index by clicking the page's link; each load's sockets open."""
    truth, page = await _start("navigate", browser, base_url, page, n)
    for target in ("other.html", "index.html"):
        truth.act("click", to=target)
        await page.click("#next")
        await page.wait_for_url(f"**/{target}?n={n}")
        truth.act("url changed", to=target)
        await wait_all_open(page)
        truth.act("all open", page=target)
    await settle()
    return await finish(truth)


async def reload(browser, base_url: str, *, n: int = 1, page=None) -> Truth:
    truth, page = await _start("reload", browser, base_url, page, n)
    load = await page.evaluate("window.__probe.load")
    truth.act("reload")
    await page.reload()
    await page.wait_for_function(f"window.__probe && window.__probe.load > {load}")
    await wait_all_open(page)
    truth.act("all open")
    await settle()
    return await finish(truth)


async def close_tab(browser, base_url: str, *, n: int = 1, page=None, whole_context=True) -> Truth:
    """Close the tab for good (its context too, unless ``whole_context=False``)."""
    truth, page = await _start("close_tab", browser, base_url, page, n)
    truth.history = await page.evaluate("window.__probe.history()")
    truth.act("close tab")
    await page.close()
    if whole_context:
        await truth.context.close()
    truth.act("closed")
    await settle()
    truth.sockets = sockets_from_history(truth.history)
    return truth


async def _failed_once(page, paths: list[str], before: dict, timeout: float) -> None:
    await page.wait_for_function(
        """([paths, before]) => { const s = window.__probe.state();
              return paths.every(p =>
                  s[p] && s[p].failures > (before[p] || {failures: 0}).failures);
           }""",
        arg=[paths, before],
        timeout=timeout * 1000,
    )


async def backend_restart(
    browser,
    base_url: str,
    backend: Backend,
    *,
    n: int = 1,
    page=None,
    sig: int = signal.SIGKILL,
    timeout: float = STEP,
) -> Truth:
    """Kill the backend (SIGKILL: TCP drops; SIGTERM: it closes with 1001), wait until every
    app socket has failed to reconnect at least once, start it again on the same port, and
    wait until every app socket is open again."""
    truth, page = await _start("backend_restart", browser, base_url, page, n)
    before = await page.evaluate("window.__probe.state()")
    app_paths = [p for p in before if p != HMR]
    truth.act("kill backend", signal=signal.Signals(sig).name)
    await asyncio.to_thread(backend.stop, sig)
    truth.act("backend gone")
    await _failed_once(page, app_paths, before, timeout)
    truth.act("every app socket failed a retry")
    await asyncio.to_thread(backend.start)
    truth.act("backend listening")
    opens = {p: before[p]["opens"] + 1 for p in app_paths}
    await wait_all_open(page, min_opens=opens, timeout=timeout)
    truth.act("all open")
    await settle()
    return await finish(truth)


async def dev_server_restart(
    browser,
    base_url: str,
    vite: Vite,
    *,
    n: int = 1,
    page=None,
    sig: int = signal.SIGTERM,
    down_for: float = 0.0,
    timeout: float = STEP,
) -> Truth:
    """Stop Vite (its process group), start it again on the same port after ``down_for``
    seconds, and wait for what the HMR client then does: poll with ``vite-ping`` sockets and
    reload the page, whose sockets then open."""
    truth, page = await _start("dev_server_restart", browser, base_url, page, n)
    load = await page.evaluate("window.__probe.load")
    before = await page.evaluate("window.__probe.state()")
    truth.act("kill vite", signal=signal.Signals(sig).name)
    await asyncio.to_thread(vite.stop, sig)
    truth.act("vite gone")
    with contextlib.suppress(Exception):
        await page.wait_for_function(
            "s => window.__probe.state().hmr.closeCodes.length > s",
            arg=len(before.get(HMR, {}).get("closeCodes", [])),
            timeout=5000,
        )
        truth.act("hmr socket closed (page saw it)")
    if down_for:
        await asyncio.sleep(down_for)
    await asyncio.to_thread(vite.relaunch)
    truth.act("vite listening")
    await page.wait_for_function(
        f"window.__probe && window.__probe.load > {load}", timeout=timeout * 1000
    )
    truth.act("page reloaded")
    await wait_all_open(page, timeout=timeout)
    truth.act("all open")
    await settle()
    return await finish(truth)


# -- the whole set, for people -----------------------------------------------------------------


def summary(truth: Truth) -> list[str]:
    """The probe's sockets and Chromium's, one line each, times relative to the first action."""
    t0 = truth.actions[0]["t"] if truth.actions else 0.0

    def rel(t):
        return "-" if t is None else f"{(t - t0) * 1000:8.1f}"

    lines = [f"{truth.scenario} on {truth.base_url}"]
    lines += [f"  action {rel(a['t'])} ms  {a['action']}" for a in truth.actions]
    for s in truth.sockets:
        lines.append(
            f"  probe  load {s['load']} {s['kind']:4} {s['path']:11} created {rel(s['created'])}"
            f" open {rel(s['opened'])} closed {rel(s['closed'])} code {s['code']}"
        )
    for e in truth.network:
        lines.append(
            f"  net    {e['url'].split('?')[0]:40} created {rel(e['created'])}"
            f" {e['status']} {rel(e['opened'])} closed {rel(e['closed'])} {e['error'] or ''}"
        )
    lines += [f"  doc    {rel(d['t'])} {d['url']}" for d in truth.documents]
    return lines
