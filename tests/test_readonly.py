"""Read-only opening never writes; read-only stores refuse writes with ReadOnlyStoreError."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from zarr.abc.store import Store
from zarr.storage import FsspecStore, LocalStore, MemoryStore, WrapperStore

import wspace
from tests.conftest import BUCKET
from tests.faultproxy import FaultProxy
from tests.workers import SMALL, name_of
from wspace.layout import Layout
from wspace.testing import assert_rows_equal, tiny_weights, tiny_zoo

LAYOUT = Layout.from_dict(SMALL)
WRITES = ("set", "set_if_not_exists", "delete", "delete_dir", "_set_many")


class RecordingStore(WrapperStore[Store]):
    """Records every call made to the store (wspace's and zarr's alike)."""

    def __init__(self, store: Store, calls: list[tuple[str, str]] | None = None) -> None:
        super().__init__(store)
        self.calls = [] if calls is None else calls

    def _with_store(self, store: Store) -> RecordingStore:
        return type(self)(store, self.calls)  # with_read_only() keeps recording into one log

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] in WRITES]

    async def get(self, key, prototype, byte_range=None):
        self.calls.append(("get", key))
        return await self._store.get(key, prototype, byte_range)

    async def exists(self, key):
        self.calls.append(("exists", key))
        return await self._store.exists(key)

    async def set(self, key, value):
        self.calls.append(("set", key))
        await self._store.set(key, value)

    async def set_if_not_exists(self, key, value):
        self.calls.append(("set_if_not_exists", key))
        await self._store.set_if_not_exists(key, value)

    async def _set_many(self, values):
        values = list(values)
        self.calls.extend(("_set_many", k) for k, _ in values)
        await self._store._set_many(values)

    async def delete(self, key):
        self.calls.append(("delete", key))
        await self._store.delete(key)

    async def delete_dir(self, prefix):
        self.calls.append(("delete_dir", prefix))
        await self._store.delete_dir(prefix)


def read_everything(store) -> None:
    """Everything a reader does: rows, layers, tensors, modules, batches, info, verify."""
    zoo = wspace.open(store)
    assert len(zoo) == 6
    seeds = zoo.models["seed"].tolist()
    assert_rows_equal(zoo.values, np.stack([tiny_weights(i, LAYOUT.size) for i in seeds]))
    zoo.layer("fc").values
    zoo.tensor("conv/weight").values
    zoo.sel(cls="church").state_dict(0)
    for _ in zoo.batches(4):
        pass
    list(zoo.rows(batch_size=4))
    wspace.info(store)
    assert wspace.verify(store).ok
    wspace.vacuum(store, grace_seconds=0, dry_run=True)


def populated(url_or_store, options=None):
    tiny_zoo(url_or_store, 6, layout=LAYOUT, writers=2, storage_options=options)
    with wspace.writer(url_or_store, storage_options=options, commit_every=10**6) as w:
        w.append(tiny_weights(99, LAYOUT.size), model="uncommitted")
        w.discard()  # leaves data vacuum would remove: a dry run must not


@pytest.mark.parametrize("kind", ["local", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def test_open_read_only_never_writes(kind, tmp_path, request, trials):
    if kind == "local":
        inner: Store = LocalStore(tmp_path / "zoo.zarr")
    elif kind == "memory":
        inner = MemoryStore()
    else:
        server = request.getfixturevalue("s3_server")
        url = f"s3://{BUCKET}/zoo-{uuid.uuid4().hex[:8]}.zarr"
        inner = FsspecStore.from_url(url, storage_options=dict(server.options))
    populated(inner)
    recorder = RecordingStore(inner)
    read_everything(recorder)
    assert recorder.writes() == []
    assert len(recorder.calls) > 20  # the reads did go through the recorder
    trials.add(
        f"read-only: open/read/info/verify/vacuum --dry-run never write ({kind})",
        1,
        f"{len(recorder.calls)} storage calls recorded, 0 writes",
    )


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    return {
        str(p.relative_to(root)): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    } | {str(p.relative_to(root)): (0, 0, "dir") for p in root.rglob("*") if p.is_dir()}


def test_open_local_path_leaves_every_file_as_it_was(tmp_path):
    url = str(tmp_path / "zoo.zarr")
    populated(url)
    before = snapshot(Path(url))
    read_everything(url)
    assert snapshot(Path(url)) == before


def test_writes_through_read_only_handles_are_refused(tmp_path):
    url = str(tmp_path / "zoo.zarr")
    populated(url)
    zoo = wspace.open(url)
    with pytest.raises(wspace.ReadOnlyStoreError, match="read-only"):
        zoo._handle.backend.write("x.json", b"{}")
    with pytest.raises(wspace.SchemaMismatchError, match="wspace.writer"):
        wspace.open(url, mode="a")  # type: ignore[arg-type]
    store = LocalStore(url, read_only=True)
    for attempt in (
        lambda: wspace.writer(store),
        lambda: wspace.compact(store),
        lambda: wspace.vacuum(store, grace_seconds=0),
        lambda: wspace.add_arch(
            store, Layout.from_dict({"name": "x", "tensors": SMALL["tensors"]})
        ),
        lambda: wspace.create(LocalStore(tmp_path / "new.zarr", read_only=True), LAYOUT),
    ):
        with pytest.raises(wspace.ReadOnlyStoreError):
            attempt()
    assert len(wspace.open(store)) == 6


@contextlib.contextmanager
def read_only_directory(path: Path) -> Iterator[str]:
    """Make ``path`` unwritable for this process: a read-only bind mount when root (chmod
    does not stop root), ``chmod -R a-w`` otherwise. Yields which was used."""
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(path)], check=True)
        try:
            yield "chmod a-w"
        finally:
            subprocess.run(["chmod", "-R", "u+w", str(path)], check=True)
        return
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield "read-only bind mount"
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_local_directory_without_write_permission(tmp_path, trials):
    url = str(tmp_path / "zoo.zarr")
    populated(url)
    with read_only_directory(Path(url)) as how:
        zoo = wspace.open(url)  # reading needs no permission to write
        assert_rows_equal(zoo.values[:1], tiny_weights(zoo.models["seed"][0], LAYOUT.size)[None])
        for attempt in (
            lambda: wspace.writer(url),
            lambda: wspace.compact(url),
            lambda: wspace.vacuum(url, grace_seconds=0),
        ):
            with pytest.raises(wspace.ReadOnlyStoreError, match="may not write") as info:
                attempt()
            assert url in str(info.value)
    with wspace.writer(url) as w:  # writable again
        w.append(tiny_weights(7, LAYOUT.size), model=name_of(7))
    trials.add(
        f"read-only: local directory without write permission ({how})",
        1,
        "writer, compact, vacuum refuse with ReadOnlyStoreError; reads work",
    )


def test_s3_bucket_refusing_writes(s3_server, trials):
    url = f"s3://{BUCKET}/zoo-{uuid.uuid4().hex[:8]}.zarr"
    populated(url, s3_server.options)
    proxy = FaultProxy(s3_server.endpoint)
    try:
        proxy.deny_writes = True  # every PUT/POST/DELETE answers 403 AccessDenied
        options = proxy.options()
        assert len(wspace.open(url, storage_options=options)) == 6
        w = wspace.writer(url, storage_options=options)
        with pytest.raises(wspace.ReadOnlyStoreError, match="permission denied") as info:
            w.append(tiny_weights(7, LAYOUT.size), model=name_of(7))
            w.commit()
        assert url in str(info.value)
        assert proxy.counts["deny"] >= 1
    finally:
        proxy.stop()
    assert len(wspace.open(url, storage_options=s3_server.options)) == 6
    trials.add(
        "read-only: S3 bucket answering 403 to writes",
        1,
        "ReadOnlyStoreError naming the store and key; store unchanged",
    )
