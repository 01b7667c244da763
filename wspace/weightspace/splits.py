"""Leakage-safe, deterministic train/validation/test splits of a zoo's rows.

Rows are split by *group*: every row with the same value of the ``by`` column(s) — all snapshots
(``step``) of one ``model``, or all runs of one seed or hyper-parameter tuple — lands on the same
side, so that no network (or configuration) is seen in training and evaluated in test.

- ``method="shuffle"`` (default): the distinct groups, sorted, are shuffled by
  ``numpy.random.default_rng(seed)`` and cut at the cumulative fractions, so the split sizes
  follow ``fractions`` as closely as whole groups allow. Adding groups may move others.
- ``method="hash"``: each group's side comes from a SHA-256 of ``seed`` and its key alone, so a
  group never changes side when rows are added; sizes follow ``fractions`` only on average.

Examples
--------
>>> import pandas as pd
>>> models = pd.DataFrame({"model": ["a", "a", "b", "b", "c", "d"], "step": [1, 2, 1, 2, 1, 1]})
>>> split_rows(models, fractions=(0.5, 0.5), names=("train", "test"), seed=0).tolist()
['train', 'train', 'test', 'test', 'train', 'test']
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from wspace.errors import CoordinateNotFoundError, ModelNotFoundError, SchemaMismatchError, listing
from wspace.weightspace.derived import object_path, read_object, write_object

__all__ = ["SPLIT_NAMES", "load_split", "part_names", "save_split", "split_rows"]

SPLIT_NAMES = ("train", "val", "test")
"""Default names of the parts."""


def part_names(n: int) -> list[str]:
    """Default part names: ``train, val, test`` (the first ``n``), or ``part0, part1, ...``."""
    return list(SPLIT_NAMES[:n]) if n <= len(SPLIT_NAMES) else [f"part{i}" for i in range(n)]


def _keys(models: pd.DataFrame, by: Sequence[str]) -> list[str]:
    missing = [c for c in by if c not in models.columns]
    if missing:
        raise CoordinateNotFoundError(
            f"split by {listing(missing)}: no such column; columns: {listing(models.columns)}"
        )
    columns = [models[c].astype(object).where(models[c].notna(), None).tolist() for c in by]
    return [json.dumps(list(values), default=str) for values in zip(*columns, strict=True)]


def split_rows(
    models: pd.DataFrame,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    *,
    by: str | Sequence[str] = "model",
    seed: int = 0,
    names: Sequence[str] | None = None,
    method: Literal["shuffle", "hash"] = "shuffle",
) -> pd.Series:
    """The part (``"train"``, ``"val"``, ``"test"``) of every row, grouped by ``by``.

    Parameters
    ----------
    models
        Row metadata (``zoo.models``).
    fractions
        Share of groups per part, positive, summing to 1.
    by
        Column(s) whose value tuple defines a group.
    seed
        Seed of the shuffle or the hash.
    names
        Part names, one per fraction (default :func:`part_names`).
    method
        ``"shuffle"`` or ``"hash"`` (see the module docs).

    Returns
    -------
    pandas.Series
        Part names, aligned with ``models``' rows.
    """
    fractions = [float(f) for f in fractions]
    if not fractions or min(fractions) <= 0 or not math.isclose(sum(fractions), 1.0):
        raise SchemaMismatchError(f"split fractions must be positive and sum to 1: {fractions}")
    names = list(names) if names is not None else part_names(len(fractions))
    if len(names) != len(fractions) or len(set(names)) != len(names):
        raise SchemaMismatchError(f"split needs one distinct name per fraction; got {names}")
    columns = [by] if isinstance(by, str) else list(by)
    keys = _keys(models, columns)
    groups = sorted(set(keys))
    bounds = np.cumsum(fractions)
    if method == "shuffle":
        order = np.random.default_rng(seed).permutation(len(groups))
        cuts = np.round(bounds * len(groups)).astype(int)
        part_of_rank = np.searchsorted(cuts, np.arange(len(groups)), side="right")
        part = {groups[g]: int(part_of_rank[rank]) for rank, g in enumerate(order)}
    elif method == "hash":
        part = {}
        for key in groups:
            digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
            u = int.from_bytes(digest[:8], "big") / 2**64
            part[key] = int(np.searchsorted(bounds, u, side="right"))
    else:
        raise SchemaMismatchError(f"split method must be 'shuffle' or 'hash', not {method!r}")
    labels = [names[min(part[k], len(names) - 1)] for k in keys]
    return pd.Series(labels, index=models.index, name="split", dtype=object)


def _identity(models: pd.DataFrame) -> list[tuple[str, int | None]]:
    steps = models["step"].tolist() if "step" in models else [None] * len(models)
    return [
        (str(m), None if s is None or s != s else int(s))
        for m, s in zip(models["model"], steps, strict=True)
    ]


def save_split(
    zoo: Any,
    labels: pd.Series | Sequence[str],
    name: str = "split",
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> str:
    """Store the part label of every row of ``zoo`` as ``name``; return its path in the store.

    The store has no API to add a column to committed rows (rewriting them would make new
    versions of every row), so the labels are a derived object beside the data:
    ``_weightspace/<arch>/splits/<name>.json`` (schema ``wspace.split/1``: arch, log version,
    every row's ``model``, ``step`` and label). :func:`load_split` gives them back as a column.
    """
    values = [str(v) for v in (labels.tolist() if isinstance(labels, pd.Series) else labels)]
    models = zoo.models
    if len(values) != len(models):
        raise SchemaMismatchError(
            f"store {zoo.url!r}: split {name!r} has {len(values)} labels for {len(models)} rows"
        )
    ident = _identity(models)
    path = object_path(zoo.layout.name, "splits", name)
    value = {
        "schema": "wspace.split/1", "arch": zoo.layout.name, "version": zoo.version,
        "models": [m for m, _ in ident], "steps": [s for _, s in ident], "labels": values,
    }  # fmt: skip
    write_object(zoo.url, path, value, storage_options=storage_options)
    return path


def load_split(
    zoo: Any, name: str = "split", *, storage_options: Mapping[str, Any] | None = None
) -> pd.Series:
    """The stored split ``name`` (:func:`save_split`) as a column aligned with ``zoo.models``.

    Raises
    ------
    ModelNotFoundError
        No such split is stored, or a row of ``zoo`` is not in it (added since).
    """
    found = read_object(
        zoo.url, object_path(zoo.layout.name, "splits", name), storage_options=storage_options
    )
    if found is None:
        raise ModelNotFoundError(
            f"store {zoo.url!r} (arch {zoo.layout.name!r}) has no stored split {name!r}; "
            "store one with wspace.weightspace.splits.save_split(zoo, labels)"
        )
    value = found[0]
    where = {
        (str(m), s): label
        for m, s, label in zip(value["models"], value["steps"], value["labels"], strict=True)
    }
    models = zoo.models
    try:
        labels = [where[key] for key in _identity(models)]
    except KeyError as exc:
        raise ModelNotFoundError(
            f"store {zoo.url!r}: split {name!r} (log version {value['version']}) has no row "
            f"{exc.args[0]!r}, added since; split again (method='hash' keeps every old row's "
            "part) and save it"
        ) from None
    return pd.Series(labels, index=models.index, name=name, dtype=object)
