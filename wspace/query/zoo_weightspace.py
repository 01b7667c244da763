"""The weight-space-learning side of :class:`~wspace.query.zoo.Zoo`: permutations, the read
version, statistics, leakage-safe splits, views and canonical forms (a mixin that ``Zoo``
inherits; the work is done in :mod:`wspace.weightspace`, imported on use)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

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

    def param_stats(
        self, layers: str | Sequence[str] | None = None, *, ddof: int = 0
    ) -> xr.Dataset:
        """Per-parameter mean, std, min and max over these rows, in one fused pass.

        Every stored chunk of the layers is read, decoded and reduced once (float64 sums and
        sums of squares per decoded chunk, on the read thread pool), never holding a layer in
        memory. ``zoo.param_stats("dense").mean`` equals ``zoo.layer("dense").mean("model")``
        (and ``.std`` its ``std("model", ddof=ddof)``) to float64 rounding, without running a
        Dask graph; ``zoo.param_stats().mean`` equals ``zoo.weights.mean("model")``.

        Parameters
        ----------
        layers
            A layer name or names (their parameters in this order); by default every layer.
        ddof
            Delta degrees of freedom of ``std`` (0: population, as numpy and xarray).

        Returns
        -------
        xarray.Dataset
            ``mean``, ``std`` (float64), ``min`` and ``max`` (float32) over ``param``, with the
            ``layer``, ``tensor`` and ``index`` coordinates of :meth:`layer`; attrs ``rows``.

        Raises
        ------
        LayerNotFoundError
            A name is not a layer of the layout.
        SchemaMismatchError
            The zoo has no rows.

        Examples
        --------
        >>> import wspace
        >>> from wspace.testing import tiny_zoo
        >>> zoo = wspace.open(tiny_zoo("memory://doc-param-stats", n_models=4))
        >>> stats = zoo.param_stats("dense_1")
        >>> bool(np.allclose(stats["mean"], zoo.layer("dense_1").mean("model")))
        True
        """
        from wspace.query.param_stats import param_stats

        return param_stats(cast("Zoo", self), layers, ddof=ddof)

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
