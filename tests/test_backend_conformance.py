"""Every storage backend passes the shared conformance suite; wrappers are used, not bypassed;
stores whose create-if-absent is not atomic are refused for writing (and why: the probes)."""

from __future__ import annotations

import collections
import functools
import uuid
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
import s3fs
from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper
from fsspec.implementations.cached import (
    CachingFileSystem,
    SimpleCacheFileSystem,
    WholeFileCacheFileSystem,
)
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem
from zarr.abc.store import Store
from zarr.core.sync import sync
from zarr.storage import FsspecStore, LocalStore, MemoryStore, WrapperStore, ZipStore

from tests.conftest import BUCKET
from wspace.errors import UnsupportedStoreError
from wspace.store.backends import (
    Backend,
    FsspecBackend,
    LocalBackend,
    MemoryBackend,
    OtherStoreBackend,
    resolve,
)
from wspace.store.backends.conformance import BackendConformance
from wspace.store.backends.fsspec import TRUST_ENV


class CountingDirFileSystem(DirFileSystem):
    """A ``DirFileSystem`` that counts the creates, writes and reads it is asked for."""

    calls: ClassVar[collections.Counter[str]] = collections.Counter()

    def _count(self, kwargs: dict[str, Any]) -> None:
        self.calls["create" if kwargs.get("mode") == "create" else "write"] += 1

    async def _pipe_file(self, path: str, *args: Any, **kwargs: Any) -> Any:
        self._count(kwargs)
        return await super()._pipe_file(path, *args, **kwargs)

    def pipe_file(self, path: str, *args: Any, **kwargs: Any) -> Any:
        self._count(kwargs)
        return super().pipe_file(path, *args, **kwargs)

    async def _cat_file(self, path: str, *args: Any, **kwargs: Any) -> Any:
        self.calls["read"] += 1
        return await super()._cat_file(path, *args, **kwargs)

    def cat_file(self, path: str, *args: Any, **kwargs: Any) -> Any:
        self.calls["read"] += 1
        return super().cat_file(path, *args, **kwargs)


class CountingStore(WrapperStore[Store]):
    """A zarr wrapper store that counts the calls made through it."""

    calls: ClassVar[collections.Counter[str]] = collections.Counter()

    def _with_store(self, store: Store) -> CountingStore:
        return type(self)(store)

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        self.calls["get"] += 1
        return await self._store.get(key, prototype, byte_range)

    async def set(self, key: str, value: Any) -> None:
        self.calls["set"] += 1
        await self._store.set(key, value)

    async def set_if_not_exists(self, key: str, value: Any) -> None:
        self.calls["set_if_not_exists"] += 1
        await self._store.set_if_not_exists(key, value)


def open_dirfs(
    target: str, base: str, options: dict[str, Any] | None = None, *, read_only: bool = False
) -> Backend:
    """A wspace backend on a zarr ``FsspecStore`` whose filesystem is a counting
    ``DirFileSystem`` rooted at ``base`` of ``target`` (``memory``, ``s3`` or ``file``)."""
    fs: Any
    if target == "s3":
        inner = s3fs.S3FileSystem(asynchronous=True, **(options or {}))
        fs = CountingDirFileSystem(path=base, fs=inner, asynchronous=True)
    else:
        sync_fs = MemoryFileSystem() if target == "memory" else LocalFileSystem()
        fs = AsyncFileSystemWrapper(CountingDirFileSystem(path=base, fs=sync_fs), asynchronous=True)
    store = FsspecStore(fs=fs, path="zoo.zarr", read_only=read_only)
    return resolve(store, read_only=read_only)


def open_wrapped_local(path: str, *, read_only: bool = False) -> Backend:
    """A wspace backend on a counting zarr wrapper store around a ``LocalStore``."""
    return resolve(CountingStore(LocalStore(path, read_only=read_only)), read_only=read_only)


