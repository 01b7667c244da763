"""NWS meta-classifiers: predict a training property from a random slice of a network's weights.

As in Eilertsen et al. ("Classifying the classifier", the NWS zoo): a 1-D CNN
(:class:`~wspace.analysis.slice_cnn.SliceCNN`) sees one random contiguous slice of
``slice_length`` weights of a snapshot drawn from the steps ``K`` (e.g. 11-20), from the whole
vector, the convolutional layers only, or the fully connected layers only. Training draws a
fresh slice position for every row at every epoch; a test network is classified from ``P``
evenly spaced slice positions of each of its snapshots, averaging the predicted probabilities.

Rows stream from the store with :meth:`wspace.Zoo.batches` (a batch of rows at a time; the
passes over slices are in :mod:`wspace.analysis.meta_slices`); the zoo is never loaded whole.
Networks (the ``model`` column) are split into train and test, so that snapshots of one network
never straddle the split.

Targets: a categorical column (``cls``, ``optimizer``, ...), a numeric one in ``bins``
quantile bins (classification), or a numeric one as regression (``task="regress"``: L1 loss,
as in the reference, on the standardised target; scored by mean absolute error against the
training median as baseline).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import torch
from torch import nn

from wspace.analysis.intervals import wilson_interval
from wspace.analysis.meta_slices import BUFFER_SLICES as BUFFER_SLICES
from wspace.analysis.meta_slices import CALIBRATION_BATCHES as CALIBRATION_BATCHES
from wspace.analysis.meta_slices import evaluate_rows, recalibrate, train_slices
from wspace.analysis.slice_cnn import SliceCNN
from wspace.analysis.split import chance_rates, encode_target, select_rows, split_models
from wspace.analysis.threads import limit_threads
from wspace.errors import SchemaMismatchError, listing
from wspace.layout import Layout
from wspace.query import Zoo

__all__ = ["MetaResult", "Part", "meta_classifier", "part_region"]

log = logging.getLogger(__name__)

Part: TypeAlias = Literal["all", "conv", "fc"]
"""Which weights slices come from: all, convolutional layers, fully connected layers."""


def part_region(layout: Layout, part: Part) -> np.ndarray:
    """Flat indices of the weights of ``part``, in layout order.

    A layer is convolutional when one of its tensors has 3 or more dimensions, fully
    connected when its largest tensor is 2-D; its biases go with it.

    Examples
    --------
    >>> from wspace.architectures import lenet5_layout
    >>> lay = lenet5_layout()
    >>> [len(part_region(lay, p)) for p in ("all", "conv", "fc")]
    [91481, 50992, 40489]
    """
    if part == "all":
        return np.arange(layout.size)
    if part not in ("conv", "fc"):
        raise ValueError(f"part must be 'all', 'conv' or 'fc', not {part!r}")
    chosen = []
    for layer in layout.layers:
        ndim = max(len(t.shape) for t in layout.layer_tensors(layer))
        if (part == "conv" and ndim >= 3) or (part == "fc" and ndim == 2):
            chosen.append(layout.layer_slice(layer))
    if not chosen:
        raise SchemaMismatchError(
            f"layout {layout.name!r} has no {part} layers (layers: {listing(layout.layers)})"
        )
    return np.concatenate([np.arange(s.start, s.stop) for s in chosen])


@dataclass(frozen=True)
class MetaResult:
    """Test-split scores of one meta-classifier."""

    target: str
    """The predicted column."""
    task: str
    """``"classify"`` or ``"regress"``."""
    part: str
    """``all``, ``conv`` or ``fc``."""
    slice_length: int
    """Weights per slice."""
    steps: tuple[int, ...] | None
    """Snapshot steps used (``None``: each network's final row)."""
    positions: int
    """Slice positions per test row."""
    epochs: int
    """Training epochs."""
    n_train_networks: int
    """Networks in the training split."""
    n_test_networks: int
    """Networks in the test split."""
    n_train_rows: int
    """Snapshots (rows) in the training split."""
    n_test_rows: int
    """Snapshots (rows) in the test split."""
    unit: str
    """What ``accuracy`` counts: ``"network"`` (probabilities averaged over a network's
    positions and snapshots) or ``"row"`` (per snapshot, when the target changes within a
    network, e.g. ``step``)."""
    accuracy: float | None
    """Per test network (or row, see ``unit``)."""
    ci_low: float | None
    """95 % Wilson interval of ``accuracy``."""
    ci_high: float | None
    """95 % Wilson interval of ``accuracy``."""
    row_accuracy: float | None
    """Per test snapshot (averaged over its positions)."""
    slice_accuracy: float | None
    """Per single slice (the reference's "local" accuracy)."""
    chance: dict[str, float]
    """``majority`` and ``uniform`` chance rates of the test networks or rows
    (classification)."""
    mae: float | None
    """Mean absolute error per test network (regression)."""
    baseline_mae: float | None
    """Error of always predicting the training median (regression)."""
    classes: tuple[Any, ...]
    """Class labels (classification)."""
    seconds: float
    """Training and evaluation time."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Per epoch: ``epoch``, ``loss``, ``train_accuracy`` (classification)."""

    def summary(self) -> dict[str, Any]:
        """The headline numbers as a flat dict (one table row)."""
        keys = (
            "part", "target", "task", "unit", "accuracy", "ci_low", "ci_high", "row_accuracy",
            "slice_accuracy", "mae", "baseline_mae", "n_train_networks", "n_test_networks",
            "n_train_rows", "n_test_rows", "epochs", "seconds",
        )  # fmt: skip
        out = {k: getattr(self, k) for k in keys}
        out["chance_majority"] = self.chance.get("majority")
        out["chance_uniform"] = self.chance.get("uniform")
        return out


def _task(models: pd.DataFrame, target: str, task: str, bins: int | None) -> str:
    if task != "auto":
        if task not in ("classify", "regress"):
            raise ValueError(f"task must be 'auto', 'classify' or 'regress', not {task!r}")
        return task
    series = models.get(target)
    if series is None or bins is not None:
        return "classify"
    numeric = pd.api.types.is_float_dtype(series)
    return "regress" if numeric and series.nunique() > 20 else "classify"


def meta_classifier(
    zoo: Zoo,
    target: str = "cls",
    *,
    slice_length: int = 5000,
    steps: Iterable[int] | slice | None = None,
    part: Part = "all",
    positions: int = 20,
    epochs: int = 20,
    batch_size: int = 64,
    slices_per_row: int = 1,
    lr: float = 1e-3,
    width: float = 0.25,
    test_size: float = 0.3,
    bins: int | None = None,
    task: str = "auto",
    seed: int = 0,
    device: str | None = None,
    threads: int | None = 1,
) -> MetaResult:
    """Train the 1-D CNN meta-classifier on weight slices and score it on held-out networks.

    Parameters
    ----------
    zoo
        The networks (with snapshots for ``steps``).
    target
        Column to predict.
    slice_length
        Weights per slice (5,000 in the reference).
    steps
        Snapshot steps to draw from (the reference's ``K``, e.g. ``range(11, 21)``);
        ``None``: each network's final row.
    part
        ``"all"``, ``"conv"`` or ``"fc"``: which layers slices come from.
    positions
        ``P``: evenly spaced slice positions per test snapshot (predictions averaged).
    epochs, batch_size, lr
        Adam training; the learning rate decays by 0.95 per epoch.
    slices_per_row
        Slices drawn from each row read per epoch (cheap augmentation: a row is read once
        per epoch whatever this is).
    width
        Width of :class:`~wspace.analysis.slice_cnn.SliceCNN` (1.0: the reference network).
    test_size
        Fraction of networks held out.
    bins
        Classify a numeric target in this many quantile bins.
    task
        ``"auto"`` (regression for a float column with more than 20 values and no ``bins``),
        ``"classify"`` or ``"regress"``.
    seed
        Seeds the split, the slice positions and the network.
    device
        torch device (default: CUDA when available, else CPU).
    threads
        torch CPU threads while training (see :mod:`wspace.analysis.threads`; ``None``:
        torch's setting).

    Examples
    --------
    >>> import wspace
    >>> from wspace.testing import tiny_zoo
    >>> zoo = wspace.open(tiny_zoo("memory://doc-meta", 6))
    >>> r = meta_classifier(zoo, slice_length=64, epochs=1, positions=2, width=0.1)
    >>> r.n_train_networks + r.n_test_networks, r.task
    (6, 'classify')
    """
    start_time = time.perf_counter()
    rows = select_rows(zoo, steps)
    meta = rows.models
    kind = _task(meta, target, task, bins)
    region = part_region(zoo.layout, part)
    if len(region) < slice_length:
        raise SchemaMismatchError(
            f"store {zoo.url!r}: part {part!r} has {len(region)} weights, fewer than "
            f"slice_length={slice_length}; pass a smaller slice_length"
        )
    if kind == "classify":
        encoded = encode_target(meta, target, bins=bins)
        codes = encoded.codes
        classes = encoded.classes
        if len(classes) < 2:
            raise SchemaMismatchError(
                f"store {zoo.url!r}: target {target!r} has {len(classes)} class(es); need 2+"
            )
        values = codes.astype(np.float64)
    else:
        values = pd.to_numeric(meta[target], errors="coerce").to_numpy(dtype=np.float64)
        codes = np.where(np.isnan(values), -1, 0)
        classes = ()
    split = split_models(meta, codes, test_size=test_size, seed=seed)
    train_rows, test_rows = rows.isel(split.train), rows.isel(split.test)
    device_name = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device_name)
    n_out = len(classes) if kind == "classify" else 1
    train_values = values[split.train]
    center, scale = 0.0, 1.0
    if kind == "regress":  # train on the standardised target
        center, scale = float(np.mean(train_values)), float(np.std(train_values)) or 1.0
    region_t = torch.from_numpy(region).to(dev)
    offsets = torch.arange(slice_length, device=dev)
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]), limit_threads(threads):
        torch.manual_seed(seed)
        net = SliceCNN(slice_length, n_out, width=width).to(dev)
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        decay = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.95)
        loss_fn: nn.Module = nn.CrossEntropyLoss() if kind == "classify" else nn.L1Loss()
        history = []
        for epoch in range(epochs):
            net.train()
            total, correct, seen = 0.0, 0, 0
            stream = train_slices(
                train_rows, train_values, region_t, offsets, slices_per_row, batch_size, rng, dev
            )
            for x, y_np in stream:
                if kind == "classify":
                    y = torch.from_numpy(y_np.astype(np.int64)).to(dev)
                else:
                    y = torch.from_numpy(((y_np - center) / scale).astype(np.float32)).to(dev)
                optimizer.zero_grad()
                out = net(x)
                loss = loss_fn(out if kind == "classify" else out[:, 0], y)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(x)
                seen += len(x)
                if kind == "classify":
                    correct += int((out.argmax(1) == y).sum())
            decay.step()
            record = {"epoch": epoch + 1, "loss": total / max(seen, 1)}
            if kind == "classify":
                record["train_accuracy"] = correct / max(seen, 1)
            history.append(record)
            log.info("meta-classifier %s epoch %d: %s", part, epoch + 1, record)
        recalibrate(
            net,
            train_slices(
                train_rows, train_values, region_t, offsets, slices_per_row, batch_size, rng, dev
            ),
        )
        row_out, slice_hits = evaluate_rows(
            net, test_rows, region_t, offsets, slice_length, positions, batch_size, kind, dev,
            values[split.test],
        )  # fmt: skip
    test_values = values[split.test]
    groups = test_rows.models["model"].astype(str).to_numpy() if "model" in meta else None
    common: dict[str, Any] = {
        "target": target, "task": kind, "part": part, "slice_length": slice_length,
        "steps": None if steps is None else tuple(int(s) for s in _steps(rows)),
        "positions": positions, "epochs": epochs,
        "n_train_networks": len(split.train_models), "n_test_networks": len(split.test_models),
        "n_train_rows": len(split.train), "n_test_rows": len(split.test), "classes": classes,
        "history": history,
    }  # fmt: skip
    if groups is not None and not _constant_per_network(test_values, groups):
        groups = None  # the target changes within a network (e.g. step): score rows, not networks
    common["unit"] = "network" if groups is not None else "row"
    if kind == "classify":
        scores, first = _per_network(row_out, test_values, groups)
        predicted = scores.argmax(1)
        truth = first.astype(np.int64)
        hits = int((predicted == truth).sum())
        low, high = wilson_interval(hits, len(truth))
        row_hits = row_out.argmax(1) == test_values.astype(np.int64)
        return MetaResult(
            **common,
            accuracy=hits / max(len(truth), 1), ci_low=low, ci_high=high,
            row_accuracy=float(row_hits.mean()), slice_accuracy=float(slice_hits),
            chance=chance_rates(truth, len(classes)), mae=None, baseline_mae=None,
            seconds=time.perf_counter() - start_time,
        )  # fmt: skip
    predictions = row_out[:, 0] * scale + center
    scores, truth = _per_network(predictions[:, None], test_values, groups)
    estimate = scores[:, 0]
    baseline = float(np.median(train_values))
    return MetaResult(
        **common,
        accuracy=None, ci_low=None, ci_high=None, row_accuracy=None, slice_accuracy=None,
        chance={}, mae=float(np.mean(np.abs(estimate - truth))),
        baseline_mae=float(np.mean(np.abs(baseline - truth))),
        seconds=time.perf_counter() - start_time,
    )  # fmt: skip


def _steps(rows: Zoo) -> list[int]:
    return sorted(int(s) for s in pd.unique(rows.models["step"].dropna()))


def _constant_per_network(values: np.ndarray, groups: np.ndarray) -> bool:
    frame = pd.DataFrame({"group": groups, "value": values})
    return bool((frame.groupby("group")["value"].nunique() <= 1).all())


def _per_network(
    scores: np.ndarray, values: np.ndarray, groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per network (sorted by name): its mean score vector and its (first) target value."""
    keys = groups if groups is not None else np.arange(len(values)).astype(str)
    names, inverse = np.unique(keys, return_inverse=True)
    sums = np.zeros((len(names), scores.shape[1]))
    np.add.at(sums, inverse, scores)
    counts = np.bincount(inverse, minlength=len(names))
    first = np.zeros(len(names), dtype=values.dtype)
    first[inverse[::-1]] = values[::-1]  # the first row of each network wins
    return sums / counts[:, None], first
