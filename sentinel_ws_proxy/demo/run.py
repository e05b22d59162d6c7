"""`sentinel-ws demo`: the demo server, the proxy in front of it, the scenarios, the report."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.text import Text

from sentinel_ws_proxy.analysis.report import (
    FailureReport,
    Window,
    failure_report,
    recorded_thresholds,
)
from sentinel_ws_proxy.cli.render import (
    category_text,
    failures_headline,
    failures_report,
    new_table,
)
from sentinel_ws_proxy.demo.scenarios import DEMO_IDLE_THRESHOLD, SCENARIOS, Context
from sentinel_ws_proxy.demo.server import Behaviour, start_demo_server
from sentinel_ws_proxy.errors import RecordingError
from sentinel_ws_proxy.proxy.config import ProxyConfig
from sentinel_ws_proxy.proxy.log import SessionLog
from sentinel_ws_proxy.proxy.server import ProxyServer, serve_until_signalled
from sentinel_ws_proxy.recording.crash import in_use
from sentinel_ws_proxy.recording.reader import Recording
from sentinel_ws_proxy.recording.schema import open_read_only, set_meta
from sentinel_ws_proxy.settings import parse_upstream


@dataclass
class DemoResult:
    report: FailureReport
    # scenario name -> (expected category, category its first session got, session id)
    outcomes: dict[str, tuple[str, str | None, int | None]]

    @property
    def all_as_expected(self) -> bool:
        return all(expected == got for expected, got, _ in self.outcomes.values())


def remove_recording(db: Path) -> None:
    """Start the demo's recording afresh, unless a proxy (demo --serve) is writing it."""
    if db.exists():
        try:
            recording = open_read_only(db)
            try:
                writing = in_use(recording)
            finally:
                recording.close()
        except (RecordingError, sqlite3.Error):
            writing = None  # not a recording of ours being written: replace it
        if writing is not None:
            raise RecordingError(
                f"{db} is being written by a running proxy (run {writing[0]}, pid "
                f"{writing[1]}, sentinel-ws demo --serve?); stop it or pass --db elsewhere"
            )
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


async def run_demo(db: Path, console: Console) -> DemoResult:
    """Record every scenario through a real proxy into a fresh `db`, then classify it."""
    remove_recording(db)
    runner, backend, port = await start_demo_server(Behaviour(heartbeat=15.0))
    proxy = ProxyServer(
        ProxyConfig(
            listen_host="127.0.0.1",
            listen_port=0,
            upstream=parse_upstream(f"http://127.0.0.1:{port}"),
            db_path=db,
        )
    )
    try:
        await proxy.start()
        console.print(
            f"Demo Sentinel server on http://127.0.0.1:{port}, "
            f"proxy on {proxy.url}, recording to {db}\n"
        )
        async with aiohttp.ClientSession() as http:
            ctx = Context(proxy.url, backend, http)
            for number, scenario in enumerate(SCENARIOS, 1):
                started = time.perf_counter()
                with console.status(f"[{number}/{len(SCENARIOS)}] {scenario.name}…"):
                    outcome = await scenario.run(ctx, scenario.agent)
                took = time.perf_counter() - started
                console.print(
                    f"[{number}/{len(SCENARIOS)}] [bold]{scenario.name}[/bold] "
                    f"({scenario.story}): {outcome} [dim]{took:.1f} s[/dim]"
                )
    finally:
        if proxy.proxy is not None:
            await proxy.stop()
        await runner.cleanup()
    record_thresholds(db)
    return classify_demo(db)


def record_thresholds(db: Path) -> None:
    """The demo server's idle timeout is 1.5 s: every reader should classify with 1 s."""
    set_meta(db, "idle_timeout", str(DEMO_IDLE_THRESHOLD))


def classify_demo(db: Path) -> DemoResult:
    with Recording(db) as recording:
        report = failure_report(recording, Window(**recorded_thresholds(recording)))
        first_by_agent = recording.first_session_by_agent()
    category = {v.session_id: v.category for v in report.classified.verdicts}
    outcomes = {}
    for scenario in SCENARIOS:
        session_id = first_by_agent.get(scenario.agent)
        got = category.get(session_id) if session_id is not None else None
        outcomes[scenario.name] = (scenario.expected, got, session_id)
    return DemoResult(report, outcomes)


def print_demo_report(console: Console, result: DemoResult, db: Path) -> None:
    table = new_table(title="\nWhat the recording says", title_justify="left", show_edge=False)
    table.add_column("scenario")
    table.add_column("session", justify="right")
    table.add_column("category")
    table.add_column("")
    for name, (expected, got, session_id) in result.outcomes.items():
        mark = (
            Text("✓", style="green") if got == expected else Text(f"✗ expected {expected}", "red")
        )
        table.add_row(name, str(session_id or "-"), category_text(got or "missing"), mark)
    console.print(table)
    console.print()
    failures_report(
        console,
        result.report,
        f"sentinel-ws failures --db {db}: "
        + failures_headline(result.report, str(db)).split(": ", 1)[1],
    )
    navigation = result.outcomes["page navigation"][2]
    console.print("\n[bold]Next, try[/bold]")
    for command, what in (
        (f"sentinel-ws sessions --db {db}", "every session, one line each"),
        (f"sentinel-ws show {navigation} --db {db}", "the navigation, frame by frame"),
        (f"sentinel-ws failures --db {db} --json", "the same report for scripts"),
        (f'sentinel-ws sql "SELECT * FROM sessions" --db {db}', "your own questions"),
        (f"sentinel-ws export {navigation} --db {db} -o navigation.har", "open in DevTools"),
        (f"sentinel-ws replay --db {db} --session {navigation}", "a stand-in server for it"),
        (f"sentinel-ws health --db {db}", "OK / WARNING / CRITICAL, as a CI gate"),
        (f"sentinel-ws monitor --db {db} --replay --speed 5", "watch it again"),
        ("sentinel-ws demo --serve", "the demo app in your browser, through the proxy"),
    ):
        console.print(f"  {command:<68} [dim]# {what}[/dim]")


async def serve_demo(
    listen_host: str, listen_port: int, db: Path, console: Console, *, server_port: int = 0
) -> None:
    """Keep the demo server and a recording proxy running for a browser, until Ctrl-C."""
    runner, _backend, port = await start_demo_server(
        Behaviour(heartbeat=15.0, events_every=5.0), port=server_port
    )
    config = ProxyConfig(
        listen_host=listen_host,
        listen_port=listen_port,
        upstream=parse_upstream(f"http://127.0.0.1:{port}"),
        db_path=db,
    )

    def announce(server: ProxyServer) -> None:
        console.print(f"Demo Sentinel server on http://127.0.0.1:{port}")
        console.print(f"Proxy on {server.url}, recording to {db}")
        console.print(
            f"\nOpen [bold]{server.url}/[/bold] in your browser, follow the mission links "
            "(each navigation closes and reopens the WebSocket), then press Ctrl-C and run:"
        )
        console.print(f"  sentinel-ws failures --db {db}")

    try:
        await serve_until_signalled(
            config, sinks=[SessionLog(lambda line: console.print(Text(line)))], on_ready=announce
        )
    finally:
        await runner.cleanup()
