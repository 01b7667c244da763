"""Log checkpoints: the state from a checkpoint equals a full replay; open reads few records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from zarr.storage import LocalStore, WrapperStore

import wspace
from wspace.architectures import lenet5_layout
from wspace.layout import Layout
from wspace.store.backend import resolve
from wspace.store.checkpoint import (
    POINTER,
    checkpoint_key,
    checkpoint_log,
    load_checkpoint,
    write_checkpoint,
)
from wspace.store.log import CommitLog, StoreState, replay
from wspace.testing import assert_rows_equal, tiny_weights, tiny_zoo

LAYOUT = lenet5_layout()
MLP = Layout.from_dict({"name": "mlp", "tensors": [{"name": "fc/weight", "shape": [2, 3]}]})


def _full(url: str) -> tuple[StoreState, list[dict[str, Any]]]:
    log = CommitLog(resolve(url))
    log.refresh()
    return replay(log.records), log.records


def _same_state(a: StoreState, b: StoreState) -> None:
    assert a.version == b.version and a.config == b.config
    assert list(a.archs) == list(b.archs)
    for name in a.archs:
        x, y = a.archs[name], b.archs[name]
        assert x.layout == y.layout
        assert x.columns == y.columns
        assert x.n_rows == y.n_rows
        assert [(p.segment, p.start, p.stop) for p in x.merged()] == [
            (p.segment, p.start, p.stop) for p in y.merged()
        ]
        for p, q in zip(x.merged(), y.merged(), strict=True):
            assert (p.live is None) == (q.live is None)
            if p.live is not None:
                assert np.array_equal(p.live, q.live)
        assert x.keys == y.keys  # the lazily read keys of compacted rows included


def _append(url: str, names: list[str], *, replace: bool = False, seed: int = 0) -> None:
    with wspace.writer(url, commit_every=2) as w:
        for k, name in enumerate(names):
            w.append(
                tiny_weights(seed + k, LAYOUT.size),
                model=name,
                cls="church",
                seed=seed + k,
                replace=replace,
                curve=[k, k + 1],
            )


def test_checkpoint_state_equals_full_replay_at_every_version(tmp_path):
    url = str(tmp_path / "z.zarr")
    tiny_zoo(url, 6, writers=2)
    _append(url, ["a", "b", "c"], seed=10)
    wspace.compact(url)  # writes a checkpoint
    _append(url, ["d", "e"], seed=20)
    _append(url, ["a", "d"], replace=True, seed=30)  # replaces a compacted and a later row
    wspace.add_arch(url, MLP)
    with wspace.writer(url) as w:
        w.append(np.ones(6, "float32"), model="m0", arch="mlp")
    backend = resolve(url)
    records = _full(url)[1]
    # a checkpoint at every version gives the state a full replay of the whole log gives
    for version in range(len(records)):
        write_checkpoint(backend, records[: version + 1])
        backend.write(POINTER, json.dumps({"version": version}).encode())
        loaded = load_checkpoint(backend)
        assert loaded is not None
        _same_state(loaded[0], replay(records))
    zoo = wspace.open(url, arch="lenet5")
    assert sorted(zoo.models["model"]) == sorted(
        [f"{c}_{i}" for i, c in zip(range(6), ["church", "tench"] * 3, strict=True)]
        + ["a", "b", "c", "d", "e"]
    )
    assert_rows_equal(zoo.row("a"), tiny_weights(30, LAYOUT.size))
    assert zoo.models.set_index("model").loc["d", "curve"] == [1, 2]


def test_second_compaction_and_appends_during_it(tmp_path):
    url = str(tmp_path / "z.zarr")
    tiny_zoo(url, 4)
    wspace.compact(url)
    w = wspace.writer(url, commit_every=1)
    w.append(tiny_weights(50, LAYOUT.size), model="during", seed=50)
    _append(url, ["x", "y"], seed=60)
    wspace.compact(url)
    w.append(tiny_weights(51, LAYOUT.size), model="after", seed=51)
    w.close()
    state, _ = _full(url)
    loaded = load_checkpoint(resolve(url))
    assert loaded is not None
    _same_state(loaded[0], state)
    assert wspace.open(url).models["model"].tolist()[-3:] == ["x", "y", "after"]


class CountingStore(WrapperStore[Any]):
    """Counts the keys read through it (a real zarr store wrapper)."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.reads: list[str] = []

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        self.reads.append(key)
        return await self._store.get(key, prototype, byte_range)


def test_open_after_compaction_reads_the_checkpoint_not_every_record(tmp_path):
    url = str(tmp_path / "z.zarr")
    wspace.create(url, LAYOUT)
    with wspace.writer(url, commit_every=1) as w:  # one record per model
        for i in range(30):
            w.append(tiny_weights(i, LAYOUT.size), model=f"m{i}", cls="church")
    wspace.compact(url)
    _append(url, ["late"], seed=99)
    counting = CountingStore(LocalStore(url, read_only=True))
    zoo = wspace.open(counting)
    log_reads = [k for k in counting.reads if k.startswith("_log/")]
    # the pointer, the checkpoint, the one record after it, and the probe past the end
    assert POINTER in log_reads and len(log_reads) <= 2 + 8
    assert not any(k.startswith("_log/00000000000000000001.json") for k in log_reads)
    assert len(zoo) == 31 and zoo.models["model"].iloc[-1] == "late"


def test_checkpoint_is_ignored_by_full_replay_and_when_broken(tmp_path, caplog):
    url = str(tmp_path / "z.zarr")
    tiny_zoo(url, 5, writers=2)
    wspace.compact(url)
    before = wspace.open(url)
    backend = resolve(url)
    state, records = _full(url)  # a reader that knows nothing of checkpoints
    assert state.archs["lenet5"].n_rows == 5 and len(records) == checkpoint_log(backend) + 1
    version = json.loads(backend.read(POINTER) or b"")["version"]
    Path(url, checkpoint_key(version)).write_bytes(b"{not json")
    with caplog.at_level("WARNING"):
        after = wspace.open(url)  # falls back to replaying every record
    assert "ignoring checkpoint" in caplog.text
    assert after.models.equals(before.models)
    assert_rows_equal(after.values, before.values)
    Path(url, POINTER).unlink()
    assert load_checkpoint(backend) is None
    assert wspace.open(url).models.equals(before.models)


def test_checkpoint_needs_the_whole_log(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 2)
    records = _full(url)[1]
    with pytest.raises(ValueError, match="every record"):
        write_checkpoint(resolve(url), records[1:])


def test_vacuum_reads_every_record_not_the_checkpoint(tmp_path):
    url = str(tmp_path / "z.zarr")
    tiny_zoo(url, 4, writers=2)
    wspace.compact(url)
    handle = wspace.store.open_store(url, checkpoint=False)
    assert len(handle.state_records) == len(_full(url)[1])
    assert len(wspace.vacuum(url, grace_seconds=0)["segments"]) == 2
    assert wspace.verify(url).ok and len(wspace.open(url)) == 4
