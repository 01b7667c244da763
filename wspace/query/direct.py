"""Dask arrays of a zoo's weights whose numpy conversion reads rows directly, also after
slicing: ``zoo.weights[i].values``, ``zoo.layer(l).sel(model=names).values`` and the like
read only the selected rows with the direct reader, not whole shards through a Dask graph.

A :class:`DirectArray` is an ordinary Dask array (same graph: ``dask.compute``, arithmetic
and chunks are plain Dask) that also knows which stored rows and which columns it holds.
Indexing it with integers, slices, or integer or boolean arrays (what xarray's ``isel``,
``sel`` and ``[...]`` pass down) gives another :class:`DirectArray` over the selected rows
and columns; any other operation gives a plain Dask array.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import dask.array as da
import numpy as np

from wspace.store.chunks import RowSource

__all__ = ["Columns", "DirectArray", "Reader", "direct_array", "layer_reader"]

Columns = slice | np.ndarray
"""Columns of a reader's row: a slice, or ascending-or-not integer positions."""
READ_BATCH_BYTES = 64 << 20
"""Decoded bytes read at once when only some columns of the layers read are wanted."""
Reader = Callable[[np.ndarray, Columns], np.ndarray]
"""Reads ``(rows, columns)`` as a new float32 array: rows are positions among the visible
rows of the store, columns index the reader's (concatenated) row."""


