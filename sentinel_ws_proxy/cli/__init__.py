"""The sentinel-ws command: a thin click layer over the library, one module per family."""

from sentinel_ws_proxy.cli import (  # noqa: F401  (importing them registers their commands)
    demo,
    diagnose,
    faults,
    menu,
    proxy,
    recordings,
    replay,
    web,
)
from sentinel_ws_proxy.cli.app import cli


def main() -> None:
    cli()


__all__ = ["cli", "main"]