def forget_memory(path: str) -> None:
    """Drop what a test left in fsspec's process-wide memory filesystem."""
    fs = MemoryFileSystem()
    if fs.exists(path):
        fs.rm(path, recursive=True)


# -- the conformance suite, once per store kind ------------------------------------------------
class TestLocalDirectory(BackendConformance):
    @pytest.fixture
    def open_backend(self, tmp_path: Path) -> Any:
        return functools.partial(resolve, str(tmp_path / "store.zarr"))

    def test_is_the_local_backend_read_with_file_calls(self, backend: Backend) -> None:
        assert type(backend) is LocalBackend
        assert backend.local_root() is not None


class TestFileUrl(BackendConformance):
    @pytest.fixture
    def open_backend(self, tmp_path: Path) -> Any:
        return functools.partial(resolve, f"file://{tmp_path}/store.zarr")

    def test_is_the_local_backend(self, backend: Backend, tmp_path: Path) -> None:
        assert type(backend) is LocalBackend
        assert backend.local_root() == tmp_path / "store.zarr"


class TestMemoryUrl(BackendConformance):
    """``memory://`` through fsspec; the race runs in threads (no other process sees it)."""

    race = "threads"

    @pytest.fixture
    def open_backend(self) -> Any:
        name = f"conformance-{uuid.uuid4().hex[:10]}"
        yield functools.partial(resolve, f"memory://{name}")
        forget_memory(f"/{name}")

    def test_is_the_fsspec_backend(self, backend: Backend) -> None:
        assert type(backend) is FsspecBackend


class TestZarrMemoryStore(BackendConformance):
    """A zarr ``MemoryStore`` object; the race runs in threads (no other process sees it)."""

    race = "threads"

    @pytest.fixture
    def open_backend(self) -> Any:
        return functools.partial(resolve, MemoryStore())

    def test_is_the_memory_backend(self, backend: Backend) -> None:
        assert type(backend) is MemoryBackend


@pytest.mark.s3
class TestS3(BackendConformance):
    """S3 on a moto server: the race is between real processes, each its own s3fs client."""

    @pytest.fixture
    def open_backend(self, s3_server: Any) -> Any:
        url = f"s3://{BUCKET}/conformance-{uuid.uuid4().hex[:10]}.zarr"
        return functools.partial(resolve, url, storage_options=dict(s3_server.options))

    def test_is_the_fsspec_backend(self, backend: Backend) -> None:
        assert type(backend) is FsspecBackend


class TestWrapperStoreOverLocal(BackendConformance):
    """A zarr wrapper store of the user's around a ``LocalStore``: every call, the create
    included, goes through it (zarr's ``LocalStore.set_if_not_exists`` links a temp file)."""

    @pytest.fixture
    def open_backend(self, tmp_path: Path) -> Any:
        return functools.partial(open_wrapped_local, str(tmp_path / "store.zarr"))

    def test_creates_and_reads_go_through_the_wrapper(self, backend: Backend) -> None:
        CountingStore.calls.clear()
        assert backend.local_root() is None  # no plain-file reads around the wrapper
        assert backend.create_if_absent("_log/0", b"record")
        assert not backend.create_if_absent("_log/0", b"another")
        assert backend.read_many(["_log/0"]) == [b"record"]
        assert backend.read_ranges("_log/0", [None]) == [b"record"]
        assert CountingStore.calls["set_if_not_exists"] == 1
        assert CountingStore.calls["get"] >= 3


class TestDirFileSystemOverMemory(BackendConformance):
    """An fsspec wrapper filesystem (``DirFileSystem``) over ``memory``; threads race."""

    race = "threads"

    @pytest.fixture
    def open_backend(self) -> Any:
        base = f"/conformance-dir-{uuid.uuid4().hex[:10]}"
        yield functools.partial(open_dirfs, "memory", base)
        forget_memory(base)

    def test_creates_and_reads_go_through_the_wrapper(self, backend: Backend) -> None:
        CountingDirFileSystem.calls.clear()
        assert backend.create_if_absent("_log/0", b"record")
        assert not backend.create_if_absent("_log/0", b"another")
        assert backend.read("_log/0") == b"record"
        assert CountingDirFileSystem.calls["create"] == 2
        assert CountingDirFileSystem.calls["read"] >= 1


