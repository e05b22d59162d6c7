"""The sentinel-ws command: a thin click layer over the library, one module per family.

Each command's module is imported when that command runs (see COMMAND_MODULES).
"""

from sentinel_ws_proxy.cli.app import cli


def main() -> None:
    cli()


__all__ = ["cli", "main"]
