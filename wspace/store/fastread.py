"""The direct read path: rows of layer arrays, fetched concurrently and decoded in place.

zarr-python reads a selection through a general codec pipeline whose cost per chunk (task
scheduling, thread hops, a shard's chunks fetched one after the other) dominates when a read
touches many small chunks: reading 190 rows of a sharded layer (1-row chunks) took 0.66 s
through ``get_orthogonal_selection`` and 0.13 s by fetching the same byte ranges and decoding
them directly (same machine, same data). This module is that direct path, for the arrays
wspace writes:

* it plans which stored objects (chunks, or chunks inside shards) hold the wanted rows;
* reads shard indexes once per process (archives never change) and the chunks' bytes —
  with ``os.pread`` for a local store, concurrently through the zarr store's async ``get``
  with byte ranges for any other store (S3, memory, wrappers);
* checks each chunk's crc32c and decompresses it with numcodecs on a thread pool (Blosc and
  Zstandard release the GIL), straight into the output when a chunk is exactly one output row.

It understands the codec chains of :func:`wspace.store.config.codec_chain` (Blosc, Zstandard,
none, BitRound filters; crc32c); for any other chain (PCodec, arrays written elsewhere) it
falls back to zarr for that array. The stored format is plain zarr either way.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import crc32c
import dask.array as da
import numpy as np
import zarr
from zarr.abc.store import RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

if TYPE_CHECKING:
    from wspace.store.reader import LayerReader

__all__ = [
    "ArrayPlan",
    "DirectArray",
    "Request",
    "RowSource",
    "direct_array",
    "object_rows",
    "plan_for",
    "read",
    "read_block",
]

EMPTY = 2**64 - 1
"""Offset and length of a chunk absent from its shard (zarr's sharding index)."""
BATCH_BYTES = 64 << 20
"""Compressed bytes fetched before decoding starts (bounds memory on remote stores)."""
WHOLE_SHARD = 0.5
"""Fetch a whole shard when at least this fraction of its chunks is wanted."""


def object_rows(array: zarr.Array) -> int:
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
    decoders: list[Any] | None
    """numcodecs codecs to undo, last applied first (``"crc32c"`` for a checksum); ``None``
    when the chain is not one this module decodes."""
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


def _decoders(codecs: Sequence[Any]) -> list[Any] | None:
    """numcodecs decoders for a zarr codec chain, or ``None`` if it holds anything else."""
    from numcodecs import Blosc, Zstd
    from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ZstdCodec

    out: list[Any] = []
    seen_bytes = False
    for codec in codecs:
        name = type(codec).__name__
        if isinstance(codec, BytesCodec):
            if codec.endian is not None and codec.endian.value != "little":
                return None
            seen_bytes = True
        elif not seen_bytes:
            if name != "BitRound":  # a lossy filter: nothing to undo on read
                return None
        elif isinstance(codec, Crc32cCodec):
            out.append("crc32c")
        elif isinstance(codec, BloscCodec):
            out.append(Blosc())  # Blosc frames describe themselves
        elif isinstance(codec, ZstdCodec):
            out.append(Zstd())
        else:
            return None
    return out[::-1] if seen_bytes and np.little_endian else None


def plan_for(array: zarr.Array) -> ArrayPlan:
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
            decoders = _decoders(sharding.codecs)
        shard_rows = int(array.shards[0]) if array.shards else None
    elif getattr(meta, "zarr_format", 3) == 3:
        decoders = _decoders(codecs)
    if np.dtype(array.dtype) != np.float32 or array.ndim != 2:
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


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    # one decoding pool per process, created on first use (like zarr's own event loop)
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="wspace-read")
        return _POOL


def _local_root(reader: LayerReader) -> str | None:
    """The folder of a plain local store (read with ``os.pread``); ``None`` for any other."""
    root = reader.backend.local_root()  # pread bypasses the guard and reports its own errors
    return None if root is None else str(root)


