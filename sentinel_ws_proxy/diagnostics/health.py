"""`sentinel-ws health`: the Sentinel health check, live against a server.

Checks, in order: the HTTP server (status endpoint), the diagnostics
endpoint, a WebSocket connection (handshake, a health_check probe, a message
back), and the missions API when present. With --fix it tries what can be
tried safely (other Origins, other paths, the server's own WebSocket restart
endpoint), checks again, and says for each problem whether it was FIXED,
ATTEMPTED, or needs MANUAL ACTION. It never changes files.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import websockets

from sentinel_ws_proxy.analysis.recovery import summary
from sentinel_ws_proxy.diagnostics.test_client import USER_AGENT, describe_failure
from sentinel_ws_proxy.proxy.config import format_hostport

STATUS_PATH = "/api/system/status"
DIAGNOSTICS_PATH = "/api/system/diagnostics/websockets"
MISSIONS_PATH = "/api/missions"
RESTART_PATH = "/api/system/websockets/restart"
COMMON_WS_PATHS = ("ws/mission-updates", "ws", "websocket", "ws/updates", "ws/events", "socket")
START_SCRIPTS = (
    "start.sh", "start_server.sh", "run.sh", "run_server.sh", "start.bat", "run.bat",
    "start.ps1", "run_server.py", "manage.py", "main.py", "app.py", "server.py",
    "docker-compose.yml", "compose.yaml", "Procfile", "package.json", "Makefile",
)  # fmt: skip

OK, WARNING, CRITICAL = "OK", "WARNING", "CRITICAL"
EXIT_STATUS = {OK: 0, WARNING: 1, CRITICAL: 2}


@dataclass
class Check:
    name: str
    status: str  # ok, warning, critical, skipped
    detail: str
    ms: float | None = None


@dataclass
class Fix:
    problem: str
    outcome: str  # FIXED, ATTEMPTED, MANUAL ACTION REQUIRED
    detail: str


@dataclass
class HealthReport:
    target: str
    checks: list[Check] = field(default_factory=list)
    diagnostics: dict[str, Any] | None = None
    fixes: list[Fix] = field(default_factory=list)
    metrics: dict[str, Any] | None = None  # from a recording

    @property
    def verdict(self) -> str:
        statuses = {c.status for c in self.checks}
        if "critical" in statuses:
            return CRITICAL
        return WARNING if "warning" in statuses else OK

    @property
    def reason(self) -> str:
        worst = [c for c in self.checks if c.status == self.verdict.lower()]
        if self.verdict == OK or not worst:
            return "every check passed"
        return "; ".join(f"{c.name}: {c.detail}" for c in worst)

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.verdict]

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "verdict": self.verdict,
            "reason": self.reason,
            "checks": [asdict(c) for c in self.checks],
            "diagnostics": self.diagnostics,
            "fixes": [asdict(f) for f in self.fixes],
            "metrics": self.metrics,
        }


@dataclass
class Target:
    host: str = "localhost"
    port: int = 8001
    path: str = "ws/mission-updates"
    origin: str | None = None
    timeout: float = 5.0

    @property
    def http(self) -> str:
        return f"http://{format_hostport(self.host, self.port)}"

    def ws(self, path: str | None = None) -> str:
        return self.http.replace("http://", "ws://", 1) + "/" + (path or self.path).lstrip("/")


@dataclass
class WsOutcome:
    ok: bool
    status: int | None  # handshake status, when one came back
    detail: str
    ms: float | None = None
    answered: bool = False


def _is_greeting(message: str | bytes) -> bool:
    try:
        event = json.loads(message)
    except (ValueError, TypeError):
        return False
    return isinstance(event, dict) and event.get("event_type") == "connection_established"


async def probe_websocket(url: str, origin: str | None, timeout: float) -> WsOutcome:
    """Open, send a health_check probe, wait for any message, close."""
    started = time.perf_counter()
    try:
        ws = await websockets.connect(
            url,
            origin=origin,
            open_timeout=timeout,
            user_agent_header=USER_AGENT,  # type: ignore[arg-type]
        )
    except websockets.InvalidStatus as exc:
        code = exc.response.status_code
        return WsOutcome(False, code, f"handshake refused with {code} {exc.response.reason_phrase}")
    except Exception as exc:
        return WsOutcome(False, None, describe_failure(exc, url, timeout)[1])
    ms = (time.perf_counter() - started) * 1000
    try:
        await ws.send(json.dumps({"type": "health_check", "timestamp": time.time()}))
        # A greeting comes whatever state the server is in; an answer to the
        # probe is what shows the connection is not stale.
        while _is_greeting(await asyncio.wait_for(ws.recv(), timeout)):
            pass
    except asyncio.TimeoutError:
        await ws.close()
        return WsOutcome(
            True, 101, f"connected in {ms:.0f} ms but no message within {timeout:g} s", ms
        )
    except websockets.ConnectionClosed as exc:
        return WsOutcome(False, 101, f"connected, then closed by the server ({exc})", ms)
    await ws.close()
    return WsOutcome(True, 101, f"connected in {ms:.0f} ms, probe answered", ms, answered=True)


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int | None, Any, float, str]:
    """(status, JSON body or None, ms, error) for one GET."""
    started = time.perf_counter()
    try:
        async with http.get(url) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            return response.status, body, (time.perf_counter() - started) * 1000, ""
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        error = describe_failure(getattr(exc, "os_error", exc), url, 0)[1]
        if isinstance(exc, asyncio.TimeoutError):
            error = f"no answer from {url}"
        return None, None, (time.perf_counter() - started) * 1000, error


async def check(target: Target, http: aiohttp.ClientSession) -> tuple[HealthReport, WsOutcome]:
    report = HealthReport(target.http)
    status, body, ms, error = await _get(http, target.http + STATUS_PATH)
    if status is None:
        report.checks.append(Check("server", "critical", f"not reachable: {error}", ms))
    elif status >= 400:
        report.checks.append(Check("server", "critical", f"{STATUS_PATH} answered {status}", ms))
    else:
        state = body.get("status", "up") if isinstance(body, dict) else "up"
        report.checks.append(Check("server", "ok", f"{STATUS_PATH} {status}, {state}", ms))

    status, body, ms, error = await _get(http, target.http + DIAGNOSTICS_PATH)
    if status == 200 and isinstance(body, dict):
        report.diagnostics = body
        active = body.get("active_connections", "?")
        report.checks.append(Check("diagnostics", "ok", f"{active} active connections", ms))
    else:
        why = error or f"answered {status}"
        report.checks.append(Check("diagnostics", "warning", f"{DIAGNOSTICS_PATH} {why}", ms))

    ws = await probe_websocket(target.ws(), target.origin, target.timeout)
    level = "ok" if ws.answered else ("warning" if ws.ok else "critical")
    report.checks.append(
        Check("websocket", level, f"/{target.path.lstrip('/')}: {ws.detail}", ws.ms)
    )

    status, body, ms, error = await _get(http, target.http + MISSIONS_PATH)
    if status == 200 and isinstance(body, list):
        report.checks.append(Check("missions", "ok", f"{len(body)} missions", ms))
    elif status == 404:
        report.checks.append(Check("missions", "skipped", "no missions API", ms))
    else:
        report.checks.append(
            Check("missions", "warning", f"{MISSIONS_PATH} {error or f'answered {status}'}", ms)
        )
    return report, ws


async def run_health(target: Target, *, fix: bool = False) -> HealthReport:
    timeout = aiohttp.ClientTimeout(total=target.timeout)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        report, ws = await check(target, http)
        if not fix or report.verdict == OK:
            return report
        fixes = await _repair(target, http, report, ws)
        again, _ = await check(target, http)
        again.fixes = fixes
        return again


async def _repair(
    target: Target, http: aiohttp.ClientSession, report: HealthReport, ws: WsOutcome
) -> list[Fix]:
    fixes: list[Fix] = []
    server_up = report.checks[0].status == "ok"
    if not server_up:
        scripts = [name for name in START_SCRIPTS if Path(name).exists()]
        hint = f"; found {', '.join(scripts)} here" if scripts else ""
        fixes.append(
            Fix("server down", "MANUAL ACTION REQUIRED", f"start the server on {target.http}{hint}")
        )
        return fixes
    if ws.status in (401, 403):
        fixes.append(await _try_origins(target))
    elif ws.status == 404:
        fixes.append(await _try_paths(target))
    elif not ws.answered:
        fixes.append(await _try_restart(target, http, ws))
    diagnostics = report.checks[1]
    if diagnostics.status != "ok":
        fixes.append(Fix("diagnostics endpoint", "MANUAL ACTION REQUIRED", f"{diagnostics.detail}"))
    return fixes


async def _try_origins(target: Target) -> Fix:
    candidates = {"no Origin": None, f"Origin {target.http}": target.http}
    if target.origin:
        candidates[f"Origin {target.origin}"] = target.origin
    accepted, refused = [], []
    for label, origin in candidates.items():
        outcome = await probe_websocket(target.ws(), origin, target.timeout)
        (accepted if outcome.ok else refused).append(label)
    if accepted and refused:
        detail = (
            f"the server accepts {', '.join(accepted)} but refuses {', '.join(refused)}: "
            "a CORS/Origin check; add the frontend's origin to the server's allowed origins"
        )
    elif accepted:
        detail = f"accepted now with {', '.join(accepted)}"
    else:
        detail = (
            "refused with every Origin tried: likely authentication (a missing cookie or "
            "token) or a path the server protects"
        )
    outcome = "FIXED" if accepted and not refused else "MANUAL ACTION REQUIRED"
    return Fix("handshake refused", outcome, detail)


def path_variants(path: str) -> list[str]:
    bare = path.strip("/")
    variants = [bare, bare + "/", *COMMON_WS_PATHS]
    return list(dict.fromkeys(v for v in variants if v))


async def _try_paths(target: Target) -> Fix:
    for candidate in path_variants(target.path):
        outcome = await probe_websocket(target.ws(candidate), target.origin, target.timeout)
        if outcome.ok:
            return Fix(
                "WebSocket path not found",
                "MANUAL ACTION REQUIRED",
                f"/{candidate} answers 101: point the frontend (or --path) at it",
            )
    tried = ", ".join("/" + p for p in path_variants(target.path))
    return Fix("WebSocket path not found", "MANUAL ACTION REQUIRED", f"none answered 101 ({tried})")


async def _try_restart(target: Target, http: aiohttp.ClientSession, ws: WsOutcome) -> Fix:
    try:
        async with http.post(target.http + RESTART_PATH) as response:
            status = response.status
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        return Fix("WebSocket failing", "MANUAL ACTION REQUIRED", f"restart request failed: {exc}")
    if status in (404, 405):
        return Fix(
            "WebSocket failing",
            "MANUAL ACTION REQUIRED",
            f"{ws.detail}; the server offers no {RESTART_PATH}: restart it by hand",
        )
    again = await probe_websocket(target.ws(), target.origin, target.timeout)
    if again.answered:
        return Fix(
            "WebSocket failing", "FIXED", f"POST {RESTART_PATH} ({status}), then it answered"
        )
    return Fix(
        "WebSocket failing", "ATTEMPTED", f"POST {RESTART_PATH} ({status}); still: {again.detail}"
    )


# -- against a recording -----------------------------------------------------------

# name: (warning above, critical above or None, what it measures)
THRESHOLDS: dict[str, tuple[float, float | None, str]] = {
    "handshake_failures": (0.05, 0.25, "share of upgrade requests not answered with 101"),
    "abnormal_closes": (
        0.05,
        0.25,
        "share of accepted sessions ended by 1006/1011/1002/1003/1007/1009",
    ),
    "never_recovered": (
        0.5,
        None,
        "share of failures (drops, server closes, refused handshakes) after which the client "
        "never had an accepted session again; closed tabs and navigations do not count",
    ),
    "recovery_p95": (
        5.0,
        30.0,
        "95th percentile seconds from a failure to that client's next accepted session",
    ),
    "idle_timeouts": (0.1, None, "share of accepted sessions closed by the server as idle"),
}
ABNORMAL_CODES = frozenset({1006, 1011, 1002, 1003, 1007, 1009})
OURS = frozenset({"proxy_shutdown", "injected"})  # the proxy ended these, not the app


def parse_thresholds(values: tuple[str, ...]) -> dict[str, tuple[float, float | None]]:
    """NAME=WARN or NAME=WARN/CRIT, over the defaults."""
    chosen = {name: (warn, crit) for name, (warn, crit, _) in THRESHOLDS.items()}
    for value in values:
        name, sep, limits = value.partition("=")
        if not sep or name not in THRESHOLDS:
            raise ValueError(
                f"--threshold {value!r}: expected NAME=WARN[/CRIT] with NAME one of "
                + ", ".join(THRESHOLDS)
            )
        warn, _, crit = limits.partition("/")
        try:
            chosen[name] = (float(warn), float(crit) if crit else None)
        except ValueError:
            raise ValueError(f"--threshold {value!r}: limits must be numbers") from None
    return chosen


def _level(value: float | None, limits: tuple[float, float | None]) -> str:
    warn, crit = limits
    if value is None:
        return "skipped"
    if crit is not None and value > crit:
        return "critical"
    return "warning" if value > warn else "ok"


def recording_health(
    classified: Any, source: str, limits: dict[str, tuple[float, float | None]]
) -> HealthReport:
    """The health verdict computed from a recording's classified sessions."""
    # What the app did: sessions the proxy ended (shutdown, injected faults) are left out.
    pairs = [(s, v) for s, v in classified.pairs() if v.category not in OURS]
    total = len(pairs)
    accepted = [(s, v) for s, v in pairs if s.accepted]
    ended = [(s, v) for s, v in accepted if s.ended_at is not None]
    recovery = summary(classified.disruptions)

    def share(count: int, of: int) -> float | None:
        return count / of if of else None

    metrics = {
        "sessions": total,
        "handshake_failures": share(sum(not s.accepted for s, _ in pairs), total),
        "abnormal_closes": share(
            sum(v.failure and s.close_code in ABNORMAL_CODES for s, v in ended), len(ended)
        ),
        "never_recovered": share(len(recovery["never_recovered"]), recovery["disruptions"]),
        "recovery_median": recovery["median_seconds"],
        "recovery_p95": recovery["p95_seconds"],
        "idle_timeouts": share(sum(v.category == "idle_timeout" for _, v in ended), len(ended)),
    }
    report = HealthReport(source, metrics=metrics)
    if not total:
        report.checks.append(Check("sessions", "warning", "the recording holds no sessions"))
        return report
    for name, (_, _, meaning) in THRESHOLDS.items():
        value = metrics[name]
        level = _level(value, limits[name])
        warn, crit = limits[name]
        shown = (
            "n/a"
            if value is None
            else (f"{value:.1f} s" if name == "recovery_p95" else f"{value:.1%}")
        )
        bounds = f"warn > {warn:g}" + (f", critical > {crit:g}" if crit is not None else "")
        report.checks.append(Check(name, level, f"{shown} ({meaning}; {bounds})"))
    return report