@pytest.mark.s3
class TestDirFileSystemOverS3(BackendConformance):
    """``DirFileSystem`` over S3 (moto): creates are the wrapper's conditional PUTs; the race
    is between real processes."""

    @pytest.fixture
    def open_backend(self, s3_server: Any) -> Any:
        base = f"{BUCKET}/conformance-dir-{uuid.uuid4().hex[:10]}"
        return functools.partial(open_dirfs, "s3", base, dict(s3_server.options))

    def test_creates_and_reads_go_through_the_wrapper(
        self, backend: Backend, s3_server: Any
    ) -> None:
        CountingDirFileSystem.calls.clear()
        assert backend.create_if_absent("_log/0", b"record")
        assert not backend.create_if_absent("_log/0", b"another")
        assert backend.read("_log/0") == b"record"
        assert CountingDirFileSystem.calls["create"] == 2
        assert CountingDirFileSystem.calls["read"] >= 1
        fs = s3fs.S3FileSystem(**s3_server.options)
        base = backend.fsspec_store.fs.path  # type: ignore[attr-defined]
        assert fs.cat_file(f"{base}/zoo.zarr/_log/0") == b"record"  # under the wrapper's root


# -- stores refused for writing, and the evidence why --------------------------------------
def test_dirfs_over_local_files_is_refused_for_writing_but_read_through(tmp_path: Path) -> None:
    plain = resolve(str(tmp_path / "zoo.zarr"))
    plain.write("zarr.json", b"{}")
    with pytest.raises(UnsupportedStoreError) as info:
        open_dirfs("file", str(tmp_path))
    message = str(info.value)
    assert "'dir over file'" in message and "DirFileSystem" in message
    assert "checks whether the file exists, then writes it" in message
    CountingDirFileSystem.calls.clear()
    reader = open_dirfs("file", str(tmp_path), read_only=True)
    assert reader.read("zarr.json") == b"{}"
    assert CountingDirFileSystem.calls["read"] == 1


def test_local_files_through_fsspec_are_refused_even_when_vouched_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"local://{tmp_path}/zoo.zarr"
    monkeypatch.setenv(TRUST_ENV, "file,local")
    with pytest.raises(UnsupportedStoreError, match=r"local://.*'file'.*plain path"):
        resolve(url)
    assert resolve(url, read_only=True).read("missing") is None


@pytest.mark.parametrize(
    "cache", [CachingFileSystem, WholeFileCacheFileSystem, SimpleCacheFileSystem]
)
def test_caching_filesystems_are_refused_for_writing(cache: Any, tmp_path: Path) -> None:
    cached = cache(fs=MemoryFileSystem(), cache_storage=str(tmp_path / "cache"))
    fs = AsyncFileSystemWrapper(cached, asynchronous=True)
    store = FsspecStore(fs=fs, path=f"/cached-{uuid.uuid4().hex[:8]}")
    with pytest.raises(UnsupportedStoreError, match="caching filesystems"):
        resolve(store)
    assert resolve(store, read_only=True).read("zarr.json") is None


def test_an_untested_protocol_is_refused_unless_vouched_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class OtherMemoryFileSystem(MemoryFileSystem):
        protocol = "othermem"

    fs = AsyncFileSystemWrapper(OtherMemoryFileSystem(), asynchronous=True)
    store = FsspecStore(fs=fs, path=f"/other-{uuid.uuid4().hex[:8]}")
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(UnsupportedStoreError) as info:
        resolve(store)
    assert "'othermem'" in str(info.value) and f"{TRUST_ENV}=othermem" in str(info.value)
    monkeypatch.setenv(TRUST_ENV, "gs, othermem")
    backend = resolve(store)
    assert backend.create_if_absent("k", b"v") and not backend.create_if_absent("k", b"w")


