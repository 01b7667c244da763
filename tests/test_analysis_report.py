"""The report: write_report in Python, and `wspace report URL` / `wspace report metrics URL`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import Result
from typer.testing import CliRunner

import wspace
from wspace.analysis.report import markdown_to_html, write_report
from wspace.cli import app
from wspace.layout import Layout
from wspace.testing import SMALL_LAYOUT


def _trained_like_zoo(url: str, *, per_class: int = 8, steps: int = 3) -> str:
    """A small zoo with what the trainer stores: snapshots, metrics and curves."""
    layout = Layout.from_dict(SMALL_LAYOUT)
    wspace.create(url, layout)
    rng = np.random.default_rng(0)
    with wspace.writer(url) as w:
        for i in range(per_class):
            for k, cls in enumerate(("zero", "one", "two")):
                shift = np.zeros(layout.size, dtype=np.float32)
                shift[layout.layer_slice("fc")] = k  # the classes differ in fc only
                for step in range(1, steps + 1):
                    row = {"cls": cls, "step": step, "accuracy": 0.9 + rng.uniform(0, 0.1)}
                    row |= {"precision": 0.8, "recall": 0.7, "f1": 0.75}
                    if step == steps:
                        row["curve_train_loss"] = [1.0, 0.5, 0.3]
                        row["curve_val_loss"] = [1.1, 0.6, 0.4]
                        row["curve_train_accuracy"] = [0.6, 0.8, 0.9]
                        row["curve_val_accuracy"] = [0.55, 0.75, 0.85]
                    vector = rng.normal(0, 1, layout.size).astype(np.float32) + shift * step / 3
                    w.append(vector, model=f"{cls}_{i}", **row)
    return url


@pytest.fixture(scope="module")
def zoo_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _trained_like_zoo(str(tmp_path_factory.mktemp("report") / "zoo.zarr"))


def test_write_report_produces_every_section_figure_and_number(zoo_path, tmp_path):
    out = tmp_path / "report"
    result = write_report(zoo_path, out, fast=True)
    text = result.markdown.read_text()
    for heading in (
        "## Metrics of the networks",
        "## Training curves",
        "## Classifying networks by their weights",
        "## Jensen-Shannon divergence between groups, per layer",
        "## NWS meta-classifiers on weight slices",
        "## Timings",
    ):
        assert heading in text
    assert "Skipped (fast mode)" in text
    names = sorted(p.name for p in result.figures)
    assert names == [
        "accuracy.png",
        "divergence.png",
        "divergence_summary.png",
        "training_curves.png",
        "weight_histograms.png",
    ]
    for figure in result.figures:
        assert figure.is_file() and f"]({figure.name})" in text
    html = result.html.read_text()
    assert html.count("<table>") >= 4 and '<img src="accuracy.png"' in html
    numbers = json.loads((out / "results.json").read_text())
    assert numbers["zoo"]["networks"] == 24 and numbers["zoo"]["steps"] == [1, 2, 3]
    divergence = pd.read_csv(out / "divergence.csv").set_index("layer")
    assert divergence.loc["fc", "p_value"] <= 0.05  # the layer the classes differ in
    assert "**fc**" in text
    table = pd.read_csv(out / "classification.csv")
    assert set(table["features"]) == {"stats", "flat, PCA 16"}
    assert pd.read_csv(out / "metrics.csv")["Class"].tolist() == ["one", "two", "zero", "All"]


def test_full_report_runs_the_meta_classifiers_on_later_snapshots(zoo_path, tmp_path):
    result = write_report(zoo_path, tmp_path, meta=True, meta_epochs=1)
    meta = pd.read_csv(tmp_path / "meta.csv")
    assert meta["part"].tolist() == ["all", "conv", "fc", "all"]
    assert meta["target"].tolist() == ["cls", "cls", "cls", "step"]
    by_cls = meta[meta["target"] == "cls"]
    assert (by_cls["n_train_rows"] == 2 * by_cls["n_train_networks"]).all()  # steps 2-3 of 3
    assert by_cls["unit"].eq("network").all() and meta["unit"].iloc[-1] == "row"
    assert meta["n_train_rows"].iloc[-1] == 3 * meta["n_train_networks"].iloc[-1]  # all steps
    assert "meta_accuracy.png" in [p.name for p in result.figures]
    assert "steps 2-3" in result.markdown.read_text()


def test_a_zoo_without_groups_or_metrics_gets_a_report_that_says_so(tmp_path):
    url = str(tmp_path / "plain.zarr")
    layout = Layout.from_dict(SMALL_LAYOUT)
    wspace.create(url, layout)
    with wspace.writer(url) as w:
        for i in range(4):
            w.append(np.zeros(layout.size, np.float32) + i, model=f"m{i}")
    result = write_report(url, tmp_path / "r")
    text = result.markdown.read_text()
    assert "Skipped: the zoo has no column `cls`" in text
    assert "Skipped: no `cls` column or no metric columns" in text
    assert result.figures == []


def test_markdown_to_html_renders_tables_and_images():
    page = markdown_to_html("# T\n\n| a | b |\n| - | - |\n| 1 | 2 |\n\n![x](x.png)\n")
    assert "<h1>T</h1>" in page and "<td>2</td>" in page and '<img src="x.png"' in page


def _wspace(*args: str) -> Result:
    """Run the real `wspace` command line in this process (no interpreter start-up per call)."""
    return CliRunner().invoke(app, list(args))


def test_cli_report_url_and_report_metrics_both_work(zoo_path, tmp_path):
    out = tmp_path / "cli-report"
    done = _wspace("report", zoo_path, "--out", str(out), "--fast")
    assert done.exit_code == 0, done.output
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    assert "wrote" in done.output and "report.html" in done.output
    csv = tmp_path / "metrics.csv"
    metrics = _wspace("report", "metrics", zoo_path, "--csv", str(csv))
    assert metrics.exit_code == 0, metrics.output
    assert "Accuracy Min" in metrics.output
    assert pd.read_csv(csv)["Count"].tolist() == [8, 8, 8, 24]
    # options before the URL reach the full report too (which reports the missing store)
    missing = _wspace("report", "--out", str(tmp_path / "x"), "--fast", str(tmp_path / "nope.zarr"))
    assert missing.exit_code == 2 and "nope.zarr" in missing.output
    usage = _wspace("report", "--help")
    assert usage.exit_code == 0 and "metrics" in usage.output
