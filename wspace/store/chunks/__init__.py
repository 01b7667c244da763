"""Chunk reads of layer arrays: the direct read path, and the zarr-backed layer reader.

zarr-python reads a selection through a general codec pipeline whose cost per chunk (task
scheduling, thread hops, a shard's chunks fetched one after the other) dominates when a read
touches many small chunks: reading 190 rows of a sharded layer (1-row chunks) took 0.66 s
through ``get_orthogonal_selection`` and 0.13 s by fetching the same byte ranges and decoding
them directly (same machine, same data). This package is that direct path, for the arrays
wspace writes:

* :mod:`~wspace.store.chunks.plan` plans which stored objects (chunks, or chunks inside
  shards) hold the wanted rows;
* :mod:`~wspace.store.chunks.fetch` reads shard indexes once per process (archives never
  change) and the chunks' bytes — with ``os.pread`` for a local store, concurrently through
  the zarr store's async ``get`` with byte ranges for any other store (S3, memory, wrappers);
* :mod:`~wspace.store.chunks.decode` checks each chunk's crc32c and decompresses it with
  numcodecs on a thread pool (Blosc and Zstandard release the GIL), straight into the output
  when a chunk is exactly one output row;
* :mod:`~wspace.store.chunks.read` runs the three in batches, and
  :mod:`~wspace.store.chunks.rows` maps an architecture group's visible rows to them.

It decodes the codec chains of the registry (:mod:`wspace.store.codecs`: Blosc, Zstandard,
none, BitRound filters; crc32c); for any other chain (PCodec, arrays written elsewhere) it
falls back to zarr for that array (:class:`~wspace.store.chunks.layer.LayerReader`). The
stored format is plain zarr either way.
"""

from __future__ import annotations

from wspace.store.chunks.layer import LayerReader, open_arrays
from wspace.store.chunks.plan import ArrayPlan, Request, object_rows, plan_for
from wspace.store.chunks.read import read, read_block
from wspace.store.chunks.rows import RowSource, piece_row_names, row_source

__all__ = [
    "ArrayPlan",
    "LayerReader",
    "Request",
    "RowSource",
    "object_rows",
    "open_arrays",
    "piece_row_names",
    "plan_for",
    "read",
    "read_block",
    "row_source",
]
