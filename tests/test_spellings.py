"""No slow spellings: every way of asking for the same rows returns the same bytes, and the
xarray spellings (``zoo.weights[i]``, ``.sel`` on ``.weights`` / ``.layer()``, tensors) read
only the rows they select, while staying lazy Dask-backed xarray objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from zarr.storage import LocalStore

import wspace
from benchmarks.spellings import FEW_ROWS, SPELLINGS, few
from tests.store_probes import RangeCountingStore
from wspace.architectures import lenet5_layout
from wspace.query.direct import DirectArray
from wspace.testing import tiny_weights, tiny_zoo

LAYOUT = lenet5_layout()
BIG = "conv2d_2"  # 48,120 params: one row per chunk in an archive


def _compacted(root: Path) -> str:
    url = str(root / "compacted.zarr")
    tiny_zoo(url, 40)
    wspace.compact(url)
    return url


def _mixed(root: Path) -> str:
    """An archive, then a segment after it that replaces one of its rows (hidden in the
    archive) and adds more: rows come from two pieces."""
    url = str(root / "mixed.zarr")
    tiny_zoo(url, 30, writers=2)
    wspace.compact(url)
    with wspace.writer(url) as w:
        w.append(tiny_weights(100, LAYOUT.size), model="church_4", replace=True, seed=100)
        for i in range(101, 106):
            w.append(tiny_weights(i, LAYOUT.size), model=f"late_{i}", seed=i)
    return url


def _segments(root: Path) -> str:
    """Never compacted: three writers' segments."""
    return tiny_zoo(str(root / "segments.zarr"), 24, writers=3)


