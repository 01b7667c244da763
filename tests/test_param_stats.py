"""The fused statistics pass (``Zoo.param_stats``, ``zoo.stats()``): numpy's float64 answers
on real stores (compacted, appended, a replaced row, several codecs), Keras- and torch-convention
rows, selections with repeats, and the empty selection."""

from __future__ import annotations

import numpy as np
import pytest

import wspace
from tests.store_probes import flip_a_byte_of_a_row
from wspace.errors import LayerNotFoundError, SchemaMismatchError
from wspace.store.chunks.moments import ColumnMoments
from wspace.testing import tiny_zoo
from wspace.weightspace.stats import compute_stats

KERAS = {
    "name": "kconv",
    "tensors": [
        {"name": "conv/kernel", "shape": [3, 3, 2, 4], "convention": "keras"},
        {"name": "conv/bias", "shape": [4], "convention": "keras"},
        {"name": "dense/kernel", "shape": [4, 5000], "convention": "keras"},
        {"name": "dense/bias", "shape": [5000], "convention": "keras"},
    ],
}
"""A Keras-convention layout with one layer wide enough for the row-at-a-time path."""

TORCH = {
    "name": "tconv",
    "tensors": [
        {"name": "conv/weight", "shape": [4, 2, 3, 3]},
        {"name": "conv/bias", "shape": [4]},
        {"name": "fc/weight", "shape": [4100, 2]},
        {"name": "fc/bias", "shape": [4100]},
        {"name": "out/weight", "shape": [3, 4100]},
        {"name": "out/bias", "shape": [3]},
    ],
}


def _row(layout: wspace.Layout, i: int) -> np.ndarray:
    """Weights whose columns have different means and tiny spreads (a cancellation trap)."""
    rng = np.random.default_rng(i)
    base = np.linspace(-50, 50, layout.size, dtype=np.float32)
    return (base + 1e-3 * rng.standard_normal(layout.size)).astype(np.float32)


def _store(url: str, layout: wspace.Layout, **create: object) -> str:
    """Compacted rows, rows appended after, and a replaced row of each part."""
    wspace.create(url, layout, segment_rows=5, **create)
    with wspace.writer(url) as w:
        for i in range(23):
            w.append(_row(layout, i), model=f"m{i}", cls="ab"[i % 2])
    wspace.compact(url)
    with wspace.writer(url) as w:
        for i in range(23, 30):
            w.append(_row(layout, i), model=f"m{i}", cls="ab"[i % 2])
    with wspace.writer(url) as w:
        for i, name in ((100, "m4"), (101, "m25")):  # one compacted row, one appended
            w.append(_row(layout, i), model=name, cls="ab"[i % 2], replace=True)
    return url


