"""The NWS experiment on a generated sweep: predict each drawn hyper-parameter from weight slices.

    python -m benchmarks.nws_meta STORE [--targets dataset,optimizer,...] [--steps 11-20]
                                  [--epochs 10] [--slice-length 5000] [--slices-per-row 2]
                                  [--positions 20] [--threads 1]
                                  [--out benchmarks/results/nws_meta.json] [--figures DIR]

``STORE`` is a sweep of one architecture (``wspace train sweep
benchmarks/specs/nws-digits-300.toml STORE``). For every target, one
:func:`wspace.analysis.meta_classifier` (the NWS 1-D CNN on random slices of the flat weight
vector) is trained on the snapshots at ``--steps`` of 70 % of the networks and scored on the
other 30 % (per network: probabilities averaged over ``--positions`` evenly spaced slices of
each snapshot), with the chance rates of the test networks and 95 % Wilson intervals.
``lrate`` is classified in 3 quantile bins. Writes the table as JSON and, with ``--figures``,
two PNGs: the accuracies against chance (``nws_meta_accuracy.png``) and the sweep's
validation error per epoch by hyper-parameter (``nws_sweep_errors.png``).

A store with several architecture groups is refused: :func:`~wspace.analysis.meta_classifier`
reads one group (one layout), and slice positions are only comparable between networks of one
layout; run it per group (``wspace.open(url, arch=...)``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import wspace
from wspace.analysis import meta_classifier

TARGETS = ("dataset", "activation", "optimizer", "initialization", "batch_size", "augmentation",
           "lrate")  # fmt: skip
"""The drawn fields of benchmarks/specs/nws-digits-300.toml."""
BINS = {"lrate": 3}
"""Numeric targets classified in quantile bins."""


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train and score one meta-classifier per target; return the report."""
    info = wspace.info(args.store)
    if len(info["archs"]) != 1:
        raise SystemExit(
            f"{args.store}: {len(info['archs'])} architecture groups; this experiment reads one "
            "(slices are compared at the same positions of one layout)"
        )
    zoo = wspace.open(args.store)
    low, high = (int(s) for s in args.steps.split("-"))
    rows = []
    for target in args.targets.split(","):
        result = meta_classifier(
            zoo,
            target,
            slice_length=args.slice_length,
            steps=range(low, high + 1),
            epochs=args.epochs,
            positions=args.positions,
            slices_per_row=args.slices_per_row,
            bins=BINS.get(target),
            task="classify",
            seed=args.seed,
            threads=args.threads,
        )
        row = result.summary()
        row["classes"] = [str(c) for c in result.classes]
        rows.append(row)
        print(
            f"{target:>15}: {row['accuracy']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}] "
            f"chance {row['chance_majority']:.3f} / {row['chance_uniform']:.3f} "
            f"({row['seconds']:.0f} s)",
            flush=True,
        )
    return {
        "store": args.store,
        "arch": zoo.layout.name,
        "weights": zoo.layout.size,
        "networks": int(zoo.models["model"].nunique()),
        "steps": [low, high],
        "slice_length": args.slice_length,
        "epochs": args.epochs,
        "slices_per_row": args.slices_per_row,
        "positions": args.positions,
        "seed": args.seed,
        "rows": rows,
    }


def plot_accuracy(report: dict[str, Any], path: Path) -> None:
    """Bars of test accuracy with 95 % intervals; each target's chance rates as markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.DataFrame(report["rows"])
    x = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(8, 4.2), layout="constrained")
    acc = table["accuracy"].to_numpy(float)
    err = np.vstack([acc - table["ci_low"], table["ci_high"] - acc])
    ax.bar(x, acc, 0.6, yerr=err, capsize=3, color="tab:blue", label="meta-classifier")
    ax.scatter(x, table["chance_majority"], marker="_", s=900, color="tab:red", zorder=3,
               label="chance: majority class")  # fmt: skip
    ax.scatter(x, table["chance_uniform"], marker="_", s=900, color="0.3", zorder=3,
               label="chance: 1/classes")  # fmt: skip
    for xi, a, top in zip(x, acc, table["ci_high"], strict=True):
        ax.text(float(xi), top + 0.01, f"{a:.2f}", ha="center", va="bottom", fontsize=8)
    labels = [
        f"{t}\n({len(c)} classes)" for t, c in zip(table["target"], table["classes"], strict=True)
    ]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("test accuracy per network (95% Wilson CI)")
    ax.set_title(
        f"Hyper-parameters from {report['slice_length']}-weight slices, snapshots "
        f"{report['steps'][0]}-{report['steps'][1]} ({report['networks']} networks)",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right", markerscale=0.4)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_errors(store: str, path: Path) -> None:
    """Median validation error per epoch, one line per value, for four drawn fields."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = wspace.open(store).models
    fields = ("optimizer", "activation", "initialization", "batch_size")
    fig, axes = plt.subplots(1, len(fields), figsize=(13, 3.4), sharey=True, layout="constrained")
    for ax, name in zip(axes, fields, strict=True):
        curves = models.groupby([name, "step"])["valid_error"].median().unstack(0)
        for value in curves.columns:
            ax.plot(curves.index, curves[value], label=str(value))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch (snapshot)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("median validation error (%)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run, write JSON and figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--steps", default="11-20", help="snapshot steps, inclusive")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--slice-length", type=int, default=5000)
    parser.add_argument("--slices-per-row", type=int, default=2)
    parser.add_argument("--positions", type=int, default=20, help="slices per test snapshot")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/nws_meta.json")
    parser.add_argument("--figures", default=None, help="folder for the two PNGs")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = run(args)
    report["seconds"] = time.perf_counter() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    if args.figures:
        folder = Path(args.figures)
        folder.mkdir(parents=True, exist_ok=True)
        plot_accuracy(report, folder / "nws_meta_accuracy.png")
        plot_errors(args.store, folder / "nws_sweep_errors.png")
    print(f"wrote {out} ({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
