"""Local directories (zarr ``LocalStore``): plain file calls, and create by ``os.link``.

A commit record is written to a temporary file beside its target and hard-linked into place:
``os.link`` fails if the target exists, so the record appears complete or not at all, and of
several processes exactly one links it. Behind a wrapper store of the user's, every call goes
through the wrapper; the create then uses zarr's ``LocalStore.set_if_not_exists``, which does
the same (temporary file, ``os.link``) and is reached through the wrapper.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import ClassVar

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore

from wspace.errors import ReadOnlyStoreError
from wspace.store.backends.base import Backend
from wspace.store.guard import guarded_sync

__all__ = ["TEMP_SUFFIX", "LocalBackend"]

TEMP_SUFFIX = ".partial"
"""Temporary files of interrupted writes end so (wspace's and zarr's ``LocalStore``'s)."""


class LocalBackend(Backend):
    """A zarr ``LocalStore``: a folder on a local or network file system."""

    store_type: ClassVar[type[Store]] = LocalStore

    @property
    def root(self) -> Path:
        """The folder of the store."""
        assert isinstance(self.inner, LocalStore)
        return Path(self.inner.root)

    def local_root(self) -> Path | None:
        return None if self.wrappers else self.root

    def read(self, key: str) -> bytes | None:
        """Whole file at ``key`` (``None``: absent), with a plain file call (see
        :meth:`read_many`): ``open`` reads the log this way without starting zarr's event
        loop thread (~2 ms of a fresh process's first read)."""
        return self.read_many([key])[0]

    def read_many(self, keys: Iterable[str]) -> list[bytes | None]:
        """Objects at ``keys``, read one after another with plain file calls (small files
        read faster so than through zarr's event loop); through the wrapper if there is one."""
        root = self.local_root()
        if root is None:
            return super().read_many(keys)
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

    def read_ranges(self, key: str, ranges: Sequence[ByteRequest | None]) -> list[bytes] | None:
        """Byte ranges of one file with ``os.pread`` (one open); through the wrapper if
        there is one."""
        root = self.local_root()
        if root is None or not ranges:
            return super().read_ranges(key, ranges)
        return guarded_sync(
            partial(_pread_ranges, root / key, list(ranges)),
            url=self.url,
            what="reading",
            key=key,
            policy=self.policy,
        )

    def write(self, key: str, data: bytes) -> None:
        """Write the file at ``key`` whole, with plain file calls: a temporary file beside it,
        renamed into place (what zarr's ``LocalStore.set`` does, without its event loop and
        worker threads); through the wrapper if there is one."""
        root = self.local_root()
        if root is None:
            super().write(key, data)
            return
        self.check_writable()
        guarded_sync(
            partial(_write_file, root / key, data),
            url=self.url,
            what="writing",
            key=key,
            policy=self.policy,
        )

    def create_if_absent(self, key: str, data: bytes) -> bool:
        self._check_create()
        if self.wrappers:
            return self._create_through_wrappers(key, data)
        target = self.root / key

        def link() -> bool:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
            try:
                tmp.write_bytes(data)
                os.link(tmp, target)  # fails if target exists: atomic create-if-absent
            except FileExistsError:
                return False
            finally:
                tmp.unlink(missing_ok=True)
            return True

        return guarded_sync(link, url=self.url, what="writing", key=key, policy=self.policy)

    def _create_through_wrappers(self, key: str, data: bytes) -> bool:
        # zarr's LocalStore.set_if_not_exists writes a temporary file and links it (atomic,
        # complete or absent) but does not say whether it created the file: the object holds
        # our bytes exactly when we did (callers racing with the same bytes all hear True)
        if self.exists(key):
            return False
        buf = default_buffer_prototype().buffer.from_bytes(data)
        sync(self.store.set_if_not_exists(key, buf))
        return self.read(key) == data

    def size_under(self, prefix: str) -> int:
        if self.wrappers:
            return super().size_under(prefix)
        top = self.root / prefix
        return sum((Path(d) / f).stat().st_size for d, _, files in os.walk(top) for f in files)

    def temp_files(self, older_than: float) -> dict[str, int]:
        # found in the folder itself (zarr's API has no modification times), even behind a
        # wrapper store; deleted through the store (delete_temp)
        found = {}
        for path in self.root.rglob(f"*{TEMP_SUFFIX}"):
            info = path.stat()
            if info.st_mtime < older_than:
                found[path.relative_to(self.root).as_posix()] = info.st_size
        return found

    def delete_temp(self, key: str) -> None:
        self.check_writable()
        if key.endswith(TEMP_SUFFIX):
            self.delete(key)

    def check_writable(self) -> None:
        """Also read-only when this process may not write into the folder (file
        permissions, a read-only mount)."""
        super().check_writable()
        where = self.root / "_log" if (self.root / "_log").is_dir() else self.root
        while not where.exists() and where != where.parent:
            where = where.parent  # a store about to be created: its nearest existing parent
        if not os.access(where, os.W_OK):
            raise ReadOnlyStoreError(
                f"store {self.url!r} is read-only: this process may not write into {where}"
            )


def _read_file(path: Path) -> bytes | None:
    """A whole local file; ``None`` when absent (as zarr's ``LocalStore.get``)."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _write_file(path: Path, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``, atomically (temporary file, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pread_ranges(path: Path, ranges: list[ByteRequest | None]) -> list[bytes] | None:
    """Byte ranges of one local file, one ``os.pread`` each; ``None`` when it is absent."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            return None
        size = info.st_size
        out = []
        for r in ranges:
            if r is None:
                start, stop = 0, size
            elif isinstance(r, RangeByteRequest):
                start, stop = r.start, min(r.end, size)
            elif isinstance(r, OffsetByteRequest):
                start, stop = r.offset, size
            else:  # SuffixByteRequest
                start, stop = max(0, size - r.suffix), size
            out.append(os.pread(fd, max(0, stop - start), start))
        return out
    finally:
        os.close(fd)
