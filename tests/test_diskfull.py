"""Disk full: a writer on a full disk fails cleanly, the store stays whole, and it resumes.

Every test runs twice, on two kinds of full disk, named in its id and in the trials log:

- ``tmpfs``: a real 2 MiB tmpfs mounted for the test. Mounting needs root (CI runs as root):
  as root a failed mount fails the test, saying why; as another user the test is skipped with
  that reason (the ``byte-budget`` variant still runs).
- ``byte-budget``: a zarr store wrapper that raises ``OSError(ENOSPC)`` once its stored bytes
  would pass a budget. It runs everywhere; it cannot see what bypasses zarr stores (commit
  records are written by the backend directly).
"""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from zarr.abc.store import Store
from zarr.core.buffer import Buffer
from zarr.storage import LocalStore, WrapperStore

import wspace
from tests.workers import SOAK, name_of
from wspace.layout import Layout
from wspace.testing import assert_rows_equal, tiny_weights

LAYOUT = Layout.from_dict(
    {"name": "wide", "tensors": [{"name": "fc/weight", "shape": [100, 100]}]}
)  # 40 kB rows: a 2 MiB disk is full after a few dozen
N = 120
EVERY = 4


class BudgetStore(WrapperStore[Store]):
    """A store that raises ``OSError(ENOSPC)`` when its stored bytes would pass a budget."""

    def __init__(self, store: Store, budget: list[int], sizes: dict[str, int]) -> None:
        super().__init__(store)
        self.budget = budget  # shared, mutable: [bytes that may be stored]
        self.sizes = sizes  # shared: key -> bytes stored (an overwrite replaces its old size)

    def _with_store(self, store: Store) -> BudgetStore:
        return type(self)(store, self.budget, self.sizes)

    async def set(self, key: str, value: Buffer) -> None:
        used = sum(self.sizes.values()) - self.sizes.get(key, 0)
        if used + len(value) > self.budget[0]:
            raise OSError(errno.ENOSPC, "No space left on device (byte budget)", key)
        await self._store.set(key, value)
        self.sizes[key] = len(value)


KINDS = ["tmpfs", "byte-budget"]
"""The kinds of full disk (test ids)."""


