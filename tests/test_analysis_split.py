"""Row selection, target encoding, grouped stratified splits, chance rates, Wilson intervals."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

import wspace
from wspace.analysis.intervals import wilson_interval
from wspace.analysis.split import chance_rates, encode_target, select_rows, split_models
from wspace.errors import CoordinateNotFoundError, SchemaMismatchError
from wspace.testing import class_zoo


def _url() -> str:
    return f"memory://split-{uuid.uuid4().hex}"


def test_select_rows_takes_final_rows_or_the_asked_steps():
    zoo = wspace.open(class_zoo(_url(), per_class=2, steps=[1, 2, 3]))
    final = select_rows(zoo)
    assert len(final) == 6 and set(final.models["step"]) == {3}
    assert sorted(final.models["model"]) == sorted(set(zoo.models["model"]))
    later = select_rows(zoo, range(2, 4))
    assert len(later) == 12 and set(later.models["step"]) == {2, 3}
    assert len(select_rows(zoo, slice(1, 2))) == 12
    with pytest.raises(CoordinateNotFoundError, match="steps present: '1', '2', '3'"):
        select_rows(zoo, [7])


def test_select_rows_without_steps_column():
    zoo = wspace.open(class_zoo(_url(), per_class=2))
    assert len(select_rows(zoo)) == 6
    with pytest.raises(CoordinateNotFoundError, match="'step' column"):
        select_rows(zoo, [1])


def test_encode_target_categories_bins_and_errors():
    frame = pd.DataFrame({"cls": ["b", "a", None, "b"], "x": np.linspace(0, 1, 4)})
    target = encode_target(frame, "cls")
    assert target.classes == ("a", "b") and target.codes.tolist() == [1, 0, -1, 1]
    binned = encode_target(frame, "x", bins=2)
    assert binned.codes.tolist() == [0, 0, 1, 1] and len(binned.classes) == 2
    wide = pd.DataFrame({"lr": np.linspace(0, 1, 50)})
    with pytest.raises(SchemaMismatchError, match="bins=N"):
        encode_target(wide, "lr")
    with pytest.raises(SchemaMismatchError, match="numeric"):
        encode_target(frame, "cls", bins=2)
    with pytest.raises(CoordinateNotFoundError, match="no target column 'nope'"):
        encode_target(frame, "nope")


def test_split_is_grouped_by_network_and_stratified_by_class():
    models = pd.DataFrame(
        {
            "model": [f"n{i}" for i in range(40) for _ in range(3)],  # 3 snapshots each
            "cls": [["a", "b", "c", "d"][i % 4] for i in range(40) for _ in range(3)],
        }
    )
    codes = encode_target(models, "cls").codes
    split = split_models(models, codes, test_size=0.3, seed=1)
    assert split.stratified
    assert not set(split.train_models) & set(split.test_models)
    assert len(split.test_models) == 12 and len(split.train_models) == 28
    assert sorted(np.concatenate([split.train, split.test]).tolist()) == list(range(120))
    test_models = set(models["model"].iloc[split.test])
    assert test_models == set(split.test_models)  # every snapshot goes with its network
    per_class = models.iloc[split.test].drop_duplicates("model")["cls"].value_counts()
    assert per_class.tolist() == [3, 3, 3, 3]  # stratified: 30 % of each class's 10
    again = split_models(models, codes, test_size=0.3, seed=1)
    assert np.array_equal(again.test, split.test)  # deterministic per seed


def test_split_leaves_out_missing_targets_and_falls_back_when_classes_are_too_small():
    models = pd.DataFrame({"model": list("abcdef"), "cls": ["x", "y", "z", "x", None, "y"]})
    codes = encode_target(models, "cls").codes
    split = split_models(models, codes, test_size=0.4, seed=0)
    assert not split.stratified  # 'z' has one network
    assert 4 not in split.train and 4 not in split.test
    assert len(split.train) + len(split.test) == 5
    with pytest.raises(SchemaMismatchError, match="at least 2 networks"):
        split_models(models.iloc[:1], codes[:1])
    with pytest.raises(ValueError, match="test_size"):
        split_models(models, codes, test_size=1.5)


def test_chance_rates():
    assert chance_rates(np.array([2, 2, 2, 0]), 3) == {"majority": 0.75, "uniform": 1 / 3}


def test_wilson_interval_matches_its_formula_and_stays_in_range():
    low, high = wilson_interval(8, 10)
    z = 1.959964
    p, n = 0.8, 10
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (low, high) == pytest.approx((center - half, center + half))
    assert low < 0.8 < high
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0) and wilson_interval(0, 10)[0] == 0.0
    narrow = wilson_interval(800, 1000)
    assert narrow[1] - narrow[0] < high - low
