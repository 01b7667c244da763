"""The writer's background flush: same bytes, failures raised at the next call, commits that
never name a chunk not yet written, bounded memory, no thread left behind."""

from __future__ import annotations

import asyncio
import errno
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from zarr.abc.store import Store
from zarr.core.buffer import Buffer
from zarr.storage import LocalStore, WrapperStore

import wspace
from wspace.layout import Layout
from wspace.store.flusher import ChunkFlusher, FlushTask
from wspace.testing import assert_rows_equal, tiny_weights

LAYOUT = Layout.from_dict(
    {
        "name": "two",
        "tensors": [
            {"name": "a/weight", "shape": [30, 20]},
            {"name": "b/weight", "shape": [7]},
        ],
    }
)
ROWS = 4  # rows per chunk of a writer segment here: many chunks are flushed


class ChunkTrap(WrapperStore[Store]):
    """A store whose writes of weight chunks fail with ENOSPC while ``armed``, or wait for
    ``gate`` to open; it counts the weight chunks it refused."""

    def __init__(self, store: Store, state: dict) -> None:
        super().__init__(store)
        self.state = state  # shared by the wrappers zarr makes of this one

    def _with_store(self, store: Store) -> ChunkTrap:
        return type(self)(store, self.state)

    async def set(self, key: str, value: Buffer) -> None:
        if "/seg/" in key and "/a/c/" in key:
            gate: threading.Event = self.state["gate"]
            while not gate.is_set():  # zarr's other writes go on meanwhile
                await asyncio.sleep(0.01)
            if self.state["armed"]:
                self.state["refused"] += 1
                raise OSError(errno.ENOSPC, "No space left on device (trap)", key)
        await self._store.set(key, value)


def trap(path: Path) -> tuple[ChunkTrap, dict]:
    gate = threading.Event()
    gate.set()
    state = {"armed": False, "refused": 0, "gate": gate}
    return ChunkTrap(LocalStore(path), state), state


def stored(url: object) -> tuple[list[str], np.ndarray]:
    zoo = wspace.open(url)
    return zoo.models["model"].tolist(), np.asarray(zoo.values)


def expected(n: int) -> np.ndarray:
    return np.stack([tiny_weights(i, LAYOUT.size) for i in range(n)])


def flush_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("wspace-flush")]


@pytest.mark.parametrize("n", [1, ROWS, 3 * ROWS + 1, 50])
def test_rows_written_in_the_background_are_bit_identical(tmp_path, n):
    urls = {}
    for background in (True, False):
        url = str(tmp_path / f"bg-{background}.zarr")
        wspace.create(url, LAYOUT, segment_rows=ROWS, meta_rows=ROWS)
        with wspace.writer(url, commit_every=7, background_flush=background) as w:
            for i in range(n):
                w.append(tiny_weights(i, LAYOUT.size), model=f"m{i}", seed=i)
        urls[background] = url
        assert wspace.verify(url).ok
    names, values = stored(urls[True])
    assert names == [f"m{i}" for i in range(n)]
    assert_rows_equal(values, expected(n))
    assert values.tobytes() == stored(urls[False])[1].tobytes()
    assert not flush_threads()  # the with block joined the thread


def test_a_failed_background_write_is_raised_by_the_next_append(tmp_path):
    store, state = trap(tmp_path / "s.zarr")
    wspace.create(store, LAYOUT, segment_rows=ROWS, meta_rows=ROWS)
    w = wspace.writer(store, commit_every=10**6)
    for i in range(ROWS):
        w.append(tiny_weights(i, LAYOUT.size), model=f"m{i}", seed=i)
    w.commit()
    state["armed"] = True
    for i in range(ROWS, 2 * ROWS):  # the last one hands a full chunk to the thread
        w.append(tiny_weights(i, LAYOUT.size), model=f"m{i}", seed=i)
    deadline = time.monotonic() + 60
    while not w.flusher.failed and time.monotonic() < deadline:
        time.sleep(0.005)
    assert w.flusher.failed, "the trapped chunk write never failed"
    with pytest.raises(wspace.StorageError, match="no space left") as info:
        w.append(tiny_weights(2 * ROWS, LAYOUT.size), model=f"m{2 * ROWS}", seed=2 * ROWS)
    message = str(info.value)
    assert str(tmp_path) in message and "/a/c/1/0" in message  # the store and the chunk
    assert "background flush of layer 'a' rows 4:8" in "\n".join(info.value.__notes__)
    assert w.uncommitted == ROWS  # the refused row was not buffered; the others are kept
    names, values = stored(store)  # what was committed is intact
    assert names == [f"m{i}" for i in range(ROWS)]
    assert_rows_equal(values, expected(ROWS))
    state["armed"] = False  # the storage works again: the same writer goes on
    for i in range(2 * ROWS, 2 * ROWS + 3):
        w.append(tiny_weights(i, LAYOUT.size), model=f"m{i}", seed=i)
    w.close()
    names, values = stored(store)
    assert names == [f"m{i}" for i in range(2 * ROWS + 3)]
    assert_rows_equal(values, expected(2 * ROWS + 3))
    assert wspace.verify(store).ok
    assert not flush_threads()


