"""Feeding zoos to torch: batches streamed from the store, and a map-style Dataset."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:
    from wspace.query import Zoo

__all__ = ["Batch", "WeightDataset", "batches"]


class Batch(NamedTuple):
    """One batch of rows."""

    weights: torch.Tensor
    """``(batch, params)`` float32."""
    models: pd.DataFrame
    """The rows' metadata, in batch order."""
    positions: np.ndarray
    """Positions of the rows in the zoo."""


def _read(zoo: Zoo, index: np.ndarray) -> Batch:
    order = np.argsort(index, kind="stable")  # read in storage order, hand back in batch order
    block = zoo.isel(index[order]).values  # each layer read in its own chunking
    out = np.empty_like(block)
    out[order] = block
    return Batch(torch.from_numpy(out), zoo.models.iloc[index].reset_index(drop=True), index)


def batches(
    zoo: Zoo,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int | None = None,
    drop_last: bool = False,
    prefetch: bool = True,
) -> Iterator[Batch]:
    """Yield :class:`Batch` es of ``batch_size`` rows; each batch reads only its own rows.

    Parameters
    ----------
    zoo
        The rows to stream (any selection of a store).
    batch_size
        Rows per batch.
    shuffle, seed
        Visit rows in a random order drawn from ``numpy.random.default_rng(seed)``.
    drop_last
        Skip a final batch smaller than ``batch_size``.
    prefetch
        Read the next batch in a background thread while the caller works on this one.

    Examples
    --------
    >>> import wspace
    >>> from wspace.testing import tiny_zoo
    >>> zoo = wspace.open(tiny_zoo("memory://doc-batches", n_models=5))
    >>> [tuple(b.weights.shape) for b in zoo.batches(2)]
    [(2, 91481), (2, 91481), (1, 91481)]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.arange(len(zoo))
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(zoo))
    stops = range(batch_size, len(order) + (0 if drop_last else batch_size), batch_size)
    groups = [order[stop - batch_size : stop] for stop in stops]
    if not prefetch:
        for group in groups:
            yield _read(zoo, group)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future[Batch] | None = pool.submit(_read, zoo, groups[0]) if groups else None
        for k in range(len(groups)):
            assert pending is not None
            batch = pending.result()
            pending = pool.submit(_read, zoo, groups[k + 1]) if k + 1 < len(groups) else None
            yield batch


class WeightDataset(torch.utils.data.Dataset[Any]):
    """Map-style dataset: item ``i`` is the row's weights (and its ``target`` value).

    Parameters
    ----------
    zoo
        The rows.
    target
        A metadata column to return with each row; categorical string columns are encoded
        as integer codes in sorted order (see :attr:`classes`).
    """

    def __init__(self, zoo: Zoo, target: str | None = None) -> None:
        self.zoo = zoo
        self.target = target
        self.classes: list[Any] = []
        self._targets: np.ndarray | None = None
        if target is not None:
            column = zoo.sel().models[target]
            if column.dtype == object:
                codes, uniques = pd.factorize(column, sort=True)
                self.classes = list(uniques)
                self._targets = codes
            else:
                self._targets = column.to_numpy()

    def __len__(self) -> int:
        return len(self.zoo)

    def __getitem__(self, i: int) -> Any:
        vector = torch.from_numpy(self.zoo.row(int(i)).copy())
        if self._targets is None:
            return vector
        return vector, torch.as_tensor(self._targets[int(i)])
