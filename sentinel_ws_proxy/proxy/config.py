"""What a proxy run is told: where to listen, where to forward, what to record."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from yarl import URL

from sentinel_ws_proxy.errors import UserError
from sentinel_ws_proxy.faults.spec import FaultSpec
from sentinel_ws_proxy.recording.redact import Redactor

DEFAULT_LISTEN = "127.0.0.1:8002"
DEFAULT_UPSTREAM = "http://localhost:8001"
DEFAULT_DB = "recordings/sentinel.db"
DEMO_DB = "recordings/demo.db"
DEFAULT_MAX_PAYLOAD = 64 * 1024
# --host-header: which Host the upstream gets (see ProxyConfig.keep_host).
HOST_HEADER_MODES = ("auto", "keep", "upstream")


class ConfigError(UserError, ValueError):
    """Bad input from the user; the message is shown as it is."""


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
    # Serve the web app over the recording under /_sentinel/ui/ (proxy --web).
    web: bool = False
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


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def parse_listen(value: str) -> tuple[str, int]:
    """Parse HOST:PORT, [IPV6]:PORT or a bare PORT (loopback then)."""
    text = value.strip()
    if text.isdigit():
        return "127.0.0.1", _port(text, value)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or not host:
            raise ConfigError(f"--listen {value!r}: expected [IPV6]:PORT, e.g. [::1]:8002")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host or ":" in host:
            raise ConfigError(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8002")
    return host, _port(port, value)


def _port(text: str, value: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ConfigError(f"--listen {value!r}: the port must be a number from 0 to 65535")
    return int(text)


def parse_upstream(value: str, option: str = "--upstream") -> URL:
    """The upstream's origin: scheme http/https (ws/wss accepted), host, optional port."""
    try:
        url = URL(value.strip())
    except ValueError as exc:
        raise ConfigError(f"{option} {value!r}: not a URL ({exc})") from None
    scheme = {"ws": "http", "wss": "https"}.get(url.scheme, url.scheme)
    if scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"{option} {value!r}: expected http://HOST[:PORT] or https://HOST[:PORT]")
    if url.path not in ("", "/") or url.query_string or url.fragment:
        raise ConfigError(
            f"{option} {value!r}: give only the origin (scheme, host, port); "
            "request paths are forwarded as the client sent them"
        )
    try:
        port = url.port
    except ValueError:
        raise ConfigError(f"{option} {value!r}: invalid port") from None
    return URL.build(scheme=scheme, host=url.host, port=port)


def parse_size(value: str, option: str) -> int:
    """Bytes, with an optional K/M/G (or KiB/MiB/GiB) suffix, powers of 1024."""
    text = value.strip().lower().removesuffix("ib").removesuffix("b")
    scale = 1
    if text and text[-1] in "kmg":
        scale = 1024 ** ("kmg".index(text[-1]) + 1)
        text = text[:-1]
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(
            f"{option} {value!r}: expected a size such as 65536, 64K or 16M"
        ) from None
    if number < 0:
        raise ConfigError(f"{option} {value!r}: must not be negative")
    return int(number * scale)