def mount_tmpfs(root: Path) -> None:
    """Mount a 2 MiB tmpfs on ``root``; skip the test unless root, fail it if root cannot."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the byte-budget variant of this test runs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(root)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        why = " ".join(done.stderr.split()).rstrip(".")
        pytest.fail(
            f"running as root, but `mount -t tmpfs` on {root} failed (exit {done.returncode}): "
            f"{why}. The container needs CAP_SYS_ADMIN (e.g. docker run --privileged); or "
            "deselect the tmpfs variants knowingly: -k 'not tmpfs'"
        )
    fs = os.statvfs(root)
    assert fs.f_blocks * fs.f_frsize == 2 * 2**20, "the mounted tmpfs is not the 2 MiB one"


class SmallDisk:
    """A 2 MiB tmpfs with a 512 KiB ballast file, or a byte budget of the same size."""

    def __init__(self, root: Path, kind: str) -> None:
        self.root = root
        self.kind = kind
        if kind == "tmpfs":
            mount_tmpfs(root)
            (root / "ballast").write_bytes(b"\0" * 512 * 1024)
        elif kind != "byte-budget":
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        self.budget = [2 * 2**20 - 512 * 1024]
        self.sizes: dict[str, int] = {}
        self.path = root / f"zoo-{uuid.uuid4().hex[:6]}.zarr"

    def store(self) -> Any:
        if self.kind == "tmpfs":
            return str(self.path)
        return BudgetStore(LocalStore(self.path), self.budget, self.sizes)

    def free(self) -> None:
        """Free space (delete the ballast, or grant more budget)."""
        if self.kind == "tmpfs":
            (self.root / "ballast").unlink()
        else:
            self.budget[0] += 512 * 1024

    def close(self) -> None:
        if self.kind == "tmpfs":
            subprocess.run(["umount", str(self.root)], check=True)


@pytest.fixture(params=KINDS)
def disk(request, tmp_path):
    root = tmp_path / "disk"
    root.mkdir()
    small = SmallDisk(root, request.param)
    yield small
    small.close()


def test_full_disk_fails_cleanly_and_the_writer_resumes(disk, trials):
    wspace.create(disk.store(), LAYOUT)
    w = wspace.writer(disk.store(), commit_every=EVERY)
    with pytest.raises(wspace.StorageError) as info:
        for i in range(N):
            w.append(tiny_weights(i, LAYOUT.size), model=name_of(i), seed=i)
    failed_at = i
    error = info.value
    assert error.errno == errno.ENOSPC
    assert "no space left" in str(error) and "free space and try again" in str(error)
    where = "commit record" if "'_log/" in str(error) else "chunk"
    # the store stays whole: the committed rows, exactly, and nothing half-written
    committed = check(disk.store(), None)
    assert committed > 0 and committed % EVERY == 0
    assert not list(disk.path.rglob("*.partial"))
    pending = {k[0] for k in w.pending}
    assert {name_of(i) for i in range(committed, failed_at)} <= pending
    disk.free()
    if name_of(failed_at) not in pending:  # it failed before it was buffered
        w.append(tiny_weights(failed_at, LAYOUT.size), model=name_of(failed_at), seed=failed_at)
    w.commit()  # the same writer publishes what it kept
    assert check(disk.store(), None) == failed_at + 1
    with wspace.writer(disk.store()) as w2:  # and a new one continues
        for i in range(failed_at + 1, failed_at + 3):
            w2.append(tiny_weights(i, LAYOUT.size), model=name_of(i), seed=i)
    assert check(disk.store(), None) == failed_at + 3
    assert wspace.verify(disk.store()).ok
    trials.add(
        f"disk full ({disk.kind})",
        1,
        f"StorageError (ENOSPC) writing a {where} after {committed} committed rows; store "
        "whole, no temp files; after freeing space the same writer committed its pending "
        "rows and a new writer continued",
    )


def check(store: Any, options: dict | None) -> int:
    zoo = wspace.open(store, storage_options=options)
    seeds = zoo.models["seed"].to_numpy() if len(zoo) else np.zeros(0, int)
    assert zoo.models["model"].tolist() == [name_of(i) for i in range(len(zoo))]
    if len(zoo):
        assert_rows_equal(zoo.values, np.stack([tiny_weights(int(i), LAYOUT.size) for i in seeds]))
    return len(zoo)


@pytest.mark.parametrize("ballast_kib", [64, 128, 192] if not SOAK else list(range(4, 256, 12)))
@pytest.mark.parametrize("kind", KINDS)
def test_full_disk_at_different_points_keeps_the_store_whole(tmp_path, kind, ballast_kib, trials):
    """Fill the disk at different moments: records, chunks, metadata."""
    root = tmp_path / "disk"
    root.mkdir()
    disk = SmallDisk(root, kind)
    try:
        if disk.kind == "tmpfs":
            (root / "ballast").write_bytes(b"\0" * ballast_kib * 1024)
        else:
            disk.budget[0] = 2 * 2**20 - ballast_kib * 1024
        wspace.create(disk.store(), LAYOUT, segment_rows=3)
        w = wspace.writer(disk.store(), commit_every=EVERY)
        with pytest.raises(wspace.StorageError) as info:
            for i in range(N):
                w.append(tiny_weights(i, LAYOUT.size), model=name_of(i), seed=i)
        key = str(info.value).split(" writing ", 1)[1].split("'")[1]
        parts = key.split("/")  # _log/<n>.json or archs/<arch>/seg/<id>/<array>/...
        where = "commit record" if parts[0] == "_log" else "segment metadata"
        if len(parts) > 5:
            where = "weight chunk" if parts[4].startswith("w") else "metadata-column chunk"
        committed = check(disk.store(), None)
        assert committed % EVERY == 0
        assert wspace.verify(disk.store()).ok
    finally:
        disk.close()
    trials.add(
        f"disk full at varied fill levels ({disk.kind})",
        1,
        f"ENOSPC writing a {where}: StorageError, store whole, verify clean",
    )


def fill(root: Path) -> None:
    """Fill the tmpfs to the last byte with a second ballast file."""
    fd = os.open(root / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.mark.parametrize("kind", KINDS)
def test_full_disk_when_the_commit_record_is_written(tmp_path, kind, trials):
    """Chunks are on disk, the commit record cannot be: nothing becomes visible, no temp
    file stays, and the commit succeeds once space is freed. (With the byte-budget wrapper
    the budget runs out at the last chunk instead: records bypass zarr stores.)"""
    root = tmp_path / "disk"
    root.mkdir()
    disk = SmallDisk(root, kind)
    try:
        wspace.create(disk.store(), LAYOUT, segment_rows=4, meta_rows=4)
        # chunks written in append (not by the background flush): the disk fills after them
        w = wspace.writer(disk.store(), commit_every=10**6, background_flush=False)
        for i in range(4):
            if i == 3 and disk.kind == "byte-budget":
                disk.budget[0] = sum(disk.sizes.values())  # full before the last row's chunks
            try:
                w.append(tiny_weights(i, LAYOUT.size), model=name_of(i), seed=i)
            except wspace.StorageError:
                assert disk.kind == "byte-budget"
        # 4 rows: every chunk is full and already written; commit writes only the record
        if disk.kind == "tmpfs":
            fill(root)
        with pytest.raises(wspace.StorageError, match="no space left") as info:
            w.commit()
        assert info.value.errno == errno.ENOSPC
        what = "'_log/" if disk.kind == "tmpfs" else "'archs/"
        assert what in str(info.value)
        assert check(disk.store(), None) == 0
        assert not list(root.rglob("*.partial"))
        if disk.kind == "tmpfs":
            (root / "filler").unlink()
        else:
            disk.budget[0] = 2**30
        w.commit()
        assert check(disk.store(), None) == 4
    finally:
        disk.close()
    trials.add(
        f"disk full writing the commit record ({disk.kind})",
        1,
        "StorageError; no row visible, no temp file left; the same commit succeeds once "
        "space is freed",
    )
