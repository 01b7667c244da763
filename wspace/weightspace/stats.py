"""Per-tensor and per-layer weight statistics in one streaming pass, stored beside the data.

:func:`compute_stats` reduces the rows in one fused pass (every stored chunk decoded once, per
column float64 sums and sums of squares: :meth:`wspace.Zoo.param_stats`), then every tensor to
its count, float64 sum and sum of squared deviations, min and max (merged exactly: Chan et
al.'s parallel variance). :func:`save_stats` writes the result
under ``_weightspace/<arch>/stats/<fingerprint>.json`` with the log version it was computed at;
:func:`load_stats` finds it again for the same rows, and rows added since change the fingerprint,
so stale statistics are never reused.

Examples
--------
>>> import wspace
>>> from wspace.testing import class_zoo
>>> zoo = wspace.open(class_zoo("memory://doc-stats", per_class=4))
>>> stats = compute_stats(zoo, chunk_rows=5)
>>> int(stats.tensors.loc["fc/weight", "count"]), round(float(stats.layers.loc["fc", "std"]), 1)
(3840, 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from wspace.errors import SchemaMismatchError
from wspace.layout import Layout
from wspace.store.chunks.moments import ColumnMoments
from wspace.weightspace.derived import fingerprint, object_path, read_object, write_object

__all__ = ["WeightStats", "compute_stats", "load_stats", "save_stats"]

_COLUMNS = ["count", "mean", "std", "min", "max"]


@dataclass(frozen=True)
class WeightStats:
    """Statistics of the weights of some rows of one architecture group."""

    tensors: pd.DataFrame
    """Per tensor (index: tensor name): ``layer, count, mean, std, min, max``."""
    layers: pd.DataFrame
    """Per layer (index: layer name): ``count, mean, std, min, max``."""
    rows: int
    """Number of rows they were computed from."""
    arch: str
    version: int | None
    """Commit-log version of the store the rows were read at (``None``: not known)."""
    fingerprint: str
    """Identity of the rows (:func:`wspace.weightspace.derived.fingerprint`)."""

    def flat(
        self, layout: Layout, level: Literal["tensor", "layer"] = "tensor", eps: float = 1e-8
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` float32 vectors over the flat layout, for ``(row - mean) / std``.

        A standard deviation below ``eps`` (a constant tensor) is replaced by 1.
        """
        table = self.tensors if level == "tensor" else self.layers
        mean = np.empty(layout.size, dtype=np.float32)
        std = np.empty(layout.size, dtype=np.float32)
        for t in layout:
            key = t.name if level == "tensor" else t.layer
            if key not in table.index:
                raise SchemaMismatchError(
                    f"statistics of arch {self.arch!r} have no {level} {key!r} of layout "
                    f"{layout.name!r}"
                )
            mean[t.slice()] = table.at[key, "mean"]
            s = float(table.at[key, "std"])
            std[t.slice()] = s if s >= eps else 1.0
        return mean, std

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "schema": "wspace.stats/1",
            "arch": self.arch,
            "version": self.version,
            "rows": self.rows,
            "fingerprint": self.fingerprint,
            "tensors": self.tensors.reset_index(names="tensor").to_dict("records"),
            "layers": self.layers.reset_index(names="layer").to_dict("records"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WeightStats:
        """The statistics of :meth:`to_dict`'s form."""
        if data.get("schema") != "wspace.stats/1":
            raise SchemaMismatchError(f"not a wspace.stats/1 object: {data.get('schema')!r}")
        return cls(
            pd.DataFrame(data["tensors"]).set_index("tensor"),
            pd.DataFrame(data["layers"]).set_index("layer"),
            int(data["rows"]),
            str(data["arch"]),
            data["version"],
            str(data["fingerprint"]),
        )


def _merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Merge two ``(k, 5)`` blocks of ``count, sum, m2, min, max`` (Chan et al.)."""
    na, nb = a[:, 0], b[:, 0]
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = np.where(nb > 0, b[:, 1] / np.maximum(nb, 1), 0) - np.where(
            na > 0, a[:, 1] / np.maximum(na, 1), 0
        )
        m2 = a[:, 2] + b[:, 2] + np.where(n > 0, delta**2 * na * nb / np.maximum(n, 1), 0)
    return np.stack(
        [n, a[:, 1] + b[:, 1], m2, np.minimum(a[:, 3], b[:, 3]), np.maximum(a[:, 4], b[:, 4])], 1
    )


def _reduce(block: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``count, sum, m2, min, max`` per tensor of a chunk of rows (float64 sum and sum of
    squares of each column, then per tensor)."""
    n = block.shape[0]
    total = np.add.reduceat(block.sum(axis=0, dtype=np.float64), starts)
    squares = np.add.reduceat(np.square(block).sum(axis=0, dtype=np.float64), starts)
    count = (sizes * n).astype(np.float64)
    m2 = np.maximum(squares - total * total / count, 0.0)
    lo = np.minimum.reduceat(block.min(axis=0), starts).astype(np.float64)
    hi = np.maximum.reduceat(block.max(axis=0), starts).astype(np.float64)
    return np.stack([count, total, m2, lo, hi], 1)


def _from_columns(layout: Layout, moments: Mapping[str, ColumnMoments]) -> np.ndarray:
    """``count, sum, m2, min, max`` per tensor from its layer's per-column moments (the
    columns' sums of squared deviations plus their means' spread around the tensor's mean)."""
    out = np.empty((len(layout), 5))
    means = {layer: acc.mean() for layer, acc in moments.items()}
    m2s = {layer: acc.m2() for layer, acc in moments.items()}
    for i, t in enumerate(layout):
        acc = moments[t.layer]
        first = t.offset - layout.layer_slice(t.layer).start
        cols = slice(first, first + t.size)
        mean = float(means[t.layer][cols].mean())
        spread = float(np.square(means[t.layer][cols] - mean).sum())
        m2 = float(m2s[t.layer][cols].sum()) + acc.count * spread
        count = acc.count * t.size
        out[i] = (count, mean * count, m2, acc.min[cols].min(), acc.max[cols].max())
    return out


def compute_stats(zoo: Any, *, chunk_rows: int = 256) -> WeightStats:
    """Mean, std, min and max of every tensor and layer over the zoo's rows, in one pass.

    A :class:`~wspace.Zoo` (or a permuted one: neuron permutations move values within a
    tensor, so the statistics are those of the zoo it permutes) is reduced in one fused pass
    (:func:`wspace.query.param_stats.layer_moments`: every stored chunk decoded once, float64
    sums and sums of squares per column, then per tensor); any other zoo-like object is read
    ``chunk_rows`` rows at a time.

    Parameters
    ----------
    zoo
        A :class:`~wspace.Zoo` selection (or a permuted one: the statistics are the same).
    chunk_rows
        Rows read and reduced at once when ``zoo`` is not a Zoo (memory: about
        ``2 * chunk_rows * params`` float32).
    """
    from wspace.query.param_stats import layer_moments
    from wspace.query.zoo import Zoo
    from wspace.weightspace.permuted import PermutedZoo

    layout: Layout = zoo.layout
    if len(zoo) == 0:
        raise SchemaMismatchError(f"store {zoo.url!r}: no rows to compute statistics of")
    starts = np.array([t.offset for t in layout], dtype=np.int64)
    sizes = np.array([t.size for t in layout], dtype=np.int64)
    base = zoo.zoo if isinstance(zoo, PermutedZoo) else zoo
    if isinstance(base, Zoo):
        acc = _from_columns(layout, layer_moments(base, list(layout.layers)))
    else:
        acc = np.zeros((len(layout), 5))
        acc[:, 3], acc[:, 4] = np.inf, -np.inf
        for start in range(0, len(zoo), chunk_rows):
            block = np.asarray(zoo.isel(slice(start, start + chunk_rows)).values)
            acc = _merge(acc, _reduce(block, starts, sizes))
    names = [t.name for t in layout]
    layers = [t.layer for t in layout]
    tensors = _table(acc, pd.Index(names, name="tensor"))
    tensors.insert(0, "layer", layers)
    per_layer = np.zeros((len(layout.layers), 5))
    per_layer[:, 3], per_layer[:, 4] = np.inf, -np.inf
    for i, t in enumerate(layout):
        j = layout.layers.index(t.layer)
        per_layer[j] = _merge(per_layer[j : j + 1], acc[i : i + 1])[0]
    return WeightStats(
        tensors,
        _table(per_layer, pd.Index(list(layout.layers), name="layer")),
        len(zoo),
        layout.name,
        getattr(getattr(zoo, "zoo", zoo), "version", None),
        fingerprint(zoo),
    )


def _table(acc: np.ndarray, index: pd.Index) -> pd.DataFrame:
    count = acc[:, 0]
    return pd.DataFrame(
        {
            "count": count.astype(np.int64),
            "mean": acc[:, 1] / count,
            "std": np.sqrt(acc[:, 2] / count),
            "min": acc[:, 3],
            "max": acc[:, 4],
        },
        index=index,
    )


def _path(stats_arch: str, key: str) -> str:
    return object_path(stats_arch, "stats", key[:32])


def save_stats(
    url: str, stats: WeightStats, *, storage_options: Mapping[str, Any] | None = None
) -> str:
    """Store ``stats`` in the store at ``url``; return the object's path in the store."""
    path = _path(stats.arch, stats.fingerprint)
    write_object(url, path, stats.to_dict(), storage_options=storage_options)
    return path


def load_stats(zoo: Any, *, storage_options: Mapping[str, Any] | None = None) -> WeightStats | None:
    """The stored statistics of exactly the zoo's rows, or ``None`` (none stored, or stale)."""
    found = read_object(
        zoo.url, _path(zoo.layout.name, fingerprint(zoo)), storage_options=storage_options
    )
    if found is None:
        return None
    stats = WeightStats.from_dict(found[0])
    return stats if stats.fingerprint == fingerprint(zoo) else None