def test_a_failed_background_write_fails_the_commit_and_is_retried(tmp_path):
    store, state = trap(tmp_path / "s.zarr")
    wspace.create(store, LAYOUT, segment_rows=ROWS, meta_rows=ROWS)
    w = wspace.writer(store, commit_every=10**6)
    state["armed"] = True
    for i in range(ROWS):  # the last append hands a full chunk to the thread; it fails
        w.append(tiny_weights(i, LAYOUT.size), model=f"m{i}", seed=i)
    with pytest.raises(wspace.StorageError, match="no space left") as info:
        w.commit()
    assert "background flush of layer 'a'" in "\n".join(info.value.__notes__)
    assert state["refused"] >= 2  # the failed write was tried again by the commit
    assert stored(store)[0] == []  # nothing published: its chunks are not all written
    assert w.uncommitted == ROWS
    state["armed"] = False
    assert w.commit() is not None
    names, values = stored(store)
    assert names == [f"m{i}" for i in range(ROWS)]
    assert_rows_equal(values, expected(ROWS))
    w.close()
    assert wspace.verify(store).ok


@pytest.mark.parametrize("n", [1, ROWS + 1])  # a partial chunk only; a full one in flight too
def test_a_commit_waits_for_its_chunks_before_publishing(tmp_path, n):
    store, state = trap(tmp_path / "s.zarr")
    url = tmp_path / "s.zarr"
    wspace.create(store, LAYOUT, segment_rows=ROWS, meta_rows=ROWS)
    w = wspace.writer(store, commit_every=10**6)
    records = len(list((url / "_log").iterdir()))
    state["gate"].clear()  # weight chunk writes wait from now on
    for i in range(n):  # with ROWS + 1, a full chunk goes to the thread and waits there
        w.append(tiny_weights(i, LAYOUT.size), model=f"m{i}", seed=i)
    committer = threading.Thread(target=w.commit)
    committer.start()
    committer.join(0.5)
    assert committer.is_alive(), "the commit returned while a chunk of it was not written"
    assert len(list((url / "_log").iterdir())) == records, "published before its chunks"
    state["gate"].set()
    committer.join()
    names, values = stored(store)
    assert names == [f"m{i}" for i in range(n)]
    assert_rows_equal(values, expected(n))
    w.close()


def test_exception_in_with_block_discards_and_joins_the_thread(tmp_path):
    url = str(tmp_path / "s.zarr")
    wspace.create(url, LAYOUT, segment_rows=ROWS, meta_rows=ROWS)
    with pytest.raises(RuntimeError, match="boom"), wspace.writer(url) as w:
        for i in range(3 * ROWS):
            w.append(tiny_weights(i, LAYOUT.size), model=f"m{i}", seed=i)
        raise RuntimeError("boom")
    assert w.flusher.outstanding == 0
    assert not flush_threads()
    assert len(wspace.open(url)) == 0
    with wspace.writer(url) as w2:  # the names are free again: nothing was committed
        w2.append(tiny_weights(0, LAYOUT.size), model="m0", seed=0)
    assert len(wspace.open(url)) == 1


def test_the_flush_holds_at_most_its_budget():
    flusher = ChunkFlusher(budget=10)
    release = threading.Event()
    done: list[str] = []
    flusher.submit(FlushTask(lambda: (release.wait(), done.append("a")), 8, "chunk a"))
    second = threading.Thread(
        target=flusher.submit, args=(FlushTask(lambda: done.append("b"), 8, "chunk b"),)
    )
    second.start()
    second.join(0.3)
    assert second.is_alive(), "a second chunk got in past the budget"
    release.set()
    second.join()
    flusher.wait()
    assert done == ["a", "b"]
    flusher.close()
    assert flusher.outstanding == 0


def test_a_failure_is_raised_once_then_the_chunks_are_written_again():
    flusher = ChunkFlusher()
    tries: list[int] = []

    def flaky() -> None:
        tries.append(1)
        if len(tries) == 1:
            raise wspace.StorageError("store 'x': writing 'k' failed")

    written: list[str] = []
    flusher.submit(FlushTask(flaky, 1, "chunk k"))
    flusher.submit(FlushTask(lambda: written.append("after"), 1, "chunk after"))
    deadline = time.monotonic() + 60
    while not flusher.failed and time.monotonic() < deadline:
        time.sleep(0.005)
    with pytest.raises(wspace.StorageError, match="writing 'k'"):
        flusher.check()
    assert written == []  # queued after the failure: kept, in order, not written yet
    flusher.wait()  # written again now
    assert len(tries) == 2 and written == ["after"]
    flusher.close()
