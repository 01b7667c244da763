"""Test helpers that watch or damage a store's objects: counted reads, a flipped byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from zarr.storage import WrapperStore

import wspace


class RangeCountingStore(WrapperStore[Any]):
    """Records every read through it: (key, byte range)."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.reads: list[tuple[str, Any]] = []

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        self.reads.append((key, byte_range))
        return await self._store.get(key, prototype, byte_range)

    def weight_reads(self, array: str) -> list[tuple[str, Any]]:
        return [(k, r) for k, r in self.reads if f"/{array}/c/" in k]


def flip_a_byte_of_a_row(url: str, layer: str, row: int, rows: int) -> tuple[str, Path, bytearray]:
    """Flip one byte inside ``row``'s inner chunk of ``layer`` in a compacted local store.

    The store holds ``rows`` rows in one shard of one row per inner chunk (its index: ``rows``
    little-endian uint64 offset/length pairs, then a crc32c). Returns the damaged row's model
    name, the shard's path and its bytes as written (to damage further).
    """
    zoo = wspace.open(url)
    array = zoo._source.readers[layer][0].array
    shard = Path(url, array.path, "c", "0", "0")
    data = bytearray(shard.read_bytes())
    index = np.frombuffer(bytes(data[-(rows * 16 + 4) : -4]), "<u8").reshape(-1, 2)
    offset, length = index[row]
    data[int(offset + length // 2)] ^= 0xFF
    shard.write_bytes(bytes(data))
    return str(zoo.models["model"][row]), shard, data
