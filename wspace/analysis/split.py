"""Rows, targets and train/test splits shared by the weight classifiers and meta-classifiers.

Every analysis that learns from weights splits the **networks** (the ``model`` column), not the
rows, so that snapshots of one network never straddle train and test; the split is stratified
by the target where the target is constant per network.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from wspace.analysis.metrics import final_rows
from wspace.errors import CoordinateNotFoundError, SchemaMismatchError, listing
from wspace.query import Zoo

__all__ = ["Split", "Target", "chance_rates", "encode_target", "select_rows", "split_models"]

log = logging.getLogger(__name__)

MAX_CATEGORIES = 20
"""A numeric column with more distinct values than this needs ``bins=`` to be a class label."""


def select_rows(zoo: Zoo, steps: Iterable[int] | slice | None = None) -> Zoo:
    """The rows an analysis uses: each network's final row, or its rows at ``steps``.

    Parameters
    ----------
    zoo
        Any selection of a store.
    steps
        ``None``: one row per network, its last snapshot (largest ``step``); an iterable of
        steps (``range(6, 11)``) or an inclusive ``slice(6, 10)``: the rows at those steps.

    Examples
    --------
    >>> import wspace
    >>> from wspace.testing import tiny_zoo
    >>> zoo = wspace.open(tiny_zoo("memory://doc-select", 2, steps=[1, 2, 3]))
    >>> len(select_rows(zoo)), len(select_rows(zoo, steps=range(2, 4)))
    (2, 4)
    """
    models = zoo.models
    if steps is None:
        keep = final_rows(models).index.to_numpy()
        return zoo.isel(np.sort(keep))
    if "step" not in models:
        raise CoordinateNotFoundError(
            f"store {zoo.url!r}: steps= needs a 'step' column; columns: {listing(models.columns)}"
        )
    chosen = zoo.sel(step=steps if isinstance(steps, slice) else list(steps))
    if len(chosen) == 0:
        raise CoordinateNotFoundError(
            f"store {zoo.url!r}: no row has a step in {steps!r}; steps present: "
            f"{listing(sorted(pd.unique(models['step'].dropna())))}"
        )
    return chosen


@dataclass(frozen=True, slots=True)
class Target:
    """A target column encoded as integer class codes."""

    column: str
    """The metadata column."""
    codes: np.ndarray
    """One code per row, ``-1`` where the value is missing."""
    classes: tuple[Any, ...]
    """Class label of each code (bin intervals as strings for a binned numeric column)."""


def encode_target(models: pd.DataFrame, column: str, *, bins: int | None = None) -> Target:
    """Class codes of ``column``: categories in sorted order, or ``bins`` quantile bins.

    A numeric column with at most :data:`MAX_CATEGORIES` distinct values is categorical as it
    is; one with more needs ``bins`` (equal-count bins, labelled by their intervals).

    Examples
    --------
    >>> frame = pd.DataFrame({"cls": ["b", "a", "b", None]})
    >>> t = encode_target(frame, "cls")
    >>> t.codes.tolist(), t.classes
    ([1, 0, 1, -1], ('a', 'b'))
    >>> encode_target(pd.DataFrame({"lr": [0.1, 0.2, 0.3, 0.4]}), "lr", bins=2).codes.tolist()
    [0, 0, 1, 1]
    """
    if column not in models.columns:
        raise CoordinateNotFoundError(
            f"no target column {column!r}; columns: {listing(models.columns)}"
        )
    series = models[column]
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if bins is not None:
        if not numeric:
            raise SchemaMismatchError(f"bins= needs a numeric target; {column!r} is {series.dtype}")
        binned = pd.qcut(series.astype("float64"), q=bins, duplicates="drop")
        codes = binned.cat.codes.to_numpy(dtype=np.int64)
        return Target(column, codes, tuple(str(c) for c in binned.cat.categories))
    values = series.astype(object).where(series.notna(), None)
    if numeric and series.nunique() > MAX_CATEGORIES:
        raise SchemaMismatchError(
            f"target {column!r} has {series.nunique()} distinct numeric values; pass bins=N to "
            "classify it in N quantile bins"
        )
    present = sorted({v for v in values if v is not None}, key=_sort_key)
    lookup = {v: i for i, v in enumerate(present)}
    codes = np.array([lookup.get(v, -1) if v is not None else -1 for v in values], np.int64)
    return Target(column, codes, tuple(present))


def _sort_key(value: Any) -> tuple[str, Any]:
    return (type(value).__name__, value)


@dataclass(frozen=True, slots=True)
class Split:
    """A train/test split of rows that keeps each network on one side."""

    train: np.ndarray
    """Row positions of the training rows (ascending)."""
    test: np.ndarray
    """Row positions of the test rows (ascending)."""
    train_models: tuple[str, ...]
    """Networks on the training side."""
    test_models: tuple[str, ...]
    """Networks on the test side."""
    stratified: bool
    """Whether the split is stratified by the target."""


def split_models(
    models: pd.DataFrame,
    codes: np.ndarray,
    *,
    test_size: float = 0.3,
    seed: int = 0,
) -> Split:
    """Split rows 70/30 (``test_size``) by network, stratified by ``codes`` where possible.

    Rows with code ``-1`` (missing target) are left out. Networks are the values of the
    ``model`` column (each row its own network if there is none). The split is stratified
    when the target is constant within each network and every class has at least two
    networks (the test split then grows to one network per class if ``test_size`` leaves
    fewer, e.g. 10 of 30 networks of 10 classes); otherwise it is a plain random split of
    networks (``stratified=False``).

    Examples
    --------
    >>> frame = pd.DataFrame({"model": list("aabbccdd"), "cls": list("xxyyxxyy")})
    >>> s = split_models(frame, encode_target(frame, "cls").codes, test_size=0.5, seed=0)
    >>> len(s.train), len(s.test), s.stratified
    (4, 4, True)
    >>> set(s.train_models) & set(s.test_models)
    set()
    """
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    valid = np.flatnonzero(np.asarray(codes) >= 0)
    groups = (
        models["model"].astype(str).to_numpy()
        if "model" in models
        else np.arange(len(models)).astype(str)
    )
    frame = pd.DataFrame({"group": groups[valid], "code": np.asarray(codes)[valid]})
    per_group = frame.groupby("group", sort=True)["code"]
    names = np.asarray(per_group.size().index)
    if len(names) < 2:
        raise SchemaMismatchError(
            f"a train/test split needs at least 2 networks with a target; got {len(names)}"
        )
    constant = bool((per_group.nunique() == 1).all())
    labels = per_group.first().to_numpy()
    n_test = max(1, math.ceil(test_size * len(names)))
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    if constant and counts.min() >= 2 and len(counts) <= len(names) - len(counts):
        n_test = max(n_test, len(counts))  # room for every class in the test split
    stratify = constant and counts.min() >= 2 and len(counts) <= min(n_test, len(names) - n_test)
    if not stratify:
        log.info("split of %d networks is not stratified", len(names))
    train_names, test_names = train_test_split(
        names,
        test_size=n_test,
        random_state=seed,
        stratify=labels if stratify else None,
    )
    test_set = set(test_names.tolist())
    in_test = np.array([g in test_set for g in frame["group"]], dtype=bool)
    return Split(
        train=np.sort(valid[~in_test]),
        test=np.sort(valid[in_test]),
        train_models=tuple(sorted(train_names.tolist())),
        test_models=tuple(sorted(test_set)),
        stratified=stratify,
    )


def chance_rates(test_codes: np.ndarray, n_classes: int) -> dict[str, float]:
    """Chance levels: the majority class's share of the test rows, and ``1 / n_classes``.

    Examples
    --------
    >>> chance_rates(np.array([0, 0, 1, 2]), 4)
    {'majority': 0.5, 'uniform': 0.25}
    """
    counts = np.bincount(np.asarray(test_codes), minlength=max(n_classes, 1))
    return {
        "majority": float(counts.max() / max(counts.sum(), 1)),
        "uniform": 1.0 / max(n_classes, 1),
    }
