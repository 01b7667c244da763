"""Streaming statistics (exact, stored, invalidated by new rows) and leakage-safe splits."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

import wspace
from wspace.errors import CoordinateNotFoundError, ModelNotFoundError, SchemaMismatchError
from wspace.testing import SMALL_LAYOUT, class_zoo, tiny_weights, tiny_zoo
from wspace.weightspace.splits import load_split, save_split, split_rows
from wspace.weightspace.stats import compute_stats, load_stats, save_stats


def small_layout() -> wspace.Layout:
    """testing.SMALL_LAYOUT with the conv map's flatten recorded (so it has a symmetry)."""
    data = copy.deepcopy(SMALL_LAYOUT)
    data["tensors"][2]["flatten_shape"] = [4, 2, 5]
    return wspace.Layout.from_dict(data)


def test_streamed_statistics_equal_numpy_on_all_rows(tmp_path):
    url = str(tmp_path / "z.zarr")
    zoo = wspace.open(class_zoo(url, per_class=7, shift={"fc": 3.0}, layout=small_layout()))
    values = zoo.values.astype(np.float64)
    stats = compute_stats(zoo, chunk_rows=4)  # 21 rows: 6 chunks, the last one short
    assert stats.rows == 21 and stats.version == zoo.version is not None
    for t in zoo.layout:
        part = values[:, t.slice()]
        row = stats.tensors.loc[t.name]
        assert row["count"] == part.size and row["layer"] == t.layer
        np.testing.assert_allclose(
            row[["mean", "std"]].astype(float), [part.mean(), part.std()], rtol=1e-6
        )
        assert (row["min"], row["max"]) == (part.min(), part.max())
    for layer in zoo.layout.layers:
        part = values[:, zoo.layout.layer_slice(layer)]
        np.testing.assert_allclose(
            stats.layers.loc[layer, ["mean", "std"]], [part.mean(), part.std()], rtol=1e-6
        )
    mean, std = stats.flat(zoo.layout)
    fc = zoo.layout["fc/weight"].slice()
    np.testing.assert_allclose(mean[fc], values[:, fc].mean(), rtol=1e-6)
    np.testing.assert_allclose(std[fc], values[:, fc].std(), rtol=1e-6)
    # a permuted zoo has the same statistics
    permuted = compute_stats(zoo.permute(seed=0), chunk_rows=8)
    pd.testing.assert_frame_equal(permuted.tensors, stats.tensors, rtol=1e-6)


def test_stored_statistics_are_reused_and_go_stale_when_rows_are_added(tmp_path):
    url = str(tmp_path / "z.zarr")
    tiny_zoo(url, 3, layout=wspace.Layout.from_dict(wspace.testing.SMALL_LAYOUT))
    zoo = wspace.open(url)
    assert load_stats(zoo) is None
    stats = zoo.stats()
    path = save_stats(url, stats)
    assert path.startswith("_weightspace/small/stats/")
    assert (tmp_path / "z.zarr" / f"{path}.json").is_file()
    again = wspace.open(url)
    loaded = load_stats(again)
    assert loaded is not None and loaded.version == stats.version
    pd.testing.assert_frame_equal(loaded.tensors, stats.tensors)
    # stored values are used as they are: tamper with them and zoo.stats() shows it
    tampered = loaded.tensors.copy()
    tampered["mean"] = 42.0
    save_stats(url, type(loaded)(tampered, *[getattr(loaded, f) for f in
               ("layers", "rows", "arch", "version", "fingerprint")]))  # fmt: skip
    assert (wspace.open(url).stats().tensors["mean"] == 42.0).all()
    assert (wspace.open(url).stats(recompute=True).tensors["mean"] != 42.0).all()
    with wspace.writer(url) as w:
        w.append(tiny_weights(9, 431), model="new_9", cls="church", seed=9, accuracy=0.1)
    grown = wspace.open(url)
    assert grown.version > stats.version and load_stats(grown) is None
    assert grown.stats().rows == 4
    # a selection is its own row set
    assert load_stats(grown.isel([0, 1, 2])) is not None
    assert wspace.verify(url).ok and len(wspace.open(url)) == 4


