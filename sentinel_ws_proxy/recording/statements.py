"""The writer's SQL, derived from the schema declaration: which event fills which row.

For each table, the event that fills its ``id`` (or, where SQLite assigns the
id, the one event that fills the table) inserts the row; any other event that
fills columns of the table updates them, finding the row by the field with
the same name as the one that filled ``id``. Columns marked ``"writer"`` are
computed by the recorder (redaction, JSON, the run id) through ``derive``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, NamedTuple

from sentinel_ws_proxy.events import (
    FaultAdded,
    FaultFired,
    FaultRemoved,
    Frame,
    HttpRequest,
    SessionClosed,
    SessionOpened,
)
from sentinel_ws_proxy.recording.schema import TABLES, Column

EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        SessionOpened,
        SessionClosed,
        Frame,
        HttpRequest,
        FaultAdded,
        FaultRemoved,
        FaultFired,
    )
}

Derive = Callable[[Any], object]


class Statement(NamedTuple):
    table: str
    sql: str
    # Event -> parameters; None when the event already is the row, in column order.
    build: Callable[[Any], Sequence[object]] | None
    # For a row whose last columns hold their usual values: (SQL taking only the
    # columns before them, how many that is, those usual values).
    short: tuple[str, int, tuple[object, ...]] | None = None


def _short(table: str, columns: list[Column]) -> tuple[str, int, tuple[object, ...]] | None:
    """An INSERT that writes a row's trailing usual values as literals."""
    cut = len(columns)
    while cut and columns[cut - 1].has_usual:
        cut -= 1
    if cut == len(columns):
        return None
    tail = tuple(c.usual for c in columns[cut:])
    names = ", ".join(c.name for c in columns)
    values = ["?"] * cut + ["NULL" if v is None else repr(v) for v in tail]
    return f"INSERT INTO {table} ({names}) VALUES ({','.join(values)})", cut, tail


def _getter(column: Column, derive: dict[tuple[str, str], Derive], table: str) -> Derive:
    if column.fill == "writer":
        try:
            return derive[(table, column.name)]
        except KeyError:
            raise LookupError(f"no derivation for {table}.{column.name}") from None
    return attrgetter(column.field)  # type: ignore[arg-type]


def _builder(getters: list[Derive]) -> Callable[[Any], tuple[object, ...]]:
    return lambda event: tuple(get(event) for get in getters)


def statements(derive: dict[tuple[str, str], Derive]) -> dict[type, list[Statement]]:
    """For each event type, the statements that store it, in the order to run them."""
    found: dict[type, list[Statement]] = {}
    for table, columns in TABLES.items():
        events = {c.event for c in columns if c.event}
        if not events:
            continue  # meta and runs are written by the recorder itself
        by_id = next((c for c in columns if c.name == "id" and c.event), None)
        inserter = by_id.event if by_id else events.pop()
        events.discard(inserter)
        inserted = [c for c in columns if c.event == inserter or c.fill == "writer"]
        names = [c.name for c in inserted]
        event_type = EVENT_TYPES[inserter]  # type: ignore[index]
        direct = (
            names == [c.name for c in columns if c.name != "id"]
            and tuple(c.field for c in inserted) == event_type._fields
        )
        build = None if direct else _builder([_getter(c, derive, table) for c in inserted])
        sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({','.join('?' * len(names))})"
        short = _short(table, inserted) if direct else None
        found.setdefault(event_type, []).append(Statement(table, sql, build, short))
        for updater in sorted(events):  # type: ignore[type-var]
            assert by_id is not None, f"{table}: only the event that fills id may update"
            cols = [c for c in columns if c.event == updater]
            key = attrgetter(by_id.field)  # type: ignore[arg-type]
            getters = [attrgetter(c.field) for c in cols] + [key]  # type: ignore[arg-type]
            sets = ", ".join(f"{c.name}=?" for c in cols)
            found.setdefault(EVENT_TYPES[updater], []).append(
                Statement(table, f"UPDATE {table} SET {sets} WHERE id=?", _builder(getters))
            )
    return found
