"""Compaction, verification and corruption reporting."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import wspace
from wspace.architectures import lenet5_layout
from wspace.testing import assert_rows_equal, tiny_weights, tiny_zoo

LAYOUT = lenet5_layout()


def test_compact_merges_segments_and_keeps_every_row(spot):
    tiny_zoo(spot.url, 9, writers=3, steps=[1, 2], storage_options=spot.options)
    before = wspace.open(spot.url, storage_options=spot.options)
    report = wspace.info(spot.url, storage_options=spot.options)
    assert report["archs"]["lenet5"]["live_segments"] == 3
    assert wspace.compact(spot.url, storage_options=spot.options) == {"lenet5": 18}
    after = wspace.open(spot.url, storage_options=spot.options)
    assert (
        wspace.info(spot.url, storage_options=spot.options)["archs"]["lenet5"]["live_segments"] == 1
    )
    assert after.models.equals(before.models)
    assert_rows_equal(after.values, before.values)  # the old zoo still reads its segments
    assert wspace.compact(spot.url, storage_options=spot.options) == {}  # already compact
    # appends continue on top of the archive; the archive chunks layers by bytes
    with wspace.writer(spot.url, storage_options=spot.options) as w:
        w.append(tiny_weights(99, LAYOUT.size), model="late", seed=99)
    zoo = wspace.open(spot.url, storage_options=spot.options)
    assert len(zoo) == 19 and zoo.models["model"].iloc[-1] == "late"
    dense_1 = zoo.layer("dense_1").data.chunks[0]
    conv2d_2 = zoo.layer("conv2d_2").data.chunks[0]
    assert dense_1[0] == 18 and conv2d_2[0] == 18  # Dask blocks follow the shards
    # small chunks by bytes (~128 KiB: one row of conv2d_2), in shards of ~32 MiB per layer
    archive = {layer: zoo._source.readers[layer][0].array for layer in ("dense_1", "conv2d_2")}
    assert archive["conv2d_2"].chunks == (1, 48120) and archive["conv2d_2"].shards == (18, 48120)
    assert archive["dense_1"].chunks == (18, 85) and archive["dense_1"].shards == (18, 85)


def test_compaction_racing_a_writer_loses_nothing(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 4)
    w = wspace.writer(url, commit_every=1)
    w.append(tiny_weights(10, LAYOUT.size), model="during_0", seed=10)
    wspace.compact(url)
    w.append(tiny_weights(11, LAYOUT.size), model="during_1", seed=11)
    w.close()
    zoo = wspace.open(url)
    assert zoo.models["model"].tolist() == [
        "church_0",
        "tench_1",
        "church_2",
        "tench_3",
        "during_0",
        "during_1",
    ]
    for i, seed in enumerate(zoo.models["seed"]):
        assert_rows_equal(zoo.row(i), tiny_weights(int(seed), LAYOUT.size))


def _chunk_files(url: str, layer_index: int) -> list[Path]:
    layer = LAYOUT.layers[layer_index]
    return sorted(Path(url).glob(f"archs/lenet5/seg/*/{layer}/c/*/0"))


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_corrupt_chunk_is_reported_by_model_and_layer(tmp_path, damage):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 30, segment_rows=10)
    chunk = _chunk_files(url, 2)[1]  # conv2d_2, rows 10-19
    data = bytearray(chunk.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
    elif damage == "truncate":
        chunk.write_bytes(bytes(data[: len(data) // 3]))
    else:
        os.remove(chunk)
    zoo = wspace.open(url)
    with pytest.raises(wspace.CorruptDataError, match="conv2d_2.*church_10") as info:
        zoo.sel(model="church_10").values
    assert url in str(info.value)
    with pytest.raises(wspace.CorruptDataError):
        zoo.layer("conv2d_2").values
    # other models, and other layers of the damaged models, stay readable
    assert_rows_equal(zoo.sel(model="church_0").values[0], tiny_weights(0, LAYOUT.size))
    assert_rows_equal(zoo.sel(model="tench_21").values[0], tiny_weights(21, LAYOUT.size))
    good = zoo.sel(model="church_10").layer("dense").values[0]
    assert_rows_equal(good, tiny_weights(10, LAYOUT.size)[LAYOUT.layer_slice("dense")])
    report = wspace.verify(url)
    assert not report.ok
    assert [(p.item, p.rows) for p in report.problems] == [("conv2d_2", (10, 20))]
    assert report.damaged_models == sorted(
        f"{'church' if i % 2 == 0 else 'tench'}_{i}" for i in range(10, 20)
    )


def test_corrupt_commit_record_is_a_clear_error(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 2)
    record = sorted(Path(url, "_log").glob("*.json"))[-1]
    record.write_bytes(b"{not json")
    with pytest.raises(wspace.CorruptDataError, match="commit record .* is corrupt"):
        wspace.open(url)


def test_verify_clean_store_counts_chunks(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 25, segment_rows=10)
    report = wspace.verify(url)
    assert report.ok and report.chunks_checked == 5 * 3


def test_info_reports_bytes_and_layout(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 6, writers=2)
    summary = wspace.info(url)
    arch = summary["archs"]["lenet5"]
    assert arch["rows"] == 6 and arch["models"] == 6 and arch["params"] == 91_481
    assert arch["layout"]["tensor"].tolist()[:2] == ["conv2d/weight", "conv2d/bias"]
    assert summary["bytes_raw"] == 6 * 91_481 * 4
    assert summary["bytes_stored"] > 0
    assert summary["codec"] == "blosc-zstd"
    assert np.isfinite(summary["ratio"])


def test_vacuum_reclaims_superseded_and_orphaned_data_after_grace(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 6, writers=3, segment_rows=2)
    # a writer that flushed rows but never committed (as if it crashed); chunks written in
    # append, so that they are on disk when it stops
    w = wspace.writer(url, commit_every=10**6, background_flush=False)
    for i in range(10, 15):
        w.append(tiny_weights(i, LAYOUT.size), model=f"orphan_{i}")
    orphan = w.segments["lenet5"].path
    assert any(Path(url, orphan).rglob("c/*/0"))
    wspace.compact(url)
    before = wspace.open(url)
    assert wspace.vacuum(url)["segments"] == []  # everything is younger than the grace period
    info_before = wspace.info(url)
    removed = wspace.vacuum(url, grace_seconds=0)
    assert orphan in removed["segments"] and len(removed["segments"]) == 4  # 3 + the orphan
    assert removed["bytes"] > 0
    info_after = wspace.info(url)
    assert info_after["bytes_stored"] == info_before["bytes_stored"] - removed["bytes"]
    assert info_after["bytes_total"] == info_before["bytes_total"] - removed["bytes"]
    # what remains beyond the live segments is group metadata (zarr.json) only
    assert 0 <= info_after["bytes_stored"] - info_after["bytes_live"] < 10_000
    after = wspace.open(url)
    assert after.models.equals(before.models)
    assert_rows_equal(after.values, before.values)
    assert wspace.verify(url).ok


def test_vacuum_trims_uncommitted_chunks_of_a_live_segment(tmp_path):
    url = str(tmp_path / "z.zarr")
    wspace.create(url, LAYOUT, segment_rows=2)
    # chunks written in append (a background flush drops chunks still queued at discard())
    w = wspace.writer(url, commit_every=10**6, background_flush=False)
    for i in range(3):
        w.append(tiny_weights(i, LAYOUT.size), model=f"m{i}")
    w.commit()  # rows 0-2 committed: chunks 0 and 1 of each layer
    for i in range(3, 8):
        w.append(tiny_weights(i, LAYOUT.size), model=f"m{i}")  # chunks 1-3 flushed, uncommitted
    w.discard()
    removed = wspace.vacuum(url, grace_seconds=0)
    assert removed["segments"] == []
    assert sorted({k.rsplit("/", 2)[-2] for k in removed["chunks"]}) == ["2", "3"]
    assert len(removed["chunks"]) == 5 * 2
    zoo = wspace.open(url)
    assert_rows_equal(zoo.values, np.stack([tiny_weights(i, LAYOUT.size) for i in range(3)]))
    assert wspace.verify(url).ok


def test_corrupt_metadata_chunk_is_detected(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 4)
    chunk = sorted(Path(url).glob("archs/lenet5/seg/*/cls/c/0"))[0]  # the cls column
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x55
    chunk.write_bytes(bytes(data))
    # open() reads no metadata column (they are read when first used): the damaged column
    # raises, naming it, as soon as anything needs it
    zoo = wspace.open(url)
    assert len(zoo) == 4
    uses = (
        lambda: zoo.models,
        lambda: zoo.sel(cls="church"),
        lambda: zoo.layer("dense_1").coords["cls"].values,  # coordinates: read when used
    )
    for use in uses:
        with pytest.raises(
            wspace.CorruptDataError, match="metadata of architecture 'lenet5'.*'cls'"
        ):
            use()
    report = wspace.verify(url)
    assert not report.ok and report.problems[0].item == "metadata"


def test_vacuum_removes_temp_files_of_interrupted_writes(tmp_path):
    """A writer killed mid-write leaves ``*.partial`` temp files (zarr's and the log's)."""
    url = tiny_zoo(str(tmp_path / "z.zarr"), 2, layout=LAYOUT)
    chunk = sorted(Path(url).glob("archs/lenet5/seg/*/conv2d/c/0/0"))[0]
    old = [
        chunk.with_name("0.4f2a9c.partial"),
        Path(url, "_log", ".00000000000000000009.json.77aa.partial"),
    ]
    young = Path(url, "_log", ".00000000000000000010.json.88bb.partial")
    for path in [*old, young]:
        path.write_bytes(b"half a write")
    for path in old:
        os.utime(path, (1_000_000_000, 1_000_000_000))
    removed = wspace.vacuum(url)  # default grace: only the old ones go
    assert sorted(removed["chunks"]) == sorted(str(p.relative_to(url)) for p in old)
    assert not any(p.exists() for p in old) and young.exists()
    assert removed["bytes"] == 2 * len(b"half a write")
    assert wspace.verify(url).ok and len(wspace.open(url)) == 2
