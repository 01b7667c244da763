"""fsspec URLs (zarr ``FsspecStore``): create with ``pipe_file(..., mode="create")``.

The create goes to the store's own filesystem — the outermost fsspec filesystem, wrappers
such as ``DirFileSystem`` included — so no wrapper is bypassed. Whether it is atomic depends
on the filesystem at the bottom of the chain and on each wrapper above it; wspace writes
only where it has tested that it is (:data:`ATOMIC_CREATE`), and refuses to open any other
fsspec store for writing (:func:`create_verdict`). Reading is allowed on every protocol.

What was tested (``tests/test_backend_conformance.py``):

* ``s3`` (s3fs): a ``PUT`` with ``If-None-Match: *``, honoured by AWS S3 and moto — atomic;
* ``memory``: the filesystem lives in this process; fsspec checks, then sets, and wspace
  makes that atomic with a lock of this process;
* ``DirFileSystem``: forwards ``pipe_file`` and its ``mode`` unchanged — as atomic as the
  filesystem it wraps;
* ``file`` / ``local`` through fsspec: ``LocalFileSystem`` checks whether the file exists,
  then writes it — two writers both "create" it, and a reader can see it half-written (a plain
  path or ``file://`` URL is served by :mod:`wspace.store.backends.local` instead);
* ``blockcache`` / ``filecache`` / ``simplecache``: the caching wrappers check then write,
  and ``simplecache`` drops ``mode="create"`` and overwrites.

A protocol wspace has not tested (``gs``, ``abfs``, ...) can be vouched for with the
environment variable ``WSPACE_ATOMIC_CREATE`` (comma-separated protocol names) by a user who
knows its ``pipe_file(mode="create")`` is an atomic conditional write.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, ClassVar

from fsspec import AbstractFileSystem
from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper
from fsspec.implementations.cached import CachingFileSystem
from fsspec.implementations.dirfs import DirFileSystem
from zarr.abc.store import Store
from zarr.core.sync import sync
from zarr.storage import FsspecStore

from wspace.store.backends.base import Backend
from wspace.store.guard import guarded_call

__all__ = ["ATOMIC_CREATE", "TRUST_ENV", "FsspecBackend", "create_verdict", "layers"]

ATOMIC_CREATE: dict[str, str] = {
    "s3": "a PUT with If-None-Match: * (tested on moto)",
    "s3a": "a PUT with If-None-Match: * (tested on moto)",
    "memory": "checked and set under a lock of this process",
}
"""fsspec protocols whose ``pipe_file(mode="create")`` wspace has tested to be atomic."""

NOT_ATOMIC: dict[str, str] = {
    "file": (
        "fsspec's LocalFileSystem checks whether the file exists, then writes it (two writers "
        "can both create it); give a plain path or file:// URL instead"
    ),
    "local": (
        "fsspec's LocalFileSystem checks whether the file exists, then writes it (two writers "
        "can both create it); give a plain path or file:// URL instead"
    ),
}
"""fsspec protocols tested and found to check, then write (not honoured by the variable)."""

IN_PROCESS = frozenset({"memory"})
"""Protocols whose filesystem lives in this process: creates hold :data:`_CREATE_LOCK`."""

TRUST_ENV = "WSPACE_ATOMIC_CREATE"
"""Environment variable: comma-separated protocols the user vouches are atomic."""

_CREATE_LOCK = threading.Lock()


def _protocol(fs: Any) -> str:
    protocol = fs.protocol
    return str(protocol if isinstance(protocol, str) else protocol[0])


def _trusted() -> set[str]:
    return {p.strip().lower() for p in os.environ.get(TRUST_ENV, "").split(",") if p.strip()}


def layers(fs: AbstractFileSystem) -> list[AbstractFileSystem]:
    """The filesystems of a chain, outermost first: wrappers that wspace knows how to look
    through (``DirFileSystem``, caching filesystems), down to the one that stores. zarr's
    ``AsyncFileSystemWrapper`` (which forwards every call and argument) is left out."""
    found: list[AbstractFileSystem] = []
    layer: Any = fs
    while True:
        if isinstance(layer, AsyncFileSystemWrapper):
            layer = layer.sync_fs
            continue
        found.append(layer)
        if isinstance(layer, DirFileSystem | CachingFileSystem):
            layer = layer.fs
            continue
        return found


def create_verdict(fs: AbstractFileSystem) -> tuple[list[str], str | None]:
    """The protocols of a filesystem chain, outermost first, and why its
    ``pipe_file(mode="create")`` is not known to be atomic (``None`` if it is).

    Examples
    --------
    >>> from fsspec.implementations.local import LocalFileSystem
    >>> from fsspec.implementations.memory import MemoryFileSystem
    >>> create_verdict(DirFileSystem(path="/zoos", fs=MemoryFileSystem()))
    (['dir', 'memory'], None)
    >>> create_verdict(DirFileSystem(path="/tmp", fs=LocalFileSystem()))[1]
    "fsspec's LocalFileSystem checks whether the file exists, then writes it ..."
    """
    chain = layers(fs)
    protocols = [_protocol(layer) for layer in chain]
    # DirFileSystem forwards pipe_file and its mode unchanged: the stores below decide
    if any(isinstance(layer, CachingFileSystem) for layer in chain):
        return protocols, (
            "fsspec's caching filesystems do not create atomically (blockcache and "
            "filecache check, then write; simplecache drops mode='create' and overwrites)"
        )
    leaf = protocols[-1]
    if leaf in NOT_ATOMIC:
        return protocols, NOT_ATOMIC[leaf]
    if leaf in ATOMIC_CREATE or leaf in _trusted():
        return protocols, None
    tested = ", ".join(sorted(ATOMIC_CREATE))
    return protocols, (
        f"wspace has not tested that {leaf}'s pipe_file(mode='create') is atomic (tested: "
        f"local paths, file://, {tested}); set {TRUST_ENV}={leaf} if you know it is"
    )


class FsspecBackend(Backend):
    """A zarr ``FsspecStore``: S3, ``memory://`` and any other fsspec filesystem."""

    store_type: ClassVar[type[Store]] = FsspecStore

    @property
    def fsspec_store(self) -> FsspecStore:
        """The zarr ``FsspecStore`` at the bottom of the store chain."""
        assert isinstance(self.inner, FsspecStore)
        return self.inner

    def _path(self, key: str) -> str:
        base = self.fsspec_store.path.rstrip("/")
        return f"{base}/{key}".rstrip("/") if base else key.rstrip("/")

    def create_problem(self) -> str | None:
        if self.wrappers:
            names = ", ".join(type(w).__name__ for w in self.wrappers)
            return (
                f"store {self.url!r}: cannot create atomically through the wrapper store "
                f"{names} around an FsspecStore (zarr's FsspecStore.set_if_not_exists checks, "
                "then writes); pass the FsspecStore itself, or open the store read-only"
            )
        protocols, problem = create_verdict(self.fsspec_store.fs)
        if problem is None:
            return None
        classes = " over ".join(type(layer).__name__ for layer in layers(self.fsspec_store.fs))
        return (
            f"store {self.url!r} (fsspec protocol {' over '.join(protocols)!r}: {classes}) "
            f"cannot be written safely: {problem}. Reading it (read_only=True) is allowed"
        )

    def create_if_absent(self, key: str, data: bytes) -> bool:
        self._check_create()
        fs: Any = self.fsspec_store.fs
        path = self._path(key)
        in_process = _protocol(layers(fs)[-1]) in IN_PROCESS
        lock = _CREATE_LOCK if in_process else contextlib.nullcontext()
        call = guarded_call(
            lambda: fs._pipe_file(path, data, mode="create"),
            url=self.url,
            what="writing",
            key=key,
            policy=self.policy,
        )
        try:
            with lock:
                sync(call)
        except FileExistsError:
            # someone else's record, or ours when a retry follows a lost response:
            # the commit log tells them apart by the record's transaction id
            return False
        return True

    def _forget_listing(self, prefix: str) -> None:
        # fsspec filesystems (s3fs) cache listings; other writers' objects must be seen
        fs: Any = self.fsspec_store.fs
        if isinstance(fs, AsyncFileSystemWrapper):
            fs = fs.sync_fs
        fs.invalidate_cache(self._path(prefix))

    def size_under(self, prefix: str) -> int:
        if self.wrappers:
            return super().size_under(prefix)
        fs: Any = self.fsspec_store.fs
        try:
            return int(sync(fs._du(self._path(prefix), total=True)))
        except FileNotFoundError:
            return 0
