"""Decoding fetched chunks: checksums, the registry's decoders, rows scattered to the output.

Chunks are decoded with numcodecs on a thread pool (Blosc and Zstandard release the GIL),
straight into the output when a chunk is exactly the output rows it fills.
"""

from __future__ import annotations

from typing import Any

import crc32c
import numpy as np

from wspace.store.chunks.layer import LayerReader
from wspace.store.chunks.plan import ArrayPlan, ChunkUnit

__all__ = ["finish", "shard_index"]


def shard_index(plan: ArrayPlan, reader: LayerReader, shard: int, raw: Any) -> np.ndarray:
    """The ``(chunks, 2)`` offsets and lengths of a shard's chunks from its index bytes.

    Raises
    ------
    CorruptDataError
        The shard is missing (``raw`` is ``None``) or its index fails its crc32c.
    """
    if raw is None:
        raise reader.corrupt(plan.shard_span(shard), f"shard {plan.key_of(shard)} is missing")
    body, check = raw[:-4], int.from_bytes(bytes(raw[-4:]), "little")
    if crc32c.crc32c(body) != check:
        raise reader.corrupt(
            plan.shard_span(shard), f"the index of shard {plan.key_of(shard)} fails its checksum"
        )
    # a copy: the index is cached per array, and a view would keep the whole fetched shard
    # (tens of MB) alive for as long as the zoo is open
    return np.frombuffer(body, dtype="<u8").reshape(-1, 2).copy()


def finish(unit: ChunkUnit) -> None:
    """Decode one fetched chunk and scatter its wanted rows to the output.

    Raises
    ------
    CorruptDataError
        The chunk is missing, fails its checksum, or does not decode.
    """
    req, plan = unit.request, unit.plan
    if unit.data is None:
        raise unit.corrupt(f"chunk {unit.key} is missing")
    rows = req.rows[unit.picks]
    first = unit.chunk * plan.chunk_rows
    dest = req.dest[unit.picks]
    direct = None
    if plan.chunk_rows == 1 and len(rows) == 1:
        direct = req.out[dest[0], req.cols]
    elif (
        len(rows) == plan.chunk_rows
        and rows[-1] - rows[0] == len(rows) - 1
        and req.cols == slice(None)
        and req.out.shape[1:] == (plan.width,)
        and dest[-1] - dest[0] == len(rows) - 1
    ):
        direct = req.out[dest[0] : dest[0] + len(rows)]
    if direct is not None and not direct.flags.c_contiguous:
        direct = None
    assert plan.decoders is not None
    try:
        block = plan.decoders.decode(unit.data, "<f4", direct)
        if direct is None:
            block = block.reshape(plan.chunk_rows, plan.width)
    except Exception as exc:  # codec errors: truncated, garbage, checksum; a wrong size
        raise unit.corrupt(f"{type(exc).__name__}: {exc}") from exc
    if direct is None:
        req.out[dest, req.cols] = block[rows - first]
    unit.data = None
