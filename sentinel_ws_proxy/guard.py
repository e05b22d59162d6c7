"""Who may use the /_sentinel/ endpoints: the HTTP guard of the admin API and the web app.

Loopback clients only (unless an admin token was set: then whoever presents it), a
Host naming this machine (against DNS rebinding), no other page's Origin, and
changes only with a JSON body or the CLI's header (which no page can send to
another origin without a CORS preflight, never granted).
"""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sentinel_ws_proxy.settings import is_loopback_host

PREFIX = "/_sentinel"
# Sent by `sentinel-ws fault`. A web page cannot send it (or a JSON body) to another
# origin without a CORS preflight, which the proxy never grants.
CLI_HEADER = "X-Sentinel-WS"
LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")


def allowed(request: web.Request, token: str | None) -> bool:
    """Loopback clients only, unless a token was set: then whoever presents it."""
    if token is not None:
        presented = request.headers.get("Authorization", "")
        if not presented.startswith("Bearer "):
            return False
        # As bytes: a header that is not ASCII is a mismatch, not an error.
        given = presented.removeprefix("Bearer ").strip().encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, token.encode("utf-8"))
    return is_loopback_host(request.remote or "")


def _local(host: str, port: int) -> bool:
    name, _, given = host.lower().rpartition(":")
    if given != str(port):
        return False
    return name in LOCAL_NAMES or is_loopback_host(name.strip("[]"))


def refusal(request: web.Request, token: str | None) -> tuple[int, str] | None:
    """Why this request may not use the admin API, as (status, reason); None if it may."""
    if not allowed(request, token):
        return (401, "a valid admin token") if token else (403, "a loopback client")
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    port = sockname[1] if sockname else None
    host = request.headers.get("Host")
    # DNS rebinding: a page at evil.example that resolves to 127.0.0.1 still sends its
    # own name; only names of this machine reach the API without a token.
    if token is None and host is not None and port is not None and not _local(host, port):
        return 403, f"a Host naming this proxy (got {host!r})"
    origin = request.headers.get("Origin")
    if origin is not None and origin.rstrip("/") != f"{request.scheme}://{host}":
        return 403, f"a request from the proxy's own pages (Origin {origin!r} is not)"
    if request.method not in ("GET", "HEAD", "OPTIONS") and not (
        request.content_type == "application/json" or CLI_HEADER in request.headers
    ):
        return 415, f"a JSON body or the {CLI_HEADER} header for changes (as the CLI sends)"
    return None


def guard(token: str | None) -> Middleware:
    """A middleware that refuses, under PREFIX/, every request `refusal` names a reason for."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PREFIX + "/"):
            refused = refusal(request, token)
            if refused is not None:
                status, needs = refused
                error = f"the sentinel-ws admin API needs {needs}"
                return web.json_response({"error": error}, status=status)
        return await handler(request)

    return middleware
