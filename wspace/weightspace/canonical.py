"""Canonical forms: one representative per permutation orbit, as permutations per row.

- ``"sort"``: every neuron group is ordered by the L2 norm of its neurons' incoming weights
  (the weight's slice along the group's output axis, kernel included), largest first; ties keep
  the stored order. Each group is sorted independently (a neuron's incoming norm does not depend
  on how the layer before it is ordered).
- ``"match"``: weight matching (Ainsworth et al., "Git Re-Basin", algorithm 1): every network
  is aligned to a reference network by coordinate descent over the groups — for a group, the
  similarity of reference neuron ``j`` and neuron ``k`` sums the inner products of every tensor
  slice the group moves (incoming weights, bias, norm parameters and the next layer's outgoing
  weights, with the other groups' current permutations applied), and
  :func:`scipy.optimize.linear_sum_assignment` picks the best one-to-one assignment — until a
  full round changes nothing.

The result is a :class:`Canonical`: the permutation of every row (``perm[j]`` is the stored
neuron that becomes neuron ``j``), with the method, the reference and the rows' identity; it is
stored under ``_weightspace/<arch>/canonical/<method>.{json,npz}`` and applied on read by
``zoo.canonical(method)``, so the canonical rows compute the same functions as the stored ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from wspace.errors import ModelNotFoundError, SchemaMismatchError
from wspace.layout import Layout
from wspace.weightspace.derived import object_path, read_object, write_object
from wspace.weightspace.permute import axis_index, compose_perms, permute_rows
from wspace.weightspace.symmetry import AxisRef, Symmetry

__all__ = [
    "METHODS",
    "Canonical",
    "canonical_zoo",
    "canonicalize",
    "load_canonical",
    "save_canonical",
]

METHODS = ("sort", "match")
"""Canonicalisation methods."""


@dataclass(frozen=True)
class Canonical:
    """Per-row permutations to a canonical form, and their provenance."""

    method: Literal["sort", "match"]
    perms: dict[str, np.ndarray]
    """Group -> ``(rows, size)`` permutations."""
    models: list[str]
    steps: list[Any]
    """The rows' ``model`` and ``step`` (``None`` without a step column)."""
    arch: str
    version: int | None
    reference: str | None
    """``match``: the reference row's ``model`` (and ``@step``)."""
    key: str
    """``sort``: the key (``"incoming-l2"``); ``match``: ``"weight-matching"``."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON part (the permutations go to the ``.npz``)."""
        return {
            "schema": "wspace.canonical/1",
            "method": self.method,
            "arch": self.arch,
            "version": self.version,
            "reference": self.reference,
            "key": self.key,
            "models": self.models,
            "steps": self.steps,
        }


def _slices(layout: Layout, rows: np.ndarray, ref: AxisRef, size: int) -> np.ndarray:
    """``(B, size, -1)``: each neuron's values in the tensor of ``ref``."""
    spec = layout[ref.tensor]
    block = rows[:, spec.offset : spec.stop].reshape(len(rows), *spec.shape)
    block = np.moveaxis(block, 1 + ref.axis, 1)
    if ref.repeat > 1:
        index = axis_index(ref, np.arange(size)).reshape(size, ref.repeat)
        block = block[:, index]  # (B, size, repeat, ...)
    return block.reshape(len(rows), size, -1)


