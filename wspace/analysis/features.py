"""Feature matrices of weights, read chunk by chunk from the store's per-layer Dask arrays.

Three kinds of features:

- ``"flat"``: every parameter (the flat vector);
- a layer name or a list of them: those layers' parameters, in layout order;
- ``"stats"``: per tensor, :data:`STATS` (mean, std, min, quantiles, max, mean absolute value,
  L2 norm), computed by Dask over each layer's chunks.

:func:`extract` fills a matrix in memory (refusing one larger than ``max_bytes``);
:func:`reduce_streamed` standardises and projects on principal components block by block, for
zoos whose raw feature matrix does not fit.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias

import dask.array as da
import numpy as np

from wspace.errors import LayerNotFoundError, SchemaMismatchError, listing
from wspace.layout import Layout
from wspace.query import Zoo

__all__ = [
    "STATS",
    "Features",
    "extract",
    "feature_names",
    "feature_width",
    "iter_blocks",
    "reduce_streamed",
    "resolve_layers",
]

log = logging.getLogger(__name__)

Features: TypeAlias = str | Sequence[str]
"""``"flat"``, ``"stats"``, a layer name, or a sequence of layer names."""

STATS: tuple[str, ...] = (
    "mean", "std", "min", "q05", "q25", "median", "q75", "q95", "max", "mean_abs", "l2",
)  # fmt: skip
"""Per-tensor statistics of ``features="stats"``."""

_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
DEFAULT_MAX_BYTES = 1 << 30
"""Largest raw feature matrix :func:`extract` builds in memory (1 GiB)."""


def resolve_layers(layout: Layout, features: Features) -> list[str] | None:
    """The layers whose raw parameters are the features (``None`` for ``"stats"``).

    Examples
    --------
    >>> from wspace.architectures import lenet5_layout
    >>> resolve_layers(lenet5_layout(), ["dense_1", "conv2d"])
    ['conv2d', 'dense_1']
    >>> resolve_layers(lenet5_layout(), "stats") is None
    True
    """
    if isinstance(features, str):
        if features == "stats":
            return None
        if features == "flat":
            return list(layout.layers)
        names = [features]
    else:
        names = list(features)
    unknown = [n for n in names if n not in layout.layers]
    if unknown or not names:
        raise LayerNotFoundError(
            f"features={features!r}: no layer(s) {listing(unknown)} in layout "
            f"{layout.name!r}; use 'flat', 'stats' or layers {listing(layout.layers)}"
        )
    return [layer for layer in layout.layers if layer in names]  # layout order


def feature_names(layout: Layout, features: Features) -> list[str]:
    """Column names of the feature matrix (``conv2d/weight:q05``, ``dense_1[17]``, ...).

    Examples
    --------
    >>> from wspace.architectures import lenet5_layout
    >>> feature_names(lenet5_layout(), "stats")[:2]
    ['conv2d/weight:mean', 'conv2d/weight:std']
    >>> feature_names(lenet5_layout(), "dense_1")[-1]
    'dense_1[84]'
    """
    layers = resolve_layers(layout, features)
    if layers is None:
        return [f"{t.name}:{s}" for t in layout.tensors for s in STATS]
    return [f"{layer}[{i}]" for layer in layers for i in range(layout.layer_size(layer))]


def feature_width(layout: Layout, features: Features) -> int:
    """Number of feature columns."""
    layers = resolve_layers(layout, features)
    if layers is None:
        return len(layout.tensors) * len(STATS)
    return sum(layout.layer_size(layer) for layer in layers)


def _tensor_stats(block: np.ndarray, bounds: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Per-row :data:`STATS` of each tensor ``block[:, start:stop]``."""
    out = np.empty((block.shape[0], len(bounds) * len(STATS)), dtype=np.float32)
    for k, (start, stop) in enumerate(bounds):
        x = block[:, start:stop].astype(np.float64)
        q = np.quantile(x, _QUANTILES, axis=1) if x.shape[1] else np.zeros((5, len(x)))
        values = [
            x.mean(axis=1),
            x.std(axis=1),
            x.min(axis=1),
            *q,
            x.max(axis=1),
            np.abs(x).mean(axis=1),
            np.sqrt((x * x).sum(axis=1)),
        ]
        out[:, k * len(STATS) : (k + 1) * len(STATS)] = np.stack(values, axis=1)
    return out


def _sources(zoo: Zoo, features: Features) -> tuple[list[da.Array], list[slice]]:
    """Dask arrays (rows, columns) and the feature columns each one fills."""
    layout = zoo.layout
    layers = resolve_layers(layout, features)
    sources: list[da.Array] = []
    columns: list[slice] = []
    start = 0
    if layers is not None:
        for layer in layers:
            size = layout.layer_size(layer)
            sources.append(zoo.layer(layer).data)
            columns.append(slice(start, start + size))
            start += size
        return sources, columns
    for layer in layout.layers:
        base = layout.layer_slice(layer).start
        specs = layout.layer_tensors(layer)
        bounds = tuple((t.offset - base, t.stop - base) for t in specs)
        data = zoo.layer(layer).data.rechunk({1: -1})  # a whole layer per row: small
        width = len(specs) * len(STATS)
        sources.append(
            da.map_blocks(
                _tensor_stats,
                data,
                bounds,
                chunks=(data.chunks[0], (width,)),
                dtype=np.float32,
            )
        )
        columns.append(slice(start, start + width))
        start += width
    return sources, columns


