"""One layer array of one segment, as an array-like read through zarr, and opening arrays."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import zarr
from zarr.core.metadata import ArrayV3Metadata
from zarr.storage import StorePath

from wspace.errors import CorruptDataError, StorageError, WspaceError, listing
from wspace.store.backend import Backend
from wspace.store.chunks.plan import object_rows

__all__ = ["LayerReader", "open_arrays"]


class LayerReader:
    """Array-like view of the committed rows of one layer array, read through zarr.

    Turns any failure to decode a chunk — checksum mismatch, truncated or garbage bytes, a
    chunk that vanished — into a :class:`CorruptDataError` naming the store, the layer, its
    tensors and the models whose rows the chunk holds. A storage failure (network, server)
    is not corruption: it raises :class:`StorageError` with the same names. The direct
    reader (:func:`wspace.store.chunks.read`) reads the same rows faster; it reports errors
    through :meth:`corrupt`.

    Parameters
    ----------
    backend
        The store.
    array
        The layer array (``(capacity, layer size)`` float32).
    rows
        Rows of the array that may be read (the committed ones).
    models
        Model name of every row up to ``rows`` (``"?"`` for a row no zoo shows), or a
        function returning them, called only when a message needs them.
    layer, segment, tensors
        What the array holds, for error messages.
    """

    def __init__(
        self,
        backend: Backend,
        array: zarr.Array[Any],
        rows: int,
        models: np.ndarray | Callable[[], np.ndarray],
        *,
        layer: str,
        segment: str,
        tensors: tuple[str, ...] = (),
    ) -> None:
        self.backend = backend
        self.array = array
        self.shape = (rows, int(array.shape[1]))
        self.dtype = np.dtype(np.float32)
        self.ndim = 2
        self.models = models
        self.layer = layer
        self.segment = segment
        self.tensors = tensors

    def describe(self, rows: slice) -> str:
        """The store, layer, tensors, models and segment rows of ``rows``, for messages."""
        tensors = f" (tensor(s) {listing(self.tensors, 8)})" if self.tensors else ""
        models = self.models
        if callable(models):
            try:
                models = models()
            except WspaceError:  # the model column is unreadable too: no names to give
                models = np.full(self.shape[0], "?", dtype=object)
        return (
            f"store {self.backend.url!r}: layer {self.layer!r}{tensors} of model(s) "
            f"{listing(models[rows], 10)} (segment {self.segment}, rows "
            f"{rows.start}-{rows.stop - 1})"
        )

    def corrupt(self, rows: slice, why: str) -> CorruptDataError:
        """The error saying that ``rows`` are corrupt, and ``why``."""
        return CorruptDataError(f"{self.describe(rows)} is corrupt: {why}")

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows = key[0] if isinstance(key, tuple) else key
        if not isinstance(rows, slice):
            rows = slice(0, self.shape[0])
        start, stop, _ = rows.indices(self.shape[0])
        rows = slice(start, stop)
        try:
            block = np.asarray(self.array[key])
        except StorageError as exc:
            error = StorageError(f"{self.describe(rows)} could not be read: {exc}")
            error.errno = exc.errno
            raise error from exc
        except Exception as exc:  # zarr raises codec-specific errors for damaged chunks
            raise self.corrupt(rows, f"{type(exc).__name__}: {exc}") from exc
        if block.size and np.isnan(block).any():
            self._check_chunks_exist(rows)
        return block

    def _check_chunks_exist(self, rows: slice) -> None:
        size = object_rows(self.array)
        for index in range(rows.start // size, (rows.stop - 1) // size + 1):
            key = f"{self.array.path}/c/{index}/0"
            if not self.backend.exists(key):
                part = slice(max(rows.start, index * size), min(rows.stop, (index + 1) * size))
                raise self.corrupt(part, f"chunk {key} is missing")


def open_arrays(backend: Backend, paths: list[str]) -> list[zarr.Array[Any]]:
    """Open the zarr arrays at ``paths``, each distinct path once (pieces of one segment
    share its arrays): their ``zarr.json`` fetched at once through the backend, each array
    made from its metadata by zarr (``AsyncArray(metadata, store_path)``, what
    ``zarr.open_array`` does after its read).

    ``zarr.open_array`` reads each ``zarr.json`` through zarr's event loop: 3.3 ms for
    LeNet-5's five layers in a fresh process, a third of ``wspace.open``; a batched read
    through the backend (plain file calls on a local store) takes ~1 ms.

    Raises
    ------
    CorruptDataError
        An array is missing or its metadata is unreadable.
    """
    unique = list(dict.fromkeys(paths))
    keys = ["/".join(part for part in p.split("/") if part) for p in unique]  # as zarr's
    opened: dict[str, zarr.Array[Any]] = {}
    metas = backend.read_many(f"{k}/zarr.json" if k else "zarr.json" for k in keys)
    for path, key, raw in zip(unique, keys, metas, strict=True):
        if raw is None:
            raise CorruptDataError(f"store {backend.url!r}: array {path!r} is missing")
        try:
            meta = json.loads(raw)
            if not isinstance(meta, dict) or meta.get("node_type") != "array":
                raise ValueError(f"{path}/zarr.json is not the metadata of an array")
            if meta.get("zarr_format") != 3:
                raise ValueError(f"{path}/zarr.json is not zarr format 3")
            array = zarr.AsyncArray(ArrayV3Metadata.from_dict(meta), StorePath(backend.store, key))
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptDataError(
                f"store {backend.url!r}: array {path!r} is unreadable: {exc}"
            ) from exc
        opened[path] = zarr.Array(array)
    return [opened[p] for p in paths]