@dataclass
class _Unit:
    """One chunk to fetch and decode, and where its wanted rows go."""

    request: Request
    chunk: int
    picks: np.ndarray  # positions in request.rows that fall in this chunk
    key: str = ""
    start: int = 0
    stop: int | None = None  # byte range within the object; None: the whole object
    data: Any = None
    members: list[_Unit] | None = None  # a whole-shard fetch: the chunks to cut out of it
    absent: bool = False  # the shard's index says the chunk does not exist
    whole: bool = False  # fetched with its whole shard


def _fail(unit: _Unit, why: str) -> Exception:
    rows = unit.request.rows[unit.picks]
    return unit.request.reader._fail(slice(int(rows[0]), int(rows[-1]) + 1), why)


def _shard_index(plan: ArrayPlan, reader: LayerReader, shard: int, raw: Any) -> np.ndarray:
    if raw is None:
        raise reader._fail(
            slice(shard * (plan.shard_rows or 0), (shard + 1) * (plan.shard_rows or 0)),
            f"shard {plan.key_of(shard)} is missing",
        )
    body, check = raw[:-4], int.from_bytes(bytes(raw[-4:]), "little")
    if crc32c.crc32c(body) != check:
        raise reader._fail(
            slice(shard * (plan.shard_rows or 0), (shard + 1) * (plan.shard_rows or 0)),
            f"the index of shard {plan.key_of(shard)} fails its checksum",
        )
    # a copy: the index is cached per array, and a view would keep the whole fetched shard
    # (tens of MB) alive for as long as the zoo is open
    return np.frombuffer(body, dtype="<u8").reshape(-1, 2).copy()


def _fetch(items: list[tuple[Any, str, int, int | None, bool]]) -> list[bytes | None]:
    """Fetch ``(backend, key, start, stop, suffix)`` byte ranges concurrently."""
    proto = default_buffer_prototype()

    async def one(backend: Any, key: str, start: int, stop: int | None, suffix: bool) -> Any:
        if suffix:
            rng: Any = SuffixByteRequest(start)
        elif stop is None:
            rng = None
        else:
            rng = RangeByteRequest(start, stop)
        return await backend.store.get(key, prototype=proto, byte_range=rng)

    async def all_() -> list[Any]:
        return list(await asyncio.gather(*(one(*item) for item in items)))

    return [None if b is None else b.to_bytes() for b in sync(all_())]


def _read_local(root: str, key: str, start: int, stop: int | None, suffix: bool) -> bytes | None:
    try:
        with open(os.path.join(root, key), "rb") as f:
            if suffix:
                f.seek(-start, os.SEEK_END)
                return f.read()
            if stop is None:
                return f.read()
            return os.pread(f.fileno(), stop - start, start)
    except FileNotFoundError:
        return None


def _get_indexes(units: list[_Unit]) -> None:
    """Fetch shard indexes (the last bytes of each shard) into ``unit.data``."""
    local = [u for u in units if _local_root(u.request.reader) is not None]
    remote = [u for u in units if _local_root(u.request.reader) is None]
    if remote:
        got = _fetch([(u.request.reader.backend, u.key, u.start, None, True) for u in remote])
        for u, data in zip(remote, got, strict=True):
            u.data = data

    def go(u: _Unit) -> None:
        root = _local_root(u.request.reader)
        assert root is not None
        u.data = _read_local(root, u.key, u.start, None, True)

    list(_pool().map(go, local))


def _decode(plan: ArrayPlan, data: Any, out: np.ndarray | None) -> np.ndarray:
    """Undo the codec chain of one chunk; into ``out`` (contiguous, chunk-sized) if given."""
    buf = memoryview(data)
    assert plan.decoders is not None
    last = len(plan.decoders) - 1
    for i, codec in enumerate(plan.decoders):
        if codec == "crc32c":
            if crc32c.crc32c(buf[:-4]) != int.from_bytes(buf[-4:], "little"):
                raise ValueError("chunk fails its crc32c checksum")
            buf = buf[:-4]
        elif i == last and out is not None:
            codec.decode(buf, out=out)
            return out
        else:
            buf = memoryview(codec.decode(buf))
    array = np.frombuffer(buf, dtype="<f4")
    if out is not None:
        out.reshape(-1)[...] = array
        return out
    return array


