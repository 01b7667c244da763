"""Metadata columns: none read at open; scalar ones when first used, JSON ones only for the rows
asked for; a damaged column raises, naming it, when first used."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from zarr.storage import LocalStore, WrapperStore

import wspace
from wspace.architectures import lenet5_layout
from wspace.store import open_store
from wspace.testing import tiny_weights

LAYOUT = lenet5_layout()


class CountingStore(WrapperStore[Any]):
    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.reads: list[str] = []

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        self.reads.append(key)
        return await self._store.get(key, prototype, byte_range)


def _zoo(url: str) -> str:
    wspace.create(url, LAYOUT)
    with wspace.writer(url) as w:
        for i in range(4):
            extra: dict[str, Any] = {"curve": [i, i + 0.5]} if i != 2 else {}
            if i == 1:
                extra["info"] = {"lr": 0.1, "tags": ["a"]}
            w.append(
                tiny_weights(i, LAYOUT.size),
                model=f"m{i}",
                cls="ab"[i % 2],
                seed=i,
                flag=i % 2 == 0,
                **extra,
            )
    with wspace.writer(url) as w:  # a second segment: no curve column, a missing seed
        w.append(tiny_weights(9, LAYOUT.size), model="m9", cls="b", flag=None, info=[1, 2])
        w.append(tiny_weights(1, LAYOUT.size), model="m1", cls="b", seed=11, replace=True)
    return url


def test_json_columns_are_read_only_when_asked_for(tmp_path):
    url = _zoo(str(tmp_path / "z.zarr"))
    counting = CountingStore(LocalStore(url, read_only=True))
    zoo = wspace.open(counting)
    assert "curve" not in str(zoo.layer("dense_1").coords)  # JSON columns are not coordinates
    assert repr(zoo).endswith("columns: cls, seed, flag, curve, info>")
    read_before = set(counting.reads)
    models = zoo.models  # now (and only now) the JSON columns are read
    new_reads = set(counting.reads) - read_before  # the array of each column: <segment>/<key>
    assert {re.sub(r"^(archs/lenet5/seg/[^/]+/[^/]+)/.*", r"\1", k) for k in new_reads} == {
        f"archs/lenet5/seg/{seg}/{key}"
        for seg, cols in zoo._handle.arch_state("lenet5").columns.items()
        for name, (kind, key) in cols.items()
        if kind == "json"
    }
    assert models["model"].tolist() == ["m0", "m2", "m3", "m9", "m1"]
    assert models["curve"].tolist() == [[0, 0.5], None, [3, 3.5], None, None]
    assert models["info"].tolist() == [None, None, None, [1, 2], None]
    assert models["seed"].dtype == "Int64" and models["seed"].isna().tolist() == [
        False,
        False,
        False,
        True,
        False,
    ]
    assert models["flag"].dtype == "boolean" and models["flag"].tolist()[:3] == [True, True, False]
    assert models["cls"].tolist() == ["a", "a", "b", "b", "b"]


def test_selections_on_json_columns_and_records(tmp_path):
    url = _zoo(str(tmp_path / "z.zarr"))
    zoo = wspace.open(url)
    picked = zoo.where(lambda m: m["curve"].map(lambda c: c is not None and c[0] > 1))
    assert picked.models["model"].tolist() == ["m3"]
    assert picked.models["curve"].tolist() == [[3, 3.5]]  # decoded for the selected rows
    assert len(zoo.sel(curve=lambda s: s.isna())) == 3
    records = [meta for meta, _ in zoo.isel([0, 3]).rows()]
    assert records[0]["curve"] == [0, 0.5] and records[1]["info"] == [1, 2]
    computed = zoo.compute()
    pd.testing.assert_frame_equal(computed.models, zoo.models)
    assert np.array_equal(computed.values, zoo.values)


def _columns_read(counting: CountingStore, url: str, since: int = 0) -> set[str]:
    """The metadata columns whose chunks ``counting`` read (from read number ``since`` on)."""
    state = open_store(url).arch_state("lenet5")
    where = {
        f"archs/lenet5/seg/{seg}/{key}": name
        for seg, cols in state.columns.items()
        for name, (_, key) in cols.items()
    }
    prefixes = {
        re.sub(r"^(archs/lenet5/seg/[^/]+/[^/]+)/c/.*", r"\1", k) for k in counting.reads[since:]
    }
    return {where[p] for p in prefixes if p in where}


def test_open_reads_no_metadata_column_until_one_is_used(tmp_path):
    url = _zoo(str(tmp_path / "z.zarr"))
    counting = CountingStore(LocalStore(url, read_only=True))
    zoo = wspace.open(counting)
    assert len(zoo) == 5 and len(zoo.isel([1, 3])) == 2 and len(zoo.isel(slice(1, None))) == 4
    assert repr(zoo).endswith("columns: cls, seed, flag, curve, info>")
    assert _columns_read(counting, url) == set()
    before = len(counting.reads)
    picked = zoo.sel(cls="b")  # reads cls, and only cls
    assert len(picked) == 3 and _columns_read(counting, url, before) == {"cls"}
    before = len(counting.reads)
    row = zoo.row("m9")  # reads model (the zoo has no step column), and only model
    assert _columns_read(counting, url, before) == {"model"}
    assert np.array_equal(row, zoo.values[3])
    assert picked.models["model"].tolist() == ["m3", "m9", "m1"]


def test_data_arrays_read_their_metadata_coordinates_when_first_used(tmp_path):
    url = _zoo(str(tmp_path / "z.zarr"))
    eager = open_store(url).models("lenet5")
    counting = CountingStore(LocalStore(url, read_only=True))
    zoo = wspace.open(counting)
    layer = zoo.sel(cls="b").layer("dense_1")  # cls for the selection, model for the index
    values = layer.values
    assert _columns_read(counting, url) == {"cls", "model"}
    assert np.array_equal(values, zoo.values[[2, 3, 4]][:, zoo.layout.layer_slice("dense_1")])
    assert layer.sel(model="m9").shape == (zoo.layout.layer_size("dense_1"),)
    assert _columns_read(counting, url) == {"cls", "model"}
    before = len(counting.reads)
    assert layer["seed"].dtype == np.float64  # an integer column with a missing value
    assert _columns_read(counting, url, before) == {"seed", "flag"}  # every scalar at once
    rows = [2, 3, 4]
    for name in ("seed", "flag", "cls"):
        want = eager[name].iloc[rows].tolist()
        got = layer[name].values.tolist()
        assert [None if pd.isna(v) else v for v in got] == [
            None if pd.isna(v) else v for v in want
        ], name
    assert layer["cls"].dtype == object and layer.isel(model=[0, 2])["cls"].values.tolist() == [
        "b",
        "b",
    ]
    copied = pickle.loads(pickle.dumps(zoo.layer("conv2d").coords["seed"]))
    assert copied.values.tolist()[:3] == [0.0, 2.0, 3.0]
    assert "seed" in repr(zoo.layer("dense_1"))  # a repr shows them (reads them)


def test_columns_read_lazily_equal_the_eager_frame(tmp_path):
    url = _zoo(str(tmp_path / "z.zarr"))
    eager = open_store(url).models("lenet5")  # every column read at once
    scalar = [c for c in eager.columns if c not in ("curve", "info")]
    rows = [4, 0, 2]
    for first in ([], ["cls"], ["flag", "seed"], ["model", "curve"]):
        zoo = wspace.open(url)
        sub = zoo.isel(rows)  # a selection made before any column was read
        seen: dict[str, pd.Series] = {}
        for name in first:  # read these columns first, one by one, through sel
            sub.sel(**{name: lambda s, n=name, seen=seen: seen.setdefault(n, s).notna() | True})
            expected = eager[name].iloc[rows].reset_index(drop=True)
            pd.testing.assert_series_equal(seen[name], expected)
        pd.testing.assert_frame_equal(sub.models, eager.iloc[rows].reset_index(drop=True))
        pd.testing.assert_frame_equal(zoo.models, eager)
        for name in scalar:
            assert sub.ds[name].values.tolist() == eager[name].iloc[rows].tolist() or (
                eager[name].iloc[rows].isna().any()  # missing values are NaN/None coordinates
            ), name
        assert len(zoo.sel(flag=True)) == int((eager["flag"] == True).sum())  # noqa: E712


def test_a_damaged_column_raises_naming_it_when_first_used(tmp_path):
    url = _zoo(str(tmp_path / "z.zarr"))
    state = open_store(url).arch_state("lenet5")
    first = state.merged()[0].segment
    key = state.columns[first]["seed"][1]
    chunk = Path(url, state.location(first), key, "c", "0")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x55
    chunk.write_bytes(bytes(data))
    zoo = wspace.open(url)  # reads no column: opens
    assert len(zoo.sel(cls="a")) == 2  # the healthy columns work
    # the weights too: a DataArray reads its metadata coordinates when they are first used
    assert zoo.layer("dense_1").values.shape == (len(zoo), zoo.layout.layer_size("dense_1"))
    assert zoo.ds["weights"].shape == (len(zoo), zoo.layout.size)
    uses = {
        "sel": lambda: zoo.sel(seed=1),
        "models": lambda: zoo.models,
        "ds": lambda: zoo.ds["seed"].values,
        "layer": lambda: zoo.layer("dense_1").coords["seed"].values,
        "another coordinate": lambda: zoo.ds["cls"].values,  # read with every scalar column
        "eager": lambda: open_store(url).models("lenet5"),
    }
    for use, call in uses.items():
        with pytest.raises(wspace.CorruptDataError, match="lenet5.*column 'seed'"):
            call()
            pytest.fail(f"{use} did not raise")


def test_a_damaged_layer_chunk_names_its_models_read_only_then(tmp_path):
    url = _zoo(str(tmp_path / "z.zarr"))
    state = open_store(url).arch_state("lenet5")
    first = state.merged()[0].segment
    chunk = Path(url, state.location(first), state.arrays["dense_1"], "c", "0", "0")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x55
    chunk.write_bytes(bytes(data))
    zoo = wspace.open(url)  # no model name read yet: the message reads them
    with pytest.raises(wspace.CorruptDataError, match="dense_1.*of model.s. 'm0' "):
        zoo.isel(0).values
    with pytest.raises(wspace.CorruptDataError, match="dense_1.*of model.s. .*'m2'"):
        np.asarray(wspace.open(url).layer("dense_1").data[1:2])  # through Dask
