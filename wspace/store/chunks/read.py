"""Reading rows of layer arrays directly: plan, fetch in batches, decode into the output."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from wspace.store.chunks.decode import finish, shard_index
from wspace.store.chunks.fetch import SMALL_BYTES, fetch_batch, fetch_indexes, in_pool
from wspace.store.chunks.layer import LayerReader
from wspace.store.chunks.plan import ChunkUnit, Request, locate, plan_units

__all__ = ["BATCH_BYTES", "read", "read_block"]

BATCH_BYTES = 64 << 20
"""Compressed bytes fetched before decoding starts (bounds memory on remote stores)."""


def read(requests: Sequence[Request], work: Callable[[ChunkUnit], None] = finish) -> None:
    """Read every request's rows into its output.

    ``work`` is done on every fetched chunk in the thread pool: by default
    :func:`~wspace.store.chunks.decode.finish` (decode it and scatter its rows to the output);
    a scan that reduces chunks instead of keeping them passes its own (see
    :func:`wspace.store.chunks.scan.column_moments`). Requests the registry cannot decode are
    read through zarr into their output either way.

    Raises
    ------
    CorruptDataError
        A chunk holding wanted rows is missing, fails its checksum or does not decode (the
        message names the store, layer, tensors and models).
    StorageError
        The storage failed (after the guard's retries).
    """
    units, fallback, index_wanted = plan_units(requests)
    if index_wanted:
        fetch_indexes(index_wanted)
        for u in index_wanted:
            plan = u.plan
            index = shard_index(plan, u.request.reader, u.chunk, u.data)
            with plan.lock:
                plan.index_cache[u.chunk] = index
    for req in fallback:
        _read_with_zarr(req)
    batch: list[ChunkUnit] = []
    size = 0
    for f in locate(units):
        batch.append(f)
        size += BATCH_BYTES // 4 if f.stop is None else f.stop - f.start
        if size >= BATCH_BYTES:
            _run(batch, work)
            batch, size = [], 0
    if batch:
        _run(batch, work)


def _run(fetches: list[ChunkUnit], work: Callable[[ChunkUnit], None]) -> None:
    """Fetch a batch, then do ``work`` on every chunk of it in the pool."""
    fetch_batch(fetches)
    units = [u for f in fetches for u in (f.members or [f])]
    size = sum(len(u.data) for u in units if u.data is not None)
    in_pool(work, units, inline=size <= SMALL_BYTES)


def _read_with_zarr(req: Request) -> None:
    """Read rows of an array whose codecs the registry does not decode, through zarr."""
    rows = req.rows
    runs = np.split(np.arange(len(rows)), np.flatnonzero(np.diff(rows) != 1) + 1)
    for run in runs:
        lo, hi = int(rows[run[0]]), int(rows[run[-1]]) + 1
        block = req.reader[slice(lo, hi), slice(None)]
        req.out[req.dest[run], req.cols] = block


def read_block(reader: LayerReader, rows: slice) -> np.ndarray:
    """Rows ``[start, stop)`` of one layer array as a new ``(n, width)`` array."""
    start, stop, _ = rows.indices(reader.shape[0])
    out = np.empty((max(stop - start, 0), reader.shape[1]), dtype=np.float32)
    local = np.arange(start, stop)
    read([Request(reader, local, out, np.arange(len(local)))])
    return out
