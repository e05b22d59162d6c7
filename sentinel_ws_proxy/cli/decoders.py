"""sentinel-ws decoders."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from sentinel_ws_proxy.cli.app import cli, console, print_rows
from sentinel_ws_proxy.cli.options import output_options


def listing(decoder: ModuleType) -> dict[str, Any]:
    """What a decoder module declares: its name, subprotocols, optional parts, summary."""
    doc = (decoder.__doc__ or "").strip().split("\n\n", 1)[0]
    return {
        "name": decoder.NAME,
        "module": decoder.__name__,
        "subprotocols": list(getattr(decoder, "SUBPROTOCOLS", ())),
        "redact": callable(getattr(decoder, "redact", None)),
        "close_code": callable(getattr(decoder, "close_code", None)),
        "about": " ".join(doc.replace("``", "").split()),
    }


@cli.command()
@output_options
def decoders(fmt: str) -> None:
    """List the application-protocol decoders, in the order they are tried.

    A session's decoder is the one whose subprotocols hold the one it
    negotiated, else the first whose sniff() recognises its path, query or
    first messages. redact: it removes credentials from the first client
    messages before they are recorded; close codes: it explains the
    protocol's own close codes. Your own decoders (--decoder MODULE before
    the command, or SENTINEL_WS_DECODERS) come first.

    \b
    Examples:
      sentinel-ws decoders
      sentinel-ws --decoder mypkg.mydecoder decoders --json
    """
    from sentinel_ws_proxy.cli.render import new_table
    from sentinel_ws_proxy.decoders import DECODERS

    rows = [listing(d) for d in DECODERS]
    if fmt != "table":
        print_rows(fmt, rows)
        return
    table = new_table(show_edge=False, header_style="bold")
    table.add_column("decoder", no_wrap=True)
    table.add_column("subprotocols", max_width=32)
    table.add_column("redact")
    table.add_column("close codes")
    table.add_column("about", ratio=1)
    for row in rows:
        table.add_row(
            row["name"],
            ", ".join(row["subprotocols"]) or "-",
            "yes" if row["redact"] else "",
            "yes" if row["close_code"] else "",
            row["about"],
        )
    console().print(table)
