"""NWS slice meta-classifiers on synthetic zoos: they learn what is there, and only that."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

import wspace
from wspace.analysis.meta import MetaResult, meta_classifier, part_region
from wspace.analysis.slice_cnn import SliceCNN
from wspace.errors import SchemaMismatchError
from wspace.layout import Layout
from wspace.testing import SMALL_LAYOUT, class_zoo

FAST = {"slice_length": 64, "epochs": 5, "positions": 5, "batch_size": 32, "slices_per_row": 16}
# Enough training that the fc shift is learned on any machine: with these settings, over
# 16 runs (zoo seeds 0-3 x classifier seeds 0-3) every fc run got 12/12 test networks and
# single-slice accuracy 0.942-1.0, and conv stayed at chance (networks 4/12-8/12, slices
# 0.44-0.64). With FAST (5 epochs, lr 1e-3) the fc slice accuracy was 0.74-0.85, at the
# threshold, and 7/8 networks for some seeds and machines.
LEARN = {**FAST, "epochs": 6, "lr": 5e-3}


def _p_above_chance(result: MetaResult) -> float:
    """One-sided binomial p-value of the test networks' hits under a fair coin."""
    hits = round(result.accuracy * result.n_test_networks)
    return float(binomtest(hits, result.n_test_networks, 0.5, alternative="greater").pvalue)


@pytest.fixture(scope="module")
def fc_shifted() -> wspace.Zoo:
    """Two classes whose fc weights differ in mean; conv and out layers are identical."""
    url = class_zoo(
        f"memory://meta-{uuid.uuid4().hex}",
        classes=("a", "b"),
        per_class=20,
        shift={"fc": 1.0},
        steps=[1, 2, 3],
        segment_rows=8,
    )
    return wspace.open(url)


@pytest.fixture(scope="module")
def learned(fc_shifted: wspace.Zoo) -> MetaResult:
    return meta_classifier(fc_shifted, steps=[2, 3], part="fc", seed=0, **LEARN)


def test_slices_of_clearly_different_distributions_are_learned(learned):
    result = learned
    assert result.task == "classify" and result.classes == ("a", "b")
    assert result.n_train_networks + result.n_test_networks == 40
    assert result.n_test_networks == 12
    # beats a coin with p < 0.01: at least 11 of the 12 test networks right
    assert _p_above_chance(result) < 0.01, result.accuracy
    assert result.slice_accuracy >= 0.85  # 120 slices (12 networks x 2 steps x 5 positions)
    assert result.ci_low <= result.accuracy <= result.ci_high
    assert result.n_train_rows == 2 * result.n_train_networks  # steps 2 and 3 of each network
    assert result.steps == (2, 3)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.summary()["chance_uniform"] == 0.5


def test_slices_from_identical_layers_stay_near_chance(fc_shifted, learned):
    result = meta_classifier(fc_shifted, steps=[2, 3], part="conv", seed=0, **LEARN)
    # not better than a coin (p >= 0.01: at most 10 of 12 networks right) ...
    assert _p_above_chance(result) >= 0.01, result.accuracy
    # ... and single slices near chance, far below the fc ones (>= 0.85). The 120 slices come
    # from 12 networks whose slices err together: chance is 0.5 +- ~0.07, not +- 0.05
    assert result.slice_accuracy < 0.8


def test_part_regions_follow_the_layout():
    layout = Layout.from_dict(SMALL_LAYOUT)
    conv, fc, whole = (part_region(layout, p) for p in ("conv", "fc", "all"))
    assert len(conv) == 76 and len(fc) == 328 + 27 and len(whole) == layout.size
    assert np.array_equal(conv, np.arange(76))  # conv weight and bias
    assert set(conv).isdisjoint(fc)
    dense_only = Layout.from_dict({"tensors": [{"name": "fc/weight", "shape": [4, 4]}]})
    with pytest.raises(SchemaMismatchError, match="no conv layers"):
        part_region(dense_only, "conv")
    with pytest.raises(ValueError, match="part"):
        part_region(layout, "rnn")  # type: ignore[arg-type]


def test_too_long_slices_are_refused(fc_shifted):
    with pytest.raises(SchemaMismatchError, match="fewer than slice_length=100"):
        meta_classifier(fc_shifted, part="conv", slice_length=100, epochs=1)


def test_regression_beats_the_median_baseline():
    url = f"memory://meta-reg-{uuid.uuid4().hex}"
    layout = Layout.from_dict(SMALL_LAYOUT)
    wspace.create(url, layout)
    rng = np.random.default_rng(0)
    with wspace.writer(url) as w:
        for i in range(40):
            level = rng.uniform(-2, 2)  # every weight centred on the network's own level
            vector = rng.normal(level, 0.5, layout.size).astype("float32")
            w.append(vector, model=f"m{i}", level=float(level))
    # 10 epochs at lr 5e-3, 40 networks (12 held out): over 18 runs (data seeds 0-5 x
    # classifier seeds 0-2) the error was 0.13-0.40 of the baseline's (lr 1e-3, 30 networks:
    # 0.24-1.28)
    result = meta_classifier(
        wspace.open(url), "level", seed=0, **{**FAST, "epochs": 10, "lr": 5e-3}
    )
    assert result.task == "regress" and result.accuracy is None
    assert result.mae < 0.5 * result.baseline_mae


def test_numeric_targets_can_be_binned(fc_shifted):
    result = meta_classifier(fc_shifted, "seed", bins=2, part="fc", epochs=1, slice_length=64)
    assert result.task == "classify" and len(result.classes) == 2 and result.unit == "network"


def test_a_target_that_changes_within_networks_is_scored_per_row(fc_shifted):
    result = meta_classifier(fc_shifted, "step", steps=[1, 2, 3], epochs=1, slice_length=64)
    assert result.unit == "row" and result.classes == (1, 2, 3)
    assert result.n_test_rows == 3 * result.n_test_networks
    assert result.accuracy == result.row_accuracy
    assert result.chance["majority"] == pytest.approx(1 / 3)  # rows: every step equally


def test_the_network_matches_the_reference_shape():
    net = SliceCNN(5000, 7, width=1.0)
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv1d)]
    assert [c.out_channels for c in convs[:6]] == [8, 16, 32, 64, 128, 256]
    assert len(convs) == 12 and all(c.kernel_size == (5,) for c in convs)
    linears = [m for m in net.head if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [1024, 1024, 1024, 1024, 64, 7]
    assert net(torch.zeros(2, 5000)).shape == (2, 7)
