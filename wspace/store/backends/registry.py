"""Which backend serves which zarr store, and ``resolve``: URL or store -> backend."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from zarr.abc.store import Store
from zarr.storage import FsspecStore, LocalStore

from wspace.errors import UnsupportedStoreError, WspaceError
from wspace.store.backends.base import Backend, StoreLike, unwrap
from wspace.store.guard import GuardedStore, RetryPolicy

__all__ = ["OtherStoreBackend", "backend_class", "register", "resolve"]

_KINDS: dict[type[Store], type[Backend]] = {}


def register(kind: type[Backend]) -> type[Backend]:
    """Make ``kind`` the backend of its ``store_type`` (and of that type's subclasses that
    have none of their own); usable as a class decorator.

    Examples
    --------
    >>> from zarr.storage import ZipStore
    >>> class ZipBackend(OtherStoreBackend):
    ...     store_type = ZipStore
    >>> _ = register(ZipBackend)
    >>> backend_class(ZipStore("/tmp/never-opened.zip")) is ZipBackend
    True
    >>> del _KINDS[ZipStore]
    """
    _KINDS[kind.store_type] = kind
    return kind


def backend_class(store: Store) -> type[Backend]:
    """The registered backend of the innermost store of ``store``'s wrapper chain."""
    inner, _ = unwrap(store)
    for klass in type(inner).__mro__:
        if klass in _KINDS:
            return _KINDS[klass]
    return OtherStoreBackend


class OtherStoreBackend(Backend):
    """A zarr store of a kind wspace has no backend for: read through zarr; not written,
    since wspace knows no atomic create-if-absent on it."""

    # every zarr store: the fallback (mypy wants a concrete class; the ABC is the point here)
    store_type: ClassVar[type[Store]] = Store  # type: ignore[type-abstract]

    def create_problem(self) -> str | None:
        return (
            f"store {self.url!r}: wspace knows no atomic create-if-absent on a zarr "
            f"{type(self.inner).__name__} (it writes to local directories, file:// and "
            "memory:// URLs, s3://, and zarr MemoryStore); open it read-only"
        )

    def create_if_absent(self, key: str, data: bytes) -> bool:
        self._check_create()
        raise AssertionError("unreachable: _check_create refuses")


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _local_path(url: str) -> Path:
    return Path(url[len("file://") :] if url.startswith("file://") else url).expanduser()


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
        Local path, ``file://`` URL, fsspec URL (``s3://bucket/zoo.zarr``, ``memory://zoo``),
        or a zarr ``Store`` (wrapper stores around these included).
    storage_options
        Passed to fsspec, e.g. ``{"endpoint_url": ..., "key": ..., "secret": ...}`` for S3.
    read_only
        Open without write permission.

    Raises
    ------
    UnsupportedStoreError
        When opening for writing a store whose create-if-absent is not known to be atomic
        (see :mod:`wspace.store.backends.fsspec`); reading it is allowed.
    """
    if isinstance(url, Store):
        store = url.with_read_only(True) if read_only and not url.read_only else url
        name = repr(url._store if isinstance(url, GuardedStore) else url)
        read_only = read_only or url.read_only
    else:
        text = os.fspath(url)
        if _is_local(text):
            if storage_options:
                raise WspaceError(f"storage_options are not used for the local path {text!r}")
            path = _local_path(text)
            store, name = LocalStore(path, read_only=read_only), str(path)
        else:
            options = dict(storage_options or {})
            store = FsspecStore.from_url(text, storage_options=options, read_only=read_only)
            name = text
    policy = store.policy if isinstance(store, GuardedStore) else RetryPolicy.from_env()
    if not isinstance(store, GuardedStore):
        store = GuardedStore(store, url=name, policy=policy)
    backend = backend_class(store)(store, url=name, read_only=read_only, policy=policy)
    problem = None if read_only else backend.create_problem()
    if problem is not None:
        raise UnsupportedStoreError(problem)
    return backend