def _finish(unit: _Unit) -> None:
    """Decode one fetched chunk and scatter its wanted rows to the output."""
    req, plan = unit.request, plan_for(unit.request.reader.array)
    if unit.data is None:
        raise _fail(unit, f"chunk {unit.key} is missing")
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
    try:
        block = _decode(plan, unit.data, direct)
    except Exception as exc:  # codec errors: truncated, garbage, checksum
        raise _fail(unit, f"{type(exc).__name__}: {exc}") from exc
    if direct is None:
        block = block.reshape(plan.chunk_rows, plan.width)
        req.out[dest, req.cols] = block[rows - first]
    unit.data = None


def _plan_units(requests: Sequence[Request]) -> tuple[list[_Unit], list[Request]]:
    """Chunks to fetch for the requests this module decodes, and the requests it does not.

    Shard indexes not cached yet are fetched here, except for shards that will be fetched
    whole (their index comes with them).
    """
    units: list[_Unit] = []
    fallback: list[Request] = []
    index_wanted: list[_Unit] = []
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
            _Unit(req, int(chunks[p[0]]), p) for p in np.split(np.arange(len(req.rows)), bounds)
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
                    _Unit(req, shard, np.zeros(0, int), plan.key_of(shard), plan.index_bytes())
                )
    if index_wanted:
        _get_indexes(index_wanted)
        for u in index_wanted:
            plan = plan_for(u.request.reader.array)
            index = _shard_index(plan, u.request.reader, u.chunk, u.data)
            with plan.lock:
                plan.index_cache[u.chunk] = index
    return units, fallback


