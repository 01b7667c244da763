"""File names and metadata of the ``state-dict`` and ``safetensors`` folders: ``<model>@<step>``
names, the ``metadata.jsonl`` and ``layout.json`` sidecars, and safetensors header metadata."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wspace.errors import FormatError
from wspace.io.values import escape_column, py_value
from wspace.layout import Layout

__all__ = [
    "COLUMNS_KEY",
    "LAYOUT_FILE",
    "LAYOUT_KEY",
    "ROW_KEY",
    "SIDECAR",
    "decode_header",
    "encode_header",
    "file_stem",
    "json_default",
    "read_header",
    "split_name",
]

SIDECAR = "metadata.jsonl"
LAYOUT_FILE = "layout.json"
COLUMNS_KEY, LAYOUT_KEY, ROW_KEY = "wspace.columns", "wspace.layout", "wspace.row"
_NAME = re.compile(r"^(?P<model>.+)@(?P<step>-?\d+)$")


def split_name(stem: str) -> tuple[str, int | None]:
    """``(model, step)`` of a file name without its extension (``"church_3@20"``).

    Examples
    --------
    >>> split_name("church_3@20"), split_name("runs/a"), split_name("x@y")
    (('church_3', 20), ('runs/a', None), ('x@y', None))
    """
    match = _NAME.match(stem)
    if match is None:
        return stem, None
    return match["model"], int(match["step"])


def file_stem(model: str, step: int | None) -> str:
    """Inverse of :func:`split_name`."""
    return model if step is None else f"{model}@{step}"


def read_header(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's header."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:
        raise FormatError(f"{path}: not a readable safetensors file: {exc}") from None


def decode_header(header: Mapping[str, str], path: Path) -> tuple[dict[str, Any], int | None]:
    """Metadata columns of a safetensors header and the row position it records."""
    if COLUMNS_KEY not in header:
        meta = {escape_column(k): v for k, v in header.items() if k != "format"}
        return meta, None
    try:
        columns = json.loads(header[COLUMNS_KEY])
        meta = {
            name: header[key] if kind == "str" else json.loads(header[key])
            for name, (key, kind) in columns.items()
        }
        row = int(header[ROW_KEY]) if ROW_KEY in header else None
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"{path}: unreadable wspace metadata in its header: {exc}") from None
    return meta, row


def encode_header(meta: Mapping[str, Any], layout: Layout, row: int) -> dict[str, str]:
    """The safetensors ``__metadata__`` of row ``row``: its columns, the layout, the position
    (read back by :func:`decode_header`)."""
    header = {"format": "pt"}
    columns = {}
    for name, value in meta.items():
        value = py_value(value)
        if value is None:
            continue
        key = name
        if name in ("format", COLUMNS_KEY, LAYOUT_KEY, ROW_KEY) or name.startswith("wspace.col."):
            key = f"wspace.col.{name}"  # the header's own keys stay free
        if isinstance(value, str):
            header[key], columns[name] = value, (key, "str")
        else:
            header[key], columns[name] = json.dumps(value, default=json_default), (key, "json")
    header[COLUMNS_KEY] = json.dumps(columns)
    header[LAYOUT_KEY] = json.dumps(layout.to_dict())
    header[ROW_KEY] = str(row)
    return header


def json_default(obj: Any) -> Any:
    """``json.dumps``'s ``default``: numpy arrays and scalars as Python values."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")
