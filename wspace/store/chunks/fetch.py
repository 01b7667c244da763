"""Fetching chunk bytes: ``os.pread`` for a plain local store, ranged ``get`` elsewhere.

A local store is read with one open per object and one ``pread`` per run of adjacent byte
ranges, on the decoding thread pool; any other store (S3, memory, wrappers) concurrently
through the zarr store's async ``get`` with byte ranges.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from zarr.abc.store import RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from wspace.store.chunks.decode import shard_index
from wspace.store.chunks.plan import EMPTY, ChunkUnit

__all__ = [
    "SMALL_BYTES",
    "deliver",
    "fetch_batch",
    "fetch_indexes",
    "in_pool",
    "local_root",
    "pool",
]

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """The process's fetch-and-decode thread pool, created on first use (like zarr's own
    event loop)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="wspace-read")
        return _POOL


SMALL_BYTES = 1 << 20
"""Work on at most this many bytes (decoding chunks, reading a few local files) is done in
the calling thread: handing it to the pool costs more than it saves. In a fresh process the
pool's first use starts its threads — 2-3 ms of the ~8 ms of ``sel(cls=...).layer(l).values``
on the 2,000-row benchmark zoo, which decodes 6 chunks of ~100 KB."""
SMALL_FILES = 8
"""At most this many local objects of known total size under :data:`SMALL_BYTES` are read
in the calling thread."""


def in_pool(work: Callable[[Any], None], units: list[Any], *, inline: bool = False) -> None:
    """Run ``work`` on every unit in the pool, a few runs of units per thread (fewer futures
    than one per chunk); with ``inline``, in the calling thread."""
    if not units:
        return
    if inline or len(units) == 1:
        for unit in units:
            work(unit)
        return
    n = max(1, min(len(units), 4 * (os.cpu_count() or 2)))

    def run(group: list[Any]) -> None:
        for unit in group:
            work(unit)

    list(pool().map(run, [units[k::n] for k in range(n)]))


def local_root(unit: ChunkUnit) -> str | None:
    """The folder of a plain local store (read with ``os.pread``); ``None`` for any other."""
    root = unit.request.reader.backend.local_root()  # pread bypasses the guard: own errors
    return None if root is None else str(root)


def _fetch_ranges(items: list[tuple[Any, str, int, int | None, bool]]) -> list[bytes | None]:
    """Fetch ``(backend, key, start, stop, suffix)`` byte ranges concurrently.

    One ``asyncio.gather`` over ranges of many objects: ``Backend.read_ranges`` takes one
    object, and calling it per object would wait for each object in turn (on S3 one round
    trip per chunk instead of one for the batch).
    """
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


def _read_suffix(root: str, key: str, size: int) -> bytes | None:
    """The last ``size`` bytes of a local object (``None``: it does not exist)."""
    try:
        with open(os.path.join(root, key), "rb") as f:
            f.seek(-size, os.SEEK_END)
            return f.read()
    except FileNotFoundError:
        return None


def fetch_indexes(units: list[ChunkUnit]) -> None:
    """Fetch shard indexes (the last ``unit.start`` bytes of each shard) into ``unit.data``."""
    local = [u for u in units if local_root(u) is not None]
    remote = [u for u in units if local_root(u) is None]
    if remote:
        got = _fetch_ranges(
            [(u.request.reader.backend, u.key, u.start, None, True) for u in remote]
        )
        for u, data in zip(remote, got, strict=True):
            u.data = data

    def go(u: ChunkUnit) -> None:
        root = local_root(u)
        assert root is not None
        u.data = _read_suffix(root, u.key, u.start)

    in_pool(go, local, inline=len(local) <= SMALL_FILES)  # an index is a few KB


def fetch_batch(fetches: list[ChunkUnit]) -> None:
    """Fetch a batch into its units (remote: concurrently through zarr's store; local: in
    the pool); whole shards are cut into their chunks."""
    remote = [f for f in fetches if not f.absent and local_root(f) is None]
    if remote:
        got = _fetch_ranges(
            [(f.request.reader.backend, f.key, f.start, f.stop, False) for f in remote]
        )
        for f, data in zip(remote, got, strict=True):
            deliver(f, data)
    by_file: dict[str, list[ChunkUnit]] = {}
    for f in fetches:
        root = None if f.absent else local_root(f)
        if root is not None:
            by_file.setdefault(os.path.join(root, f.key), []).append(f)

    def fetch(path: str) -> None:  # one open per object, one pread per run of ranges
        group = by_file[path]
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            for f in group:
                deliver(f, None)
            return
        try:
            for run in _runs(group):
                first, last = run[0].start, run[-1].stop
                if last is None:
                    data = os.pread(fd, os.fstat(fd).st_size, 0)
                    deliver(run[0], data)
                    continue
                data = os.pread(fd, last - first, first)
                view = memoryview(data)
                for f in run:
                    assert f.stop is not None
                    deliver(f, view[f.start - first : f.stop - first])
        finally:
            os.close(fd)

    known = sum(
        SMALL_BYTES if f.stop is None else f.stop - f.start for g in by_file.values() for f in g
    )
    in_pool(fetch, list(by_file), inline=len(by_file) <= SMALL_FILES and known <= SMALL_BYTES)


def _runs(group: list[ChunkUnit]) -> list[list[ChunkUnit]]:
    """Byte ranges of one object in order, adjacent ones joined into one read."""
    ordered = sorted(group, key=lambda f: f.start)
    runs: list[list[ChunkUnit]] = []
    for f in ordered:
        last = runs[-1][-1] if runs else None
        if last is not None and f.stop is not None and last.stop == f.start:
            runs[-1].append(f)
        else:
            runs.append([f])
    return runs


def deliver(fetch: ChunkUnit, data: bytes | memoryview | None) -> None:
    """Hand fetched bytes to the unit, or cut a whole shard into its chunks."""
    if fetch.members is None:
        fetch.data = None if fetch.absent else data
        return
    if data is None:
        for u in fetch.members:
            u.data = None
        return
    plan = fetch.plan
    view = memoryview(data)
    index = shard_index(plan, fetch.request.reader, fetch.chunk, view[-plan.index_bytes() :])
    with plan.lock:
        plan.index_cache[fetch.chunk] = index
    for u in fetch.members:
        offset, length = index[u.chunk % plan.chunks_per_shard]
        u.data = None if offset == EMPTY else view[int(offset) : int(offset + length)]
