"""Stores written by an older wspace still open, with the same rows (tests/data/stores/)."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import wspace

DATA = Path(__file__).parent / "data" / "stores"


@pytest.fixture
def v1_store(tmp_path: Path) -> str:
    # a copy: opening never writes, but a failing test must not be able to damage the fixture
    dst = tmp_path / "v1-main.zarr"
    shutil.copytree(DATA / "v1-main.zarr", dst)
    return str(dst)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


@pytest.mark.parametrize("arch", ["small", "mlp"])
def test_a_store_written_by_main_4e461f9_opens_with_the_same_rows(v1_store: str, arch: str) -> None:
    expected = json.loads((DATA / "v1-main.expected.json").read_text())[arch]
    zoo = wspace.open(v1_store, arch=arch)
    assert sorted(zoo.archs) == ["mlp", "small"]
    assert len(zoo) == len(expected)
    values = np.asarray(zoo.values, dtype=np.float32)
    frame = zoo.models
    for i, want in enumerate(expected):
        assert hashlib.sha256(values[i].tobytes()).hexdigest() == want["sha256"], want["model"]
        row = frame.iloc[i].to_dict()
        for column, value in want.items():
            if column == "sha256":
                continue
            got = row[column]
            got = got.item() if hasattr(got, "item") else got
            if value is None:
                assert got is None or (isinstance(got, float) and math.isnan(got)), column
            else:
                assert _same(got, value), (want["model"], column, got, value)


def test_the_old_store_replays_the_same_without_its_checkpoint(v1_store: str) -> None:
    from wspace.store import open_store

    with_cp = open_store(v1_store)
    without = open_store(v1_store, checkpoint=False)
    assert with_cp.state.version == without.state.version == 8
    for arch in ("small", "mlp"):
        a, b = with_cp.state.archs[arch], without.state.archs[arch]
        assert a.n_rows == b.n_rows
        assert dict(a.keys) == dict(b.keys)


def test_the_old_store_verifies_clean(v1_store: str) -> None:
    assert wspace.verify(v1_store).ok