def extract(
    zoo: Zoo, features: Features = "flat", *, max_bytes: int = DEFAULT_MAX_BYTES
) -> np.ndarray:
    """The ``(rows, features)`` float32 matrix of ``zoo``'s rows, read chunk by chunk.

    Each layer is read in its own storage chunking straight into its columns (no second
    copy). Raises :class:`SchemaMismatchError` when the matrix would exceed ``max_bytes``
    (use ``features="stats"``, fewer layers, or :func:`reduce_streamed`).

    Examples
    --------
    >>> import wspace
    >>> from wspace.testing import tiny_zoo
    >>> zoo = wspace.open(tiny_zoo("memory://doc-extract", 3))
    >>> extract(zoo, "dense_1").shape, extract(zoo, "stats").shape
    ((3, 85), (3, 110))
    """
    width = feature_width(zoo.layout, features)
    need = len(zoo) * width * 4
    if need > max_bytes:
        raise SchemaMismatchError(
            f"store {zoo.url!r}: features={features!r} for {len(zoo)} rows is a "
            f"{need / 2**20:.0f} MiB matrix (limit {max_bytes / 2**20:.0f} MiB); use "
            "features='stats', fewer layers, or pca=N (streamed)"
        )
    out = np.empty((len(zoo), width), dtype=np.float32)
    if len(zoo):
        sources, columns = _sources(zoo, features)
        da.store(sources, [out[:, c] for c in columns], lock=False)
    return out


def _blocks(n: int, block_rows: int, minimum: int) -> list[tuple[int, int]]:
    """Row ranges of about ``block_rows`` rows, none smaller than ``minimum`` (if n allows)."""
    size = max(block_rows, minimum, 1)
    edges = [*range(0, n, size), n]
    if len(edges) > 2 and edges[-1] - edges[-2] < minimum:
        del edges[-2]  # merge a short tail into the previous block
    return list(itertools.pairwise(edges))


def iter_blocks(
    zoo: Zoo, features: Features, positions: np.ndarray, *, block_rows: int, minimum: int = 1
) -> Iterator[np.ndarray]:
    """Feature matrices of ``zoo``'s rows ``positions``, ``block_rows`` rows at a time."""
    for start, stop in _blocks(len(positions), block_rows, minimum):
        yield extract(zoo.isel(positions[start:stop]), features, max_bytes=1 << 62)


def _fit_scaler(scaler: Any, stats: Any, n_samples: int) -> None:
    """Fit a ``StandardScaler`` from per-column statistics (:meth:`wspace.Zoo.param_stats`),
    as ``partial_fit`` over the same rows would: float64 mean and population variance, and
    a scale of 1 for columns indistinguishable from constant (scikit-learn's bound)."""
    mean = np.asarray(stats["mean"].values, dtype=np.float64)
    var = np.square(np.asarray(stats["std"].values, dtype=np.float64))
    eps = np.finfo(np.float64).eps
    constant = var <= n_samples * eps * var + (n_samples * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    scaler.mean_, scaler.var_, scaler.scale_ = mean, var, scale
    scaler.n_samples_seen_ = n_samples
    scaler.n_features_in_ = len(mean)


def reduce_streamed(
    zoo: Zoo,
    features: Features,
    train: np.ndarray,
    *,
    n_components: int,
    standardize: bool = True,
    block_bytes: int = 32 << 20,
) -> tuple[np.ndarray, float]:
    """Standardise and project every row on ``n_components`` principal components, streamed.

    The scaler and an :class:`~sklearn.decomposition.IncrementalPCA` are fitted on the rows
    ``train`` only (so nothing of the test rows leaks into the features), block by block (the
    scaler of raw layer columns from :meth:`wspace.Zoo.param_stats`'s one fused pass);
    then all rows are transformed block by block. Memory is bounded by one block
    (``block_bytes`` of raw features) and the components.

    Returns
    -------
    matrix, explained
        ``(rows, n_components)`` float32 features and the fraction of the training rows'
        variance the components explain.
    """
    from sklearn.decomposition import IncrementalPCA
    from sklearn.preprocessing import StandardScaler

    width = feature_width(zoo.layout, features)
    k = max(1, min(n_components, len(train), width))
    rows = max(k, block_bytes // (4 * width))
    scaler = StandardScaler() if standardize else None
    layers = resolve_layers(zoo.layout, features)
    if scaler is not None and layers is not None:  # raw columns: the fused statistics pass
        _fit_scaler(scaler, zoo.isel(train).param_stats(layers), len(train))
    elif scaler is not None:
        for block in iter_blocks(zoo, features, train, block_rows=rows):
            scaler.partial_fit(block)
    pca = IncrementalPCA(n_components=k)
    for block in iter_blocks(zoo, features, train, block_rows=rows, minimum=k):
        pca.partial_fit(scaler.transform(block) if scaler is not None else block)
    out = np.empty((len(zoo), k), dtype=np.float32)
    everything = np.arange(len(zoo))
    start = 0
    for block in iter_blocks(zoo, features, everything, block_rows=rows):
        scaled = scaler.transform(block) if scaler is not None else block
        out[start : start + len(block)] = pca.transform(scaled)
        start += len(block)
    explained = float(np.sum(pca.explained_variance_ratio_))
    log.info("streamed PCA of %s: %d components explain %.3f", features, k, explained)
    return out, explained
