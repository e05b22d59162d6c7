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
from sentinel_ws_proxy.settings import parse_listen, parse_size


class Parsed(click.ParamType):
    """A value one of the library's parsers reads; its UserError is click's usage error.

    A value already parsed (a default, or a value given from Python) passes as it is.
    """

    parsed: type | tuple[type, ...]
    # Whether the parser's message starts with the option and value ("--listen 'x': ..."),
    # which click says already ("Invalid value for '--listen'").
    prefixed = True

    def parse(self, text: str, option: str) -> Any:
        raise NotImplementedError

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, self.parsed):
            return value
        try:
            return self.parse(str(value), param.opts[0] if param else self.name.lower())
        except UserError as exc:
            said = str(exc)
            self.fail(said.split(": ", 1)[-1] if self.prefixed else said, param, ctx)


class HostPort(Parsed):
    """HOST:PORT, [IPV6]:PORT, a bare PORT (loopback), or a URL (http://host:port/...)."""

    name = "HOST:PORT"
    parsed = tuple

    def parse(self, text: str, option: str) -> tuple[str, int]:
        return parse_listen(urlsplit(text).netloc if "://" in text else text)


class Size(Parsed):
    """Bytes, with K, M or G (powers of 1024): 65536, 64K, 16M."""

    name = "SIZE"
    parsed = int

    def parse(self, text: str, option: str) -> int:
        return parse_size(text, option)


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


class FaultSpecParam(Parsed):
    """A fault, as `sentinel-ws fault --help` lists them: 'close code=1011 after=10s'."""

    name = "SPEC"
    parsed = FaultSpec
    prefixed = False

    def parse(self, text: str, option: str) -> FaultSpec:
        return parse_spec(text)
