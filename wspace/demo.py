"""``wspace demo``: the main job — train a small digits zoo into a store, then query it.

Trains one-vs-all LeNet-5s (docs/formats.md) on scikit-learn's digits (shipped offline), with
several worker processes appending concurrently to one store, then shows what a researcher
does with the zoo: the store summary, lazy queries by class and layer, a Keras-oriented tensor,
the per-class metrics table of the dataset card, a network rebuilt in torch that reproduces its
recorded validation accuracy, an integrity check and a compaction; it ends by writing the
analysis report of the zoo (:func:`wspace.analysis.write_report` in fast mode).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import wspace
from wspace.errors import StoreExistsError, WspaceError
from wspace.store.maintenance import info_text

__all__ = ["default_report_dir", "run_demo"]


def default_report_dir(path: str | Path) -> Path:
    """Where the demo writes its report: beside the store, ``NAME-report`` for ``NAME.zarr``.

    The report is kept out of the store's folder, which only wspace writes.

    Examples
    --------
    >>> default_report_dir("runs/demo-zoo.zarr").as_posix()
    'runs/demo-zoo-report'
    """
    store = Path(path)
    return store.with_name(f"{store.stem if store.suffix == '.zarr' else store.name}-report")


def run_demo(
    path: str,
    *,
    per_class: int = 3,
    epochs: int = 10,
    workers: int = 2,
    classes: list[str] | None = None,
    overwrite: bool = False,
    echo: Callable[[str], Any] = print,
    progress: bool = True,
    report: bool = True,
    report_out: str | Path | None = None,
) -> wspace.Zoo:
    """Train the demo zoo at ``path``, print what the queries return, and return the zoo.

    Parameters
    ----------
    path
        Local directory of the store.
    per_class, epochs, workers
        Networks per digit class, training epochs per network, worker processes.
    classes
        Digit classes to train (default: all ten, ``zero`` ... ``nine``).
    overwrite
        Replace an existing store at ``path``.
    echo
        Where to print.
    progress
        Show the training progress bar.
    report
        End by writing the zoo's analysis report (fast mode: metrics, curves, classifiers on
        weight statistics, per-layer divergences and figures; no meta-classifier).
    report_out
        Folder of the report (default: :func:`default_report_dir` of ``path``).
    """
    from wspace.analysis.metrics import flat_columns, metrics_table
    from wspace.train.data import load_digits
    from wspace.train.lenet import evaluate, one_vs_all_labels
    from wspace.train.orchestrate import train_zoo
    from wspace.train.worker import TrainSettings

    target = Path(path)
    if target.exists():
        if not overwrite:
            raise StoreExistsError(f"{path!r} exists; pass --overwrite to replace it")
        shutil.rmtree(target)
    data = load_digits()
    trained = train_zoo(
        path,
        classes=classes,
        per_class=per_class,
        settings=TrainSettings(epochs=epochs),
        workers=workers,
        progress=progress,
    )
    if not trained.complete:
        raise WspaceError(
            f"{trained.failed_workers} training worker(s) failed; run `wspace demo` again"
        )
    echo(
        f"trained {len(trained.trained)} digits LeNet-5s ({epochs} epochs each) with {workers} "
        f"worker processes appending concurrently: {trained.nets_per_minute:.1f} networks/minute"
    )

    echo(f"\n$ wspace info {path}\n{info_text(wspace.info(path))}")

    zoo = wspace.open(path)
    echo(f"\n>>> zoo = wspace.open({path!r})\n{zoo}")
    cls = str(zoo.models["cls"].iloc[0])
    lazy = zoo.sel(cls=cls).layer("dense_1")
    echo(
        f"\n>>> zoo.sel(cls={cls!r}).layer('dense_1')   # lazy: {lazy.shape}, "
        f"{lazy.data.npartitions} dask chunk(s), nothing read yet"
    )
    values = lazy.values
    echo(f"computed: shape {values.shape}, mean {values.mean():+.5f}, std {values.std():.5f}")
    kernel = zoo.tensor("dense_1/kernel")
    echo(f"\n>>> zoo.tensor('dense_1/kernel').shape   # Keras orientation\n{kernel.shape}")

    models = zoo.models
    echo(
        f"\nmean validation accuracy {models['accuracy'].mean():.4f} vs the all-negative "
        f"(majority class) rate {models['majority_rate'].mean():.4f}"
    )
    table = flat_columns(metrics_table(zoo))
    echo("\n>>> wspace.analysis.metrics_table(zoo)   # the dataset card's table")
    echo(table.to_string(index=False, float_format="{:.4f}".format))

    row = 0
    name = str(models["model"].iloc[row])
    label = data.classes.index(str(models["cls"].iloc[row]))
    with torch.no_grad():
        again = evaluate(zoo.module(row), data.val_x, one_vs_all_labels(data.val_y, label))
    same = again["accuracy"] == models["accuracy"].iloc[row]
    echo(
        f"\n>>> zoo.module(0)   # {name} rebuilt in torch: validation accuracy "
        f"{again['accuracy']:.4f}, as recorded: {same}"
    )

    checked = wspace.verify(path)
    echo(
        f"\n>>> wspace.verify({path!r})   {checked.chunks_checked} chunks, "
        f"{len(checked.problems)} damaged"
    )
    compacted = wspace.compact(path)
    after = wspace.open(path)
    unchanged = np.array_equal(after.sel(cls=cls).layer("dense_1").values, values)
    echo(f">>> wspace.compact({path!r})   {compacted}; {cls} dense_1 unchanged: {unchanged}")
    if report:
        _report(after, Path(report_out) if report_out else default_report_dir(path), echo)
    return after


def _report(zoo: wspace.Zoo, out: Path, echo: Callable[[str], Any]) -> None:
    """Write the fast analysis report of ``zoo`` to ``out`` and print its summary and files."""
    from wspace.analysis.report import write_report

    echo(f"\n>>> wspace.analysis.write_report(zoo, {str(out)!r}, fast=True)")
    result = write_report(zoo, out, fast=True)
    text = result.markdown.read_text()
    summary = text.split("## Summary\n", 1)[-1].split("\n## ", 1)[0].strip()
    echo(summary)
    figures = ", ".join(p.name for p in result.figures)
    echo(
        f"report written in {result.seconds['total']:.1f} s: {result.markdown} and "
        f"{result.html} (open it in a browser); figures: {figures}"
    )