def _assert_equal_numpy(zoo: wspace.Zoo, values: np.ndarray) -> None:
    stats = zoo.param_stats()
    v = values.astype(np.float64)
    np.testing.assert_allclose(stats["mean"].values, v.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats["std"].values, v.std(axis=0), rtol=1e-7, atol=1e-12)
    assert np.array_equal(stats["min"].values, values.min(axis=0))
    assert np.array_equal(stats["max"].values, values.max(axis=0))
    assert stats.attrs["rows"] == len(zoo)
    ddof1 = zoo.param_stats(ddof=1)["std"].values
    np.testing.assert_allclose(ddof1, v.std(axis=0, ddof=1), rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("codec", ["blosc-lz4", "zstd", "pcodec"])
@pytest.mark.parametrize("layout", [KERAS, TORCH], ids=["keras", "torch"])
def test_param_stats_equal_numpy_float64_on_a_real_store(tmp_path, layout, codec):
    lay = wspace.Layout.from_dict(layout)
    zoo = wspace.open(_store(str(tmp_path / "z.zarr"), lay, codec=codec))
    assert len(zoo) == 30
    values = zoo.values
    np.testing.assert_array_equal(values[zoo.models["model"].tolist().index("m4")], _row(lay, 100))
    _assert_equal_numpy(zoo, values)
    # a selection, in another order, with a repeated row, and one layer
    picks = np.array([7, 3, 3, 29, 0, 11, 25])
    sub = zoo.isel(picks)
    _assert_equal_numpy(sub, values[picks])
    layer = lay.layers[1]
    one = zoo.sel(cls="a").param_stats(layer)
    ref = zoo.sel(cls="a").layer(layer).astype(np.float64)  # xarray's float32 mean rounds
    np.testing.assert_allclose(one["mean"], ref.mean("model"), rtol=1e-12)
    np.testing.assert_allclose(one["std"], ref.std("model"), rtol=1e-7)
    assert list(one["tensor"].values[:1]) == list(ref["tensor"].values[:1])
    assert one.sizes["param"] == lay.layer_size(layer)
    # the per-tensor statistics (zoo.stats(), the normalisation statistics) agree with numpy
    stats = zoo.stats(recompute=True)
    for t in lay:
        part = values[:, t.slice()].astype(np.float64)
        row = stats.tensors.loc[t.name]
        assert row["count"] == part.size
        np.testing.assert_allclose([row["mean"], row["std"]], [part.mean(), part.std()], rtol=1e-9)
        assert (row["min"], row["max"]) == (part.min(), part.max())
    # a computed zoo (no store behind it) gives the same answer through its other path
    computed = zoo.compute()
    np.testing.assert_allclose(
        computed.param_stats()["std"], zoo.param_stats()["std"], rtol=1e-9, atol=1e-12
    )


def test_stats_of_a_permuted_zoo_and_a_lenet5_zoo_equal_numpy(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 9, writers=2)
    zoo = wspace.open(url)
    values = zoo.values
    _assert_equal_numpy(zoo, values)
    permuted = compute_stats(zoo.permute(seed=3))
    plain = compute_stats(zoo)
    np.testing.assert_allclose(permuted.tensors["std"], plain.tensors["std"], rtol=1e-12)
    for t in zoo.layout:
        np.testing.assert_allclose(
            plain.tensors.loc[t.name, "std"], values[:, t.slice()].astype(np.float64).std()
        )


def test_empty_selection_and_unknown_layer_raise_naming_the_store(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 3)
    zoo = wspace.open(url)
    empty = zoo.sel(cls=lambda c: c == "nothing")
    assert len(empty) == 0
    with pytest.raises(SchemaMismatchError, match="no rows"):
        empty.param_stats()
    with pytest.raises(SchemaMismatchError, match="no rows"):
        empty.stats(recompute=True)
    with pytest.raises(LayerNotFoundError, match=r"z\.zarr"):
        zoo.param_stats("nope")
    with pytest.raises(LayerNotFoundError):
        zoo.param_stats(["conv2d", "nope"])


def test_column_moments_merge_equals_one_pass():
    rng = np.random.default_rng(0)
    for width in (3, 5000):  # the grouped and the row-at-a-time paths
        rows = (7.0 + rng.standard_normal((40, width))).astype(np.float32)
        one, a, b, empty = (ColumnMoments(width) for _ in range(4))
        one.add(rows)
        a.add(rows[:13])
        b.add(rows[13:])
        merged = empty.merge(a).merge(empty).merge(b)
        v = rows.astype(np.float64)
        for acc in (one, merged):
            assert acc.count == 40
            np.testing.assert_allclose(acc.mean(), v.mean(axis=0), rtol=1e-13)
            np.testing.assert_allclose(acc.std(), v.std(axis=0), rtol=1e-9)
            assert np.array_equal(acc.min, rows.min(axis=0))
        assert np.isnan(ColumnMoments(width).mean()).all()
        assert np.isnan(ColumnMoments(width).std(ddof=1)).all()


def test_streamed_scaler_fitted_from_param_stats_equals_scikit_learn(tmp_path):
    from sklearn.preprocessing import StandardScaler

    from wspace.analysis.features import _fit_scaler

    lay = wspace.Layout.from_dict(TORCH)
    url = str(tmp_path / "z.zarr")
    wspace.create(url, lay)
    with wspace.writer(url) as w:
        for i in range(12):
            row = _row(lay, i)
            row[:3] = 0.25  # constant columns: scale 1, as scikit-learn sets it
            w.append(row, model=f"m{i}")
    zoo = wspace.open(url)
    train = np.array([0, 2, 3, 5, 8, 11])
    layers = ["conv", "out"]
    columns = np.r_[lay.layer_slice("conv"), lay.layer_slice("out")]
    x = zoo.values[train][:, columns]
    reference = StandardScaler().fit(x)
    fitted = StandardScaler()
    _fit_scaler(fitted, zoo.isel(train).param_stats(layers), len(train))
    assert fitted.n_samples_seen_ == reference.n_samples_seen_ == 6
    np.testing.assert_allclose(fitted.mean_, reference.mean_, rtol=1e-12)
    np.testing.assert_allclose(fitted.var_, reference.var_, rtol=1e-6, atol=1e-15)
    np.testing.assert_allclose(fitted.scale_, reference.scale_, rtol=1e-6)
    assert (fitted.scale_[:3] == 1.0).all()
    np.testing.assert_allclose(fitted.transform(x), reference.transform(x), rtol=1e-5, atol=1e-5)


def test_a_corrupt_or_missing_chunk_fails_the_scan_naming_layer_and_model(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 20)
    wspace.compact(url)
    name, shard, _ = flip_a_byte_of_a_row(url, "conv2d_2", 7, rows=20)
    zoo = wspace.open(url)
    with pytest.raises(wspace.CorruptDataError, match=f"conv2d_2.*{name}"):
        zoo.param_stats("conv2d_2")
    with pytest.raises(wspace.CorruptDataError, match=f"conv2d_2.*{name}"):
        zoo.stats(recompute=True)
    assert zoo.isel(np.r_[0:7, 8:20]).param_stats("conv2d_2").attrs["rows"] == 19
    shard.unlink()
    with pytest.raises(wspace.CorruptDataError, match="missing"):
        wspace.open(url).param_stats("conv2d_2")
