"""Metadata columns: scalar ones decoded at open, JSON ones only when asked for."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from zarr.storage import LocalStore, WrapperStore

import wspace
from wspace.architectures import lenet5_layout
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