def _sort_perms(layout: Layout, sym: Symmetry, rows: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for group in sym.groups:
        incoming = _slices(layout, rows, group.members[0], group.size).astype(np.float64)
        norms = np.sqrt((incoming**2).sum(axis=-1))
        out[group.layer] = np.argsort(-norms, axis=1, kind="stable")
    return out


def _match_one(
    layout: Layout, sym: Symmetry, row: np.ndarray, reference: np.ndarray, rounds: int, seed: int
) -> dict[str, np.ndarray]:
    from scipy.optimize import linear_sum_assignment

    perms = {g.layer: np.arange(g.size) for g in sym.groups}
    rng = np.random.default_rng(seed)
    ref = reference[None].astype(np.float64)
    for _ in range(rounds):
        changed = False
        for gi in rng.permutation(len(sym.groups)):
            group = sym.groups[gi]
            current = permute_rows(layout, row, perms, symmetry=sym)[None].astype(np.float64)
            similarity = np.zeros((group.size, group.size))
            for member in group.members:
                a = _slices(layout, ref, member, group.size)[0]
                b = _slices(layout, current, member, group.size)[0]
                similarity += a @ b.T
            _, cols = linear_sum_assignment(similarity, maximize=True)
            if not np.array_equal(cols, np.arange(group.size)):
                changed = True
                perms[group.layer] = compose_perms(perms, {group.layer: cols})[group.layer]
        if not changed:
            break
    return perms


def canonicalize(
    zoo: Any,
    method: Literal["sort", "match"] = "sort",
    *,
    reference: int | str = 0,
    rounds: int = 20,
    seed: int = 0,
    chunk_rows: int = 256,
) -> Canonical:
    """The permutations that bring every row of ``zoo`` to its canonical form.

    Parameters
    ----------
    zoo
        Any selection of a store.
    method
        ``"sort"`` or ``"match"`` (see the module docs).
    reference
        ``match``: the row (position, or ``model`` name) every network is aligned to.
    rounds, seed
        ``match``: the most coordinate-descent rounds, and the seed of the group order.
    chunk_rows
        Rows read at once.
    """
    layout: Layout = zoo.layout
    sym = layout.symmetry
    if method not in METHODS:
        raise SchemaMismatchError(f"canonical method must be one of {METHODS}, not {method!r}")
    models = zoo.models
    ref_name = None
    ref_row = None
    if method == "match":
        ref_row = np.asarray(zoo.row(reference))
        ref_pos = (
            reference
            if isinstance(reference, int)
            else int(np.flatnonzero(models["model"].to_numpy(dtype=object) == reference)[0])
        )
        ref_name = str(models["model"].iloc[ref_pos])
        if "step" in models:
            ref_name += f"@{models['step'].iloc[ref_pos]}"
    parts: dict[str, list[np.ndarray]] = {g.layer: [] for g in sym.groups}
    for start in range(0, len(zoo), chunk_rows):
        rows = np.asarray(zoo.isel(slice(start, start + chunk_rows)).values)
        if method == "sort":
            chunk = _sort_perms(layout, sym, rows)
        else:
            assert ref_row is not None
            each = [_match_one(layout, sym, r, ref_row, rounds, seed) for r in rows]
            chunk = {g.layer: np.stack([p[g.layer] for p in each]) for g in sym.groups}
        for name, value in chunk.items():
            parts[name].append(value)
    steps = models["step"].tolist() if "step" in models else [None] * len(models)
    return Canonical(
        method,
        {name: np.concatenate(v).astype(np.int32) for name, v in parts.items()},
        [str(m) for m in models["model"]],
        [None if s is None or s != s else int(s) for s in steps],
        layout.name,
        getattr(zoo, "version", None),
        ref_name,
        "incoming-l2" if method == "sort" else "weight-matching",
    )


def save_canonical(
    url: str, canonical: Canonical, *, storage_options: Mapping[str, Any] | None = None
) -> str:
    """Store ``canonical`` in the store at ``url``; return its path there."""
    path = object_path(canonical.arch, "canonical", canonical.method)
    write_object(
        url, path, canonical.to_dict(), arrays=canonical.perms, storage_options=storage_options
    )
    return path


def load_canonical(
    zoo: Any, method: str, *, storage_options: Mapping[str, Any] | None = None
) -> Canonical | None:
    """The stored canonical form ``method`` of the zoo's architecture group, if any."""
    if method not in METHODS:
        raise SchemaMismatchError(f"canonical method must be one of {METHODS}, not {method!r}")
    found = read_object(
        zoo.url, object_path(zoo.layout.name, "canonical", method), storage_options=storage_options
    )
    if found is None:
        return None
    value, arrays = found
    return Canonical(
        value["method"], arrays, value["models"], value["steps"], value["arch"],
        value["version"], value["reference"], value["key"],
    )  # fmt: skip


def canonical_zoo(
    zoo: Any, method: str, *, storage_options: Mapping[str, Any] | None = None
) -> Any:
    """The zoo's rows in the stored canonical form ``method`` (a permuted zoo).

    Raises
    ------
    ModelNotFoundError
        Not computed yet, or rows were added since: the message names the command.
    """
    from wspace.weightspace.permuted import PermutedZoo

    command = f"`wspace canonicalize {zoo.url} --method {method}`"
    stored = load_canonical(zoo, method, storage_options=storage_options)
    if stored is None:
        raise ModelNotFoundError(
            f"store {zoo.url!r} (arch {zoo.layout.name!r}) has no canonical form {method!r}; "
            f"compute it with {command}"
        )
    where = {(m, s): i for i, (m, s) in enumerate(zip(stored.models, stored.steps, strict=True))}
    models = zoo.models
    steps = models["step"].tolist() if "step" in models else [None] * len(models)
    try:
        rows = [
            where[(str(m), None if s is None or s != s else int(s))]
            for m, s in zip(models["model"], steps, strict=True)
        ]
    except KeyError as exc:
        raise ModelNotFoundError(
            f"store {zoo.url!r}: the canonical form {method!r} (log version {stored.version}) "
            f"has no row {exc.args[0]!r}, added since; recompute it with {command}"
        ) from None
    index = np.asarray(rows, dtype=np.int64)
    return PermutedZoo(zoo, {k: v[index].astype(np.int64) for k, v in stored.perms.items()})