def test_a_zarr_wrapper_around_an_fsspec_store_is_refused_for_writing() -> None:
    inner = FsspecStore.from_url(f"memory://wrapped-{uuid.uuid4().hex[:8]}")
    resolve(inner).write("zarr.json", b"{}")
    with pytest.raises(UnsupportedStoreError, match="through the wrapper store CountingStore"):
        resolve(CountingStore(inner))
    CountingStore.calls.clear()
    assert resolve(CountingStore(inner), read_only=True).read("zarr.json") == b"{}"
    assert CountingStore.calls["get"] == 1


def test_a_zarr_store_of_another_kind_is_read_but_not_written(tmp_path: Path) -> None:
    path = tmp_path / "zoo.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("zarr.json", b"{}")
    backend = resolve(sync(ZipStore.open(path, mode="r", read_only=True)), read_only=True)
    assert type(backend) is OtherStoreBackend and backend.read("zarr.json") == b"{}"
    with pytest.raises(UnsupportedStoreError, match="ZipStore"):
        resolve(sync(ZipStore.open(path, mode="a")))


class RivalLocalFileSystem(LocalFileSystem):
    """Another writer creates the file right after this filesystem checked it is absent."""

    def exists(self, path: str, **kwargs: Any) -> bool:
        found = super().exists(path, **kwargs)
        if not found:
            Path(path).write_bytes(b"rival")
        return found


class RivalMemoryFileSystem(MemoryFileSystem):
    """Another writer creates the file right after this filesystem checked it is absent."""

    def exists(self, path: str, **kwargs: Any) -> bool:
        found = super().exists(path, **kwargs)
        if not found:
            MemoryFileSystem.pipe_file(self, path, b"rival")
        return found


def test_probe_fsspec_local_files_check_then_write(tmp_path: Path) -> None:
    # why "file"/"local" through fsspec are refused: a rival's file is overwritten
    for fs in [
        RivalLocalFileSystem(skip_instance_cache=True),
        DirFileSystem(path=str(tmp_path), fs=RivalLocalFileSystem(skip_instance_cache=True)),
    ]:
        target = str(tmp_path / f"record-{uuid.uuid4().hex[:6]}")
        target_in_fs = target if isinstance(fs, LocalFileSystem) else Path(target).name
        fs.pipe_file(target_in_fs, b"mine", mode="create")  # no FileExistsError
        assert Path(target).read_bytes() == b"mine"


@pytest.mark.parametrize("cache", [CachingFileSystem, WholeFileCacheFileSystem])
def test_probe_block_and_file_caches_check_then_write(cache: Any, tmp_path: Path) -> None:
    rival = RivalMemoryFileSystem(skip_instance_cache=True)
    fs = cache(fs=rival, cache_storage=str(tmp_path / "cache"))
    path = f"/probe-{uuid.uuid4().hex[:8]}"
    fs.pipe_file(path, b"mine", mode="create")  # no FileExistsError: the rival is overwritten
    assert rival.cat_file(path) == b"mine"


def test_probe_simplecache_drops_create_and_overwrites(tmp_path: Path) -> None:
    fs = SimpleCacheFileSystem(fs=MemoryFileSystem(), cache_storage=str(tmp_path / "cache"))
    path = f"/probe-{uuid.uuid4().hex[:8]}"
    fs.pipe_file(path, b"first", mode="create")
    fs.pipe_file(path, b"second", mode="create")  # no FileExistsError
    assert MemoryFileSystem().cat_file(path) == b"second"


def test_probe_dirfs_forwards_create_to_the_filesystem_it_wraps() -> None:
    fs = CountingDirFileSystem(path=f"/probe-{uuid.uuid4().hex[:8]}", fs=MemoryFileSystem())
    fs.pipe_file("record", b"first", mode="create")
    with pytest.raises(FileExistsError):
        fs.pipe_file("record", b"second", mode="create")
    assert fs.cat_file("record") == b"first"
