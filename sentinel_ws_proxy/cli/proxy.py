"""sentinel-ws proxy."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sentinel_ws_proxy import __version__
from sentinel_ws_proxy.cli.app import cli
from sentinel_ws_proxy.cli.options import (
    db_option,
    file_option,
    listen_option,
    max_payload_option,
    no_redact_option,
    seconds_option,
    with_options,
)
from sentinel_ws_proxy.cli.params import FaultSpecParam, Size
from sentinel_ws_proxy.faults.spec import FaultSpec
from sentinel_ws_proxy.proxy.config import HOST_HEADER_MODES, ProxyConfig
from sentinel_ws_proxy.settings import (
    DEFAULT_LISTEN,
    DEFAULT_UPSTREAM,
    ConfigError,
    parse_upstream,
)

# Below this many open files (about 2,000 sessions) the proxy says how many it can hold.
LOW_OPEN_FILES = 4096

# An https upstream, and the proxy itself over https.
tls_options = [
    file_option(
        "--upstream-ca",
        help="For an https upstream: trust this CA or certificate file (a dev server's own).",
    ),
    click.option(
        "--insecure-upstream",
        is_flag=True,
        help="For an https upstream: do not verify its certificate at all.",
    ),
    file_option(
        "--tls-cert",
        help="Serve https/wss with this certificate (for a frontend served over https).",
    ),
    file_option(
        "--tls-key", help="The private key of --tls-cert, when it is not in the same file."
    ),
]


@cli.command()
@listen_option(
    DEFAULT_LISTEN,
    "Where to accept browsers. Loopback unless you say otherwise; port 0 picks a free one.",
)
@click.option(
    "--upstream",
    default=DEFAULT_UPSTREAM,
    show_default=True,
    metavar="URL",
    help="The real server (http:// or https:// origin). The proxy connects to nothing else.",
)
@db_option("SQLite recording to append to (created with its folder if missing).")
@click.option("--no-record", is_flag=True, help="Forward only; write no recording.")
@click.option(
    "--max-message",
    default="0",
    type=Size(),
    help="Refuse messages over SIZE (e.g. 16M) as a server would: the proxy closes the sender "
    "with 1009 and the other side with 1001. Off by default: every message passes.",
)
@max_payload_option
@no_redact_option
@click.option(
    "--redact-header",
    multiple=True,
    metavar="NAME",
    help="Also redact this header's value in recordings (repeatable).",
)
@click.option(
    "--redact-query",
    multiple=True,
    metavar="NAME",
    help="Also redact this query (or ;path) parameter's value in recordings (repeatable).",
)
@seconds_option(
    "--close-timeout",
    5.0,
    0.1,
    "Seconds a side may take to answer a close frame before both are dropped.",
)
@seconds_option(
    "--upstream-timeout",
    30.0,
    0.1,
    "Plain HTTP: how long the upstream may take to start answering before a 504.",
)
@click.option(
    "--max-connections",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Client connections held at once; past it, new ones get 503.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    type=FaultSpecParam(),
    help="Inject a fault (repeatable), e.g. 'close code=1011 after=10s'. See README.",
)
@click.option(
    "--admin-token",
    envvar="SENTINEL_WS_ADMIN_TOKEN",
    help="Require this token for /_sentinel/ (then reachable from other hosts too).",
)
@click.option(
    "--host-header",
    type=click.Choice(HOST_HEADER_MODES),
    default="auto",
    show_default=True,
    help="The Host the upstream gets: the client's (keep), the upstream's host:port "
    "(upstream), or auto: the client's for an upstream on this machine (localhost, "
    "127.x, ::1, this host's name), the upstream's for a remote one (as Vite's proxy does).",
)
@with_options(tls_options)
@click.option(
    "--web",
    is_flag=True,
    help="Serve the web app over the recording, live, at /_sentinel/ui/ on the proxy's port.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print no line per session.")
def proxy(
    listen: tuple[str, int],
    upstream: str,
    db: Path,
    no_record: bool,
    max_message: int,
    max_payload: int,
    no_redact: bool,
    redact_header: tuple[str, ...],
    redact_query: tuple[str, ...],
    close_timeout: float,
    upstream_timeout: float,
    max_connections: int,
    faults: tuple[FaultSpec, ...],
    admin_token: str | None,
    host_header: str,
    upstream_ca: Path | None,
    insecure_upstream: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    web: bool,
    quiet: bool,
) -> None:
    """Relay HTTP and WebSocket traffic to UPSTREAM and record every session.

    One port serves everything: WebSocket upgrades on any path are relayed to
    the same path upstream, other requests are passed through, so a frontend
    that builds its WebSocket URL from the page's host works unchanged. The
    proxy's own status lives under /_sentinel/. Stop with Ctrl-C (or SIGTERM):
    open sessions are closed and every recorded row is flushed.

    \b
    Example:
      sentinel-ws proxy --upstream http://localhost:8001
      # then open http://127.0.0.1:8002 instead of http://localhost:8001
    """
    from sentinel_ws_proxy.proxy.log import SessionLog
    from sentinel_ws_proxy.proxy.server import Mount, ProxyServer, serve_until_signalled
    from sentinel_ws_proxy.serving import run

    host, port = listen
    config = ProxyConfig(
        listen_host=host,
        listen_port=port,
        upstream=parse_upstream(upstream),
        db_path=None if no_record else db,
        max_message=max_message,
        max_payload=max_payload,
        redact=not no_redact,
        redact_headers=redact_header,
        redact_params=redact_query,
        close_timeout=close_timeout,
        upstream_timeout=upstream_timeout,
        max_connections=max_connections,
        faults=faults,
        admin_token=admin_token,
        upstream_ca=upstream_ca,
        insecure_upstream=insecure_upstream,
        tls_cert=tls_cert,
        tls_key=tls_key,
        host_header=host_header,
    )
    if web and no_record:
        raise ConfigError("--web shows the recording: it cannot go with --no-record")
    if tls_key is not None and tls_cert is None:
        raise ConfigError("--tls-key goes with --tls-cert")
    if admin_token is not None and not admin_token.strip():
        raise ConfigError(
            "--admin-token must not be empty (an empty token would open the admin API "
            "to anyone); leave it out to allow loopback clients only"
        )
    # Bad certificate files fail here, before anything starts.
    config.upstream_tls()
    config.listen_tls()

    def announce(server: ProxyServer) -> None:
        click.echo(f"sentinel-ws proxy {__version__}")
        click.echo(f"  listening on  {server.url}")
        click.echo(f"  upstream      {config.upstream}")
        click.echo(f"  host header   {config.host_header_choice}")
        click.echo(f"  recording to  {config.db_path or '(not recording)'}")
        for fault in server.proxy.faults.listing() if server.proxy else ():
            click.echo(f"  fault {fault['id']:<7} {fault['spec']}")
        if config.insecure_upstream and config.upstream.scheme == "https":
            click.echo("  warning: the upstream's TLS certificate is not verified", err=True)
        files = server.open_files[0] if server.open_files else None
        if files is not None and files < LOW_OPEN_FILES:
            click.echo(
                f"  warning: this process may open {files:,} files, enough for about "
                f"{files // 2 - 50:,} WebSocket sessions at once (--max-connections "
                f"{config.max_connections:,}); raise the hard limit (ulimit -Hn) for more",
                err=True,
            )
        if not config.is_loopback:
            click.echo(
                f"  warning: listening on {config.listen_host}, reachable from other machines",
                err=True,
            )
        if web:
            click.echo(f"  web app       {server.url}/_sentinel/ui/")
        click.echo(f"Point your frontend at {server.url} (Ctrl-C to stop)")

    def say(line: str) -> None:
        click.echo(f"sentinel-ws: {line}", err=True)

    sinks = [] if quiet else [SessionLog(lambda line: click.echo(line), config.redactor())]
    # The proxy's optional fronts are composed here, never by the proxy itself.
    mounts: list[Mount] = []
    if web:
        from sentinel_ws_proxy.web.app import proxy_mount

        mounts.append(proxy_mount(db))
    try:
        server = run(
            serve_until_signalled(config, sinks=sinks, mounts=mounts, on_ready=announce, say=say)
        )
    except KeyboardInterrupt:
        return
    if server.recorder is not None:
        stats = server.recorder.stats
        click.echo(f"Stopped. Recorded {stats.rows_written:,} rows to {config.db_path}")
        if stats.repaired:
            click.echo(f"  {stats.repaired:,} rows held undecodable text, stored as bytes")
        if stats.redacted_in_messages:
            click.echo(
                f"  {stats.redacted_in_messages:,} credentials inside messages redacted "
                "(--no-redact keeps them)"
            )
        if stats.dropped:
            reasons = "; ".join(f"{n:,} because {why}" for why, n in stats.lost.items())
            click.echo(f"  LOST {stats.dropped:,} events: {reasons}", err=True)
            sys.exit(1)
