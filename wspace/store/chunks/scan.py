"""One fused pass over rows of some layers: every stored chunk read, decoded and reduced once.

:func:`column_moments` plans the chunks holding the wanted rows like a read
(:func:`~wspace.store.chunks.read`), fetches them in the same bounded batches, and in the thread
pool decodes each chunk into a per-thread scratch buffer and adds its wanted rows to that
thread's :class:`~wspace.store.chunks.moments.ColumnMoments` of the layer; the threads'
accumulators are merged at the end. Nothing the size of a layer is ever held: memory is one
batch of compressed bytes plus, per thread, one decoded chunk and the accumulators. Arrays
whose codecs the registry does not decode are read through zarr a window of rows at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from wspace.store.chunks.moments import ColumnMoments
from wspace.store.chunks.plan import ChunkUnit, Request, plan_for
from wspace.store.chunks.read import read
from wspace.store.chunks.rows import RowSource

__all__ = ["WINDOW_BYTES", "column_moments"]

WINDOW_BYTES = 16 << 20
"""Decoded bytes per window when an array is read through zarr (codecs outside the registry)."""


class _Scan:
    """The per-thread accumulators and scratch buffers of one :func:`column_moments` call."""

    def __init__(self, widths: dict[str, int], layer_of: dict[int, str]) -> None:
        self.widths = widths
        self.layer_of = layer_of  # id(request) -> layer
        self.lock = threading.Lock()
        self.parts: dict[str, list[ColumnMoments]] = {layer: [] for layer in widths}
        self.local = threading.local()

    def accumulator(self, layer: str) -> ColumnMoments:
        mine: dict[str, ColumnMoments] = self.local.__dict__.setdefault("acc", {})
        if layer not in mine:
            mine[layer] = ColumnMoments(self.widths[layer])
            with self.lock:
                self.parts[layer].append(mine[layer])
        return mine[layer]

    def scratch(self, rows: int, width: int) -> np.ndarray:
        buffers: dict[tuple[int, int], np.ndarray] = self.local.__dict__.setdefault("buf", {})
        if (rows, width) not in buffers:
            buffers[(rows, width)] = np.empty((rows, width), dtype=np.float32)
        return buffers[(rows, width)]

    def reduce(self, unit: ChunkUnit) -> None:
        """Decode one fetched chunk and add its wanted rows to this thread's accumulator."""
        req, plan = unit.request, unit.plan
        if unit.data is None:
            raise unit.corrupt(f"chunk {unit.key} is missing")
        assert plan.decoders is not None
        try:
            block = plan.decoders.decode(
                unit.data, "<f4", self.scratch(plan.chunk_rows, plan.width)
            )
        except Exception as exc:  # codec errors: truncated, garbage, checksum; a wrong size
            raise unit.corrupt(f"{type(exc).__name__}: {exc}") from exc
        unit.data = None
        local = req.rows[unit.picks] - unit.chunk * plan.chunk_rows
        whole = len(local) == plan.chunk_rows and bool(np.all(np.diff(local) == 1))
        self.accumulator(self.layer_of[id(req)]).add(block if whole else block[local])

    def result(self) -> dict[str, ColumnMoments]:
        out = {}
        for layer, parts in self.parts.items():
            total = ColumnMoments(self.widths[layer])
            for part in parts:
                total = total.merge(part)
            out[layer] = total
        return out


def _through_zarr(req: Request, acc: ColumnMoments) -> None:
    """Add a request's rows to ``acc``, read through zarr a window of rows at a time."""
    width = req.reader.shape[1]
    window = max(1, WINDOW_BYTES // (4 * width))
    for first in range(0, len(req.rows), window):
        rows = req.rows[first : first + window]
        out = np.empty((len(rows), width), dtype=np.float32)
        read([Request(req.reader, rows, out, np.arange(len(rows)))])
        acc.add(out)


def column_moments(
    source: RowSource, positions: np.ndarray, layers: Sequence[str]
) -> dict[str, ColumnMoments]:
    """Per layer, the :class:`ColumnMoments` of the visible rows ``positions`` (repeats count
    as often as they appear), each stored chunk read and decoded once.

    Raises
    ------
    CorruptDataError
        A chunk holding wanted rows is missing, fails its checksum or does not decode (the
        message names the store, layer, tensors and models).
    StorageError
        The storage failed (after the guard's retries).
    """
    widths = (
        {layer: source.readers[layer][0].shape[1] for layer in layers} if len(positions) else {}
    )
    nowhere = np.empty((0, 0), dtype=np.float32)  # a scan scatters no rows
    requests = source.requests(positions, layers, nowhere, [slice(None)] * len(layers))
    layer_of = {id(req): req.reader.layer for req in requests}
    scan = _Scan({layer: widths.get(layer, 0) for layer in layers}, layer_of)
    direct = [r for r in requests if plan_for(r.reader.array).decoders is not None]
    for req in requests:
        if plan_for(req.reader.array).decoders is None:
            _through_zarr(req, scan.accumulator(req.reader.layer))
    read(direct, scan.reduce)
    return scan.result()
