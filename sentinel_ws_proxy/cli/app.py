"""The click group, and the options and helpers the commands share."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from sentinel_ws_proxy import __version__
from sentinel_ws_proxy.analysis.classify import DEFAULT_IDLE_TIMEOUT, DEFAULT_RECONNECT_WINDOW
from sentinel_ws_proxy.analysis.report import Window, recorded_thresholds
from sentinel_ws_proxy.errors import RecordingError, UserError
from sentinel_ws_proxy.proxy.config import DEFAULT_DB
from sentinel_ws_proxy.recording.reader import Recording
from sentinel_ws_proxy.render import jsonable
from sentinel_ws_proxy.timefmt import parse_time

USAGE_ERROR = 2
F = TypeVar("F", bound=Callable)


class CommandError(click.ClickException):
    """What every command reports bad input with: one line, exit status 2."""

    exit_code = USAGE_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"sentinel-ws: error: {self.format_message()}", err=True)


def fail(message: str) -> NoReturn:
    """A one-line error and exit status 2: bad input never earns a traceback."""
    raise CommandError(message)


# The recording a command opened last: named when the file turns out to be damaged.
_opened: list[Path] = []


class Commands(click.Group):
    """The command group, with one last net under every command: no traceback reaches
    the user for a damaged recording, a closed pipe, or a bug of ours."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except UserError as exc:  # the library's word on bad input: one line
            raise CommandError(str(exc)) from None
        except sqlite3.DatabaseError as exc:
            where = _opened[-1] if _opened else "the recording"
            fail(
                f"{where} is damaged ({exc}); `sqlite3 {where} .recover > saved.sql` "
                "may save what is left"
            )
        except BrokenPipeError:
            # `sentinel-ws sessions | head`: the reader left; say nothing, as cat does.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(128 + 13)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("SENTINEL_WS_DEBUG"):
                raise
            fail(
                f"internal error: {type(exc).__name__}: {exc} (a bug in sentinel-ws: please "
                "report it; SENTINEL_WS_DEBUG=1 shows the traceback)"
            )
        return None


@click.group(
    cls=Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="sentinel-ws")
def cli() -> None:
    """Record-and-replay WebSocket proxy for debugging real-time web apps.

    Put `sentinel-ws proxy` between your frontend and its server: every
    handshake, frame and close is forwarded unchanged and recorded to SQLite.
    """


# -- options and helpers shared by the commands ---------------------------------

db_option = click.option(
    "--db",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The recording to read (opened read-only).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
since_option = click.option(
    "--since",
    metavar="TIME",
    help="Only sessions started at or after TIME (ISO-8601, or 10m, 2h, 1d ago).",
)
until_option = click.option("--until", metavar="TIME", help="Only sessions started before TIME.")
window_options = [
    click.option(
        "--reconnect-window",
        type=click.FloatRange(min=0),
        metavar="SECONDS",
        help="A client that reconnects within this time after going away counts as a "
        f"navigation. Default: what the recording says, else {DEFAULT_RECONNECT_WINDOW:g}.",
    ),
    click.option(
        "--idle-timeout",
        type=click.FloatRange(min=0),
        metavar="SECONDS",
        help="A server close after this long without frames counts as an idle timeout. "
        f"Default: what the recording says (the demo's: 1), else {DEFAULT_IDLE_TIMEOUT:g}.",
    ),
]


# The Sentinel tools' target: test, health and monitor share it.
target_options = [
    click.option("--host", default="localhost", show_default=True),
    click.option("--port", default=8001, show_default=True, type=click.IntRange(1, 65535)),
    click.option("--path", default="ws/mission-updates", show_default=True),
]

origin_options = [
    click.option(
        "--origin",
        metavar="URL",
        help="Send this Origin (your frontend's, e.g. http://localhost:3000). "
        "Default: the target's own origin, as its own page in a browser would send.",
    ),
    click.option(
        "--no-origin",
        is_flag=True,
        help="Send no Origin header (as a non-browser client does).",
    ),
]


def with_options(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def console() -> Console:
    # Piped output is for reading later or grepping: do not squeeze it to 80 columns.
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def open_recording(path: Path) -> Recording:
    _opened.append(path)
    return Recording(path)


def make_window(
    since: str | None,
    until: str | None,
    run_id: int | None = None,
    reconnect_window: float | None = None,
    idle_timeout: float | None = None,
    *,
    db: Path | None = None,
) -> Window:
    """The sessions to read and the thresholds: those given, else the recording's own."""
    recorded: dict[str, float] = {}
    if db is not None and (reconnect_window is None or idle_timeout is None):
        try:
            with Recording(db) as recording:
                recorded = recorded_thresholds(recording)
        except RecordingError:
            pass  # the command says what is wrong with the file when it opens it
    try:
        return Window(
            since=parse_time(since) if since else None,
            until=parse_time(until) if until else None,
            run_id=run_id,
            reconnect_window=_first(
                reconnect_window, recorded.get("reconnect_window"), DEFAULT_RECONNECT_WINDOW
            ),
            idle_timeout=_first(idle_timeout, recorded.get("idle_timeout"), DEFAULT_IDLE_TIMEOUT),
        )
    except ValueError as exc:
        fail(f"--since/--until: {exc}")
        raise


def _first(*values: float | None) -> float:
    return next(v for v in values if v is not None)


def print_json(value: object) -> None:
    # Indented for a person at a terminal; compact when piped, where json's C
    # encoder is about five times faster on a large recording.
    indent = 2 if sys.stdout.isatty() else None
    click.echo(json.dumps(value, indent=indent, ensure_ascii=False, default=jsonable))
