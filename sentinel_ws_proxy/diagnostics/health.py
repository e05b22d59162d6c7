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
from urllib.parse import urlsplit

import aiohttp
import websockets

from sentinel_ws_proxy.analysis.recovery import incidents, summary
from sentinel_ws_proxy.diagnostics.test_client import (
    SAID,
    USER_AGENT,
    build_url,
    choose_origin,
    describe_failure,
    own_origin,
    refusal,
)
from sentinel_ws_proxy.errors import UserError
from sentinel_ws_proxy.settings import format_hostport

STATUS_PATH = "/api/system/status"
DIAGNOSTICS_PATH = "/api/system/diagnostics/websockets"
MISSIONS_PATH = "/api/missions"
RESTART_PATH = "/api/system/websockets/restart"
COMMON_WS_PATHS = ("ws/mission-updates", "ws", "websocket", "ws/updates", "ws/events", "socket")
# Where frontends are usually served from in development (React/Next, Vite, Vue CLI, Angular).
DEV_ORIGINS = (
    "http://localhost:3000", "http://localhost:5173", "http://localhost:8080",
    "http://localhost:4200", "http://127.0.0.1:3000", "http://127.0.0.1:5173",
)  # fmt: skip
NOT_REACHABLE = "not reachable"
UNHEALTHY = frozenset({"error", "down", "unhealthy", "fail", "failed", "failing", "critical"})
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
    reachable: bool = True  # the HTTP server answered at all

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
    origin: str | None = None  # the Origin header the probes send; None: none
    timeout: float = 5.0
    secure: bool = False  # https and wss

    @classmethod
    def choose(
        cls,
        url: str | None,
        host: str,
        port: int,
        path: str,
        origin: str | None,
        no_origin: bool,
        timeout: float = 5.0,
    ) -> Target:
        """The server named by URL (ws://host:port/path, or http://...) or by --host,
        --port and --path; its probes send --origin, none (--no-origin), or its own."""
        target = cls(host, port, path, None, timeout)
        if url:
            parts = urlsplit(build_url(url, host, port, path))
            target.secure = parts.scheme == "wss"
            target.host = parts.hostname or host
            target.port = parts.port or (443 if target.secure else 80)
            target.path = parts.path.lstrip("/") or path
        target.origin = choose_origin(target.ws(), origin, no_origin)
        return target

    @property
    def http(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{format_hostport(self.host, self.port)}"

    def ws(self, path: str | None = None) -> str:
        return "ws" + self.http[4:] + "/" + (path or self.path).lstrip("/")


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


async def probe_websocket(
    url: str, origin: str | None, timeout: float, *, handshake_only: bool = False
) -> WsOutcome:
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
        response = exc.response
        return WsOutcome(
            False,
            response.status_code,
            refusal(response.status_code, response.reason_phrase, response.body),
        )
    except Exception as exc:
        return WsOutcome(False, None, describe_failure(exc, url, timeout)[1])
    ms = (time.perf_counter() - started) * 1000
    if handshake_only:
        await ws.close()
        return WsOutcome(True, 101, f"accepted in {ms:.0f} ms", ms)
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
    report.checks.append(await _check_status(target, http))
    report.reachable = not report.checks[0].detail.startswith(NOT_REACHABLE)

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
    sent = f"Origin {target.origin}" if target.origin else "no Origin"
    report.checks.append(
        Check("websocket", level, f"/{target.path.lstrip('/')} ({sent}): {ws.detail}", ws.ms)
    )
    report.checks.append(await _check_missions(target, http))
    return report, ws


async def _check_status(target: Target, http: aiohttp.ClientSession) -> Check:
    status, body, ms, error = await _get(http, target.http + STATUS_PATH)
    if status is None:
        return Check("server", "critical", f"{NOT_REACHABLE}: {error}", ms)
    if status in (404, 405):  # an app without the Sentinel endpoints: up all the same
        return Check("server", "warning", f"up, but {STATUS_PATH} answered {status}", ms)
    if status >= 400:
        return Check("server", "critical", f"{STATUS_PATH} answered {status}", ms)
    if isinstance(body, dict) and "status" in body:
        state = str(body["status"])
        level = "warning" if state.lower() in UNHEALTHY else "ok"
        return Check("server", level, f"{STATUS_PATH} {status}, status {state!r}", ms)
    return Check(
        "server", "ok", f"{STATUS_PATH} {status} (up; no JSON object with a status field)", ms
    )


def count_listed(body: Any, key: str) -> int | None:
    """Items in a JSON list, or in a list under `key` (or items/results/data) of an object."""
    if isinstance(body, list):
        return len(body)
    if isinstance(body, dict):
        for name in (key, "items", "results", "data"):
            if isinstance(body.get(name), list):
                return len(body[name])
    return None


async def _check_missions(target: Target, http: aiohttp.ClientSession) -> Check:
    status, body, ms, error = await _get(http, target.http + MISSIONS_PATH)
    if status == 404:
        return Check("missions", "skipped", "no missions API", ms)
    if status != 200:
        return Check("missions", "warning", f"{MISSIONS_PATH} {error or f'answered {status}'}", ms)
    count = count_listed(body, "missions")
    if count is None:
        return Check(
            "missions",
            "warning",
            f"{MISSIONS_PATH} answered 200 without a list of missions (looked for a JSON "
            "list, or an object with a missions, items, results or data list)",
            ms,
        )
    return Check("missions", "ok", f"{count} missions", ms)


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
    if not report.reachable:
        scripts = [name for name in START_SCRIPTS if Path(name).exists()]
        hint = f"; found {', '.join(scripts)} here" if scripts else ""
        fixes.append(
            Fix("server down", "MANUAL ACTION REQUIRED", f"start the server on {target.http}{hint}")
        )
        return fixes
    if ws.status is not None and ws.status != 101:
        fixes.append(await search_handshake(target, ws))
    elif not ws.answered:
        fixes.append(await _try_restart(target, http, ws))
    diagnostics = report.checks[1]
    if diagnostics.status != "ok":
        fixes.append(Fix("diagnostics endpoint", "MANUAL ACTION REQUIRED", f"{diagnostics.detail}"))
    return fixes


def origin_candidates(target: Target) -> dict[str, str | None]:
    """label: Origin, the one the check used first."""
    own = own_origin(target.ws())
    ordered = [target.origin, None, own, *DEV_ORIGINS]
    return {(f"Origin {o}" if o else "no Origin"): o for o in dict.fromkeys(ordered)}


def path_variants(path: str) -> list[str]:
    """The path as given, with and without its trailing slash, then the common paths."""
    given = path.lstrip("/")
    toggled = given.rstrip("/") if given.endswith("/") else given + "/"
    variants = [given, toggled, *COMMON_WS_PATHS, *(p + "/" for p in COMMON_WS_PATHS)]
    return list(dict.fromkeys(v for v in variants if v.strip("/")))


Tried = list[tuple[str, str, WsOutcome]]  # (path, origin label, outcome)


async def search_handshake(target: Target, first: WsOutcome) -> Fix:
    """Probe Origins x paths until one is accepted; say what that reveals."""
    origins = origin_candidates(target)
    tried: Tried = []
    for path in path_variants(target.path):
        outcomes = await asyncio.gather(
            *(
                probe_websocket(target.ws(path), origin, target.timeout, handshake_only=True)
                for origin in origins.values()
            )
        )
        tried += [(path, label, outcome) for label, outcome in zip(origins, outcomes, strict=True)]
        if any(outcome.ok for outcome in outcomes):
            return _found(target, first, path, tried)
        if all(outcome.status is None for outcome in outcomes):
            break  # no HTTP answer at all: more paths will not tell more
    return _not_found(target, first, tried)


def _found(target: Target, first: WsOutcome, path: str, tried: Tried) -> Fix:
    here = [(label, outcome) for p, label, outcome in tried if p == path]
    accepted = [label for label, outcome in here if outcome.ok]
    more = len(accepted) - 3
    shown = ", ".join(accepted[:3]) + (f" and {more} more" if more > 0 else "")
    refused = [f"{label} ({o.status or 'no answer'})" for label, o in here if not o.ok]
    given = target.path.lstrip("/")
    configured = "Origin " + target.origin if target.origin else "no Origin"
    problem = f"handshake refused with {first.status}"
    if path == given and configured in accepted:
        return Fix(problem, "PASSED ON RETRY", f"/{path} with {configured} is accepted now")
    at_given = {o.status for p, _, o in tried if p == given}
    if path.rstrip("/") != given.rstrip("/") and at_given <= {401, 403}:
        return Fix(problem, "MANUAL ACTION REQUIRED", _route_refuses(given, at_given, path, first))
    findings = []
    if path != given:
        findings.append(
            f"/{path} answers 101 where /{given} answered {first.status}"
            + (
                _slash_note(given, path) + f"; point the frontend (or --path) at /{path}"
                if path.rstrip("/") == given.rstrip("/")
                else "; if that is your app's socket, point the frontend (or --path) at it"
            )
        )
    if refused:
        findings.append(
            f"the server checks Origin: it accepts {shown} and refuses "
            f"{', '.join(refused)}"
            + (
                f"; {configured} is refused: add your frontend's origin to the server's "
                "allowed origins (CORS/Origin check)"
                if configured not in accepted
                else ""
            )
        )
    if not findings:
        findings.append(f"/{path} accepts {shown}")
    return Fix(problem, "MANUAL ACTION REQUIRED", "; ".join(findings))


def _route_refuses(given: str, statuses: set[int | None], other: str, first: WsOutcome) -> str:
    codes = "/".join(str(s) for s in sorted(s for s in statuses if s))
    detail = (
        f"/{given} refused ({codes}) with every Origin tried, while /{other} accepts: the "
        "server is up and guards this route, probably for a logged-in user; send what the "
        "app sends (e.g. sentinel-ws test --header 'Cookie: sessionid=...')"
    )
    return _quoting(detail, first)


def _quoting(detail: str, first: WsOutcome) -> str:
    """The detail, with what the server said when it first refused."""
    said = first.detail.partition(SAID)[2]
    return f"{detail}{SAID}{said}" if said else detail


def _slash_note(given: str, found: str) -> str:
    return (
        ": the route wants the trailing slash"
        if found.endswith("/")
        else ": the route has no trailing slash"
    )


def _not_found(target: Target, first: WsOutcome, tried: Tried) -> Fix:
    problem = f"handshake refused with {first.status}"
    statuses = {outcome.status for _, _, outcome in tried}
    paths = len({p for p, _, _ in tried})
    combos = f"{len(tried)} combinations of Origin and path ({paths} paths)"
    if statuses <= {401, 403}:
        detail = (
            f"refused ({'/'.join(str(s) for s in sorted(statuses))}) with all {combos}, "
            "even with no Origin: not an Origin check; the server wants credentials "
            "(log in first: a session cookie, or a token in the URL or a header, e.g. "
            "sentinel-ws test --header 'Cookie: sessionid=...')"
        )
    elif statuses == {404}:
        detail = f"404 for all {combos}: find the WebSocket route in the server's routing"
    elif None in statuses and len(statuses) == 1:
        detail = f"no HTTP answer to any of {combos}: {tried[0][2].detail}"
    else:
        seen = ", ".join(
            f"{outcome.status or 'no answer'} for /{p} with {label}"
            for p, label, outcome in _firsts(tried)
        )
        detail = f"nothing accepted among {combos}; answers: {seen}"
    return Fix(problem, "MANUAL ACTION REQUIRED", _quoting(detail, first))


def _firsts(tried: Tried) -> Tried:
    """One example per distinct status, in the order met."""
    seen: dict[int | None, tuple[str, str, WsOutcome]] = {}
    for entry in tried:
        seen.setdefault(entry[2].status, entry)
    return list(seen.values())


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
    "handshake_failures": (
        0.05,
        0.25,
        "share of upgrade requests not answered with 101, a client's refused retries during "
        "a disruption left out (its recovery measures them)",
    ),
    "unrecovered_incidents": (
        0.0,
        0.0,
        "server-side incidents (outages, restarts) after which not every client came back",
    ),
    "abnormal_closes": (
        0.05,
        0.25,
        "share of accepted sessions ended by 1006/1011/1002/1003/1007/1009, those of an "
        "incident every client recovered from left out (the incident checks measure them)",
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
            raise UserError(
                f"--threshold {value!r}: expected NAME=WARN[/CRIT] with NAME one of "
                + ", ".join(THRESHOLDS)
            )
        warn, _, crit = limits.partition("/")
        try:
            chosen[name] = (float(warn), float(crit) if crit else None)
        except ValueError:
            raise UserError(f"--threshold {value!r}: limits must be numbers") from None
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
    retries = {i for d in classified.disruptions for i, _ in d.retries}
    outages = incidents(classified.disruptions)
    weathered = {d.session_id for i in outages if i.recovered for d in i.disruptions}

    def share(count: int, of: int) -> float | None:
        return count / of if of else None

    metrics = {
        "sessions": total,
        "handshake_failures": share(
            sum(not s.accepted and s.id not in retries for s, _ in pairs), total - len(retries)
        ),
        "unrecovered_incidents": float(sum(not i.recovered for i in outages)),
        "abnormal_closes": share(
            sum(
                v.failure and s.close_code in ABNORMAL_CODES and s.id not in weathered
                for s, v in ended
            ),
            len(ended),
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
            else (
                f"{value:.1f} s"
                if name == "recovery_p95"
                else f"{value:g}"
                if name == "unrecovered_incidents"
                else f"{value:.1%}"
            )
        )
        bounds = f"warn > {warn:g}" + (f", critical > {crit:g}" if crit is not None else "")
        report.checks.append(Check(name, level, f"{shown} ({meaning}; {bounds})"))
    return report
