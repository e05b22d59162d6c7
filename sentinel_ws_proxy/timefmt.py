"""Times as users type them (ISO-8601, or 10m / 2h ago) and as tables show them."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$", re.IGNORECASE)
_UNIT = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, *, now: float | None = None) -> float:
    """Epoch seconds from '2026-11-25T10:00', '2026-11-25 10:00:00+01:00' or '10m' (ago).

    A time without a zone is local time. Raises ValueError with a plain message.
    """
    match = _RELATIVE.match(text)
    if match:
        amount, unit = match.groups()
        if unit is None:
            raise ValueError(f"{text!r}: add a unit (30s, 10m, 2h, 1d) or give an ISO-8601 time")
        return (time.time() if now is None else now) - float(amount) * _UNIT[unit.lower()]
    iso = text.strip()
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO-8601 (2026-11-25T10:00) or an age (10m, 2h, 1d)"
        ) from None


def iso(ts: float, *, utc: bool = False) -> str:
    """ISO 8601 with microseconds and the offset: local time, or UTC."""
    if utc:
        return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="microseconds")
    return datetime.fromtimestamp(ts, _local_zone(ts)).isoformat(timespec="microseconds")


_ZONES: dict[int, timezone] = {}


def _local_zone(ts: float) -> timezone:
    """The local offset at ts (DST included): astimezone() per call costs twice as much,
    and `failures --json` dates 200,000 times."""
    offset = time.localtime(ts).tm_gmtoff
    zone = _ZONES.get(offset)
    if zone is None:
        zone = _ZONES[offset] = timezone(timedelta(seconds=offset))
    return zone


def clock(ts: float | None) -> str:
    """Local date and time with milliseconds."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)