def test_splits_keep_groups_together_and_are_deterministic(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 20, steps=[1, 2, 3], layout=small_layout())
    zoo = wspace.open(url)
    train, val, test = zoo.split((0.6, 0.2, 0.2), seed=1)
    assert (len(train), len(val), len(test)) == (36, 12, 12)
    sets = [set(part.models["model"]) for part in (train, val, test)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert all((part.models.groupby("model").size() == 3).all() for part in (train, val, test))
    again = zoo.split((0.6, 0.2, 0.2), seed=1)
    assert [list(p.models["model"]) for p in again] == [
        list(p.models["model"]) for p in (train, val, test)
    ]
    other = zoo.split((0.6, 0.2, 0.2), seed=2)
    assert set(other[2].models["model"]) != sets[2]
    # the labels do not depend on the row order
    models = zoo.models
    shuffled = models.sample(frac=1.0, random_state=0)
    a = split_rows(models, seed=3)
    b = split_rows(shuffled, seed=3)
    pd.testing.assert_series_equal(a, b.loc[models.index])
    # any column: here the class, so each class lands on one side
    by_cls = split_rows(models, (0.5, 0.5), by="cls", names=("x", "y"))
    assert by_cls.groupby(models["cls"]).nunique().max() == 1 and by_cls.nunique() == 2
    # hash: a group keeps its side when rows are added
    before = split_rows(models, by=["model"], method="hash", seed=0)
    grown = pd.concat([models, pd.DataFrame({"model": [f"extra_{i}" for i in range(30)]})])
    after = split_rows(grown.reset_index(drop=True), method="hash", seed=0)
    assert (after.iloc[: len(models)].to_numpy() == before.to_numpy()).all()
    assert set(after) == {"train", "val", "test"}


def test_a_stored_split_comes_back_as_a_column_and_names_rows_added_since(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 6, steps=[1, 2], layout=small_layout())
    zoo = wspace.open(url)
    with pytest.raises(ModelNotFoundError, match="no stored split 'hash'"):
        load_split(zoo, "hash")
    labels = split_rows(zoo.models, (0.5, 0.5), method="hash", seed=0)
    path = save_split(zoo, labels, "hash")
    assert path == "_weightspace/small/splits/hash"
    # reopened, any selection, in any order: the labels of exactly its rows
    again = wspace.open(url)
    pick = again.isel([5, 0, 3])
    assert load_split(pick, "hash").tolist() == labels.iloc[[5, 0, 3]].tolist()
    column = again.models.assign(split=load_split(again, "hash"))
    assert (column.groupby("model")["split"].nunique() == 1).all()
    with pytest.raises(SchemaMismatchError, match="3 labels for 12 rows"):
        save_split(zoo, labels[:3], "bad")
    with wspace.writer(url) as w:
        w.append(tiny_weights(9, zoo.layout.size), model="new_9", step=1, cls="church")
    with pytest.raises(ModelNotFoundError, match="added since"):
        load_split(wspace.open(url), "hash")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fractions": (0.5, 0.6)}, SchemaMismatchError, "sum to 1"),
        ({"fractions": (1.0, 0.0)}, SchemaMismatchError, "positive"),
        ({"by": "lr"}, CoordinateNotFoundError, "split by 'lr': no such column"),
        ({"names": ("a", "a", "b")}, SchemaMismatchError, "distinct name"),
        ({"method": "random"}, SchemaMismatchError, "'shuffle' or 'hash'"),
    ],
)
def test_bad_split_requests_say_what_is_wrong(kwargs, error, match):
    models = pd.DataFrame({"model": list("abcd")})
    with pytest.raises(error, match=match):
        split_rows(models, **kwargs)
