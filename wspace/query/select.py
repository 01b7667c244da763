"""Selecting rows of a zoo by metadata values, and finding one row by position or name."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from wspace.errors import CoordinateNotFoundError, ModelNotFoundError, listing

__all__ = ["row_position", "selection_mask"]


def selection_mask(
    n: int,
    columns: Sequence[str],
    column: Callable[[str], pd.Series],
    selectors: Mapping[str, Any],
    *,
    where: str,
) -> np.ndarray:
    """The rows (of ``n``) whose metadata match every selector of ``Zoo.sel``.

    Parameters
    ----------
    n
        Number of rows.
    columns
        The metadata columns.
    column
        Returns the values of a metadata column (one per row).
    selectors
        Column name → a scalar (equality), a list/tuple/set/array (any of), a ``slice``
        (inclusive range) or a callable on the column (returning booleans).
    where
        The store and architecture, for error messages.

    Raises
    ------
    CoordinateNotFoundError
        A column that does not exist, or a scalar that no row has
        (:class:`ModelNotFoundError` for ``model``; the message lists the values that exist).
    """
    mask = np.ones(n, dtype=bool)
    for name, value in selectors.items():
        if name not in columns:
            raise CoordinateNotFoundError(
                f"{where} has no metadata column {name!r}; columns: {listing(columns)}"
            )
        series = column(name)
        if callable(value):
            hit = np.asarray(value(series), dtype=bool)
        elif isinstance(value, slice):
            hit = np.ones(len(series), dtype=bool)
            if value.start is not None:
                hit &= (series >= value.start).fillna(False).to_numpy(dtype=bool)
            if value.stop is not None:
                hit &= (series <= value.stop).fillna(False).to_numpy(dtype=bool)
        elif isinstance(value, list | tuple | set | frozenset | np.ndarray | pd.Index):
            hit = series.isin(list(value)).to_numpy(dtype=bool)
        else:
            hit = (series == value).fillna(False).to_numpy(dtype=bool)
            if not hit.any():
                error = ModelNotFoundError if name == "model" else CoordinateNotFoundError
                present = pd.unique(series.dropna())
                raise error(f"{where}: no row has {name}={value!r}; values: {listing(present)}")
        mask &= hit
    return mask


def row_position(
    n_rows: int,
    column: Callable[[str], pd.Series | None],
    i: int | str,
    step: int | None,
    *,
    where: str,
) -> int:
    """Position of one of ``n_rows`` rows: by position ``i`` (negative counts from the end),
    or by model name ``i`` and ``step`` (``column(name)``: a metadata column of the rows,
    ``None`` when there is none; only ``model`` and ``step`` are asked for, and only for a
    name).

    Raises
    ------
    ModelNotFoundError
        No such row, or a model name with several rows (snapshots) and no ``step``.
    """
    n = n_rows
    if isinstance(i, str):
        names = column("model")
        assert names is not None
        hits = np.flatnonzero(names.to_numpy(dtype=object) == i)
        steps = column("step") if step is not None else None
        if steps is not None:
            hits = hits[(steps.to_numpy()[hits] == step)]
        if len(hits) == 0:
            raise ModelNotFoundError(
                f"{where}: no model {i!r}" + (f" at step {step}" if step is not None else "")
            )
        if len(hits) > 1:
            raise ModelNotFoundError(
                f"{where}: model {i!r} has {len(hits)} rows (snapshots); pass step="
            )
        return int(hits[0])
    if not -n <= int(i) < n:
        raise ModelNotFoundError(f"{where}: row {i} out of range ({n} rows)")
    return int(i) % n
