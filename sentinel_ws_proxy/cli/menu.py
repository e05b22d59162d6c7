"""sentinel-ws menu: the Sentinel launcher menu."""

from __future__ import annotations

import click

from sentinel_ws_proxy.cli.app import cli
from sentinel_ws_proxy.settings import (
    DEFAULT_DB,
    DEFAULT_LISTEN,
    DEFAULT_REPLAY_LISTEN,
    DEFAULT_UPSTREAM,
)

HOST = ("--host", "Host", "localhost")
PORT = ("--port", "Port", "8001")
PATH = ("--path", "WebSocket path", "ws/mission-updates")
RECORDING = ("--db", "Recording", DEFAULT_DB)
# command, what it does, options asked for: (flag, prompt, default; a bool default is a yes/no)
MENU: list[tuple[str, str, list[tuple[str, str, str | bool]]]] = [
    ("test", "Test a WebSocket connection", [HOST, PORT, PATH]),
    ("health", "Check the WebSocket system's health",
     [HOST, PORT, PATH, ("--full", "Show detailed diagnostics", False),
      ("--fix", "Attempt to fix common issues", False)]),
    ("monitor", "Watch the WebSocket system live",
     [HOST, PORT, PATH, ("--interval", "Interval (s)", "2")]),
    ("proxy", "Record a frontend's traffic through the proxy",
     [("--listen", "Listen on", DEFAULT_LISTEN),
      ("--upstream", "Upstream server", DEFAULT_UPSTREAM), RECORDING]),
    ("failures", "What went wrong in a recording", [RECORDING]),
    ("replay", "Replay a recording as a stand-in server",
     [RECORDING, ("--listen", "Listen on", DEFAULT_REPLAY_LISTEN), ("--speed", "Speed", "1")]),
]  # fmt: skip


@cli.command()
def menu() -> None:
    """Choose a tool from a list and answer its questions (the Sentinel launcher menu).

    After each tool, its exit status is shown and the menu comes back; q quits.

    \b
    Example:
      sentinel-ws menu
    """
    while True:
        click.echo("Sentinel WebSocket tools")
        for number, (name, what, _) in enumerate(MENU, 1):
            click.echo(f"  {number}. {name:<9} {what}")
        click.echo("  q. quit")
        try:
            argv = _ask()
        except (click.Abort, EOFError):
            click.echo()
            return
        if argv is None:
            return
        click.echo("Running: sentinel-ws " + " ".join(argv))
        status = _run(argv)
        click.echo(f"\n(sentinel-ws {argv[0]} exited with status {status}; back to the menu)\n")


def _ask() -> list[str] | None:
    choice = click.prompt(
        "Choose",
        type=click.Choice([str(n) for n in range(1, len(MENU) + 1)] + ["q"]),
        show_choices=False,
    )
    if choice == "q":
        return None
    name, _, options = MENU[int(choice) - 1]
    argv = [name]
    for flag, question, default in options:
        if isinstance(default, bool):
            if click.confirm(question, default=default):
                argv.append(flag)
        else:
            argv += [flag, click.prompt(question, default=default)]
    return argv


def _run(argv: list[str]) -> int:
    """Run one tool; its errors are shown, never the end of the menu."""
    try:
        cli.main(args=argv, prog_name="sentinel-ws", standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        return 130
    return 0
