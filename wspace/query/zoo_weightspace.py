"""The weight-space-learning side of :class:`~wspace.query.zoo.Zoo`: permutations, the read
version, statistics, leakage-safe splits, views and canonical forms (a mixin that ``Zoo``
inherits; the work is done in :mod:`wspace.weightspace`, imported on use)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

if TYPE_CHECKING:
    from wspace.query.zoo import Zoo
    from wspace.weightspace.permuted import PermutedZoo
    from wspace.weightspace.stats import WeightStats

__all__ = ["ZooWeightSpaceMixin"]


class ZooWeightSpaceMixin:
    """Methods of :class:`~wspace.query.zoo.Zoo` for weight-space learning
    (:mod:`wspace.weightspace`).

    Only ``Zoo`` inherits it; each method works on ``self`` as that zoo.
    """

    def permute(
        self,
        perms: Mapping[str, np.ndarray] | None = None,
        *,
        seed: int | np.random.Generator | None = None,
    ) -> PermutedZoo:
        """These rows with hidden-neuron permutations applied on read (lazy; same functions).

        ``perms`` maps neuron groups (``layout.symmetry``) to a permutation ``(size,)`` for
        every row or ``(rows, size)``; without it each row gets random ones from ``seed``. See
        :class:`wspace.weightspace.PermutedZoo`.
        """
        from wspace.weightspace.permuted import PermutedZoo

        zoo = cast("Zoo", self)
        if perms is None:
            return PermutedZoo.random(zoo, seed)
        return PermutedZoo(zoo, perms)

    @property
    def version(self) -> int | None:
        """The commit-log version the store was read at (``None``: not attached to a store)."""
        version = getattr(getattr(cast("Zoo", self)._handle, "state", None), "version", None)
        return None if version is None else int(version)

    def stats(
        self,
        *,
        recompute: bool = False,
        chunk_rows: int = 256,
        storage_options: Mapping[str, Any] | None = None,
    ) -> WeightStats:
        """Per-tensor and per-layer mean/std/min/max of these rows (one streaming pass).

        Statistics stored for exactly these rows (:func:`wspace.weightspace.save_stats`) are
        reused unless ``recompute``; rows added since make them stale, and they are recomputed.
        """
        from wspace.weightspace.stats import compute_stats, load_stats

        zoo = cast("Zoo", self)
        stored = None if recompute else load_stats(zoo, storage_options=storage_options)
        return stored or compute_stats(zoo, chunk_rows=chunk_rows)

    def split(
        self,
        fractions: tuple[float, ...] = (0.7, 0.15, 0.15),
        *,
        by: str | tuple[str, ...] | list[str] = "model",
        seed: int = 0,
        method: Literal["shuffle", "hash"] = "shuffle",
    ) -> tuple[Zoo, ...]:
        """Leakage-safe parts of these rows, one zoo per fraction (train, val, test).

        All rows with the same ``by`` value(s) — every snapshot of a model — land in the same
        part; see :func:`wspace.weightspace.split_rows` (which gives the labels as a column).
        """
        from wspace.weightspace.splits import part_names, split_rows

        zoo = cast("Zoo", self)
        labels = split_rows(zoo._frame(), fractions, by=by, seed=seed, method=method).to_numpy()
        return tuple(zoo.isel(np.flatnonzero(labels == n)) for n in part_names(len(fractions)))

    def features(
        self, view: str = "flat", *, normalize: bool | WeightStats = False, **options: Any
    ) -> Any:
        """These rows in one view (``"nfn"``, ``"dws"``, ``"tokens"``, ``"graph"``, ``"flat"``,
        ``"state_dict"``); reads them all. See :func:`wspace.weightspace.to_view`."""
        from wspace.weightspace.views import features

        return features(cast("Zoo", self), view, normalize=normalize, **options)

    def canonical(
        self, method: str = "match", *, storage_options: Mapping[str, Any] | None = None
    ) -> PermutedZoo:
        """These rows in the stored canonical form ``method`` (``"sort"`` or ``"match"``).

        Raises :class:`ModelNotFoundError` naming the command that computes it (``wspace
        canonicalize URL --method ...``) when it is not stored, or rows were added since.
        """
        from wspace.weightspace.canonical import canonical_zoo

        zoo = cast("Zoo", self)
        permuted: PermutedZoo = canonical_zoo(zoo, method, storage_options=storage_options)
        return permuted
