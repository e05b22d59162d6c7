"""What a recording must not keep: credentials in headers and query strings."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_plus

REDACTED = "[redacted]"

DEFAULT_HEADERS = frozenset({"cookie", "set-cookie", "authorization", "proxy-authorization"})

# Query parameter names that carry credentials, matched case-insensitively on
# the decoded name: token, access_token, id_token, api_key, apikey, password...
SECRET_PARAM = re.compile(
    r"token|api[_-]?key|password|passwd|secret|signature|^(key|auth|sig|jwt|session|sessionid)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Redactor:
    enabled: bool = True
    extra_headers: frozenset[str] = frozenset()

    @classmethod
    def build(cls, enabled: bool, extra_headers: Iterable[str] = ()) -> Redactor:
        return cls(enabled, frozenset(h.strip().lower() for h in extra_headers if h.strip()))

    def headers(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        if not self.enabled:
            return list(headers)
        names = DEFAULT_HEADERS | self.extra_headers
        return [(k, REDACTED if k.lower() in names else v) for k, v in headers]

    def query(self, query: str) -> str:
        """The raw query string with secret parameters' values replaced."""
        if not self.enabled or not query:
            return query
        parts = []
        for part in query.split("&"):
            name, eq, _value = part.partition("=")
            if eq and SECRET_PARAM.search(unquote_plus(name)):
                part = f"{name}={REDACTED}"
            parts.append(part)
        return "&".join(parts)

    def url(self, url: str) -> str:
        base, q, query = url.partition("?")
        return f"{base}?{self.query(query)}" if q else url


def client_fingerprint(salt: bytes, cookie: str | None) -> str | None:
    """A keyed hash of the Cookie header: compare clients without storing the cookie."""
    if not cookie:
        return None
    return hmac.new(salt, cookie.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
