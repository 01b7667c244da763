"""The contract every storage backend fulfils, and the code all of them share.

wspace reads and writes chunks through zarr. The commit log needs a few more things from the
storage: whole-object reads, byte ranges of one object, listings that are never stale, and an
**atomic create-if-absent** (the only primitive the concurrency protocol relies on). A
:class:`Backend` offers them over one zarr store. Everything here goes through that store —
the :class:`~wspace.store.guard.GuardedStore` around the user's store and whatever wrapper
stores it holds — so a wrapper is never bypassed; a subclass overrides a method only where
its store kind does better (plain file calls on a local directory, a conditional PUT on S3).
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

import zarr
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import WrapperStore

from wspace.errors import ReadOnlyStoreError, UnsupportedStoreError
from wspace.store.guard import GuardedStore, RetryPolicy

__all__ = ["Backend", "StoreLike", "unwrap"]

StoreLike: TypeAlias = "str | os.PathLike[str] | Store"
"""What every wspace entry point accepts: a path, an fsspec URL, or a zarr store object."""


def unwrap(store: Store) -> tuple[Store, list[Store]]:
    """The innermost store of a chain of zarr wrapper stores, and the wrappers around it
    other than wspace's own :class:`GuardedStore` (outermost first)."""
    foreign: list[Store] = []
    while isinstance(store, WrapperStore):
        if not isinstance(store, GuardedStore):
            foreign.append(store)
        # zarr offers no public accessor for the store a WrapperStore wraps
        store = store._store
    return store, foreign


