"""Figures: every plot writes a non-blank PNG of the expected size."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

import wspace
from wspace.analysis.divergence import layer_divergence
from wspace.analysis.plots import (
    curve_models,
    plot_accuracies,
    plot_divergence,
    plot_divergence_summary,
    plot_training_curves,
    plot_weight_histograms,
)
from wspace.errors import CoordinateNotFoundError
from wspace.layout import Layout
from wspace.testing import SMALL_LAYOUT, class_zoo


def _check_png(path) -> None:
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500
    assert image[..., :3].std() > 0.05  # something is drawn


@pytest.fixture(scope="module")
def curves_zoo() -> wspace.Zoo:
    url = f"memory://plots-{uuid.uuid4().hex}"
    layout = Layout.from_dict(SMALL_LAYOUT)
    wspace.create(url, layout)
    rng = np.random.default_rng(0)
    with wspace.writer(url) as w:
        for i in range(6):
            loss = list(np.exp(-np.arange(5) / (i + 1)))
            w.append(
                rng.normal(size=layout.size).astype("float32"),
                model=f"n{i}",
                cls="xyz"[i % 3],
                curve_train_loss=loss,
                curve_val_loss=[v + 0.1 for v in loss],
                curve_train_accuracy=[1 - v / 2 for v in loss],
                curve_val_accuracy=[1 - v / 1.5 for v in loss],
            )
    return wspace.open(url)


def test_training_curves(curves_zoo, tmp_path):
    assert curve_models(curves_zoo) == ["n0", "n1", "n2"]  # first of each class
    path = plot_training_curves(curves_zoo, tmp_path / "curves.png")
    _check_png(path)
    _check_png(plot_training_curves(curves_zoo, tmp_path / "two.png", models=["n4", "n5"]))
    with pytest.raises(CoordinateNotFoundError, match="'nope'"):
        plot_training_curves(curves_zoo, tmp_path / "x.png", models=["nope"])


def test_divergence_figures(tmp_path):
    zoo = wspace.open(class_zoo(f"memory://plots-js-{uuid.uuid4().hex}", shift={"fc": 0.5}))
    result = layer_divergence(zoo, bins=20)
    for plot, name in (
        (plot_divergence, "div.png"),
        (plot_divergence_summary, "summary.png"),
        (plot_weight_histograms, "hist.png"),
    ):
        _check_png(plot(result, tmp_path / "sub" / name))  # folders are created


def test_accuracy_bars(tmp_path):
    table = pd.DataFrame(
        {
            "label": ["nb", "rf", "nb", "rf"],
            "series": ["flat", "flat", "stats", "stats"],
            "accuracy": [0.4, 0.3, 0.6, 0.7],
            "ci_low": [0.3, 0.2, 0.5, 0.6],
            "ci_high": [0.5, 0.4, 0.7, 0.8],
        }
    )
    path = plot_accuracies(table, tmp_path / "acc.png", chance={"majority": 0.1, "uniform": 0.1})
    _check_png(path)
