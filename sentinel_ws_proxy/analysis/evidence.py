"""What in the same recording tells one failure's cause from another.

A refused handshake next to the accepted ones says more than any checklist:
the Origin the validator refused beside the Origins it accepted, the session
cookie the refused request lacked, the path that answered 500 beside the one
that answered 101 twenty times.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from urllib.parse import urlsplit

from sentinel_ws_proxy.analysis.classify import Verdict, disconnect_at
from sentinel_ws_proxy.analysis.facts import SessionFacts
from sentinel_ws_proxy.recording.schema import SessionRow
from sentinel_ws_proxy.timefmt import clock


class Context:
    """What the accepted sessions of a recording looked like."""

    def __init__(self, sessions: Sequence[SessionRow]):
        accepted = [s for s in sessions if s.accepted]
        self.accepted = len(accepted)
        self.origins = Counter(s.origin for s in accepted)
        self.paths = Counter(s.path or "" for s in accepted)
        self.with_cookie = sum(s.cookie_hash is not None for s in accepted)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _list(counts: Counter[str | None], limit: int = 2) -> str:
    shown = [str(k) for k, _ in counts.most_common(limit)]
    more = len(counts) - len(shown)
    return " and ".join(shown) + (f" (and {more} more)" if more > 0 else "")


def host_rewritten(s: SessionRow) -> str | None:
    """A refusal by a server that compares Origin with Host, when the proxy rewrote Host."""
    if not s.origin or not s.upstream_host or s.handshake_status not in (403, 400):
        return None
    upstream = urlsplit(s.upstream_url or "").netloc.lower()
    if s.upstream_host.lower() != upstream:
        return None  # the browser's own Host went upstream: nothing was rewritten
    origin_host = urlsplit(s.origin).netloc.lower()
    if not origin_host or origin_host == upstream:
        return None
    return (
        f"the page's Origin {s.origin} names {origin_host} but the upstream got Host "
        f"{s.upstream_host}: servers that compare Origin with Host (Django's CSRF check, "
        "Jupyter) refuse that; `--host-header keep` passes the browser's Host"
    )


def refused(s: SessionRow, ctx: Context) -> list[str]:
    """Why a 401/403 was likely: Origin against Host, Origin, credentials or path, from the
    accepted sessions."""
    found: list[str] = []
    host = host_rewritten(s)
    if host is not None:
        found.append(host)
    if not ctx.accepted:
        return found
    origins = Counter({o: n for o, n in ctx.origins.items() if o})
    if s.origin is None and origins:
        found.append(
            f"the refused request sent no Origin; the {_plural(ctx.accepted, 'accepted session')}"
            f" sent {_list(origins)} (an Origin validator refuses a missing Origin)"
        )
    elif s.origin is not None and origins and s.origin not in origins:
        found.append(
            f"Origin {s.origin} was refused; the {_plural(ctx.accepted, 'accepted session')} "
            f"came from {_list(origins)}"
        )
    if s.cookie_hash is None and ctx.with_cookie and ctx.with_cookie >= ctx.accepted / 2:
        found.append(
            f"no Cookie on the refused request; {ctx.with_cookie} of the accepted sessions "
            "had one (a session cookie: not logged in?)"
        )
    if (s.path or "") not in ctx.paths and not found:
        found.append(
            f"no session was ever accepted on {s.path}; the accepted ones used "
            f"{_list(Counter(ctx.paths))} (a route for logged-in users only, or a wrong path?)"
        )
    return found


def near_path(s: SessionRow, ctx: Context) -> list[str]:
    """A 404/5xx handshake on a path that differs from an accepted one by a slash or case."""
    path = s.path or ""
    for other, n in ctx.paths.most_common():
        if other == path:
            return []
        how = _difference(path, other)
        if how:
            return [
                f"path {path} answered {s.handshake_status} while {other} was accepted "
                f"{_plural(n, 'time')}: {how}?"
            ]
    return []


def _difference(path: str, other: str) -> str | None:
    if path.rstrip("/") == other.rstrip("/"):
        return "a trailing slash"
    if path.lower() == other.lower():
        return "upper and lower case"
    if other.endswith(path) or path.endswith(other):
        return "a missing or extra prefix"
    return None


def for_session(
    s: SessionRow, verdict: Verdict, facts: SessionFacts | None, ctx: Context
) -> tuple[str, ...]:
    found: list[str] = []
    category = verdict.category
    if category == "rejected" and not s.accepted:
        found = refused(s, ctx)
    elif category in ("not_found", "server_error", "other") and not s.accepted:
        found = near_path(s, ctx)
    elif category == "client_unresponsive" and facts is not None and facts.last_server_ping:
        silent = disconnect_at(s, facts) - facts.last_server_ping
        last = (
            f"the client's last frame came at {clock(facts.last_client_frame)}"
            if facts.last_client_frame
            else "the client never sent a frame"
        )
        found = [
            f"the server's ping at {clock(facts.last_server_ping)} went unanswered for "
            f"{silent:.1f} s; {last}"
        ]
    elif verdict.judged_by and facts is not None and facts.app_ending is not None:
        found = [f"the {verdict.judged_by} protocol said: {facts.app_ending.reason}"]
    return tuple(found)


def attach(
    sessions: Sequence[SessionRow],
    verdicts: Sequence[Verdict],
    facts: Mapping[int, SessionFacts],
) -> list[Verdict]:
    """The verdicts, each with the evidence the recording holds for it."""
    ctx = Context(sessions)
    out = []
    for s, v in zip(sessions, verdicts, strict=True):
        found = for_session(s, v, facts.get(v.session_id), ctx) if v.failure else ()
        if found:
            # A protocol's own words are the explanation already: no need to say them twice.
            said = v.explanation if v.judged_by else f"{v.explanation}: {found[0]}"
            v = replace(v, explanation=said, evidence=tuple(found))
        out.append(v)
    return out