class Backend(ABC):
    """A resolved store: the zarr store plus the raw operations the commit log needs.

    A subclass serves one kind of zarr store (:attr:`store_type`) and is registered with
    :func:`wspace.store.backends.register`; :func:`wspace.store.backends.resolve` picks it
    by the innermost store of the chain.

    Parameters
    ----------
    store
        The zarr store holding the wspace group at its root (a :class:`GuardedStore`).
    url
        The location as the user gave it, used in error messages.
    read_only
        Whether writes are refused.
    policy
        How failed storage calls are retried (see :mod:`wspace.store.guard`).

    Attributes
    ----------
    inner
        The innermost store of the chain (of this backend's ``store_type``).
    wrappers
        The zarr wrapper stores between ``store`` and ``inner`` other than wspace's own
        guard, outermost first; every call goes through them.
    """

    store_type: ClassVar[type[Store]]
    """The zarr store class (innermost in a chain of wrappers) this backend serves."""

    def __init__(
        self,
        store: Store,
        *,
        url: str,
        read_only: bool = False,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.store = store
        self.url = url
        self.read_only = read_only
        self.policy = policy or RetryPolicy.from_env()
        self.inner, self.wrappers = unwrap(store)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, read_only={self.read_only})"

    # -- the one primitive each kind provides ------------------------------------------------
    @abstractmethod
    def create_if_absent(self, key: str, data: bytes) -> bool:
        """Atomically create ``key`` with ``data``; ``False`` if it already existed.

        The object becomes visible complete or not at all, and of several concurrent callers
        (threads, processes, machines) creating the same key with different data exactly
        one gets ``True``.
        """

    def create_problem(self) -> str | None:
        """Why :meth:`create_if_absent` is not known to be atomic on this store, or ``None``.

        :func:`~wspace.store.backends.resolve` refuses to open such a store for writing.
        """
        return None

    def _check_create(self) -> None:
        self.check_writable()
        problem = self.create_problem()
        if problem is not None:
            raise UnsupportedStoreError(problem)

    # -- reads ---------------------------------------------------------------------------------
    def read(self, key: str) -> bytes | None:
        """Whole object at ``key``, or ``None`` when it does not exist."""
        buf = sync(self.store.get(key, prototype=default_buffer_prototype()))
        return None if buf is None else buf.to_bytes()

    def read_many(self, keys: Iterable[str]) -> list[bytes | None]:
        """Objects at ``keys`` (``None`` for a missing one), fetched concurrently."""
        keys = list(keys)
        if not keys:
            return []
        proto = default_buffer_prototype()

        async def fetch() -> list[Any]:
            return list(await asyncio.gather(*(self.store.get(k, prototype=proto) for k in keys)))

        return [None if b is None else b.to_bytes() for b in sync(fetch())]

    def read_ranges(self, key: str, ranges: Sequence[ByteRequest | None]) -> list[bytes] | None:
        """Byte ranges of the object at ``key``, fetched concurrently; ``None`` when it does
        not exist.

        Parameters
        ----------
        key
            The object.
        ranges
            zarr byte requests: ``RangeByteRequest(start, end)`` (end exclusive),
            ``OffsetByteRequest(offset)``, ``SuffixByteRequest(n)`` (the last ``n`` bytes),
            or ``None`` for the whole object. A range past the end is cut short, as zarr does.
        """
        if not ranges:
            return []
        proto = default_buffer_prototype()

        async def fetch() -> list[Any]:
            gets = (self.store.get(key, prototype=proto, byte_range=r) for r in ranges)
            return list(await asyncio.gather(*gets))

        got = sync(fetch())
        if any(b is None for b in got):
            return None
        return [b.to_bytes() for b in got]

    def exists(self, key: str) -> bool:
        """Whether an object exists at ``key``."""
        return bool(sync(self.store.exists(key)))

    def list_dir(self, prefix: str) -> list[str]:
        """Names (not paths) of the direct children of ``prefix``, sorted (never cached)."""
        self._forget_listing(prefix)

        async def collect() -> list[str]:
            return [name async for name in self.store.list_dir(prefix)]

        return sorted(sync(collect()))

    def list_prefix(self, prefix: str) -> list[str]:
        """Keys of every object under ``prefix``, sorted (never cached)."""
        self._forget_listing(prefix)

        async def collect() -> list[str]:
            return [key async for key in self.store.list_prefix(prefix)]

        return sorted(sync(collect()))

    def _forget_listing(self, prefix: str) -> None:  # noqa: B027 (a hook; most cache nothing)
        """Drop listings the store cached under ``prefix`` (other writers' objects must be
        seen); nothing to do for stores that do not cache."""

    def size_under(self, prefix: str) -> int:
        """Total bytes stored under ``prefix`` (a folder: ``s`` does not count ``sx``)."""
        below = f"{prefix.rstrip('/')}/" if prefix else ""
        return sum(int(sync(self.store.getsize(k))) for k in self.list_prefix(below))

    def local_root(self) -> Path | None:
        """The folder of a plain local store, which may be read with plain file calls
        (``os.pread``); ``None`` for any other store, and for a local one behind a wrapper
        store (which must see every read)."""
        return None

    # -- writes --------------------------------------------------------------------------------
    def write(self, key: str, data: bytes) -> None:
        """Write (or overwrite) the whole object at ``key``; readers see the old object or
        the new one, never a part (zarr stores write a temporary file and rename it, or PUT
        an object whole)."""
        self.check_writable()
        sync(self.store.set(key, default_buffer_prototype().buffer.from_bytes(data)))

    def delete(self, key: str) -> None:
        """Delete the object at ``key`` (nothing happens when it does not exist)."""
        self.check_writable()
        sync(self.store.delete(key))

    def delete_dir(self, prefix: str) -> None:
        """Delete every object under ``prefix``."""
        self.check_writable()
        sync(self.store.delete_dir(prefix))

    def temp_files(self, older_than: float) -> dict[str, int]:
        """Temporary files left by interrupted writes, last modified before ``older_than``
        (a Unix time): key -> bytes. Only local directories have them."""
        return {}

    def delete_temp(self, key: str) -> None:
        """Delete one file found by :meth:`temp_files` (a store without them: nothing)."""
        self.check_writable()

    def check_writable(self) -> None:
        """Raise :class:`~wspace.errors.ReadOnlyStoreError` if this store is read-only."""
        if self.read_only:
            raise ReadOnlyStoreError(f"store {self.url!r} is open read-only; it refuses writes")

    # -- zarr nodes ----------------------------------------------------------------------------
    def open_array(self, path: str) -> zarr.Array[Any]:
        """Open the array at ``path`` (read-only when the backend is)."""
        return zarr.open_array(self.store, path=path, mode="r" if self.read_only else "r+")
