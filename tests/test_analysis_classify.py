"""Weight classifiers on synthetic zoos whose answer is known."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

import wspace
from wspace.analysis.classify import CLASSIFIERS, classify_weights, make_classifier
from wspace.errors import SchemaMismatchError
from wspace.testing import class_zoo


def _zoo(**kwargs: object) -> wspace.Zoo:
    return wspace.open(class_zoo(f"memory://classify-{uuid.uuid4().hex}", **kwargs))  # type: ignore[arg-type]


def _p_above(row: pd.Series, chance: float) -> float:
    """One-sided binomial p-value of a classifier's test hits at a chance rate."""
    return float(binomtest(int(row.correct), int(row.n_test), chance, alternative="greater").pvalue)


@pytest.fixture(scope="module")
def shifted() -> wspace.Zoo:
    return _zoo(per_class=24, shift=2.0, segment_rows=5)


@pytest.fixture(scope="module")
def identical() -> wspace.Zoo:
    return _zoo(per_class=40, shift=0.0)


def test_shifted_class_means_are_classified_almost_perfectly(shifted):
    result = classify_weights(shifted, "cls", features="flat", seed=0)
    assert list(result.table.index) == list(CLASSIFIERS)
    assert result.n_train + result.n_test == len(shifted)
    assert result.n_test == 22 and result.stratified  # ceil(30 % of 72 networks)
    assert result.chance == {"majority": pytest.approx(8 / 22), "uniform": pytest.approx(1 / 3)}
    # Over 30 runs (zoo seeds 0-9 x split seeds 0-2) naive Bayes, the forest and the SVM got
    # every test network right, the MLP (50 training networks of 495 weights) 18-22 of 22.
    for name, row in result.table.iterrows():
        assert row.accuracy >= (0.95 if name != "mlp" else 0.7), name
        assert row.ci_low <= row.accuracy <= row.ci_high
        assert row.ci_low > result.chance["majority"], name  # beats chance with confidence
    assert set(result.train_models).isdisjoint(result.test_models)


def test_identical_distributions_are_classified_near_chance(identical):
    result = classify_weights(identical, "cls", features="flat", seed=0)
    chance = result.chance["uniform"]
    for name, row in result.table.iterrows():
        # 36 test networks: not better than chance at p = 1e-3 (at most 21 right, an accuracy
        # of 0.58; over 12 runs the best classifier got 0.39-0.58)
        assert _p_above(row, chance) >= 1e-3, (name, row.accuracy)


def test_stats_and_layer_features_see_only_what_they_are_given():
    # 20 per class, 18 test networks: over 16 runs (zoo seeds 0-7 x split seeds 0-1) naive
    # Bayes got 0.94-1.0 on fc and 0.17-0.56 on conv, the forest 1.0 (10 per class: fc
    # 0.78-1.0, at the threshold)
    zoo = _zoo(per_class=20, shift={"fc": 0.5})
    on_fc = classify_weights(zoo, models=["naive_bayes"], features="fc", seed=0)
    on_conv = classify_weights(zoo, models=["naive_bayes"], features=["conv"], seed=0)
    on_stats = classify_weights(zoo, models=["random_forest"], features="stats", seed=0)
    assert on_fc.table.loc["naive_bayes", "accuracy"] >= 0.9
    assert on_conv.table.loc["naive_bayes", "accuracy"] < 0.7  # conv is identical across classes
    assert on_stats.table.loc["random_forest", "accuracy"] >= 0.9  # fc means differ
    assert on_stats.n_features == 6 * 11 and on_fc.features == "fc"


def test_same_split_for_every_classifier_and_snapshots_stay_together():
    zoo = _zoo(per_class=6, shift=0.3, steps=[1, 2, 3])
    a = classify_weights(zoo, models=["naive_bayes", "svm"], features="stats", steps=[2, 3])
    b = classify_weights(zoo, models=["mlp"], features="stats", steps=[2, 3])
    assert a.test_models == b.test_models and a.n_test == b.n_test
    assert a.n_train + a.n_test == 36  # 18 networks x 2 steps
    assert a.n_test % 2 == 0 and set(a.train_models).isdisjoint(a.test_models)
    assert set(a.predictions) == {"naive_bayes", "svm"}


def test_pca_in_memory_and_streamed(shifted):
    in_memory = classify_weights(shifted, models=["svm"], pca=4, seed=0)
    assert in_memory.n_features == 4 and 0 < in_memory.explained_variance <= 1
    width = shifted.layout.size * 4
    with pytest.raises(SchemaMismatchError, match="pca=N"):
        classify_weights(shifted, models=["svm"], max_bytes=width * 10)
    streamed = classify_weights(shifted, models=["svm"], pca=4, max_bytes=width * 10, seed=0)
    assert streamed.n_features == 4 and "PCA 4" in streamed.features
    assert streamed.table.loc["svm", "accuracy"] >= 0.9


def test_custom_estimators_numeric_targets_and_markdown(shifted):
    from sklearn.linear_model import LogisticRegression

    result = classify_weights(shifted, models={"logreg": LogisticRegression(max_iter=500)})
    assert result.table.index.tolist() == ["logreg"]
    text = result.to_markdown()
    assert "| logreg |" in text and "chance" in text
    binned = classify_weights(shifted, target="seed", models=["naive_bayes"], bins=3)
    assert len(binned.classes) == 3
    with pytest.raises(ValueError, match="unknown classifier"):
        make_classifier("nope")


def test_a_single_class_is_refused():
    zoo = wspace.open(class_zoo(f"memory://one-{uuid.uuid4().hex}", classes=("a",), per_class=4))
    with pytest.raises(SchemaMismatchError, match="at least 2"):
        classify_weights(zoo)


def test_result_table_is_a_frame_of_numbers(shifted):
    result = classify_weights(shifted, models=["naive_bayes"], features="out")
    assert isinstance(result.table, pd.DataFrame)
    row = result.table.loc["naive_bayes"]
    assert row.correct == round(row.accuracy * row.n_test)
    assert np.isfinite(row.seconds)
