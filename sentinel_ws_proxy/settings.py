"""Defaults and the parsers of what a user types: addresses, URLs, sizes.

Shared by the proxy, the replay and demo servers, the diagnostics and the command
line; it imports nothing of theirs, so any of them may use it.
"""

from __future__ import annotations

import ipaddress

from yarl import URL

from sentinel_ws_proxy.errors import UserError

DEFAULT_LISTEN = "127.0.0.1:8002"
DEFAULT_UPSTREAM = "http://localhost:8001"
DEFAULT_DB = "recordings/sentinel.db"
DEMO_DB = "recordings/demo.db"
DEFAULT_MAX_PAYLOAD = 64 * 1024
DEFAULT_REPLAY_LISTEN = "127.0.0.1:8003"
DEFAULT_WEB_LISTEN = "127.0.0.1:8020"


class ConfigError(UserError, ValueError):
    """Bad input from the user; the message is shown as it is."""


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
