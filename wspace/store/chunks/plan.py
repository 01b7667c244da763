"""Planning a direct read: how a layer array is stored, and which chunks hold wanted rows.

Nothing here does I/O: a plan is built from an array's zarr metadata (cached on the array),
and the shard indexes a plan needs are fetched by :mod:`wspace.store.chunks.fetch`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from wspace.store.codecs import ChunkDecoder, chunk_decoder

if TYPE_CHECKING:
    from wspace.store.chunks.layer import LayerReader

__all__ = [
    "EMPTY",
    "WHOLE_SHARD",
    "ArrayPlan",
    "ChunkUnit",
    "Request",
    "locate",
    "object_rows",
    "plan_for",
    "plan_units",
]

EMPTY = 2**64 - 1
"""Offset and length of a chunk absent from its shard (zarr's sharding index)."""
WHOLE_SHARD = 0.5
"""Fetch a whole shard when at least this fraction of its chunks is wanted."""


def object_rows(array: zarr.Array[Any]) -> int:
    """Rows per stored object of a layer array: its shard rows, or its chunk rows."""
    shards = getattr(array, "shards", None)
    return int(shards[0] if shards else array.chunks[0])


@dataclass
class ArrayPlan:
    """How one layer array is stored, as far as reading rows directly needs to know."""

    path: str
    width: int
    chunk_rows: int
    """Rows of the unit a read decodes (an inner chunk of a shard, or a chunk)."""
    shard_rows: int | None
    """Rows per shard; ``None`` when the array has no shards."""
    decoders: ChunkDecoder | None
    """How to decode one chunk (from the codec registry); ``None`` when the chain is not one
    the registry knows (zarr reads the array then)."""
    metadata: Any
    """The array's zarr metadata (it encodes chunk keys)."""
    index_cache: dict[int, np.ndarray] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def key_of(self, index: int) -> str:
        """Store key of the object holding row-unit ``index`` (a shard, or a chunk)."""
        return f"{self.path}/{self.metadata.encode_chunk_key((index, 0))}"

    def __getstate__(self) -> dict[str, Any]:
        # a dask worker gets its own lock and index cache (locks do not pickle)
        state = dict(self.__dict__)
        state["index_cache"], state["lock"] = {}, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, lock=threading.Lock())

    @property
    def chunks_per_shard(self) -> int:
        """Chunks in one shard (1 without shards)."""
        return (self.shard_rows or self.chunk_rows) // self.chunk_rows

    def index_bytes(self) -> int:
        """Size of a shard's index: offset and length per chunk, then a crc32c."""
        return self.chunks_per_shard * 16 + 4

    def shard_span(self, shard: int) -> slice:
        """Rows of shard ``shard`` (for error messages)."""
        rows = self.shard_rows or 0
        return slice(shard * rows, (shard + 1) * rows)


def plan_for(array: zarr.Array[Any]) -> ArrayPlan:
    """The :class:`ArrayPlan` of a 2-D float32 layer array (cached on the array object)."""
    cached = getattr(array, "_wspace_plan", None)
    if isinstance(cached, ArrayPlan):
        return cached
    from zarr.codecs import ShardingCodec

    meta = array.metadata
    codecs = list(getattr(meta, "codecs", ()))
    shard_rows = None
    decoders = None
    if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
        sharding = codecs[0]
        index = [type(c).__name__ for c in sharding.index_codecs]
        if index == ["BytesCodec", "Crc32cCodec"] and sharding.index_location.value == "end":
            decoders = chunk_decoder([c.to_dict() for c in sharding.codecs])
        shard_rows = int(array.shards[0]) if array.shards else None
    elif getattr(meta, "zarr_format", 3) == 3:
        decoders = chunk_decoder([c.to_dict() for c in codecs])
    if np.dtype(array.dtype) != np.float32 or array.ndim != 2:
        decoders = None
    if decoders is not None and decoders.strings:
        decoders = None
    plan = ArrayPlan(
        array.path, int(array.shape[1]), int(array.chunks[0]), shard_rows, decoders, meta
    )
    array._wspace_plan = plan  # type: ignore[attr-defined]
    return plan


@dataclass
class Request:
    """Rows ``rows`` (ascending, array-local) of one layer, written to ``out[dest, cols]``."""

    reader: LayerReader
    rows: np.ndarray
    out: np.ndarray
    dest: np.ndarray
    cols: slice = field(default_factory=lambda: slice(None))


