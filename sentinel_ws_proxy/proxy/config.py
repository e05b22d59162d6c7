"""What a proxy run is told: where to listen, where to forward, what to record."""

from __future__ import annotations

import ipaddress
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


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
