"""Parameter types every command shares: addresses, sizes, durations, fault specs.

A bad value is a usage error as click prints it, worded the same wherever the option
appears; a command gets the parsed value, never the string.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import click

from sentinel_ws_proxy.errors import UserError
from sentinel_ws_proxy.faults.actions import duration
from sentinel_ws_proxy.faults.spec import FaultSpec, parse_spec
from sentinel_ws_proxy.proxy.config import parse_listen, parse_size


def _said(exc: Exception) -> str:
    # The parsers name the option themselves ("--listen 'x': ..."); click names it too.
    return str(exc).split(": ", 1)[-1]


class HostPort(click.ParamType):
    """HOST:PORT, [IPV6]:PORT, a bare PORT (loopback), or a URL (http://host:port/...)."""

    name = "HOST:PORT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        text = str(value)
        if "://" in text:
            text = urlsplit(text).netloc
        try:
            return parse_listen(text)
        except UserError as exc:
            self.fail(_said(exc), param, ctx)


class Size(click.ParamType):
    """Bytes, with K, M or G (powers of 1024): 65536, 64K, 16M."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value), param.opts[0] if param else "size")
        except UserError as exc:
            self.fail(_said(exc), param, ctx)


class Duration(click.ParamType):
    """Seconds: 5, 2.5, 500ms, 10s, 2m, 1h; at least `minimum`."""

    name = "SECONDS"

    def __init__(self, minimum: float = 0.0):
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int | float):
            seconds = float(value)
        else:
            try:
                seconds = duration(str(value))
            except ValueError as exc:
                self.fail(f"{value!r} {exc}", param, ctx)
        if seconds < self.minimum:
            self.fail(f"{value!r} is less than {self.minimum:g} s", param, ctx)
        return seconds


class FaultSpecParam(click.ParamType):
    """A fault, as `sentinel-ws fault --help` lists them: 'close code=1011 after=10s'."""

    name = "SPEC"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, FaultSpec):
            return value
        try:
            return parse_spec(str(value))
        except UserError as exc:
            self.fail(str(exc), param, ctx)
