"""Train one-vs-all LeNet-5 classifiers as in the hypernetwork zoo (docs/formats.md).

Adam (lr 1e-3), batch 128, binary cross-entropy on the sigmoid output; positives are the images
of one class, negatives all the others (or a random subset of them). Everything random — the
initial weights, the negative subset, the order of the batches — is drawn from private
generators seeded by ``seed``: the same call gives bit-identical weights, and the global random
state is neither used nor changed. The number of torch threads is the caller's to set.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wspace.architectures import Init, LeNet5, lenet5
from wspace.errors import SchemaMismatchError
from wspace.train.data import DataSplit

__all__ = ["EpochCallback", "TrainResult", "evaluate", "one_vs_all_labels", "train_one_vs_all"]

EpochCallback = Callable[[int, LeNet5, dict[str, float]], None]
"""``on_epoch(epoch, model, metrics)``: called after each epoch (1-based)."""

_METRICS = ("accuracy", "precision", "recall", "f1", "auc")


@dataclass
class TrainResult:
    """A trained one-vs-all network, its validation metrics and its learning curves.

    Examples
    --------
    >>> from wspace.train.data import load_digits
    >>> result = train_one_vs_all(load_digits(), 7, seed=0, epochs=1)
    >>> sorted(result.metrics)
    ['accuracy', 'auc', 'f1', 'precision', 'recall']
    """

    model: LeNet5
    """The trained network, in eval mode, on the CPU."""
    metrics: dict[str, float]
    """``accuracy``, ``precision``, ``recall``, ``f1``, ``auc`` on the validation split."""
    curves: dict[str, list[float]] = field(default_factory=dict)
    """``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy``: one value per epoch."""
    majority_rate: float = math.nan
    """Validation accuracy of the classifier that always answers "negative"."""
    seconds: float = math.nan
    """Wall-clock seconds of the training, evaluations included."""
    n_train: int = 0
    """Training images used (positives plus the negatives drawn)."""
    n_positive: int = 0
    """Training images of the target class."""


def one_vs_all_labels(y: torch.Tensor, target: int) -> torch.Tensor:
    """Binary float32 labels: 1.0 where ``y == target``, else 0.0.

    Examples
    --------
    >>> one_vs_all_labels(torch.tensor([3, 7, 7, 0]), 7)
    tensor([0., 1., 1., 0.])
    """
    return (y == target).to(torch.float32)


def _binary_metrics(prob: np.ndarray, y01: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    pred = (prob >= 0.5).astype(np.int64)
    truth = y01.astype(np.int64)
    both_classes = 0 < truth.sum() < len(truth)
    return {
        "accuracy": float((pred == truth).mean()) if len(truth) else math.nan,
        "precision": float(precision_score(truth, pred, zero_division=0)),
        "recall": float(recall_score(truth, pred, zero_division=0)),
        "f1": float(f1_score(truth, pred, zero_division=0)),
        # AUC is undefined on one class only.
        "auc": float(roc_auc_score(truth, prob)) if both_classes else math.nan,
    }


def evaluate(
    model: nn.Module, x: torch.Tensor, y01: torch.Tensor, *, batch_size: int = 512
) -> dict[str, float]:
    """Binary metrics of a sigmoid-output model on images ``x`` and 0/1 labels ``y01``.

    Returns ``accuracy`` (threshold 0.5), ``precision``, ``recall``, ``f1`` (0 where undefined),
    ``auc`` (ROC; NaN if ``y01`` holds one class only) and ``loss`` (mean binary
    cross-entropy). Runs without gradients on the model's device; the model's train/eval mode
    is restored afterwards.

    Examples
    --------
    >>> from wspace.architectures import lenet5
    >>> from wspace.train.data import load_digits
    >>> data = load_digits()
    >>> m = evaluate(lenet5(seed=0), data.val_x, one_vs_all_labels(data.val_y, 7))
    >>> sorted(m)
    ['accuracy', 'auc', 'f1', 'loss', 'precision', 'recall']
    """
    if len(x) != len(y01):
        raise SchemaMismatchError(f"{len(x)} images but {len(y01)} labels")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    probs: list[torch.Tensor] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(x), batch_size):
                batch = x[start : start + batch_size].to(device, non_blocking=True)
                probs.append(model(batch).reshape(-1).float().cpu())
    finally:
        model.train(was_training)
    prob = torch.cat(probs) if probs else torch.empty(0)
    target = y01.detach().to("cpu", torch.float32).reshape(-1)
    loss = F.binary_cross_entropy(prob.double(), target.double()) if len(prob) else math.nan
    metrics = _binary_metrics(prob.numpy(), target.numpy())
    metrics["loss"] = float(loss)
    return metrics


def _check(data: DataSplit, target: int, epochs: int, batch_size: int, lr: float) -> None:
    if not 0 <= target < len(data.classes):
        raise ValueError(
            f"target {target} is not a class of {data.name!r} (0..{len(data.classes) - 1})"
        )
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(
            f"epochs and batch_size must be >= 1 and lr > 0 (got {epochs}, {batch_size}, {lr})"
        )
    for split, x in (("train", data.train_x), ("val", data.val_x)):
        if tuple(x.shape[1:]) != (3, 32, 32):
            raise SchemaMismatchError(
                f"LeNet-5 reads (N, 3, 32, 32) images; the {split} images of {data.name!r} are "
                f"{tuple(x.shape)}"
            )


def train_one_vs_all(
    data: DataSplit,
    target: int,
    *,
    seed: int,
    epochs: int = 20,
    batch_size: int = 128,
    lr: float = 1e-3,
    negatives: int | None = None,
    init: Init | str = "keras",
    device: str | torch.device = "cpu",
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train a LeNet-5 to tell class ``target`` from the others (the hypernetwork zoo's recipe).

    Parameters
    ----------
    data
        Images ``(N, 3, 32, 32)`` in [0, 1] and labels (:func:`~wspace.train.data.load_dataset`).
    target
        Label of the positive class.
    seed
        Seeds the initial weights (``lenet5(init=init, seed=seed)``), the negative subset and
        the batch order; the same arguments give bit-identical weights.
    epochs, batch_size, lr
        Passes over the training set, images per Adam step, Adam's learning rate.
    negatives
        Train on this many negatives drawn at random (per ``seed``) instead of all of them.
    init
        ``"keras"`` (Glorot-uniform, zero bias, as the reference) or ``"torch"``.
    device
        Where to train; the returned model is on the CPU.
    on_epoch
        ``on_epoch(epoch, model, metrics)`` after each epoch (1-based), with the validation
        metrics of :func:`evaluate` plus ``train_loss`` and ``train_accuracy``; the model is
        the one being trained (on ``device``): copy what you keep, do not modify it.

    Returns
    -------
    TrainResult
        The model, final validation metrics, per-epoch curves, majority rate, timing, counts.

    Examples
    --------
    >>> from wspace.train.data import load_digits
    >>> result = train_one_vs_all(load_digits(), 7, seed=0, epochs=2, negatives=300)
    >>> result.n_train, result.n_positive, len(result.curves["val_loss"])
    (425, 125, 2)
    """
    started = time.perf_counter()
    _check(data, target, epochs, batch_size, lr)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, not {seed}")
    if init not in ("torch", "keras"):
        raise ValueError(f"init must be 'torch' or 'keras', not {init!r}")
    rng = np.random.default_rng(seed)
    train_y = data.train_y.numpy()
    positive = np.flatnonzero(train_y == target)
    negative = np.flatnonzero(train_y != target)
    if negatives is not None:
        if not 1 <= negatives <= len(negative):
            raise ValueError(
                f"negatives={negatives}, but class {data.classes[target]!r} of {data.name!r} "
                f"has {len(negative)} negative training images"
            )
        negative = np.sort(rng.choice(negative, size=negatives, replace=False))
    index = torch.from_numpy(np.concatenate([positive, negative]))
    dev = torch.device(device)
    x = data.train_x[index].to(dev)
    y = one_vs_all_labels(data.train_y[index], target).to(dev)
    val_y01 = one_vs_all_labels(data.val_y, target)
    val_x = data.val_x.to(dev)

    model = lenet5(init=init, seed=seed).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    curves: dict[str, list[float]] = {
        "train_loss": [], "train_accuracy": [], "val_loss": [], "val_accuracy": [],
    }  # fmt: skip
    metrics: dict[str, float] = {}
    n = len(index)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.from_numpy(rng.permutation(n)).to(dev)
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            xb, yb = x[batch], y[batch]
            prob = model(xb).reshape(-1)
            loss = F.binary_cross_entropy(prob, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():  # running averages over the epoch, as Keras reports them
                loss_sum += loss.detach().double() * len(batch)
                correct += ((prob.detach() >= 0.5) == (yb >= 0.5)).sum()
        metrics = evaluate(model, val_x, val_y01)
        metrics["train_loss"] = float(loss_sum) / n
        metrics["train_accuracy"] = float(correct) / n
        curves["train_loss"].append(metrics["train_loss"])
        curves["train_accuracy"].append(metrics["train_accuracy"])
        curves["val_loss"].append(metrics["loss"])
        curves["val_accuracy"].append(metrics["accuracy"])
        if on_epoch is not None:
            model.eval()
            on_epoch(epoch, model, dict(metrics))
    model = model.cpu().eval()
    return TrainResult(
        model=model,
        metrics={k: metrics[k] for k in _METRICS},
        curves=curves,
        majority_rate=data.majority_rate(target),
        seconds=time.perf_counter() - started,
        n_train=n,
        n_positive=len(positive),
    )