@pytest.fixture(scope="module", params=["compacted", "mixed", "segments"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    build = {"compacted": _compacted, "mixed": _mixed, "segments": _segments}[request.param]
    return build(tmp_path_factory.mktemp(request.param))


def _manifest(zoo: wspace.Zoo) -> dict[str, Any]:
    """What :mod:`benchmarks.spellings` needs of a benchmark manifest, for this zoo."""
    names = zoo.models["model"].tolist()
    positions = list(range(1, len(zoo), 2))  # sorted, as the generator's
    q4 = len(zoo) - 3
    slices = {
        layer: [LAYOUT.layer_slice(layer).start, LAYOUT.layer_slice(layer).stop]
        for layer in LAYOUT.layers
    }
    return {
        "q4": {"position": q4, "model": names[q4]},
        "q2": {"positions": positions, "models": [names[p] for p in positions]},
        "layer_slices": slices,
    }


def _expected(zoo: wspace.Zoo, positions: list[int]) -> np.ndarray:
    seeds = zoo.models["seed"].to_numpy()[positions]
    return np.stack([tiny_weights(int(s), LAYOUT.size) for s in seeds])


def test_every_spelling_returns_the_same_bytes(store):
    zoo = wspace.open(store)
    m = _manifest(zoo)
    assert len(few(m)[0]) == FEW_ROWS
    dense = LAYOUT.layer_slice("dense")
    want = {
        "one row": _expected(zoo, [m["q4"]["position"]]),
        "few rows": _expected(zoo, few(m)[0])[:, dense],
    }
    # the "layer stats" group (statistics, not rows): the benchmark checks its spellings agree
    # (tests/test_benchmarks.py runs it), tests/test_param_stats.py checks the values
    assert {s.group for s in SPELLINGS.values()} == {*want, "layer stats"}
    for code, spell in SPELLINGS.items():
        if spell.group not in want:
            continue
        got = np.asarray(spell.run(zoo, m))
        assert got.dtype == np.float32, code
        shaped = got.reshape(want[spell.group].shape)
        np.testing.assert_array_equal(shaped, want[spell.group], err_msg=code)
        again = np.asarray(spell.run(wspace.open(store), m)).reshape(shaped.shape)
        np.testing.assert_array_equal(again, shaped, err_msg=f"{code} (fresh zoo)")


def test_the_replaced_row_is_read_from_its_new_segment(tmp_path):
    zoo = wspace.open(_mixed(tmp_path))
    fresh = tiny_weights(100, LAYOUT.size)
    position = int(np.flatnonzero(zoo.models["model"] == "church_4")[0])
    np.testing.assert_array_equal(zoo.weights[position].values, fresh)
    np.testing.assert_array_equal(zoo.weights.sel(model="church_4").values, fresh)
    np.testing.assert_array_equal(
        zoo.layer("dense").sel(model=["church_4"]).values, fresh[None, LAYOUT.layer_slice("dense")]
    )


def test_sliced_arrays_stay_lazy_dask_and_agree_with_their_graph(store):
    zoo = wspace.open(store)
    rows = [len(zoo) - 1, 3, 3, 0, 7]  # unsorted, repeated, across pieces
    names = zoo.models["model"].to_numpy()[rows].tolist()
    cases = {
        "weights[rows]": zoo.weights[rows],
        "weights[i]": zoo.weights[5],
        "weights[-1]": zoo.weights[-1],
        "weights.sel": zoo.weights.sel(model=names[1]),
        "weights columns": zoo.weights.isel(param=slice(40_000, 52_000))[rows],
        "weights strided": zoo.weights[rows, ::997],
        "weights picked columns": zoo.weights.isel(param=[90_000, 5, 48_000])[2:9],
        "weights ellipsis": zoo.weights[..., 7],
        "weights none": zoo.weights[np.zeros(len(zoo), bool)],
        "layer.sel": zoo.layer("dense").sel(model=names),
        "layer boolean": zoo.layer("dense_1")[np.arange(len(zoo)) % 3 == 0],
        "layer[rows][k]": zoo.layer("conv2d")[rows][1],
        "selected zoo layer": zoo.isel(model=rows).layer("conv2d_1")[::2, 10:20],
        "tensor view .sel": zoo.tensor("dense/kernel").sel(model=names[0]),  # Keras' view
        "tensor view rows": zoo.tensor("conv2d/kernel")[rows],
        "stored tensor": zoo.isel(model=rows).tensor("conv2d/weight"),
        "ds": zoo.ds.isel(model=rows)["weights"],
    }
    for what, array in cases.items():
        assert isinstance(array.data, da.Array), what
        assert isinstance(array.data, DirectArray), what  # the direct route
        computed = array.data.compute()  # the plain Dask graph
        np.testing.assert_array_equal(array.values, computed, err_msg=what)
        assert array.values.shape == array.shape, what
    xr.testing.assert_identical(zoo.weights, zoo.ds["weights"])
    picked = zoo.isel(model=rows)
    xr.testing.assert_identical(picked.weights, picked.ds["weights"])
    assert picked.ds.attrs == {"store": zoo.url, "arch": "lenet5", "architecture": "lenet5"}
    assert set(picked.ds.coords) == {"layer", "tensor", "index", *zoo.models.columns}
    doubled = zoo.weights[rows] * 2  # arithmetic: plain Dask, correct
    assert not isinstance(doubled.data, DirectArray)
    np.testing.assert_array_equal(doubled.values, 2 * zoo.isel(model=rows).values)
    (both,) = dask.compute(zoo.layer("dense")[rows].data)
    np.testing.assert_array_equal(both, zoo.isel(model=rows).layer("dense").values)
    plain = zoo.layer("dense").data.compute()[rows]
    assert zoo.layer("dense")[rows].data.chunks == zoo.layer("dense").data[rows].chunks
    np.testing.assert_array_equal(zoo.layer("dense")[rows].values, plain)


def test_a_selected_row_reads_its_chunks_not_whole_shards(tmp_path):
    url = _compacted(tmp_path)
    counting = RangeCountingStore(LocalStore(url, read_only=True))
    zoo = wspace.open(counting)
    row = tiny_weights(17, LAYOUT.size)
    part = LAYOUT.layer_slice(BIG)
    tensor = zoo.tensor(f"{BIG}/weight")
    name = str(zoo.models["model"][17])
    spellings = {
        "zoo.weights[i]": (lambda: zoo.weights[17].values, row),
        "zoo.weights.sel": (lambda: zoo.weights.sel(model=name).values, row),
        "zoo.sel().weights": (lambda: zoo.sel(model=name).weights.values, row[None]),
        "zoo.layer()[i]": (lambda: zoo.layer(BIG)[17].values, row[part]),
        "zoo.tensor().sel": (
            lambda: tensor.sel(model=name).values,
            row[part][: 120 * 16 * 5 * 5].reshape(120, 16, 5, 5),
        ),
    }
    zoo.row(0)  # the shard indexes are cached: what follows reads chunks only
    for what, (read, want) in spellings.items():
        counting.reads.clear()
        np.testing.assert_array_equal(read(), want, err_msg=what)
        reads = counting.weight_reads(BIG)
        assert len(reads) == 1, (what, reads)  # one chunk's byte range, not the shard
        assert reads[0][1].end - reads[0][1].start < 48_120 * 4 * 1.05, what


def test_a_full_layer_scan_still_reads_each_shard_once(tmp_path):
    url = _compacted(tmp_path)
    counting = RangeCountingStore(LocalStore(url, read_only=True))
    zoo = wspace.open(counting)
    for what, scan in {
        "layer .values": lambda: zoo.layer(BIG).values,
        "layer through Dask": lambda: zoo.layer(BIG).data.sum(axis=0).compute(),
        "weights .values": lambda: zoo.weights.values,
        "weights[:, layer]": lambda: zoo.weights.isel(param=LAYOUT.layer_slice(BIG)).values,
    }.items():
        counting.reads.clear()
        scan()
        reads = counting.weight_reads(BIG)
        assert len(reads) == 1 and reads[0][1] is None, (what, reads)  # the whole shard, once
