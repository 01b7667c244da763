"""Row-metadata columns: kinds, validation, and their encoding in Zarr arrays.

Kinds and storage:

``int``, ``float``, ``bool``  float64 arrays, NaN = missing (ints exact up to 2**53)
``str``                       variable-length UTF-8, ``"\\x00<missing>"`` = missing
``json``                      variable-length UTF-8 holding JSON (lists, dicts, arrays: curves)

A column keeps its kind within a segment; ``int`` widens to ``float``; other mixes are refused.
On read, columns become pandas columns: ``int64`` (``Int64`` when values are missing), ``float64``,
``bool`` (``boolean`` when missing), and ``object`` for strings and JSON values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from wspace.errors import SchemaMismatchError

__all__ = ["MISSING_STR", "RESERVED", "decode", "encode", "kind_of", "merge_kinds", "to_series"]

MISSING_STR = "\x00<missing>"
"""Stored for a missing string; real values never contain NUL (refused on append)."""
NUMERIC = ("int", "float", "bool")
MAX_EXACT_INT = 2**53
RESERVED = frozenset({"param", "weights", "layer", "tensor", "index", "arch", "replace"})
"""Names that cannot be metadata columns (dimensions, coordinates or writer arguments)."""


def kind_of(value: Any, *, column: str, model: str) -> str | None:
    """Kind of one metadata value (``None`` for a missing value)."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | np.integer):
        if abs(int(value)) > MAX_EXACT_INT:
            raise SchemaMismatchError(
                f"model {model!r}: column {column!r} value {value} is beyond +-2**53; "
                "store such integers as strings"
            )
        return "int"
    if isinstance(value, float | np.floating):
        return "float"
    if isinstance(value, str):
        if "\x00" in value:
            raise SchemaMismatchError(f"model {model!r}: column {column!r} contains a NUL byte")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise SchemaMismatchError(
                f"model {model!r}: column {column!r} is not valid Unicode (lone surrogates)"
            ) from None
        return "str"
    if isinstance(value, list | tuple | dict | np.ndarray):
        try:  # fail now, not when the chunk holding it is written
            json.dumps(value, default=_json_default).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise SchemaMismatchError(
                f"model {model!r}: column {column!r} cannot be stored as JSON: {exc}"
            ) from None
        return "json"
    raise SchemaMismatchError(
        f"model {model!r}: column {column!r} has a value of type {type(value).__name__}; "
        "metadata values must be bool, int, float, str, None, or lists/dicts/arrays of them"
    )


def merge_kinds(old: str | None, new: str | None, *, column: str) -> str | None:
    """The kind of a column holding values of kinds ``old`` and ``new``."""
    if old is None or new is None or old == new:
        return old or new
    if {old, new} == {"int", "float"}:
        return "float"
    raise SchemaMismatchError(
        f"column {column!r} holds {old} values; cannot also store a {new} value"
    )


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def encode(kind: str, values: Sequence[Any], length: int) -> np.ndarray:
    """Encode ``values`` of one column as a chunk of ``length`` rows (missing-padded)."""
    if kind in NUMERIC:
        out = np.full(length, np.nan, dtype=np.float64)
        for i, v in enumerate(values):
            if v is not None:
                out[i] = float(v)
        return out
    strings = np.full(length, MISSING_STR, dtype=object)
    for i, v in enumerate(values):
        if v is None:
            continue
        strings[i] = str(v) if kind == "str" else json.dumps(v, default=_json_default)
    return strings


def decode(kind: str, raw: np.ndarray) -> np.ndarray:
    """Decode a stored column slice into an object array with ``None`` for missing values."""
    if kind == "float":
        return np.asarray(raw, dtype=np.float64)
    out = np.empty(len(raw), dtype=object)
    if kind in NUMERIC:
        for i, v in enumerate(raw.tolist()):
            if not math.isnan(v):
                out[i] = int(v) if kind == "int" else bool(v)
        return out
    for i, v in enumerate(raw.tolist()):
        if v != MISSING_STR:
            out[i] = v if kind == "str" else json.loads(v)
    return out


def to_series(name: str, kinds: set[str], values: np.ndarray) -> pd.Series:
    """A pandas column from decoded values whose kinds (over all segments) are ``kinds``."""
    missing = (
        pd.isna(values)
        if values.dtype != object
        else np.array(
            [v is None or (isinstance(v, float) and math.isnan(v)) for v in values], dtype=bool
        )
    )
    if kinds == {"float"} or kinds == {"int", "float"}:
        return pd.Series(
            np.array(
                [np.nan if m else float(v) for v, m in zip(values, missing, strict=True)],
                dtype=np.float64,
            ),
            name=name,
        )
    if kinds == {"int"}:
        if missing.any():
            return pd.Series(
                pd.array(
                    [None if m else int(v) for v, m in zip(values, missing, strict=True)],
                    dtype="Int64",
                ),
                name=name,
            )
        return pd.Series(values.astype(np.int64), name=name)
    if kinds == {"bool"}:
        if missing.any():
            return pd.Series(
                pd.array(
                    [None if m else bool(v) for v, m in zip(values, missing, strict=True)],
                    dtype="boolean",
                ),
                name=name,
            )
        return pd.Series(values.astype(bool), name=name)
    return pd.Series(values, dtype=object, name=name)


def row_kinds(meta: Mapping[str, Any], *, model: str) -> dict[str, str | None]:
    """Kinds of every value of one row's metadata."""
    return {k: kind_of(v, column=k, model=model) for k, v in meta.items()}
