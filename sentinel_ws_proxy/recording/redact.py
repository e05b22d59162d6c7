"""What a recording (or a log line) must not keep: credentials in headers, query strings,
path parameters and subprotocol offers."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_plus

REDACTED = "[redacted]"

DEFAULT_HEADERS = frozenset(
    {
        "cookie",
        "set-cookie",
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "x-auth-token",
        "x-csrf-token",
        "x-xsrf-token",
        "x-amz-security-token",
    }
)

# Query and path parameter names that carry credentials, matched case-insensitively
# on the decoded name: anything with token, secret, password or signature in it, and
# session ids and OAuth/AWS names as real apps use them.
SECRET_PARAM = re.compile(
    r"token|api[_-]?key|passw|secret|signature|credential|private[_-]?key|"
    r"^x-amz-|^(key|auth|authorization|bearer|sig|jwt|otp|pwd|code|state|session|sessionid|"
    r"session_id|sid|phpsessid|jsessionid|aspsessionid\w*|connect\.sid)$",
    re.IGNORECASE,
)
# A subprotocol name as protocols are named (graphql-ws, v12.stomp, mqtt), not a secret
# smuggled in Sec-WebSocket-Protocol (a bearer token, a JWT, a long random string).
PROTOCOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,31}$")


@dataclass(frozen=True)
class Redactor:
    enabled: bool = True
    extra_headers: frozenset[str] = frozenset()
    extra_params: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls, enabled: bool, extra_headers: Iterable[str] = (), extra_params: Iterable[str] = ()
    ) -> Redactor:
        return cls(
            enabled,
            frozenset(h.strip().lower() for h in extra_headers if h.strip()),
            frozenset(p.strip().lower() for p in extra_params if p.strip()),
        )

    def headers(
        self, headers: Iterable[tuple[str, str]], *, protocol: str | None = None
    ) -> list[tuple[str, str]]:
        """The headers with secrets replaced; ``protocol`` is the subprotocol the
        server chose, which stays readable in Sec-WebSocket-Protocol."""
        if not self.enabled:
            return list(headers)
        names = DEFAULT_HEADERS | self.extra_headers
        out = []
        for k, v in headers:
            key = k.lower()
            if key in names:
                v = REDACTED
            elif key == "sec-websocket-protocol":
                v = self.protocols(v, protocol)
            out.append((k, v))
        return out

    def protocols(self, offered: str, chosen: str | None) -> str:
        """Sec-WebSocket-Protocol with any credential-looking offer replaced."""
        kept = []
        for name in (p.strip() for p in offered.split(",")):
            ok = name == chosen or (PROTOCOL_NAME.match(name) and not _opaque(name))
            kept.append(name if ok else REDACTED)
        return ", ".join(kept)

    def _secret(self, name: str) -> bool:
        decoded = unquote_plus(name)
        return bool(SECRET_PARAM.search(decoded)) or decoded.lower() in self.extra_params

    def query(self, query: str) -> str:
        """The raw query string with secret parameters' values replaced (& and ; both)."""
        if not self.enabled or not query:
            return query
        return re.sub(r"([^&;=]+)=([^&;]*)", self._param, query)

    def _param(self, found: re.Match[str]) -> str:
        name = found.group(1)
        return f"{name}={REDACTED}" if self._secret(name) else found.group(0)

    def path(self, path: str) -> str:
        """A path with secret path parameters (``;jsessionid=...``) replaced."""
        if not self.enabled or ";" not in path:
            return path
        head, _, params = path.partition(";")
        return f"{head};{self.query(params)}"

    def url(self, url: str) -> str:
        base, q, query = url.partition("?")
        scheme, sep, rest = base.partition("://")
        host, slash, path = rest.partition("/")
        base = f"{scheme}{sep}{host}{slash}{self.path(path)}" if sep else self.path(base)
        return f"{base}?{self.query(query)}" if q else base


def _opaque(name: str) -> bool:
    """A long run of letters and digits with no separator looks like a token, not a name."""
    return len(name) > 24 or bool(re.search(r"[A-Za-z0-9]{20,}", name))


def client_fingerprint(salt: bytes, cookie: str | None) -> str | None:
    """A keyed hash of the Cookie header: compare clients without storing the cookie."""
    if not cookie:
        return None
    return hmac.new(salt, cookie.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[
        :32
    ]
