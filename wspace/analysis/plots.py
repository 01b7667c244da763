"""Figures of the analyses, written as PNG files with matplotlib's Agg renderer.

Every function draws on its own :class:`matplotlib.figure.Figure` (no pyplot state, no display
needed), writes ``path`` and returns it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wspace.analysis.metrics import final_rows
from wspace.errors import CoordinateNotFoundError, listing

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from wspace.analysis.divergence import DivergenceResult
    from wspace.query import Zoo

__all__ = [
    "CURVES",
    "curve_models",
    "plot_accuracies",
    "plot_divergence",
    "plot_divergence_summary",
    "plot_training_curves",
    "plot_weight_histograms",
]

CURVES = ("curve_train_loss", "curve_val_loss", "curve_train_accuracy", "curve_val_accuracy")
"""Per-epoch curve columns stored by the trainer (JSON lists)."""

DPI = 110


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    return out


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def curve_models(zoo: Zoo, *, by: str = "cls", limit: int = 10) -> list[str]:
    """Networks to show in training-curve plots: the first (by name) of each group, with curves.

    Examples
    --------
    >>> import wspace
    >>> wspace.create("memory://doc-curves", wspace.Layout.from_dict(
    ...     {"tensors": [{"name": "fc/weight", "shape": [2]}]}))
    >>> with wspace.writer("memory://doc-curves") as w:
    ...     for i in range(4):
    ...         w.append(np.zeros(2, "float32"), model=f"m{i}", cls="ab"[i % 2],
    ...                  curve_val_loss=[1.0, 0.5])
    >>> curve_models(wspace.open("memory://doc-curves"))
    ['m0', 'm1']
    """
    models = final_rows(zoo.models)
    present = [c for c in CURVES if c in models]
    if not present:
        return []
    has = models[present].notna().any(axis=1)
    models = models[has].sort_values("model")
    if by in models:
        models = models.drop_duplicates(by)
    return [str(m) for m in models["model"].head(limit)]


def plot_training_curves(
    zoo: Zoo, path: str | Path, *, models: Sequence[str] | None = None, by: str = "cls"
) -> Path:
    """Loss and accuracy per epoch (train solid, validation dashed) of chosen networks.

    ``models`` defaults to :func:`curve_models` (one network per group of ``by``). The curves
    are the trainer's ``curve_*`` columns of each network's final row.
    """
    chosen = list(models) if models is not None else curve_models(zoo, by=by)
    table = final_rows(zoo.models).set_index("model")
    missing = [m for m in chosen if m not in table.index]
    if missing or not chosen:
        raise CoordinateNotFoundError(
            f"store {zoo.url!r}: no training curves for {listing(missing or chosen)}; "
            f"curve columns: {listing(c for c in CURVES if c in table)}"
        )
    from matplotlib.ticker import MaxNLocator

    fig = _figure(11, 4.2)
    axes = fig.subplots(1, 2)
    colors = _colors(len(chosen))
    for ax, quantity in zip(axes, ("loss", "accuracy"), strict=True):
        for name, color in zip(chosen, colors, strict=True):
            row = table.loc[name]
            label = f"{name} ({row[by]})" if by in table and row[by] is not None else name
            for split, style in (("train", "-"), ("val", "--")):
                curve = row.get(f"curve_{split}_{quantity}")
                if not isinstance(curve, list | tuple | np.ndarray) or len(curve) == 0:
                    continue
                epochs = np.arange(1, len(curve) + 1)
                ax.plot(
                    epochs, curve, style, color=color, lw=1.4,
                    label=label if split == "train" else None,
                )  # fmt: skip
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.2
        ax.set_ylabel(quantity)
        ax.set_title(f"{quantity.capitalize()} per epoch")
        ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    handles = axes[0].get_legend_handles_labels()[0]
    handles += [
        Line2D([], [], color="0.3", ls="-", label="train"),
        Line2D([], [], color="0.3", ls="--", label="validation"),
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle(f"Training curves of {len(chosen)} networks")
    return _save(fig, path)


def _grid(n: int, columns: int = 3) -> tuple[int, int]:
    cols = min(columns, max(n, 1))
    return math.ceil(n / cols), cols


def plot_weight_histograms(result: DivergenceResult, path: str | Path) -> Path:
    """Per layer, the weight density of each group (the histograms behind the divergences)."""
    hist = result.histograms
    layers = [str(v) for v in hist["layer"].values]
    groups = [str(v) for v in hist["group"].values]
    rows, cols = _grid(len(layers))
    fig = _figure(4.0 * cols + 1.6, 3.1 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    colors = _colors(len(groups))
    for ax, layer in zip(axes, layers, strict=False):
        edges = result.edges.sel(layer=layer).values
        width = np.diff(edges)
        for group, color in zip(groups, colors, strict=True):
            counts = hist.sel(layer=layer, group=group).values.astype(np.float64)
            density = counts / max(counts.sum(), 1) / width
            ax.stairs(density, edges, color=color, lw=1.1, label=group)
        ax.set_title(f"{layer} (mean JS {result.summary.loc[layer, 'mean_js']:.4f})", fontsize=10)
        ax.set_xlabel("weight value")
        ax.set_ylabel("density")
        ax.grid(alpha=0.3)
    for ax in axes[len(layers) :]:
        ax.set_visible(False)
    by = result.matrix.attrs.get("by", "group")
    fig.legend(
        *axes[0].get_legend_handles_labels(), loc="outside right center", title=by, fontsize=8
    )
    fig.suptitle(f"Weight histograms per layer and {by}")
    return _save(fig, path)


def plot_divergence(result: DivergenceResult, path: str | Path) -> Path:
    """Heat maps of the Jensen-Shannon divergence between groups, one per layer.

    Each layer has its own colour scale (the layers differ by orders of magnitude); the
    title gives the layer's mean divergence over pairs of groups.
    """
    matrix = result.matrix
    layers = [str(v) for v in matrix["layer"].values]
    groups = [str(v) for v in matrix["group"].values]
    rows, cols = _grid(len(layers))
    size = 3.0 + 0.18 * len(groups)
    fig = _figure(size * cols, (size - 0.3) * rows + 0.4)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    annotate = len(groups) <= 6
    for ax, layer in zip(axes, layers, strict=False):
        values = matrix.sel(layer=layer).values
        image = ax.imshow(values, cmap="viridis", vmin=0, vmax=max(float(values.max()), 1e-12))
        ax.set_xticks(range(len(groups)), groups, rotation=90, fontsize=7)
        ax.set_yticks(range(len(groups)), groups, fontsize=7)
        ax.set_title(f"{layer}: mean {result.summary.loc[layer, 'mean_js']:.4f}", fontsize=10)
        colorbar = fig.colorbar(image, ax=ax, shrink=0.8)
        colorbar.ax.tick_params(labelsize=7)
        colorbar.set_label("JS divergence (bits)", fontsize=7)
        if annotate:
            for i in range(len(groups)):
                for j in range(len(groups)):
                    dark = values[i, j] < values.max() / 2
                    ax.text(j, i, f"{values[i, j]:.3f}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")  # fmt: skip
    for ax in axes[len(layers) :]:
        ax.set_visible(False)
    by = matrix.attrs.get("by", "group")
    fig.suptitle(f"Jensen-Shannon divergence between {by} groups, per layer (base 2)")
    return _save(fig, path)


def plot_divergence_summary(result: DivergenceResult, path: str | Path) -> Path:
    """Each layer's mean divergence between groups (min-max whiskers) beside its noise floor.

    The noise floor is the mean divergence with the group labels shuffled between networks;
    the y axis is logarithmic, since layers differ by orders of magnitude.
    """
    summary = result.summary
    fig = _figure(7.5, 4.0)
    ax = fig.subplots()
    x = np.arange(len(summary))
    mean = summary["mean_js"].to_numpy(dtype=float)
    spread = np.vstack([mean - summary["min_js"].to_numpy(float), summary["max_js"] - mean])
    ax.bar(x - 0.2, mean, 0.4, color="tab:blue", yerr=spread, capsize=4,
           label="between groups: mean over pairs (min-max)")  # fmt: skip
    ax.bar(x + 0.2, summary["null_js"].to_numpy(float), 0.4, color="0.65",
           label="shuffled labels (noise floor)")  # fmt: skip
    tops = summary["max_js"].to_numpy(float)
    for xi, (top, ratio, p) in enumerate(
        zip(tops, summary["ratio"], summary["p_value"], strict=True)
    ):
        ax.text(xi - 0.2, top * 1.15, f"{ratio:.1f}x\np={p:.2f}", ha="center", va="bottom",
                fontsize=8)  # fmt: skip
    ax.set_xticks(x, [f"{layer}\n({int(p):,} params)" for layer, p in summary["params"].items()],
                  fontsize=8)  # fmt: skip
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 8)  # room for the labels and the legend
    ax.set_ylabel("JS divergence (bits, log scale)")
    ax.set_xlabel("layer (label: between-group mean / noise floor, permutation p-value)")
    ax.set_title(f"Which layers separate the {result.matrix.attrs.get('by', 'group')} groups")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def plot_accuracies(
    table: pd.DataFrame,
    path: str | Path,
    *,
    chance: dict[str, float],
    title: str = "Classifying networks by their weights",
) -> Path:
    """Grouped bars of accuracies with 95 % intervals, against the chance levels.

    ``table`` has columns ``label`` (x axis), ``series`` (bar colour; e.g. the features),
    ``accuracy``, ``ci_low`` and ``ci_high``; ``chance`` has ``majority`` and ``uniform``.
    """
    labels = list(dict.fromkeys(table["label"]))
    series = list(dict.fromkeys(table["series"]))
    fig = _figure(max(6.0, 1.3 * len(labels) * max(1, len(series)) ** 0.5 + 3), 4.2)
    ax = fig.subplots()
    width = 0.8 / max(len(series), 1)
    for k, (name, color) in enumerate(zip(series, _colors(len(series)), strict=True)):
        part = table[table["series"] == name].set_index("label").reindex(labels)
        x = np.arange(len(labels)) + (k - (len(series) - 1) / 2) * width
        acc = part["accuracy"].to_numpy(dtype=float)
        err = np.vstack(
            [acc - part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float) - acc]
        )
        ax.bar(x, acc, width, color=color, yerr=err, capsize=3, label=str(name))
        tops = part["ci_high"].to_numpy(float)
        for xi, a, top in zip(x, acc, tops, strict=True):
            if np.isfinite(a):
                ax.text(xi, top + 0.01, f"{a:.2f}", ha="center", va="bottom", fontsize=7)
    if "majority" in chance:
        ax.axhline(chance["majority"], color="tab:red", ls="--", lw=1.2,
                   label=f"chance: majority class ({chance['majority']:.2f})")  # fmt: skip
    if "uniform" in chance:
        ax.axhline(chance["uniform"], color="0.3", ls=":", lw=1.2,
                   label=f"chance: 1/classes ({chance['uniform']:.2f})")  # fmt: skip
    ax.set_xticks(np.arange(len(labels)), labels)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("test accuracy (95% Wilson CI)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside right center", fontsize=8, frameon=False)
    return _save(fig, path)
