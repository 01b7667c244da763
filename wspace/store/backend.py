"""URL -> zarr store, and the few raw object operations the engine needs beyond zarr.

wspace reads and writes chunks through zarr.  The commit log needs three more things from the
storage: whole-object reads, listing, and an **atomic create-if-absent** (the only primitive the
concurrency protocol relies on).  This module provides them for the stores wspace supports:

* local directories (zarr ``LocalStore``): temp file + ``os.link``, which fails if the target
  exists, so the record appears complete or not at all;
* fsspec URLs (zarr ``FsspecStore``): ``pipe_file(..., mode="create")``, which s3fs sends as a
  ``PUT`` with ``If-None-Match: *`` (honoured by AWS S3 and moto); ``memory://`` checks and sets
  under the interpreter lock;
* zarr's ``MemoryStore``; and any zarr ``WrapperStore`` around one of these.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

import zarr
from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import FsspecStore, LocalStore, MemoryStore, WrapperStore

from wspace.errors import ReadOnlyStoreError, WspaceError
from wspace.store.guard import GuardedStore, RetryPolicy, guarded_call, guarded_sync

__all__ = ["Backend", "StoreLike", "resolve"]

StoreLike: TypeAlias = "str | os.PathLike[str] | Store"
"""What every wspace entry point accepts: a path, an fsspec URL, or a zarr store object."""


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _local_path(url: str) -> Path:
    return Path(url[len("file://") :] if url.startswith("file://") else url).expanduser()


@dataclass
class Backend:
    """A resolved store: the zarr store plus the raw operations the commit log needs.

    Parameters
    ----------
    store
        The zarr store holding the wspace group at its root.
    url
        The location as the user gave it, used in error messages.
    read_only
        Whether writes are refused.
    """

    store: Store
    url: str
    read_only: bool = False
    policy: RetryPolicy = field(default_factory=RetryPolicy.from_env)
    """How failed storage calls are retried (see :mod:`wspace.store.guard`)."""

    # -- raw objects -------------------------------------------------------------------------
    def read(self, key: str) -> bytes | None:
        """Whole object at ``key``, or ``None`` when it does not exist."""
        buf = sync(self.store.get(key, prototype=default_buffer_prototype()))
        return None if buf is None else buf.to_bytes()

    def read_many(self, keys: Iterable[str]) -> list[bytes | None]:
        """Objects at ``keys``, fetched concurrently (read one after another from a local
        directory: small files read faster than the event loop hands them over)."""
        keys = list(keys)
        if not keys:
            return []
        root = self.local_root()
        if root is not None:
            return [
                guarded_sync(
                    partial(_read_file, root / k),
                    url=self.url,
                    what="reading",
                    key=k,
                    policy=self.policy,
                )
                for k in keys
            ]
        proto = default_buffer_prototype()

        async def fetch() -> list[Any]:
            return list(await asyncio.gather(*(self.store.get(k, prototype=proto) for k in keys)))

        return [None if b is None else b.to_bytes() for b in sync(fetch())]

    def local_root(self) -> Path | None:
        """The folder of a plain local store, read with plain file calls; ``None`` otherwise
        (wrapped stores go through their wrapper)."""
        store = self.store._store if isinstance(self.store, GuardedStore) else self.store
        return Path(store.root) if type(store) is LocalStore else None

    def write(self, key: str, data: bytes) -> None:
        """Write (or overwrite) the object at ``key``."""
        self.check_writable()
        sync(self.store.set(key, default_buffer_prototype().buffer.from_bytes(data)))

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
        """Keys of every object under ``prefix`` (never cached)."""
        self._forget_listing(prefix)

        async def collect() -> list[str]:
            return [key async for key in self.store.list_prefix(prefix)]

        return sorted(sync(collect()))

    def _forget_listing(self, prefix: str) -> None:
        # fsspec filesystems (s3fs) cache listings; other writers' objects must be seen
        inner = _unwrap(self.store)
        if isinstance(inner, FsspecStore):
            inner.fs.invalidate_cache(f"{inner.path.rstrip('/')}/{prefix}".rstrip("/"))

    def delete_dir(self, prefix: str) -> None:
        """Delete every object under ``prefix``."""
        self.check_writable()
        sync(self.store.delete_dir(prefix))

    def create_if_absent(self, key: str, data: bytes) -> bool:
        """Atomically create ``key`` with ``data``; ``False`` if it already existed.

        The object becomes visible complete or not at all, and of several concurrent callers
        for the same key exactly one gets ``True``.
        """
        self.check_writable()
        return _create_if_absent(self, key, data)

    def size_under(self, prefix: str) -> int:
        """Total bytes stored under ``prefix``."""
        inner = _unwrap(self.store)
        if isinstance(inner, LocalStore):
            root = Path(inner.root) / prefix
            return sum((Path(d) / f).stat().st_size for d, _, files in os.walk(root) for f in files)
        if isinstance(inner, FsspecStore):
            path = f"{inner.path.rstrip('/')}/{prefix}".rstrip("/")
            try:
                return int(sync(inner.fs._du(path, total=True)))
            except FileNotFoundError:
                return 0
        if isinstance(inner, MemoryStore):
            return sum(len(v) for k, v in inner._store_dict.items() if k.startswith(prefix))
        return sum(int(sync(self.store.getsize(k))) for k in self.list_prefix(prefix))

    def temp_files(self, older_than: float) -> dict[str, int]:
        """Temporary ``*.partial`` files left by interrupted writes, last modified before
        ``older_than`` (a Unix time): key -> bytes. Only local directories have them."""
        inner = _unwrap(self.store)
        if not isinstance(inner, LocalStore):
            return {}
        root = Path(inner.root)
        found = {}
        for path in root.rglob("*.partial"):
            stat = path.stat()
            if stat.st_mtime < older_than:
                found[path.relative_to(root).as_posix()] = stat.st_size
        return found

    def delete_temp(self, key: str) -> None:
        """Delete one file found by :meth:`temp_files`."""
        self.check_writable()
        inner = _unwrap(self.store)
        if isinstance(inner, LocalStore) and key.endswith(".partial"):
            (Path(inner.root) / key).unlink(missing_ok=True)

    def check_writable(self) -> None:
        """Raise :class:`ReadOnlyStoreError` if this store is read-only.

        A local directory is also read-only when this process may not write into it (file
        permissions, a read-only mount).
        """
        if self.read_only:
            raise ReadOnlyStoreError(f"store {self.url!r} is open read-only; it refuses writes")
        inner = _unwrap(self.store)
        if isinstance(inner, LocalStore):
            root = Path(inner.root)
            where = root / "_log" if (root / "_log").is_dir() else root
            while not where.exists() and where != where.parent:
                where = where.parent  # a store about to be created: its nearest existing parent
            if not os.access(where, os.W_OK):
                raise ReadOnlyStoreError(
                    f"store {self.url!r} is read-only: this process may not write into {where}"
                )

    # -- zarr nodes --------------------------------------------------------------------------
    def open_array(self, path: str) -> zarr.Array:
        """Open the array at ``path`` (read-only when the backend is)."""
        return zarr.open_array(self.store, path=path, mode="r" if self.read_only else "r+")


def _read_file(path: Path) -> bytes | None:
    """A whole local file; ``None`` when absent (as zarr's ``LocalStore.get``)."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _unwrap(store: Store) -> Store:
    while isinstance(store, WrapperStore):
        store = store._store
    return store


def _create_if_absent(backend: Backend, key: str, data: bytes) -> bool:
    inner = _unwrap(backend.store)
    where: dict[str, Any] = {"url": backend.url, "what": "writing", "key": key}
    where["policy"] = backend.policy
    if isinstance(inner, LocalStore):
        target = Path(inner.root) / key

        def link() -> bool:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
            try:
                tmp.write_bytes(data)
                os.link(tmp, target)  # fails if target exists: atomic create-if-absent
            except FileExistsError:
                return False
            finally:
                tmp.unlink(missing_ok=True)
            return True

        return guarded_sync(link, **where)
    if isinstance(inner, FsspecStore):
        path = f"{inner.path.rstrip('/')}/{key}"
        fs: Any = inner.fs
        sync_fs = getattr(fs, "sync_fs", None)  # a synchronous fs wrapped for zarr (memory://)
        try:
            if sync_fs is not None:
                guarded_sync(lambda: sync_fs.pipe_file(path, data, mode="create"), **where)
            else:
                sync(guarded_call(lambda: fs._pipe_file(path, data, mode="create"), **where))
        except FileExistsError:
            # someone else's record, or ours when a retry follows a lost response:
            # the commit log tells them apart by the record's transaction id
            return False
        return True
    if isinstance(inner, MemoryStore):
        if key in inner._store_dict:
            return False
        inner._store_dict[key] = default_buffer_prototype().buffer.from_bytes(data)
        return True
    raise WspaceError(
        f"store type {type(inner).__name__} offers no atomic create; wspace supports local "
        "directories, fsspec URLs (s3://, gs://, memory://, ...) and zarr's MemoryStore"
    )


def resolve(
    url: StoreLike,
    *,
    storage_options: Mapping[str, Any] | None = None,
    read_only: bool = False,
) -> Backend:
    """Turn a path, fsspec URL or zarr store into a :class:`Backend`.

    Parameters
    ----------
    url
        Local path, ``file://`` URL, any fsspec URL (``s3://bucket/zoo.zarr``,
        ``memory://zoo``), or a zarr ``Store``.
    storage_options
        Passed to fsspec, e.g. ``{"endpoint_url": ..., "key": ..., "secret": ...}`` for S3.
    read_only
        Open without write permission.
    """
    if isinstance(url, Store):
        store = url.with_read_only(True) if read_only and not url.read_only else url
        name = repr(url._store if isinstance(url, GuardedStore) else url)
        return _guarded(store, name, read_only or url.read_only)
    text = os.fspath(url)
    if _is_local(text):
        if storage_options:
            raise WspaceError(f"storage_options are not used for the local path {text!r}")
        path = _local_path(text)
        return _guarded(LocalStore(path, read_only=read_only), str(path), read_only)
    store = FsspecStore.from_url(
        text, storage_options=dict(storage_options or {}), read_only=read_only
    )
    return _guarded(store, text, read_only)


def _guarded(store: Store, url: str, read_only: bool) -> Backend:
    policy = store.policy if isinstance(store, GuardedStore) else RetryPolicy.from_env()
    if not isinstance(store, GuardedStore):
        store = GuardedStore(store, url=url, policy=policy)
    return Backend(store=store, url=url, read_only=read_only, policy=policy)
