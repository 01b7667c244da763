"""Structured views of weight rows for weight-space learning libraries, streamed in batches.

``to_view(layout, rows, view)`` turns flat rows ``(B, size)`` into one library's exact input:

- ``"flat"``: a float32 tensor ``(B, size)`` (the stored order);
- ``"state_dict"``: a torch ``state_dict`` of ``(B, *shape)`` tensors (``torch.func`` style);
- ``"nfn"``: ``nfn.common.WeightSpaceFeatures`` (:mod:`.nfn`);
- ``"dws"``: DWSNets' ``(weights, biases)`` (:mod:`.dws`);
- ``"tokens"``: SANE-style tokens, mask and positions (:mod:`.tokens`);
- ``"graph"``: a ``torch_geometric`` batch of neural graphs (:mod:`.graph`).

Keras-convention rows come out in torch's convention, like torch rows. :func:`batches` streams a
zoo in batches whose ``x`` is a view, optionally permuted (``augment="permute"``) and standardised
per tensor (``normalize=True``), reading only each batch's rows (and prefetching the next).

Examples
--------
>>> import numpy as np
>>> from wspace.architectures import lenet5_layout
>>> rows = np.zeros((2, 91481), dtype="float32")
>>> [tuple(w.shape) for w in to_view(lenet5_layout(), rows, "nfn").weights]
[(2, 1, 6, 3, 5, 5), (2, 1, 16, 6, 5, 5), (2, 1, 120, 16, 5, 5), (2, 1, 84, 120, 2, 2),
 (2, 1, 1, 84)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import torch

from wspace.errors import SchemaMismatchError, listing
from wspace.layout import Layout
from wspace.weightspace.permute import permute_rows, random_perms
from wspace.weightspace.stats import WeightStats
from wspace.weightspace.views.dws import dws_view
from wspace.weightspace.views.graph import graph_view
from wspace.weightspace.views.nfn import nfn_view
from wspace.weightspace.views.tokens import tokens_view

__all__ = ["VIEWS", "ViewBatch", "batches", "features", "to_view"]


def _flat(layout: Layout, rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))


def _state_dict(layout: Layout, rows: np.ndarray) -> dict[str, torch.Tensor]:
    return layout.to_state_dict(rows)


VIEWS: dict[str, Callable[..., Any]] = {
    "flat": lambda layout, rows, **kw: _flat(layout, rows),
    "state_dict": lambda layout, rows, **kw: _state_dict(layout, rows),
    "nfn": lambda layout, rows, **kw: nfn_view(layout, layout.symmetry, rows, **kw),
    "dws": lambda layout, rows, **kw: dws_view(layout, layout.symmetry, rows, **kw),
    "tokens": lambda layout, rows, **kw: tokens_view(layout, layout.symmetry, rows, **kw),
    "graph": lambda layout, rows, **kw: graph_view(layout, layout.symmetry, rows, **kw),
}
"""View name -> ``f(layout, rows, **options)``."""


def to_view(layout: Layout, rows: Any, view: str = "flat", **options: Any) -> Any:
    """Flat rows ``(B, size)`` (or one row) in ``view`` (see the module docs).

    ``options`` go to the view: ``norm="fold"|"carry"|"error"`` and ``eps`` for the structured
    views, ``token_size`` for ``"tokens"``, ``pad_bias`` for ``"dws"``.
    """
    if view not in VIEWS:
        raise SchemaMismatchError(f"no view {view!r}; views: {listing(VIEWS)}")
    array = np.asarray(rows, dtype=np.float32)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != layout.size:
        raise SchemaMismatchError(
            f"layout {layout.name!r}: a view needs rows (n, {layout.size}); got {array.shape}"
        )
    return VIEWS[view](layout, array, **options)


class ViewBatch(NamedTuple):
    """One batch of rows in a view."""

    x: Any
    """The rows in the view."""
    meta: pd.DataFrame
    """The rows' metadata, in batch order."""
    positions: np.ndarray
    """Positions of the rows in the zoo."""
    perms: dict[str, np.ndarray] | None
    """The permutations applied (``augment="permute"``), group -> ``(B, size)``."""