@dataclass(frozen=True)
class LayerColumns:
    """A :data:`Reader` over the concatenation of ``layers`` (in this order), reading only
    the layers that hold wanted columns (a selection of some columns of every layer is read
    in batches of rows, so that memory stays bounded)."""

    source: RowSource
    layers: tuple[str, ...]
    widths: tuple[int, ...]

    def __call__(self, rows: np.ndarray, cols: Columns) -> np.ndarray:
        width = sum(self.widths)
        if isinstance(cols, slice) and cols.indices(width) == (0, width, 1):
            out = np.empty((len(rows), width), dtype=np.float32)
            self._read(rows, list(range(len(self.layers))), out)
            return out
        picks = np.arange(width)[cols]
        starts = np.concatenate([[0], np.cumsum(self.widths)]).astype(np.int64)
        layer_of = np.searchsorted(starts, picks, side="right") - 1
        wanted = np.unique(layer_of).tolist()
        sizes = np.zeros(len(self.layers), dtype=np.int64)
        sizes[wanted] = [self.widths[k] for k in wanted]
        at = np.concatenate([[0], np.cumsum(sizes)])  # where each wanted layer lands
        where = picks - starts[layer_of] + at[layer_of]
        contiguous = _as_columns(where)
        out = np.empty((len(rows), len(picks)), dtype=np.float32)
        if isinstance(contiguous, slice) and contiguous == slice(0, int(at[-1])):
            self._read(rows, wanted, out)
            return out
        batch = max(1, READ_BATCH_BYTES // (4 * max(int(at[-1]), 1)))
        for b in range(0, len(rows), batch):
            block = np.empty((len(rows[b : b + batch]), int(at[-1])), dtype=np.float32)
            self._read(rows[b : b + batch], wanted, block)
            out[b : b + batch] = block[:, where]
        return out

    def _read(self, rows: np.ndarray, wanted: list[int], out: np.ndarray) -> None:
        """The wanted layers (indexes) of ``rows``, side by side, into ``out``."""
        spans, at = [], 0
        for k in wanted:
            spans.append(slice(at, at + self.widths[k]))
            at += self.widths[k]
        self.source.read(rows, [self.layers[k] for k in wanted], out, spans)


def layer_reader(source: RowSource, layers: Sequence[str], widths: Sequence[int]) -> Reader:
    """The :data:`Reader` of the concatenated ``layers`` (of ``widths`` parameters)."""
    return LayerColumns(source, tuple(layers), tuple(int(w) for w in widths))


class DirectArray(da.Array):
    """A Dask array that, converted to numpy, reads its rows directly instead of computing.

    Indexing keeps the direct read (see the module docstring); everything else — arithmetic,
    ``dask.compute``, reshaping — is plain Dask (and returns plain Dask arrays).
    """

    _wspace_read: Reader
    _wspace_rows: np.ndarray
    """Rows (positions among the store's visible rows)."""
    _wspace_cols: Columns
    _wspace_keep: tuple[bool, bool]
    """Whether the row axis and the column axis are axes of this array (an integer index
    drops one)."""
    _wspace_tail: tuple[int, ...] | None
    """The shape the columns are reshaped to (a tensor's), or ``None``."""

    def __array__(self, dtype: Any = None, copy: Any = None, **kwargs: Any) -> np.ndarray:
        read = getattr(self, "_wspace_read", None)
        if read is None:  # made by Dask from this one (a type(self) of another graph)
            computed: np.ndarray = super().__array__(dtype, **kwargs)  # type: ignore[no-untyped-call]
            return computed
        block = read(self._wspace_rows, self._wspace_cols)
        if self._wspace_tail is not None:
            block = block.reshape((len(block), *self._wspace_tail))
        out: np.ndarray = block[tuple(slice(None) if keep else 0 for keep in self._wspace_keep)]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getitem__(self, key: Any) -> Any:
        out = super().__getitem__(key)  # type: ignore[no-untyped-call]
        if getattr(self, "_wspace_read", None) is None or not isinstance(out, da.Array):
            return out
        picked = _select(self, key)
        if picked is None:
            return out
        rows, cols, keep = picked
        tail = self._wspace_tail
        shape: tuple[int, ...] = (len(rows),) if keep[0] else ()
        if keep[1]:
            shape += tail if tail is not None else (len(_as_positions(cols)),)
        if shape != out.shape:  # not what Dask made of the key: stay plain Dask
            return out
        return _wrap(out, self._wspace_read, rows, cols, keep, tail)

    def reshape(self, *shape: Any, **kwargs: Any) -> Any:
        """Dask's ``reshape``; reshaping the columns of every row (``(rows, *tensor shape)``,
        as :meth:`~wspace.Zoo.tensor` does) keeps the direct read."""
        out = super().reshape(*shape, **kwargs)  # type: ignore[no-untyped-call]
        want = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        if (
            getattr(self, "_wspace_read", None) is None
            or self._wspace_keep != (True, True)
            or self._wspace_tail is not None
            or not isinstance(out, da.Array)
            or not want
            or out.shape[:1] != self.shape[:1]
            or out.shape != tuple(int(n) for n in want)
        ):
            return out
        return _wrap(
            out,
            self._wspace_read,
            self._wspace_rows,
            self._wspace_cols,
            (True, True),
            out.shape[1:],
        )


def direct_array(data: da.Array, read: Reader, rows: np.ndarray) -> da.Array:
    """``data`` (same graph), a ``(rows, columns)`` array whose numpy conversion (also
    after indexing) calls ``read(rows, columns)``; ``rows`` are the store positions of its
    rows."""
    rows = np.asarray(rows, dtype=np.int64)
    return _wrap(data, read, rows, slice(0, data.shape[1]), (True, True), None)


def _wrap(
    data: da.Array,
    read: Reader,
    rows: np.ndarray,
    cols: Columns,
    keep: tuple[bool, bool],
    tail: tuple[int, ...] | None,
) -> DirectArray:
    make = cast(Callable[..., DirectArray], DirectArray)  # dask.Array.__new__ is untyped
    out = make(data.dask, data.name, data.chunks, meta=data._meta)
    out._wspace_read = read
    out._wspace_rows = rows
    out._wspace_cols = cols
    out._wspace_keep = keep
    out._wspace_tail = tail
    return out


def _as_positions(cols: Columns) -> np.ndarray:
    if isinstance(cols, slice):
        return np.arange(cols.start, cols.stop)
    return cols


def _select(array: DirectArray, key: Any) -> tuple[np.ndarray, Columns, tuple[bool, bool]] | None:
    """The rows, columns and kept axes of ``array[key]``; ``None`` when the key is not one
    this composes (new axes, several arrays, Dask arrays...)."""
    keys = list(key) if isinstance(key, tuple) else [key]
    ndim = array.ndim
    if sum(k is Ellipsis for k in keys) > 1:
        return None
    if any(k is Ellipsis for k in keys):
        at = next(i for i, k in enumerate(keys) if k is Ellipsis)
        keys[at : at + 1] = [slice(None)] * (ndim - len(keys) + 1)
    if len(keys) > ndim:
        return None
    keys += [slice(None)] * (ndim - len(keys))
    if array._wspace_tail is not None:  # a tensor: select rows only
        full = [isinstance(k, slice) and k == slice(None) for k in keys[1:]]
        if not array._wspace_keep[0] or not all(full):
            return None
        keys = [keys[0]]
    axes: list[np.ndarray | None] = [array._wspace_rows, None]
    keep = list(array._wspace_keep)
    cols = array._wspace_cols
    arrays = 0
    present = [0] if array._wspace_tail is not None else [a for a in (0, 1) if keep[a]]
    for axis, k in zip(present, keys, strict=True):
        if axis == 1 and isinstance(cols, slice) and isinstance(k, slice):
            run = range(cols.start, cols.stop)[k]  # no position array for a run of columns
            if run.step == 1 or len(run) <= 1:
                cols = slice(run.start, run.start + len(run))
                continue
        current = array._wspace_rows if axis == 0 else _as_positions(cols)
        picked = _pick(current, k)
        if picked is None:
            return None
        positions, is_array, kept = picked
        arrays += is_array
        axes[axis] = positions
        keep[axis] = kept
    if arrays > 1:
        return None
    rows = axes[0]
    assert rows is not None
    if axes[1] is not None:
        cols = _as_columns(axes[1])
    return rows, cols, (keep[0], keep[1])


def _pick(current: np.ndarray, k: Any) -> tuple[np.ndarray, bool, bool] | None:
    """``current[k]`` for one axis, whether ``k`` is an array, and whether the axis stays."""
    n = len(current)
    if isinstance(k, slice):
        return current[k], False, True
    if isinstance(k, int | np.integer) and not isinstance(k, bool | np.bool_):
        if not -n <= int(k) < n:
            return None
        return current[[int(k)]], False, False
    if isinstance(k, list | np.ndarray):
        index = np.asarray(k)
        if index.ndim != 1:
            return None
        if index.dtype == bool:
            return (current[index], True, True) if len(index) == n else None
        if not len(index):
            return current[:0], True, True
        if not np.issubdtype(index.dtype, np.integer):
            return None
        if index.min() < -n or index.max() >= n:
            return None
        return current[index], True, True
    return None


def _as_columns(positions: np.ndarray) -> Columns:
    """``positions`` as a slice when they are an ascending run (no copy when read)."""
    if len(positions) and np.array_equal(
        positions, np.arange(positions[0], positions[0] + len(positions))
    ):
        return slice(int(positions[0]), int(positions[0]) + len(positions))
    return positions
