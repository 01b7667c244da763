"""The worked example runs end to end in CI: a trained digits zoo with snapshots, a split by
model, gradient boosting on statistics, an nfn invariant network and a flat MLP, Kendall's tau."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import wspace
from wspace.weightspace import permute_rows, random_perms
from wspace.weightspace.example import ExampleConfig, run_example, tensor_statistics

CI = ExampleConfig(per_class=5, epochs=3, nfn_channels=4, nfn_epochs=10, mlp_epochs=30, workers=2)
"""4 classes x 5 networks x 3 snapshots = 60 rows (the whole run: ~4 min on 2 loaded cores)."""


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """The example's command on a fresh store: it trains the zoo, then fits and scores."""
    root = tmp_path_factory.mktemp("example")
    url, out = str(root / "zoo.zarr"), root / "report.json"
    args = [
        "--url", url, "--out", str(out), "--per-class", str(CI.per_class),
        "--epochs", str(CI.epochs), "--nfn-epochs", str(CI.nfn_epochs),
        "--mlp-epochs", str(CI.mlp_epochs), "--workers", str(CI.workers),
        "--nfn-channels", str(CI.nfn_channels),
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "wspace.weightspace.example", *args],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return url, json.loads(out.read_text()), done.stdout


def test_the_example_reports_finite_taus_for_every_model_with_and_without_augmentation(
    example_run,
):
    url, report, stdout = example_run
    zoo = wspace.open(url)
    assert len(zoo) == 4 * CI.per_class * CI.epochs
    assert set(zoo.models["step"]) == set(range(1, CI.epochs + 1))
    assert report["n_train"] + report["n_test"] == len(zoo)
    assert report["networks_train"] + report["networks_test"] == 4 * CI.per_class
    assert set(report["taus"]) == {"gbm", "nfn", "mlp"}
    for model, taus in report["taus"].items():
        assert set(taus) == {"none", "permute"}, model
        assert all(math.isfinite(t) and -1 <= t <= 1 for t in taus.values()), (model, taus)
    assert "Kendall's tau" in stdout and "gbm" in stdout


def test_statistics_features_are_permutation_invariant(example_run):
    zoo = wspace.open(example_run[0])
    rows = zoo.isel(np.arange(8)).values
    permuted = permute_rows(zoo.layout, rows, random_perms(zoo.layout.symmetry, 8, seed=1))
    assert not np.array_equal(permuted, rows)
    np.testing.assert_allclose(
        tensor_statistics(zoo.layout, permuted), tensor_statistics(zoo.layout, rows), atol=1e-6
    )


def test_run_example_on_the_stored_zoo_in_process(example_run):
    """The Python entry point, one model, reusing the stored zoo (nothing is retrained)."""
    zoo = wspace.open(example_run[0])
    config = ExampleConfig(models=("gbm",), gbm_estimators=50)
    report = run_example(zoo, config)
    assert report.n_train + report.n_test == len(zoo)
    train, test = zoo.split(config.fractions, by="model", seed=config.seed)
    assert not set(train.models["model"]) & set(test.models["model"])
    assert report.n_test == len(test) and np.isfinite(report.taus["gbm"]["none"])
