"""The direct read path: sharded archives read only the bytes needed, results equal zarr's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import zarr
from zarr.codecs import Crc32cCodec, GzipCodec
from zarr.storage import LocalStore

import wspace
from tests.store_probes import RangeCountingStore, flip_a_byte_of_a_row
from wspace.architectures import lenet5_layout
from wspace.store.backend import resolve
from wspace.store.chunks import LayerReader, Request, plan_for, read, read_block
from wspace.testing import assert_rows_equal, tiny_weights, tiny_zoo

LAYOUT = lenet5_layout()
CONV2D_2 = "conv2d_2"  # conv2d_2: 48,120 params, one row per chunk in an archive


def _expected(indices: Any) -> np.ndarray:
    return np.stack([tiny_weights(int(i), LAYOUT.size) for i in indices])


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("fast") / "z.zarr")
    tiny_zoo(url, 40)
    wspace.compact(url)
    return url


def test_archive_layers_are_sharded_with_small_chunks(archive):
    zoo = wspace.open(archive)
    conv = zoo._source.readers["conv2d_2"][0].array
    dense_1 = zoo._source.readers["dense_1"][0].array
    assert conv.chunks == (1, 48120) and conv.shards == (40, 48120)
    assert dense_1.chunks == (40, 85) and dense_1.shards == (40, 85)  # few rows: one chunk


def test_one_row_reads_the_shard_index_and_that_rows_bytes_only(archive):
    counting = RangeCountingStore(LocalStore(archive, read_only=True))
    zoo = wspace.open(counting)
    counting.reads.clear()
    assert_rows_equal(zoo.row(17), tiny_weights(17, LAYOUT.size))
    reads = counting.weight_reads(CONV2D_2)
    shard = Path(archive, reads[0][0]).stat().st_size
    assert len(reads) == 2  # the shard index (a suffix), then one chunk's byte range
    assert type(reads[0][1]).__name__ == "SuffixByteRequest"
    start, end = reads[1][1].start, reads[1][1].end
    assert end - start < 48120 * 4 * 1.05 and shard > 30 * (end - start)
    counting.reads.clear()
    zoo.row(18)  # the index is cached: one read
    assert len(counting.weight_reads(CONV2D_2)) == 1


def test_a_layer_scan_reads_each_shard_once_whole(archive):
    counting = RangeCountingStore(LocalStore(archive, read_only=True))
    zoo = wspace.open(counting)
    counting.reads.clear()
    values = zoo.layer("conv2d_2").values
    assert counting.weight_reads(CONV2D_2) == [(counting.weight_reads(CONV2D_2)[0][0], None)]
    part = LAYOUT.layer_slice("conv2d_2")
    assert_rows_equal(values, _expected(range(40))[:, part])
    counting.reads.clear()
    stats = zoo.layer("conv2d_2").data.mean(axis=0).compute()  # Dask blocks = shards
    assert len(counting.weight_reads(CONV2D_2)) == 1
    np.testing.assert_allclose(stats, _expected(range(40))[:, part].mean(axis=0), rtol=1e-5)


def test_a_layer_scan_keeps_none_of_the_shards_it_read(archive):
    # the cached shard index must not pin the fetched shard: a scan of a 10,000-row zoo
    # once held every shard of the layer (GBs) for as long as the zoo was open
    import gc
    import tracemalloc

    zoo = wspace.open(archive)
    shard = sum(
        p.stat().st_size for p in Path(archive).rglob("*") if f"/{CONV2D_2}/c/" in p.as_posix()
    )
    tracemalloc.start()
    try:
        total = zoo.layer("conv2d_2").data.sum(axis=0).compute()
        del total
        gc.collect()
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert shard > 1_000_000
    assert kept < shard / 10, f"{kept} bytes still held after reading {shard} stored bytes"


def test_direct_reads_equal_the_rows_written(spot):
    tiny_zoo(spot.url, 12, writers=3, storage_options=spot.options)
    wspace.compact(spot.url, storage_options=spot.options)
    with wspace.writer(spot.url, storage_options=spot.options) as w:  # a segment after it
        w.append(tiny_weights(100, LAYOUT.size), model="church_4", replace=True, seed=100)
        w.append(tiny_weights(101, LAYOUT.size), model="late", seed=101)
    zoo = wspace.open(spot.url, storage_options=spot.options)
    seeds = zoo.models["seed"].to_numpy()
    assert len(zoo) == 13 and 100 in seeds  # church_4 replaced (hidden in the archive)
    assert_rows_equal(zoo.values, _expected(seeds))
    picks = np.array([12, 3, 3, 0, 7, 12])  # unsorted, repeated, across pieces
    assert_rows_equal(zoo.isel(picks).values, _expected(seeds[picks]))
    layer = zoo.isel(picks).layer("dense")
    assert isinstance(layer.data, da.Array)
    part = LAYOUT.layer_slice("dense")
    assert_rows_equal(layer.values, _expected(seeds[picks])[:, part])
    assert_rows_equal(np.asarray(layer.data.compute()), layer.values)  # the Dask graph agrees
    assert_rows_equal(zoo.row("late"), tiny_weights(101, LAYOUT.size))


@pytest.mark.parametrize("codec", ["none", "zstd", "blosc-lz4", "bitround-12"])
def test_every_codec_preset_reads_directly(tmp_path, codec):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 6, codec=codec)
    wspace.compact(url)
    zoo = wspace.open(url)
    plan = plan_for(zoo._source.readers["conv2d"][0].array)
    assert plan.decoders is not None  # not the zarr fallback
    expected = _expected(range(6))
    if codec.startswith("bitround"):
        np.testing.assert_allclose(zoo.values, expected, rtol=2**-12)
    else:
        assert_rows_equal(zoo.values, expected)
    assert_rows_equal(zoo.values, np.asarray(zoo.weights.data.compute()))


def test_arrays_with_other_codecs_are_read_through_zarr(tmp_path):
    store = LocalStore(str(tmp_path / "g.zarr"))
    array = zarr.create_array(
        store,
        name="w",
        shape=(10, 6),
        chunks=(4, 6),
        dtype="float32",
        compressors=[GzipCodec(), Crc32cCodec()],
    )
    data = np.arange(60, dtype="float32").reshape(10, 6)
    array[:] = data
    reader = LayerReader(
        resolve(store),
        array,
        10,
        np.array([f"m{i}" for i in range(10)], dtype=object),
        layer="fc",
        segment="s",
    )
    assert plan_for(array).decoders is None
    out = np.zeros((3, 6), dtype="float32")
    read([Request(reader, np.array([1, 2, 9]), out, np.array([2, 0, 1]))])
    assert_rows_equal(out, data[[2, 9, 1]])
    assert_rows_equal(read_block(reader, slice(3, 8)), data[3:8])


def test_corrupt_chunk_inside_a_shard_names_its_model(tmp_path):
    url = str(tmp_path / "z.zarr")
    tiny_zoo(url, 20)
    wspace.compact(url)
    name, shard, data = flip_a_byte_of_a_row(url, "conv2d_2", 7, rows=20)
    zoo = wspace.open(url)
    with pytest.raises(wspace.CorruptDataError, match=f"conv2d_2.*{name}"):
        zoo.row(7)
    assert_rows_equal(zoo.row(6), tiny_weights(6, LAYOUT.size))  # others stay readable
    with pytest.raises(wspace.CorruptDataError, match=name):
        zoo.layer("conv2d_2").values
    data[-2] ^= 0xFF  # the shard index
    shard.write_bytes(bytes(data))
    with pytest.raises(wspace.CorruptDataError, match="index .* checksum"):
        wspace.open(url).row(3)
    shard.unlink()
    with pytest.raises(wspace.CorruptDataError, match="missing"):
        wspace.open(url).row(3)
