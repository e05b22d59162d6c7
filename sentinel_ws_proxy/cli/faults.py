"""sentinel-ws fault: control a running proxy's faults through its /_sentinel/ API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import click

from sentinel_ws_proxy.cli.app import cli, console, fail, print_json
from sentinel_ws_proxy.cli.options import json_option
from sentinel_ws_proxy.cli.render import new_table
from sentinel_ws_proxy.faults.actions import ACTIONS
from sentinel_ws_proxy.faults.spec import grammar, parse_spec
from sentinel_ws_proxy.settings import DEFAULT_LISTEN

proxy_option = click.option(
    "--proxy",
    "proxy_url",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT|URL",
    help="The running proxy: its --listen address, or its URL.",
)
token_option = click.option(
    "--token", envvar="SENTINEL_WS_ADMIN_TOKEN", help="The proxy's --admin-token, if it has one."
)


def call(proxy_url: str, token: str | None, method: str, path: str, body: str | None = None) -> Any:
    """One request to the admin API; a plain error for anything that goes wrong."""
    if "://" not in proxy_url:
        proxy_url = f"http://{proxy_url}"  # HOST:PORT, as the proxy's --listen takes it
    request = urllib.request.Request(
        proxy_url.rstrip("/") + "/_sentinel" + path,
        method=method,
        data=None if body is None else body.encode(),
        headers={"Content-Type": "text/plain", "X-Sentinel-WS": "cli"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        fail(f"{proxy_url}: {message}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        fail(f"cannot reach the proxy at {proxy_url} ({reason}); is sentinel-ws proxy running?")


FAULT_HELP = f"""Inject faults into a running proxy: prove the frontend's reconnection logic.

\b
Specs (the same as proxy --fault):
{grammar()}

\b
Example:
  sentinel-ws fault add reject status=503 count=3 path=/ws/mission-updates
  sentinel-ws fault close 3 code=1011
"""


@cli.group(help=FAULT_HELP)
def fault() -> None:
    pass


@fault.command("add")
@click.argument("spec", nargs=-1, required=True)
@proxy_option
@token_option
@json_option
def add(spec: tuple[str, ...], proxy_url: str, token: str | None, as_json: bool) -> None:
    """Add a fault to the running proxy (the specs are listed in `fault --help`).

    \b
    Examples:
      sentinel-ws fault add close code=1011 after=5s
      sentinel-ws fault add bandwidth rate=20KB/s dir=s2c path=/ws/mission-updates
    """
    text = " ".join(spec)
    parse_spec(text)  # a malformed spec fails here, with the same message as the proxy's
    added = call(proxy_url, token, "POST", "/faults", text)
    if as_json:
        print_json(added)
    else:
        click.echo(f"fault {added['id']} added: {added['spec']}")


@fault.command("list")
@proxy_option
@token_option
@json_option
def list_(proxy_url: str, token: str | None, as_json: bool) -> None:
    """List the faults, with how often each fired.

    Example: sentinel-ws fault list --proxy 127.0.0.1:8002
    """
    faults = call(proxy_url, token, "GET", "/faults")["faults"]
    if as_json:
        print_json(faults)
        return
    if not faults:
        click.echo("no faults")
        return
    table = new_table(show_edge=False, header_style="bold")
    for column in ("id", "spec", "fired", "active"):
        table.add_column(column)
    for f in faults:
        table.add_row(str(f["id"]), f["spec"], str(f["fired"]), "yes" if f["active"] else "no")
    console().print(table)


@fault.command("remove")
@click.argument("fault_id", type=int)
@proxy_option
@token_option
def remove(fault_id: int, proxy_url: str, token: str | None) -> None:
    """Remove one fault (its id is in `fault list`).

    Example: sentinel-ws fault remove 2
    """
    call(proxy_url, token, "DELETE", f"/faults/{fault_id}")
    click.echo(f"fault {fault_id} removed")


@fault.command("clear")
@proxy_option
@token_option
def clear(proxy_url: str, token: str | None) -> None:
    """Remove every fault.

    Example: sentinel-ws fault clear
    """
    removed = call(proxy_url, token, "POST", "/faults/reset", "")["removed"]
    click.echo(f"{removed} fault(s) removed")


def _act(action: str) -> click.Command:
    settings = ", ".join(f"{k}= ({s.help})" for k, s in ACTIONS[action].settings().items())

    @fault.command(
        action,
        help=f"On one live session, now: {ACTIONS[action].summary}."
        f"{f' Settings: {settings}.' if settings else ''}\n\n"
        f"Example: sentinel-ws fault {action} 12",
    )
    @click.argument("session_id", type=int)
    @click.argument("settings", nargs=-1)
    @proxy_option
    @token_option
    def command(
        session_id: int, settings: tuple[str, ...], proxy_url: str, token: str | None
    ) -> None:
        query = "&".join(urllib.request.quote(s, safe="=") for s in settings)
        path = f"/connections/{session_id}/{action}" + (f"?{query}" if query else "")
        done = call(proxy_url, token, "POST", path, "")
        click.echo(f"session {session_id}: {action} (fault {done['fault']})")

    return command


for _name, _action in ACTIONS.items():
    if _action.on_one_connection:
        _act(_name)