def _locate(units: list[_Unit]) -> list[_Unit]:
    """Set each unit's key and byte range; return the fetches (whole shards are shared)."""
    fetches: list[_Unit] = []
    by_shard: dict[tuple[int, int], list[_Unit]] = {}
    for u in units:
        plan = plan_for(u.request.reader.array)
        if plan.shard_rows is None:
            u.key = plan.key_of(u.chunk)
            fetches.append(u)
        else:
            by_shard.setdefault((id(plan), u.chunk // plan.chunks_per_shard), []).append(u)
    for (_, shard), group in by_shard.items():
        plan = plan_for(group[0].request.reader.array)
        key = plan.key_of(shard)
        for u in group:
            u.key = key
        if group[0].whole:
            fetch = _Unit(group[0].request, shard, np.zeros(0, int), key, members=group)
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


def read(requests: Sequence[Request]) -> None:
    """Read every request's rows into its output."""
    units, fallback = _plan_units(requests)
    for req in fallback:
        _read_with_zarr(req)
    batch: list[_Unit] = []
    size = 0
    for f in _locate(units):
        batch.append(f)
        size += BATCH_BYTES // 4 if f.stop is None else f.stop - f.start
        if size >= BATCH_BYTES:
            _run(batch)
            batch, size = [], 0
    if batch:
        _run(batch)


def _run(fetches: list[_Unit]) -> None:
    """Fetch a batch (remote: concurrently through zarr's store; local: in the pool), then
    decode every chunk of it in the pool."""
    remote = [f for f in fetches if not f.absent and _local_root(f.request.reader) is None]
    if remote:
        got = _fetch([(f.request.reader.backend, f.key, f.start, f.stop, False) for f in remote])
        for f, data in zip(remote, got, strict=True):
            _deliver(f, data)
    by_file: dict[str, list[_Unit]] = {}
    for f in fetches:
        root = None if f.absent else _local_root(f.request.reader)
        if root is not None:
            by_file.setdefault(os.path.join(root, f.key), []).append(f)

    def fetch(path: str) -> None:  # one open per object, one pread per run of ranges
        group = by_file[path]
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            for f in group:
                _deliver(f, None)
            return
        try:
            for run in _runs(group):
                first, last = run[0].start, run[-1].stop
                if last is None:
                    data = os.pread(fd, os.fstat(fd).st_size, 0)
                    _deliver(run[0], data)
                    continue
                data = os.pread(fd, last - first, first)
                view = memoryview(data)
                for f in run:
                    assert f.stop is not None
                    _deliver(f, view[f.start - first : f.stop - first])
        finally:
            os.close(fd)

    _in_pool(fetch, list(by_file))
    _in_pool(_finish, [u for f in fetches for u in (f.members or [f])])


def _runs(group: list[_Unit]) -> list[list[_Unit]]:
    """Byte ranges of one object in order, adjacent ones joined into one read."""
    ordered = sorted(group, key=lambda f: f.start)
    runs: list[list[_Unit]] = []
    for f in ordered:
        last = runs[-1][-1] if runs else None
        if last is not None and f.stop is not None and last.stop == f.start:
            runs[-1].append(f)
        else:
            runs.append([f])
    return runs


def _in_pool(work: Callable[[Any], None], units: list[Any]) -> None:
    """Run ``work`` on every unit in the pool, a few runs of units per thread (fewer futures
    than one per chunk)."""
    if not units:
        return
    n = max(1, min(len(units), 4 * (os.cpu_count() or 2)))

    def run(group: list[_Unit]) -> None:
        for unit in group:
            work(unit)

    list(_pool().map(run, [units[k::n] for k in range(n)]))


def _deliver(fetch: _Unit, data: bytes | memoryview | None) -> None:
    """Hand fetched bytes to the unit, or cut a whole shard into its chunks."""
    if fetch.members is None:
        fetch.data = None if fetch.absent else data
        return
    if data is None:
        for u in fetch.members:
            u.data = None
        return
    plan = plan_for(fetch.request.reader.array)
    view = memoryview(data)
    index = _shard_index(plan, fetch.request.reader, fetch.chunk, view[-plan.index_bytes() :])
    with plan.lock:
        plan.index_cache[fetch.chunk] = index
    for u in fetch.members:
        offset, length = index[u.chunk % plan.chunks_per_shard]
        u.data = None if offset == EMPTY else view[int(offset) : int(offset + length)]


def _read_with_zarr(req: Request) -> None:
    """Read rows of an array whose codecs this module does not decode, through zarr."""
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


@dataclass
class RowSource:
    """Where every visible row of an architecture group lives, for direct reads.

    ``piece[i]`` and ``row[i]`` are the piece (a run of one segment) holding visible row ``i``
    and its row in that segment's arrays; ``readers[layer][piece]`` reads them.
    """

    readers: dict[str, list[LayerReader]]
    piece: np.ndarray
    row: np.ndarray

    def read(
        self,
        positions: np.ndarray,
        layers: Sequence[str],
        out: np.ndarray,
        columns: Sequence[slice],
    ) -> None:
        """Rows ``positions`` of ``layers`` into ``out[k, columns[j]]`` (``k``: position)."""
        positions = np.asarray(positions, dtype=np.int64)
        pieces = self.piece[positions]
        local = self.row[positions]
        requests = []
        found = np.unique(pieces).tolist()
        for p in found:
            dest = np.flatnonzero(pieces == p) if len(found) > 1 else np.arange(len(positions))
            rows = local[dest]
            if len(rows) > 1 and np.any(rows[1:] < rows[:-1]):
                order = np.argsort(rows, kind="stable")
                rows, dest = rows[order], dest[order]
            for layer, cols in zip(layers, columns, strict=True):
                requests.append(Request(self.readers[layer][p], rows, out, dest, cols))
        read(requests)


class DirectArray(da.Array):
    """A Dask array that, converted to numpy, reads its rows directly instead of computing.

    Everything else — slicing, arithmetic, ``dask.compute`` — is plain Dask (and returns
    plain Dask arrays).
    """

    _wspace_read: Callable[[], np.ndarray]

    def __array__(self, dtype: Any = None, copy: Any = None, **kwargs: Any) -> np.ndarray:
        out = self._wspace_read()
        return out if dtype is None else out.astype(dtype, copy=False)


def direct_array(data: da.Array, read: Callable[[], np.ndarray]) -> da.Array:
    """``data`` (same graph) whose numpy conversion calls ``read()``."""
    out = DirectArray(data.dask, data.name, data.chunks, meta=data._meta)
    out._wspace_read = read
    return out
