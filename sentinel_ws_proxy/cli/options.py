"""The options several commands share, each defined once.

A command takes an option by name. Where an option means something different to a
command (what its --db is read or written for, where its --listen serves, what its
--speed divides), the command says so in the help it passes, and only there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from sentinel_ws_proxy.analysis.classify import DEFAULT_IDLE_TIMEOUT, DEFAULT_RECONNECT_WINDOW
from sentinel_ws_proxy.cli.params import Duration, HostPort, Size
from sentinel_ws_proxy.settings import DEFAULT_DB

F = TypeVar("F", bound=Callable)
Option = Callable[[F], F]

FILE = click.Path(dir_okay=False, path_type=Path)
DB_ENVVAR = "SENTINEL_WS_DB"


def with_options(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    """Several options as one decorator, in the order listed (that of --help)."""

    def decorate(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def db_option(
    help: str = "The recording to read (opened read-only).",
    *,
    default: str | None = DEFAULT_DB,
    envvar: str | None = DB_ENVVAR,
) -> Option:
    """--db, the recording. SENTINEL_WS_DB names it where there is a default, but not for
    the demo's (which replaces its file) nor where --db turns a command from a live server
    to a recording (health, monitor, test: no default)."""
    return click.option(
        "--db",
        default=default,
        envvar=envvar if default is not None else None,
        show_default=default is not None,
        show_envvar=default is not None and envvar is not None,
        type=FILE,
        help=help,
    )


def file_option(*decls: str, help: str) -> Option:
    """A file to read or write (a Path)."""
    return click.option(*decls, type=FILE, help=help)


def listen_option(default: str, help: str | None = None) -> Option:
    """--listen HOST:PORT, where a command's server accepts connections."""
    return click.option("--listen", default=default, show_default=True, type=HostPort(), help=help)


def seconds_option(name: str, default: float | None, minimum: float, help: str) -> Option:
    """A duration (5, 2.5, 500ms, 2m) of at least `minimum` seconds; a default is shown."""
    return click.option(
        name,
        default=default,
        show_default=default is not None,
        type=Duration(minimum),
        help=help,
    )


def timeout_option(help: str) -> Option:
    """--timeout, how long a client command waits for the server."""
    return seconds_option("--timeout", 5.0, 0.01, help)


def speed_option(help: str, default: float = 1.0, minimum: float = 0) -> Option:
    """--speed, how much faster than recorded a recording is played."""
    return click.option(
        "--speed", default=default, show_default=True, type=click.FloatRange(min=minimum), help=help
    )


def mode_option(choices: list[str], help: str) -> Option:
    """--mode timed|sync: keep the recorded timing, or wait for the other side."""
    return click.option(
        "--mode", type=click.Choice(choices), default="timed", show_default=True, help=help
    )


def session_option(help: str, *, multiple: bool = False) -> Option:
    """--session ID (session_id; session_ids, a tuple, when repeatable)."""
    dest = "session_ids" if multiple else "session_id"
    return click.option("--session", dest, type=int, multiple=multiple, metavar="ID", help=help)


def run_option(help: str) -> Option:
    return click.option("--run", "run_id", type=int, metavar="ID", help=help)


def limit_option(default: int, minimum: int, help: str) -> Option:
    return click.option(
        "--limit", default=default, show_default=True, type=click.IntRange(min=minimum), help=help
    )


# What a recording keeps of what the browser sent: the proxy and `import` write recordings.
no_redact_option = click.option(
    "--no-redact",
    is_flag=True,
    help="Record Cookie, Authorization, token-like query values and the credentials an "
    "application protocol sends in its messages (graphql-ws, Socket.IO, STOMP, MQTT...) as sent.",
)
max_payload_option = click.option(
    "--max-payload",
    default="64K",
    show_default=True,
    type=Size(),
    help="Bytes of each message's payload kept in the recording (the full size is always kept).",
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
since_option = click.option(
    "--since",
    metavar="TIME",
    help="Only sessions started at or after TIME (ISO-8601, or 10m, 2h, 1d ago).",
)
until_option = click.option("--until", metavar="TIME", help="Only sessions started before TIME.")
# The thresholds that classify sessions; a recording says which it was made with.
window_options = [
    seconds_option(
        "--reconnect-window",
        None,
        0,
        "A client that reconnects within this time after going away counts as a navigation. "
        f"Default: what the recording says, else {DEFAULT_RECONNECT_WINDOW:g}.",
    ),
    seconds_option(
        "--idle-timeout",
        None,
        0,
        "A server close after this long without frames counts as an idle timeout. "
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

FORMATS = {
    "table": "A table for people (the default).",
    "json": "JSON for scripts: times in epoch seconds with ISO 8601 beside them.",
    "nl": "JSON lines: one object per row, for jq and streaming.",
    "csv": "CSV with a header line, for spreadsheets.",
}


def output_options(f: F) -> F:
    """--json, --nl, --csv and --table, one `fmt` parameter, on every read command."""
    for name, meaning in reversed(FORMATS.items()):
        # A feature switch: only the default's option says default=True.
        extra = {"default": True} if name == "table" else {}
        f = click.option(f"--{name}", "fmt", flag_value=name, help=meaning, **extra)(f)
    return f
