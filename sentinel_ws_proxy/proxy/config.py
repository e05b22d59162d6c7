"""What a proxy run is told: where to listen, where to forward, what to record."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from yarl import URL

from sentinel_ws_proxy.faults.spec import FaultSpec
from sentinel_ws_proxy.recording.redact import Redactor
from sentinel_ws_proxy.settings import (
    DEFAULT_DB,
    DEFAULT_LISTEN,
    DEFAULT_MAX_PAYLOAD,
    DEFAULT_UPSTREAM,
    DEMO_DB,
    ConfigError,
    format_hostport,
    is_loopback_host,
    parse_listen,
    parse_size,
    parse_upstream,
)

# --host-header: which Host the upstream gets (see ProxyConfig.keep_host).
HOST_HEADER_MODES = ("auto", "keep", "upstream")

# The defaults and parsers live in settings.py; these names stay importable from here
# for code written against this module (new code imports them from settings).
__all__ = [
    "DEFAULT_DB", "DEFAULT_LISTEN", "DEFAULT_MAX_PAYLOAD", "DEFAULT_UPSTREAM", "DEMO_DB",
    "HOST_HEADER_MODES", "ConfigError", "ProxyConfig", "format_hostport", "host_header_rule",
    "is_loopback_host", "local_upstream", "parse_listen", "parse_size", "parse_upstream",
]  # fmt: skip


@dataclass(frozen=True)
class ProxyConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8002
    upstream: URL = field(default_factory=lambda: URL(DEFAULT_UPSTREAM))
    db_path: Path | None = Path(DEFAULT_DB)
    # 0: no limit. The proxy holds no whole message, so it needs none; a limit
    # emulates a server's (the message's size as the application gets it, inflated).
    max_message: int = 0
    max_payload: int = DEFAULT_MAX_PAYLOAD
    redact: bool = True
    redact_headers: tuple[str, ...] = ()
    redact_params: tuple[str, ...] = ()
    # How long one side may take to answer a close frame before the proxy
    # gives up on a clean close and drops both connections.
    close_timeout: float = 5.0
    connect_timeout: float = 10.0
    # Plain HTTP: how long the upstream may take to start answering before the
    # browser gets a 504 (bodies may then stream for as long as they like).
    upstream_timeout: float = 30.0
    # Client connections held at once (HTTP and WebSocket); past it: 503.
    max_connections: int = 10_000
    # An idle kept-alive HTTP connection is closed after this long (as nginx does).
    keepalive_timeout: float = 75.0
    # A client that has not sent a whole request head by then is let go (slowloris).
    head_timeout: float = 10.0
    # Payload bytes the recorder may fall behind before relays pause (see writer.py).
    backlog_high: int = 32 * 1024 * 1024
    backlog_low: int = 8 * 1024 * 1024
    faults: tuple[FaultSpec, ...] = ()
    # With a token, the /_sentinel/ API answers anyone who presents it; without
    # one, only loopback clients.
    admin_token: str | None = None
    # An https/wss upstream: a CA file to trust instead of the system's, or
    # no verification at all.
    upstream_ca: Path | None = None
    insecure_upstream: bool = False
    # Serve the proxy itself over TLS (https/wss), for frontends served over https.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # The Host the upstream gets: the client's ("keep"), the upstream's own ("upstream"),
    # or "auto": the client's for an upstream on this machine, else the upstream's.
    host_header: str = "auto"

    def __post_init__(self) -> None:
        if self.host_header not in HOST_HEADER_MODES:
            raise ConfigError(
                f"--host-header {self.host_header!r}: expected one of "
                + ", ".join(HOST_HEADER_MODES)
            )

    def listen_tls(self) -> ssl.SSLContext | None:
        if self.tls_cert is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"--tls-cert {self.tls_cert}: {exc}") from None
        return context

    def redactor(self) -> Redactor:
        return Redactor.build(self.redact, self.redact_headers, self.redact_params)

    def upstream_tls(self) -> ssl.SSLContext | bool:
        if self.insecure_upstream:
            return False
        if self.upstream_ca is not None:
            try:
                return ssl.create_default_context(cafile=str(self.upstream_ca))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"--upstream-ca {self.upstream_ca}: {exc}") from None
        return True

    @property
    def listen(self) -> str:
        return format_hostport(self.listen_host, self.listen_port)

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.listen_host)

    @property
    def keep_host(self) -> bool:
        """Whether the upstream gets the client's Host rather than its own host:port.

        As Node's http-proxy (behind Vite's and webpack's dev-server proxies) does by
        default: a server on this machine gets the Host the browser sent, so servers that
        compare Origin with Host (Django's CSRF check, Jupyter) accept the proxied page;
        a named remote upstream gets its own name, which its virtual hosts expect. TLS
        SNI is the upstream's hostname either way. X-Forwarded-Host always says the
        client's.
        """
        return host_header_rule(self.host_header, self.upstream.host or "")[0]

    @property
    def host_header_choice(self) -> str:
        """The rule in words, for the banner: 'kept (loopback upstream)'."""
        keep, why = host_header_rule(self.host_header, self.upstream.host or "")
        said = "kept" if keep else f"rewritten to {self.upstream.raw_authority}"
        return f"{said} ({why})"


def local_upstream(host: str) -> str | None:
    """Why an upstream host is this machine ("loopback upstream"), or None when it is not."""
    name = host.lower().rstrip(".")
    if is_loopback_host(name):
        return "loopback upstream"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return "upstream on this machine" if name == socket.gethostname().lower() else None
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    if mapped is not None and mapped.is_loopback:
        return "loopback upstream"
    return "upstream on this machine" if address.is_unspecified else None  # 0.0.0.0


def host_header_rule(mode: str, upstream_host: str) -> tuple[bool, str]:
    """--host-header MODE for an upstream host: (keep the client's Host?, why)."""
    if mode == "keep":
        return True, "--host-header keep"
    if mode == "upstream":
        return False, "--host-header upstream"
    local = local_upstream(upstream_host)
    return (True, local) if local is not None else (False, "remote upstream")
