"""The passes of the NWS meta-classifier (:func:`~wspace.analysis.meta.meta_classifier`) over
weight slices: the shuffled training stream of an epoch, the batch-norm recalibration after
training, and the evaluation of test rows at evenly spaced slice positions.

Rows stream from the store with :meth:`wspace.Zoo.batches`; slices are gathered on the device.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from wspace.query import Zoo

__all__ = [
    "BUFFER_SLICES",
    "CALIBRATION_BATCHES",
    "evaluate_rows",
    "recalibrate",
    "slices_at",
    "train_slices",
]

BUFFER_SLICES = 2048
"""Slices mixed in the shuffle buffer of a training epoch."""


def train_slices(
    rows: Zoo,
    values: np.ndarray,
    region: torch.Tensor,
    offsets: torch.Tensor,
    per_row: int,
    batch_size: int,
    rng: np.random.Generator,
    dev: torch.device,
) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """One epoch of shuffled training mini-batches ``(slices, targets)``.

    Rows are read ``batch_size`` contiguous rows at a time, blocks in a random order (reads
    of neighbouring rows share chunks); each row gives ``per_row`` slices at random positions
    into a shuffle buffer of :data:`BUFFER_SLICES` slices, from which mini-batches are drawn.
    Memory: one block of rows and the buffer of slices.
    """
    n = len(rows)
    blocks = [np.arange(a, min(a + batch_size, n)) for a in range(0, n, batch_size)]
    order: np.ndarray | list[int] = (
        np.concatenate([blocks[i] for i in rng.permutation(len(blocks))]) if blocks else []
    )
    high = len(region) - len(offsets) + 1
    buffer_x: list[torch.Tensor] = []
    buffer_y: list[np.ndarray] = []
    buffered = 0

    def drain(final: bool) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
        nonlocal buffer_x, buffer_y, buffered
        x, y = torch.cat(buffer_x), np.concatenate(buffer_y)
        mix = rng.permutation(len(y))
        x, y = x[torch.from_numpy(mix).to(x.device)], y[mix]
        stop = len(y) if final else len(y) - len(y) % batch_size
        for a in range(0, stop, batch_size):
            if min(batch_size, stop - a) >= 2:  # batch normalisation needs two samples
                yield x[a : a + batch_size], y[a : a + batch_size]
        buffer_x, buffer_y = [x[stop:]], [y[stop:]]
        buffered = len(y) - stop

    if len(order) == 0:
        return
    reordered = rows.isel(np.asarray(order))
    for batch in reordered.batches(batch_size):
        weights = batch.weights.to(dev)
        targets = values[np.asarray(order)[batch.positions]]
        for _ in range(per_row):
            starts = torch.from_numpy(rng.integers(0, high, len(targets))).to(dev)
            buffer_x.append(slices_at(weights, region, offsets, starts))
            buffer_y.append(targets)
            buffered += len(targets)
        if buffered >= BUFFER_SLICES:
            yield from drain(final=False)
    if buffered:
        yield from drain(final=True)


CALIBRATION_BATCHES = 32
"""Training mini-batches that re-estimate the batch-normalisation statistics after training."""


@torch.no_grad()
def recalibrate(net: nn.Module, stream: Iterator[tuple[torch.Tensor, np.ndarray]]) -> None:
    """Replace the running batch-norm statistics by exact averages under the final weights.

    The running statistics start at mean 0 / variance 1 and decay by 0.9 per step; raw
    weights have variances near 1e-3, so after a short training the running variances are
    still dominated by their starting value and the network in evaluation mode predicts one
    class. Averaging over :data:`CALIBRATION_BATCHES` training batches (dropout off) fixes it.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm1d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    net.eval()
    for norm in norms:
        norm.train()
    for k, (x, _) in enumerate(stream):
        if k == CALIBRATION_BATCHES:
            break
        net(x)
    for norm in norms:
        norm.momentum = 0.1
    net.eval()


def slices_at(
    weights: torch.Tensor, region: torch.Tensor, offsets: torch.Tensor, starts: torch.Tensor
) -> torch.Tensor:
    """``(batch, length)`` slices ``region[start : start + length]`` of each row."""
    index = region[starts[:, None] + offsets[None, :]]
    return torch.gather(weights, 1, index)


@torch.no_grad()
def evaluate_rows(
    net: nn.Module,
    rows: Zoo,
    region: torch.Tensor,
    offsets: torch.Tensor,
    length: int,
    positions: int,
    batch_size: int,
    kind: str,
    dev: torch.device,
    values: np.ndarray,
) -> tuple[np.ndarray, float]:
    """Per test row: outputs averaged over ``positions`` slices; and the single-slice accuracy."""
    net.eval()
    starts = np.unique(np.round(np.linspace(0, len(region) - length, positions)).astype(np.int64))
    outputs = []
    hits = 0
    for batch in rows.batches(batch_size):
        weights = batch.weights.to(dev)
        summed = None
        for s in starts:
            index = torch.full((len(weights),), int(s), device=dev)
            out = net(slices_at(weights, region, offsets, index))
            if kind == "classify":
                out = out.softmax(1)
                truth = torch.from_numpy(values[batch.positions].astype(np.int64)).to(dev)
                hits += int((out.argmax(1) == truth).sum())
            summed = out if summed is None else summed + out
        assert summed is not None
        outputs.append((summed / len(starts)).cpu().numpy())
    total = len(rows) * len(starts)
    return np.concatenate(outputs), hits / max(total, 1)
