"""Metadata values and column names as importers and exporters handle them.

A source's missing values become ``None`` (:func:`py_value`); a source column whose name the
store refuses or the importer uses itself gets the prefix :data:`ESCAPE`
(:func:`escape_column`), which exports remove (:func:`unescape_column`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np
import pandas as pd

from wspace.errors import SchemaMismatchError, listing
from wspace.store.columns import RESERVED

__all__ = [
    "ESCAPE",
    "escape_column",
    "first_by_model",
    "py_value",
    "refuse_repeats",
    "unescape_column",
]

ESCAPE = "col:"
"""Prefix of a source column whose own name cannot be a metadata column (:func:`escape_column`)."""


def py_value(value: Any) -> Any:
    """A metadata value as plain Python: numpy scalars unwrapped, NaN/NA/None as ``None``."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def escape_column(name: str, claimed: Collection[str] = ()) -> str:
    """The metadata column for a source column ``name``.

    Names are kept as they are (``"config.w_init"``, ``"test/accuracy"``) except those the
    Writer refuses or the importer uses itself — empty names, reserved names, ``"model"``, the
    ``claimed`` names — and names that already start with :data:`ESCAPE`; these get the prefix
    ``"col:"``. :func:`unescape_column` reverses it.

    Examples
    --------
    >>> escape_column("test/accuracy"), escape_column("index"), escape_column("col:x")
    ('test/accuracy', 'col:index', 'col:col:x')
    >>> unescape_column(escape_column("col:x"))
    'col:x'
    """
    if not name or name in RESERVED or name == "model" or name in claimed:
        return ESCAPE + name
    return ESCAPE + name if name.startswith(ESCAPE) else name


def unescape_column(name: str) -> str:
    """Inverse of :func:`escape_column`."""
    return name[len(ESCAPE) :] if name.startswith(ESCAPE) else name


def refuse_repeats(models: Iterable[str], where: str) -> None:
    """Refuse a source that names a model twice (before anything of it is written)."""
    names = pd.Series(list(models), dtype=object)
    dup = names[names.duplicated()].unique()
    if len(dup):
        raise SchemaMismatchError(f"{where}: model(s) {listing(sorted(dup))} appear twice")


def first_by_model(frame: pd.DataFrame, column: str) -> dict[str, Any]:
    """The first non-missing value of ``column`` of each model of ``frame`` (one pass)."""
    if column not in frame:
        return {}
    present = frame.loc[[py_value(v) is not None for v in frame[column]], ["model", column]]
    present = present.drop_duplicates("model")
    return dict(zip(present["model"].astype(str), present[column], strict=True))
