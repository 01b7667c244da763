"""Coordinates computed or read when first used: a zoo's DataArrays carry every metadata
column as a ``model`` coordinate and three ``param`` coordinates, but ``zoo.layer(l).values``
needs none of them.

Building all of them eagerly meant reading and decoding every scalar column of the store the
first time any DataArray was made: 5-7 ms of ``sel(cls=...).layer(l).values``'s 11 ms on the
2,000-row benchmark zoo (19 columns; measured in a fresh process). Here only the ``model``
column is read (it is the index); every other coordinate is an xarray lazily indexed array
(the mechanism xarray's own backends use, :class:`xarray.backends.BackendArray`) whose
first use reads every scalar column at once — one batched fetch, as before, so a zoo on
object storage pays one round trip, not one per column. The ``layer``/``tensor``/``index``
coordinates of ``zoo.weights`` (91,481 strings each for LeNet-5: ~4 ms) are made so too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

__all__ = ["LazyColumn", "lazy_variable"]


class LazyColumn(BackendArray):
    """One coordinate (a metadata column, a ``param`` coordinate) as a lazy 1-d array.

    Parameters
    ----------
    load
        Returns the values (a 1-d numpy array of ``n_rows``), reading or computing them;
        called once, on first use.
    n_rows
        Its length.
    dtype
        Its dtype when known without reading (``None``: known once read, e.g. an integer
        column with missing values becomes float64).
    """

    __slots__ = ("_dtype", "_load", "_values", "shape")

    def __init__(
        self, load: Callable[[], np.ndarray], n_rows: int, dtype: np.dtype[Any] | None
    ) -> None:
        self._load = load
        self._values: np.ndarray | None = None
        self._dtype = dtype
        self.shape = (n_rows,)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The column's dtype (reads the column when it is not known without reading)."""
        return self._dtype if self._dtype is not None else self.values().dtype

    def values(self) -> np.ndarray:
        """The column's values (read on first use)."""
        if self._values is None:
            values = np.asarray(self._load())
            if values.shape != self.shape:
                raise ValueError(f"column of {len(values)} values, expected {self.shape[0]}")
            self._values = values
        return self._values

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._raw_getitem
        )

    def _raw_getitem(self, key: tuple[Any, ...]) -> np.ndarray:
        out: np.ndarray = self.values()[key]
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled (Dask, multiprocessing) with its values read: the loader holds the store
        return (_read_column, (self.values(),))


def _read_column(values: np.ndarray) -> LazyColumn:
    """A :class:`LazyColumn` already read (what one unpickles as)."""
    column = LazyColumn(values.copy, len(values), values.dtype)
    column._values = values
    return column


def lazy_variable(
    load: Callable[[], np.ndarray],
    n_rows: int,
    dtype: np.dtype[Any] | None,
    dim: str = "model",
) -> xr.Variable:
    """A 1-d coordinate variable along ``dim`` whose values ``load()`` returns on first use."""
    data = indexing.LazilyIndexedArray(LazyColumn(load, n_rows, dtype))
    return xr.Variable((dim,), data, fastpath=True)
