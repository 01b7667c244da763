"""The sections of the analysis report (:func:`~wspace.analysis.report.write_report`): each
runs one analysis of the zoo and adds its Markdown, figures, data files and headline numbers to a
:class:`Sections` collector, or says in the report why it was skipped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

import wspace
from wspace.analysis.classify import CLASSIFIERS, ClassificationResult, classify_weights
from wspace.analysis.divergence import DivergenceResult, layer_divergence
from wspace.analysis.features import Features, feature_width
from wspace.analysis.meta import MetaResult, Part, meta_classifier, part_region
from wspace.analysis.metrics import CARD_METRICS, final_rows, flat_columns, metrics_table
from wspace.analysis.plots import (
    CURVES,
    curve_models,
    plot_accuracies,
    plot_divergence,
    plot_divergence_summary,
    plot_training_curves,
    plot_weight_histograms,
)
from wspace.query import Zoo

__all__ = [
    "MIN_META_NETWORKS",
    "PARTS",
    "Sections",
    "classification_section",
    "curves_section",
    "divergence_section",
    "meta_section",
    "metrics_section",
    "overview_section",
]

log = logging.getLogger("wspace.analysis.report")  # the report's progress lines

PARTS: tuple[Part, ...] = ("all", "conv", "fc")
"""Weight regions of the meta-classifiers."""

MIN_META_NETWORKS = 50
"""Fewer networks than this: the meta-classifier section is skipped (too few to learn from)."""


def _table(frame: pd.DataFrame, floatfmt: str = ".4f") -> str:
    return str(frame.to_markdown(index=False, floatfmt=floatfmt))


def _upper_steps(models: pd.DataFrame) -> list[int] | None:
    """The later half of the snapshot steps (the reference's K = 11-20 of 20), if any."""
    if "step" not in models or models["model"].is_unique:
        return None
    steps = sorted(int(s) for s in pd.unique(models["step"].dropna()))
    return steps[len(steps) // 2 :] if len(steps) > 1 else None


class Sections:
    """Collects Markdown, figures, numbers and timings.

    Parameters
    ----------
    out
        The report's folder, where sections write their figures and data files.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.lines: list[str] = []
        self.figures: list[Path] = []
        self.results: dict[str, Any] = {}
        self.seconds: dict[str, float] = {}

    def add(self, *lines: str) -> None:
        """Append Markdown lines."""
        self.lines.extend(lines)

    def figure(self, path: Path, caption: str) -> None:
        """Record the figure at ``path`` and show it with ``caption``."""
        self.figures.append(path)
        self.add(f"![{caption}]({path.name})", "", f"*{caption}*", "")

    def timed(self, name: str, work: Callable[[], None]) -> None:
        """Run ``work`` (a section), logging its ``name`` and recording its seconds."""
        start = time.perf_counter()
        log.info("report: %s", name)
        work()
        self.seconds[name] = time.perf_counter() - start


def overview_section(s: Sections, zoo: Zoo, by: str, networks: int, fast: bool) -> None:
    """The zoo at a glance: networks, rows, steps, the layers and the networks per ``by``."""
    models = zoo.models
    steps = sorted(pd.unique(models["step"].dropna())) if "step" in models else []
    s.add(
        f"Architecture group `{zoo.layout.name}`: **{networks} networks**, {len(zoo)} rows "
        f"(snapshots), {zoo.layout.size:,} parameters per network"
        + (f", steps {int(steps[0])}-{int(steps[-1])}" if len(steps) > 1 else "")
        + "."
        + (" Fast mode: reduced classifier features, no meta-classifier." if fast else ""),
        "",
        "| layer | parameters | tensors |",
        "| --- | ---: | --- |",
    )
    for layer in zoo.layout.layers:
        tensors = ", ".join(f"`{t.name}` {tuple(t.shape)}" for t in zoo.layout.layer_tensors(layer))
        s.add(f"| {layer} | {zoo.layout.layer_size(layer):,} | {tensors} |")
    s.add("")
    if by in models:
        counts = final_rows(models)[by].value_counts().sort_index()
        s.add(f"Networks per `{by}`: " + ", ".join(f"{k} {v}" for k, v in counts.items()), "")
    s.results["zoo"] = {
        "url": zoo.url,
        "networks": networks,
        "rows": len(zoo),
        "params": zoo.layout.size,
        "steps": [int(x) for x in steps],
    }


def metrics_section(s: Sections, zoo: Zoo, by: str) -> None:
    """The dataset card's table: min / max / average of each metric per ``by``."""
    s.add("## Metrics of the networks", "")
    present = [m for m in CARD_METRICS if m in zoo.models]
    if by not in zoo.models or not present:
        s.add(f"Skipped: no `{by}` column or no metric columns ({', '.join(CARD_METRICS)}).", "")
        return
    flat = flat_columns(metrics_table(zoo, by=by, metrics=present))
    flat.to_csv(s.out / "metrics.csv", index=False)
    s.add(
        f"Min / max / average of each test metric per `{by}` (each network's final row), as on "
        "the reference zoo's dataset card ([metrics.csv](metrics.csv)).",
        "",
        _table(flat),
        "",
    )
    s.results["metrics"] = flat.to_dict("records")


def curves_section(s: Sections, zoo: Zoo, by: str) -> None:
    """Training curves of one network per ``by``."""
    s.add("## Training curves", "")
    chosen = curve_models(zoo, by=by) if any(c in zoo.models for c in CURVES) else []
    if not chosen:
        s.add(f"Skipped: the zoo stores no training curves ({', '.join(CURVES)}).", "")
        return
    path = plot_training_curves(zoo, s.out / "training_curves.png", models=chosen, by=by)
    s.figure(path, f"Loss and accuracy per epoch of {len(chosen)} networks (one per {by}).")


def _feature_sets(
    zoo: Zoo, fast: bool, rows: int, max_bytes: int
) -> list[tuple[Features, int | None]]:
    flat_pca = None if rows * feature_width(zoo.layout, "flat") * 4 <= max_bytes else 64
    if fast:
        return [("stats", None), ("flat", 16)]
    sets: list[tuple[Features, int | None]] = [("flat", flat_pca), ("stats", None)]
    if len(zoo.layout.layers) > 1:
        sets.append((zoo.layout.layers[-1], None))
    return sets


def classification_section(
    s: Sections, zoo: Zoo, by: str, fast: bool, seed: int, max_bytes: int
) -> None:
    """Classifiers of ``by`` on each network's final weights against chance."""
    s.add("## Classifying networks by their weights", "")
    finals = final_rows(zoo.models)
    results: list[ClassificationResult] = []
    for features, pca in _feature_sets(zoo, fast, len(finals), max_bytes):
        results.append(
            classify_weights(
                zoo, by, CLASSIFIERS, features, pca=pca, seed=seed, max_bytes=max_bytes
            )
        )
    first = results[0]
    s.add(
        f"Predict `{by}` from each network's final weights. One split of the networks, "
        f"{first.n_train} train / {first.n_test} test"
        + (" (stratified by class)" if first.stratified else " (not stratified: too few networks)")
        + ", shared by every classifier and feature set; features standardised on the training "
        "split. Intervals are 95% Wilson intervals on the test split. Chance: "
        f"{first.chance['majority']:.3f} (majority class of the test split), "
        f"{first.chance['uniform']:.3f} (1 / {len(first.classes)} classes).",
        "",
    )
    frames = []
    for result in results:
        extra = (
            f", PCA keeps {result.explained_variance:.0%} of the variance"
            if result.explained_variance is not None
            else ""
        )
        s.add(f"**Features: {result.features}** ({result.n_features:,} columns{extra})", "")
        s.add(result.to_markdown(), "")
        table = result.table.reset_index()
        table.insert(0, "features", result.features)
        frames.append(table)
    combined = pd.concat(frames, ignore_index=True)
    combined.to_csv(s.out / "classification.csv", index=False)
    plot_table = combined.rename(columns={"classifier": "label", "features": "series"})
    path = plot_accuracies(
        plot_table,
        s.out / "accuracy.png",
        chance=first.chance,
        title=f"Classifying networks by their weights: {by}",
    )
    s.figure(path, "Test accuracy per classifier and feature set, with chance levels.")
    best = combined.loc[combined["accuracy"].idxmax()]
    s.add(
        f"Best: **{best['classifier']}** on **{best['features']}** features, accuracy "
        f"{best['accuracy']:.3f} [{best['ci_low']:.3f}, {best['ci_high']:.3f}] vs chance "
        f"{first.chance['majority']:.3f}.",
        "",
    )
    s.results["classification"] = {
        "chance": first.chance,
        "n_train": first.n_train,
        "n_test": first.n_test,
        "table": combined.to_dict("records"),
    }


def divergence_section(s: Sections, zoo: Zoo, by: str, seed: int) -> None:
    """Per-layer Jensen-Shannon divergence between the ``by`` groups, beside its noise floor."""
    s.add("## Jensen-Shannon divergence between groups, per layer", "")
    result: DivergenceResult = layer_divergence(zoo, by, bins=100, seed=seed)
    result.summary.reset_index().to_csv(s.out / "divergence.csv", index=False)
    s.add(
        "Histograms of each layer's weights (100 bins over the layer's range) per group, "
        "compared pairwise; base-2 logarithms, so 0 is identical and 1 is disjoint. The "
        "shuffled-label column is the same statistic with the groups shuffled between networks: "
        "the noise floor of finite histograms; the p-value is the share of 19 shuffles (and "
        "the observed labelling) whose mean divergence reaches the observed one "
        "([divergence.csv](divergence.csv)).",
        "",
        result.to_markdown(),
        "",
    )
    summary = result.summary
    separating = summary[summary["p_value"] <= 0.05].sort_values("ratio", ascending=False)
    if len(separating):
        s.add(
            "Layers whose weights differ between groups (permutation test over 19 label "
            "shuffles, p <= 0.05): "
            + ", ".join(
                f"**{layer}** ({r.mean_js:.4f}, {r.ratio:.1f}x its floor)"
                for layer, r in separating.iterrows()
            )
            + "; the other layers are indistinguishable from shuffled labels.",
            "",
        )
    else:
        s.add(
            "No layer's divergence between groups exceeds what shuffled labels give "
            "(permutation test, p <= 0.05): by their weight histograms alone, the groups look "
            "alike.",
            "",
        )
    s.figure(
        plot_divergence_summary(result, s.out / "divergence_summary.png"),
        "Mean divergence between groups per layer, beside the shuffled-label floor.",
    )
    s.figure(
        plot_divergence(result, s.out / "divergence.png"),
        "Divergence between every pair of groups, per layer.",
    )
    s.figure(
        plot_weight_histograms(result, s.out / "weight_histograms.png"),
        f"Weight distributions per layer and {by}.",
    )
    s.results["divergence"] = result.summary.reset_index().to_dict("records")


def meta_section(
    s: Sections,
    zoo: Zoo,
    by: str,
    run: bool,
    has_groups: bool,
    networks: int,
    fast: bool,
    seed: int,
    epochs: int,
) -> None:
    """NWS meta-classifiers of ``by`` (and ``step``) on weight slices, or why they are skipped."""
    s.add("## NWS meta-classifiers on weight slices", "")
    if not run or not has_groups:
        why = (
            "fast mode"
            if fast
            else f"{networks} networks, fewer than {MIN_META_NETWORKS}"
            if networks < MIN_META_NETWORKS
            else "not requested"
            if has_groups
            else f"no `{by}` groups"
        )
        s.add(
            f"Skipped ({why}). Run `wspace report URL --out DIR` (full mode) on a zoo of "
            f"{MIN_META_NETWORKS}+ networks, or `wspace.analysis.meta_classifier(zoo, ...)`.",
            "",
        )
        return
    steps = _upper_steps(zoo.models)
    sizes = []
    for part in ("conv", "fc"):
        with contextlib.suppress(wspace.SchemaMismatchError):
            sizes.append(len(part_region(zoo.layout, part)))
    # the reference's 5,000, or half of the smallest part on small architectures
    length = max(8, min(5000, min(sizes, default=zoo.layout.size) // 2))
    all_steps = sorted(int(x) for x in pd.unique(zoo.models["step"].dropna())) if steps else []
    runs: list[tuple[str, Part, list[int] | None]] = [(by, part, steps) for part in PARTS]
    if steps:  # training progress: which snapshot a slice comes from, over all snapshots
        runs.append(("step", "all", all_steps))
    results: list[MetaResult] = []
    for target, part, chosen in runs:
        try:
            results.append(
                meta_classifier(
                    zoo,
                    target,
                    slice_length=length,
                    steps=chosen,
                    part=part,
                    epochs=epochs,
                    slices_per_row=2,
                    seed=seed,
                )
            )
        except wspace.SchemaMismatchError as exc:
            s.add(f"- `{target}` from part `{part}` skipped: {exc}", "")
    s.add(
        f"A 1-D CNN (the reference's `cnn1D_small` at width 0.25) sees one random slice of "
        f"{length:,} consecutive weights of a snapshot"
        + (f" from steps {steps[0]}-{steps[-1]}" if steps else " (final rows)")
        + f" and predicts `{by}` from all weights, the convolutional layers only, or the fully "
        f"connected layers only; {epochs} epochs, 2 slices per snapshot per epoch. A test "
        "network is classified from 20 evenly spaced slices of each of its snapshots "
        "(probabilities averaged); `slice` accuracy is that of single slices. Networks are "
        "split 70/30 as above."
        + (
            f" The last row predicts the snapshot's `step` ({len(all_steps)} classes) from "
            "slices of all snapshots, scored per snapshot: how much training progress a "
            "slice of weights reveals."
            if steps
            else ""
        ),
        "",
    )
    table = pd.DataFrame([r.summary() for r in results])
    if table.empty:
        return
    table.to_csv(s.out / "meta.csv", index=False)
    columns = ["target", "part", "unit", "accuracy", "ci_low", "ci_high", "row_accuracy",
               "slice_accuracy", "chance_majority", "chance_uniform", "n_train_rows",
               "n_test_rows", "seconds"]  # fmt: skip
    s.add(_table(table[columns], ".3f"), "")
    plot_table = pd.DataFrame(
        {
            "label": table["target"] + " / " + table["part"],
            "series": "1-D CNN on slices",
            "accuracy": table["accuracy"],
            "ci_low": table["ci_low"],
            "ci_high": table["ci_high"],
        }
    )
    chance = results[0].chance
    path = plot_accuracies(
        plot_table,
        s.out / "meta_accuracy.png",
        chance=chance,
        title=f"Meta-classifiers on weight slices (chance lines: {by})",
    )
    s.figure(path, "Test accuracy of the slice meta-classifiers per target and part.")
    s.results["meta"] = table.to_dict("records")
