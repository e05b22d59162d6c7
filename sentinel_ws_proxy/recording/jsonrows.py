"""Rows as JSON objects and back, the same for `--json`, JSONL and HAR's `_sentinel`.

Bytes travel as ``{"$base64": "..."}`` so that a BLOB is never mistaken for
text; header columns (stored as JSON text) travel as JSON objects. The way
back is exact: a row written to JSON and read again is the same row.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any, TypeVar

R = TypeVar("R")


def encode_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$base64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def decode_value(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$base64"}:
        return base64.b64decode(value["$base64"])
    return value


def _is_headers(name: str) -> bool:
    return name.endswith("_headers")


def row_to_json(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(row):
        value = getattr(row, f.name)
        if _is_headers(f.name) and isinstance(value, str):
            out[f.name] = json.loads(value)
        else:
            out[f.name] = encode_value(value)
    return out


def row_from_json(row_type: type[R], data: dict[str, Any]) -> R:
    """The row a JSON object describes; names the row type does not have are ignored."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(row_type):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        value = data[f.name]
        if _is_headers(f.name) and isinstance(value, dict):
            values[f.name] = json.dumps(value, ensure_ascii=False)
        else:
            values[f.name] = decode_value(value)
    return row_type(**values)
