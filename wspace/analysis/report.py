"""``write_report``: every analysis of a zoo in one Markdown + HTML report with its figures.

The report reproduces the reference papers' results on any zoo: the dataset card's metrics
table, training curves, classification of networks by their weights against chance, per-layer
Jensen-Shannon divergence between groups, and NWS meta-classifiers on weight slices. Each
section is skipped, with the reason in the report, when the zoo lacks what it needs (a group
column, metrics, curves, snapshots, enough networks). The sections are in
:mod:`wspace.analysis.report_sections`; this module assembles them into the report's files.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import wspace
from wspace.analysis.features import DEFAULT_MAX_BYTES
from wspace.analysis.metrics import final_rows
from wspace.analysis.report_sections import MIN_META_NETWORKS as MIN_META_NETWORKS
from wspace.analysis.report_sections import PARTS as PARTS
from wspace.analysis.report_sections import (
    Sections,
    classification_section,
    curves_section,
    divergence_section,
    meta_section,
    metrics_section,
    overview_section,
)
from wspace.query import Zoo

__all__ = ["MIN_META_NETWORKS", "ReportResult", "markdown_to_html", "write_report"]

log = logging.getLogger(__name__)

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f2f2f2; }
img { max-width: 100%; border: 1px solid #eee; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""


@dataclass
class ReportResult:
    """What :func:`write_report` wrote and computed."""

    markdown: Path
    """``report.md``."""
    html: Path
    """``report.html``."""
    figures: list[Path] = field(default_factory=list)
    """The PNG files."""
    results: dict[str, Any] = field(default_factory=dict)
    """The headline numbers (also written to ``results.json``)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Time per section."""


def markdown_to_html(markdown: str, *, title: str = "wspace report") -> str:
    """A standalone HTML page of ``markdown`` (CommonMark with tables).

    Examples
    --------
    >>> "<td>1</td>" in markdown_to_html("| a |\\n| - |\\n| 1 |")
    True
    """
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head>\n<body>\n{body}</body></html>\n"
    )


def write_report(
    zoo: Zoo | str,
    out: str | Path,
    *,
    by: str = "cls",
    fast: bool = False,
    seed: int = 0,
    meta: bool | None = None,
    meta_epochs: int = 10,
    storage_options: Mapping[str, Any] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ReportResult:
    """Run every analysis on ``zoo`` and write ``report.md``, ``report.html``, figures and data.

    Parameters
    ----------
    zoo
        A :class:`~wspace.Zoo` or a store URL.
    out
        Folder to write (created): ``report.md``, ``report.html``, ``*.png``,
        ``metrics.csv``, ``classification.csv``, ``divergence.csv``, ``meta.csv`` and
        ``results.json``.
    by
        The group column (classes) of the metrics table, the classifiers and the divergences.
    fast
        Quick mode for small zoos and demos: classifiers on per-tensor statistics and on the
        flat vector projected on 16 principal components, and no meta-classifier.
    seed
        Seed of every split, classifier and meta-classifier.
    meta
        Run the meta-classifiers (``by`` from all / conv / fc slices, and ``step`` when there
        are snapshots). Default: unless ``fast`` or the zoo has fewer than
        :data:`MIN_META_NETWORKS` networks.
    meta_epochs
        Training epochs of each meta-classifier.
    storage_options
        fsspec options when ``zoo`` is a URL.
    max_bytes
        Largest raw feature matrix held in memory; larger ones are PCA-reduced block by block.

    Examples
    --------
    >>> import tempfile, wspace
    >>> from wspace.testing import class_zoo
    >>> zoo = wspace.open(class_zoo("memory://doc-report", per_class=4))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     result = write_report(zoo, tmp, fast=True)
    ...     sorted(p.name for p in result.figures)
    ['accuracy.png', 'divergence.png', 'divergence_summary.png', 'weight_histograms.png']
    """
    if isinstance(zoo, str):
        zoo = wspace.open(zoo, storage_options=storage_options)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    s = Sections(target)
    models = zoo.models
    finals = final_rows(models)
    networks = int(finals["model"].nunique()) if "model" in finals else len(finals)
    has_groups = by in models and models[by].nunique() >= 2
    s.add(f"# Weight-space report: `{zoo.url}`", "")
    overview_section(s, zoo, by, networks, fast)
    summary_at = len(s.lines)
    s.timed("metrics", lambda: metrics_section(s, zoo, by))
    s.timed("training curves", lambda: curves_section(s, zoo, by))
    if has_groups:
        s.timed("classification", lambda: classification_section(s, zoo, by, fast, seed, max_bytes))
        s.timed("divergence", lambda: divergence_section(s, zoo, by, seed))
    else:
        s.add(
            "## Classification and divergence",
            "",
            f"Skipped: the zoo has no column `{by}` with two or more values (columns: "
            f"{', '.join(models.columns)}).",
            "",
        )
    run_meta = meta if meta is not None else (not fast and networks >= MIN_META_NETWORKS)
    s.timed(
        "meta-classifier",
        lambda: meta_section(s, zoo, by, run_meta, has_groups, networks, fast, seed, meta_epochs),
    )
    s.seconds["total"] = time.perf_counter() - start
    s.lines[summary_at:summary_at] = _summary(s.results, by)
    _methods(s)
    s.add("## Timings", "", "| section | seconds |", "| --- | ---: |")
    s.add(*(f"| {name} | {sec:.1f} |" for name, sec in s.seconds.items()), "")
    text = "\n".join(s.lines)
    md = target / "report.md"
    md.write_text(text)
    html = target / "report.html"
    html.write_text(markdown_to_html(text, title=f"wspace report: {zoo.url}"))
    s.results["seconds"] = s.seconds
    (target / "results.json").write_text(json.dumps(s.results, indent=2, default=_json))
    log.info("report written to %s in %.1f s", md, s.seconds["total"])
    return ReportResult(md, html, s.figures, s.results, s.seconds)


def _summary(results: Mapping[str, Any], by: str) -> list[str]:
    """The headline numbers, for the top of the report."""
    lines = ["## Summary", ""]
    if "classification" in results:
        table = pd.DataFrame(results["classification"]["table"])
        best = table.loc[table["accuracy"].idxmax()]
        chance = results["classification"]["chance"]
        lines.append(
            f"- Classifying `{by}` from weights: best **{best['accuracy']:.3f}** "
            f"[{best['ci_low']:.3f}, {best['ci_high']:.3f}] ({best['classifier']}, "
            f"{best['features']} features) vs chance {chance['majority']:.3f} (majority) / "
            f"{chance['uniform']:.3f} (1/classes)."
        )
    if "divergence" in results:
        frame = pd.DataFrame(results["divergence"]).set_index("layer")
        parts = [f"{layer} {r.mean_js:.4f} ({r.ratio:.1f}x floor, p={r.p_value:.2f})"
                 for layer, r in frame.iterrows()]  # fmt: skip
        lines.append(f"- Mean JS divergence between `{by}` groups per layer: " + "; ".join(parts))
    for row in results.get("meta", []):
        lines.append(
            f"- Meta-classifier, `{row['target']}` from `{row['part']}` slices: "
            f"{row['accuracy']:.3f} per {row['unit']} (single slices {row['slice_accuracy']:.3f}) "
            f"vs chance {row['chance_majority']:.3f}."
        )
    if len(lines) == 2:
        lines.append("- No analysis applied to this zoo (see the sections below).")
    return [*lines, ""]


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def _methods(s: Sections) -> None:
    s.add(
        "## Methods",
        "",
        "- Rows: each network's final row (largest `step`) for the metrics, classifiers and "
        "divergences; the later half of the snapshot steps for the meta-classifiers.",
        "- Splits keep all rows of a network on one side (grouped by `model`), stratified by "
        "class when every class has two or more networks.",
        "- Classifiers (scikit-learn): Gaussian Naive Bayes; random forest (300 trees); SVM "
        "(RBF kernel); MLP (one hidden layer of 128 units).",
        "- Everything streams from the store chunk by chunk with Dask; feature matrices larger "
        "than the memory limit are reduced by incremental PCA block by block.",
        "",
    )