@dataclass
class ChunkUnit:
    """One chunk to fetch and decode (or, with ``members``, a whole shard to fetch), and
    where its wanted rows go."""

    request: Request
    chunk: int
    """Index of the chunk (of the shard, for an index fetch or a whole-shard fetch)."""
    picks: np.ndarray
    """Positions in ``request.rows`` that fall in this chunk."""
    key: str = ""
    start: int = 0
    stop: int | None = None
    """Byte range within the object; ``stop=None``: from ``start`` to the end."""
    data: Any = None
    members: list[ChunkUnit] | None = None
    """A whole-shard fetch: the chunks to cut out of it."""
    absent: bool = False
    """The shard's index says the chunk does not exist."""
    whole: bool = False
    """Fetched with its whole shard."""

    @property
    def plan(self) -> ArrayPlan:
        """The plan of the array this unit reads."""
        return plan_for(self.request.reader.array)

    def corrupt(self, why: str) -> Exception:
        """The error naming the store, layer and models of this unit's rows."""
        rows = self.request.rows[self.picks]
        return self.request.reader.corrupt(slice(int(rows[0]), int(rows[-1]) + 1), why)


def plan_units(
    requests: Sequence[Request],
) -> tuple[list[ChunkUnit], list[Request], list[ChunkUnit]]:
    """Plan the chunks to read for ``requests``.

    Returns
    -------
    units
        One per chunk holding wanted rows, of the requests the registry decodes.
    fallback
        The requests whose arrays zarr must read (a codec chain the registry does not know).
    index_fetches
        Shard indexes to fetch first (not cached yet, and the shard is not fetched whole:
        then its index comes with it); ``chunk`` is the shard, ``start`` the index size.
    """
    units: list[ChunkUnit] = []
    fallback: list[Request] = []
    index_wanted: list[ChunkUnit] = []
    for req in requests:
        if not len(req.rows):
            continue
        plan = plan_for(req.reader.array)
        if plan.decoders is None:
            fallback.append(req)
            continue
        chunks = req.rows // plan.chunk_rows
        bounds = np.flatnonzero(np.diff(chunks)) + 1
        mine = [
            ChunkUnit(req, int(chunks[p[0]]), p) for p in np.split(np.arange(len(req.rows)), bounds)
        ]
        units += mine
        if plan.shard_rows is None:
            continue
        per = plan.chunks_per_shard
        wanted: dict[int, set[int]] = {}
        for u in mine:
            wanted.setdefault(u.chunk // per, set()).add(u.chunk)
        for shard, got in wanted.items():
            whole = len(got) > 1 and len(got) >= WHOLE_SHARD * per
            for u in mine:
                if u.chunk // per == shard:
                    u.whole = whole
            with plan.lock:
                cached = shard in plan.index_cache
            if not whole and not cached:
                index_wanted.append(
                    ChunkUnit(req, shard, np.zeros(0, int), plan.key_of(shard), plan.index_bytes())
                )
    return units, fallback, index_wanted


def locate(units: list[ChunkUnit]) -> list[ChunkUnit]:
    """Set each unit's key and byte range; return the fetches (whole shards are shared).

    The indexes of the shards not fetched whole must be cached (see :func:`plan_units`).
    """
    fetches: list[ChunkUnit] = []
    by_shard: dict[tuple[int, int], list[ChunkUnit]] = {}
    for u in units:
        plan = u.plan
        if plan.shard_rows is None:
            u.key = plan.key_of(u.chunk)
            fetches.append(u)
        else:
            by_shard.setdefault((id(plan), u.chunk // plan.chunks_per_shard), []).append(u)
    for (_, shard), group in by_shard.items():
        plan = group[0].plan
        key = plan.key_of(shard)
        for u in group:
            u.key = key
        if group[0].whole:
            fetch = ChunkUnit(group[0].request, shard, np.zeros(0, int), key, members=group)
            fetches.append(fetch)
            continue
        index = plan.index_cache[shard]
        for u in group:
            offset, length = index[u.chunk % plan.chunks_per_shard]
            if offset == EMPTY:
                u.absent = True  # reported when decoded
            else:
                u.start, u.stop = int(offset), int(offset + length)
        fetches.extend(group)
    return fetches