def _mean_std(zoo: Any, normalize: bool | WeightStats) -> tuple[np.ndarray, np.ndarray] | None:
    """``(mean, std)`` vectors of ``normalize``: given statistics, the zoo's own, or none."""
    if isinstance(normalize, WeightStats):
        return normalize.flat(zoo.layout)
    return zoo.stats().flat(zoo.layout) if normalize else None


def features(
    zoo: Any, view: str = "flat", *, normalize: bool | WeightStats = False, **options: Any
) -> Any:
    """All of the zoo's rows in ``view`` (reads them; use :func:`batches` for large zoos).

    ``normalize``: ``True`` standardises every tensor by the zoo's statistics, a
    :class:`~wspace.weightspace.WeightStats` by those (e.g. a training split's).
    """
    rows = np.asarray(zoo.values)
    mean_std = _mean_std(zoo, normalize)
    if mean_std is not None:
        rows = (rows - mean_std[0]) / mean_std[1]
    return to_view(zoo.layout, rows, view, **options)


def batches(
    zoo: Any,
    batch_size: int,
    *,
    view: str = "flat",
    augment: Literal["permute"] | None = None,
    normalize: bool | WeightStats = False,
    shuffle: bool = False,
    seed: int | None = None,
    drop_last: bool = False,
    prefetch: bool = True,
    **options: Any,
) -> Iterator[ViewBatch]:
    """Stream the zoo's rows as :class:`ViewBatch` es (see the module docs).

    Rows are visited in order, or shuffled by ``numpy.random.default_rng(seed)``; with
    ``augment="permute"`` every row of every batch gets fresh random neuron permutations from
    the same generator (its function is unchanged); ``normalize=True`` standardises every tensor
    by the zoo's statistics (``zoo.stats()``: stored ones when they match these rows), a
    :class:`~wspace.weightspace.WeightStats` by those — pass the training split's statistics
    when streaming a held-out split, so that nothing is computed from held-out rows. Only each
    batch's rows are read, and the next batch is read and converted in a background thread.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if view not in VIEWS:
        raise SchemaMismatchError(f"no view {view!r}; views: {listing(VIEWS)}")
    if augment not in (None, "permute"):
        raise SchemaMismatchError(f"augment must be None or 'permute', not {augment!r}")
    layout: Layout = zoo.layout
    symmetry = layout.symmetry if augment else None
    if (
        normalize is not False
        and options.get("norm", "fold") == "fold"
        and any(w.norms for w in layout.symmetry.layers)
        and view in ("nfn", "dws", "graph")
    ):
        raise SchemaMismatchError(
            f"layout {layout.name!r}: normalize=True would fold standardised batch-norm "
            "statistics; pass norm='carry' (tokens) or normalize=False"
        )
    mean_std = _mean_std(zoo, normalize)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(zoo)) if shuffle else np.arange(len(zoo))
    stops = range(batch_size, len(order) + (0 if drop_last else batch_size), batch_size)
    groups = [order[stop - batch_size : stop] for stop in stops]
    models = zoo.models
    perm_draws = [
        random_perms(symmetry, len(g), rng) if symmetry is not None else None for g in groups
    ]

    def make(k: int) -> ViewBatch:
        index = groups[k]
        sort = np.argsort(index, kind="stable")  # read in storage order
        rows = np.empty((len(index), layout.size), dtype=np.float32)
        rows[sort] = zoo.isel(index[sort]).values
        perms = perm_draws[k]
        if perms is not None:
            rows = permute_rows(layout, rows, perms, symmetry=symmetry)
        if mean_std is not None:
            rows = (rows - mean_std[0]) / mean_std[1]
        x = to_view(layout, rows, view, **options)
        return ViewBatch(x, models.iloc[index].reset_index(drop=True), index, perms)

    if not prefetch:
        for k in range(len(groups)):
            yield make(k)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future[ViewBatch] | None = pool.submit(make, 0) if groups else None
        for k in range(len(groups)):
            assert pending is not None
            batch = pending.result()
            pending = pool.submit(make, k + 1) if k + 1 < len(groups) else None
            yield batch
