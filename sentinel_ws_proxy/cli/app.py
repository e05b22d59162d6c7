"""The click group, its --decoder option, and the helpers the commands share."""

from __future__ import annotations

import csv
import functools
import importlib
import json
import os
import re
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from sentinel_ws_proxy import __version__
from sentinel_ws_proxy.analysis.classify import DEFAULT_IDLE_TIMEOUT, DEFAULT_RECONNECT_WINDOW
from sentinel_ws_proxy.analysis.report import Window, collector_paused, recorded_thresholds
from sentinel_ws_proxy.errors import RecordingError, UserError
from sentinel_ws_proxy.present import plain
from sentinel_ws_proxy.recording.reader import Recording
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


# Which module holds each command: a command imports its module when it runs, so
# `sentinel-ws sql` does not load the proxy, aiohttp and the demo first (start-up
# 0.36 -> 0.2 s). A test checks this list against the commands the modules declare.
COMMAND_MODULES = {
    "decoders": "decoders",
    "demo": "demo",
    "demo-server": "demo",
    "export": "recordings",
    "failures": "recordings",
    "fault": "faults",
    "health": "diagnose",
    "import": "recordings",
    "menu": "menu",
    "monitor": "diagnose",
    "proxy": "proxy",
    "replay": "replay",
    "search": "recordings",
    "sessions": "recordings",
    "show": "recordings",
    "sql": "recordings",
    "test": "replay",
    "web": "web",
}


class Commands(click.Group):
    """The command group, with one last net under every command: no traceback reaches
    the user for a damaged recording, a closed pipe, or a bug of ours."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(name)
        if module is not None and name not in self.commands:
            importlib.import_module(f"sentinel_ws_proxy.cli.{module}")  # registers it
        return super().get_command(ctx, name)

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
@click.option(
    "--decoder",
    "decoder_modules",
    multiple=True,
    metavar="MODULE",
    envvar="SENTINEL_WS_DECODERS",
    show_envvar=True,
    help="Load your own application-protocol decoder: a module importable from here or "
    "PYTHONPATH (e.g. mypkg.mydecoder), tried before the built-in ones (see `sentinel-ws "
    "decoders`). Repeatable; the variable takes a list separated by commas.",
)
def cli(decoder_modules: tuple[str, ...]) -> None:
    """Record-and-replay WebSocket proxy for debugging real-time web apps.

    Put `sentinel-ws proxy` between your frontend and its server: every
    handshake, frame and close is forwarded unchanged and recorded to SQLite.
    """
    names = [n for value in decoder_modules for n in re.split(r"[\s,:]+", value) if n]
    if names:
        load_decoders(names)


def load_decoders(names: list[str]) -> None:
    """Each user decoder by its module path, as `--decoder` names them, in that order."""
    from sentinel_ws_proxy import decoders  # only when asked: read commands start light

    # A console script's sys.path lacks the current folder, where a user's module often
    # is; added last, it shadows nothing installed.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    for name in reversed(names):  # each goes first: the first named ends up tried first
        decoders.load(name)


# -- helpers the commands share (their shared options are in options.py) ------------


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


def reads_whole_recording(f: F) -> F:
    """For a command that reads a whole recording once and exits: no cyclic garbage
    collection while it runs. The collector would walk the hundreds of thousands of
    objects the command keeps, again and again (0.3 s of `failures` at 100,000
    sessions), to find cycles it does not make."""

    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        with collector_paused():
            return f(*args, **kwargs)

    return run  # type: ignore[return-value]


def print_json(value: object) -> None:
    # Indented for a person at a terminal; compact when piped, where json's C
    # encoder is about five times faster on a large recording.
    indent = 2 if sys.stdout.isatty() else None
    with collector_paused():  # hundreds of thousands of new objects, none of them cyclic
        text = json.dumps(plain(value), indent=indent, ensure_ascii=False)
    click.echo(text)


def print_rows(fmt: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    """Rows as JSON (a list), JSON lines or CSV (nested values as JSON text)."""
    if fmt == "json":
        print_json(rows)
    elif fmt == "nl":
        for row in rows:
            click.echo(json.dumps(plain(row), ensure_ascii=False))
    else:
        flat_rows = [plain(row) for row in rows]
        columns = list(dict.fromkeys(k for row in flat_rows for k in row)) or columns or []
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        for flat in flat_rows:
            writer.writerow([_cell(flat.get(c)) for c in columns])


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
