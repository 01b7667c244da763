"""Per-parameter statistics of a zoo's rows in one fused pass (``Zoo.param_stats``).

:func:`layer_moments` reduces the rows of some layers to per-column float64 moments
(:class:`~wspace.store.chunks.moments.ColumnMoments`) without materialising a layer: on a
zoo attached to a store every stored chunk is read, decoded and reduced once on the read
thread pool (:func:`~wspace.store.chunks.scan.column_moments`); any other zoo (one made by
``compute()``) is reduced a block of rows at a time. :func:`param_stats` turns them into the
``xarray`` dataset of ``Zoo.param_stats``, and :func:`wspace.weightspace.stats.compute_stats`
into per-tensor and per-layer statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from wspace.errors import LayerNotFoundError, SchemaMismatchError
from wspace.query.coords import layer_param_variables
from wspace.store.chunks.moments import ColumnMoments
from wspace.store.chunks.scan import column_moments

if TYPE_CHECKING:
    from wspace.query.zoo import Zoo

__all__ = ["BLOCK_BYTES", "layer_moments", "param_stats", "selected_layers"]

BLOCK_BYTES = 32 << 20
"""Float32 bytes of rows reduced at once when a zoo has no store to scan."""


def selected_layers(zoo: Zoo, layers: str | Sequence[str] | None) -> list[str]:
    """``layers`` as a list of the zoo's layer names (``None``: all, in layout order).

    Raises
    ------
    LayerNotFoundError
        A name is not a layer of the zoo's layout.
    """
    if layers is None:
        return list(zoo.layout.layers)
    names = [layers] if isinstance(layers, str) else list(layers)
    for name in names:
        try:
            zoo.layout.layer_slice(name)
        except LayerNotFoundError as exc:
            raise LayerNotFoundError(f"{zoo._where()}: {exc}") from None
    return names


def layer_moments(zoo: Zoo, layers: Sequence[str]) -> dict[str, ColumnMoments]:
    """Per layer, the per-column moments of the zoo's rows (one pass, bounded memory).

    Raises
    ------
    SchemaMismatchError
        The zoo has no rows.
    CorruptDataError
        A chunk holding wanted rows is damaged (the message names store, layer and models).
    """
    if len(zoo) == 0:
        raise SchemaMismatchError(f"{zoo._where()}: no rows to compute statistics of")
    if zoo._source is not None:
        return column_moments(zoo._source, zoo._rows(), layers)
    out = {}
    for layer in layers:
        acc = ColumnMoments(zoo.layout.layer_size(layer))
        step = max(1, BLOCK_BYTES // (4 * acc.width))
        for first in range(0, len(zoo), step):
            acc.add(np.asarray(zoo.isel(slice(first, first + step)).layer(layer).values))
        out[layer] = acc
    return out


def param_stats(
    zoo: Zoo, layers: str | Sequence[str] | None = None, *, ddof: int = 0
) -> xr.Dataset:
    """Per-parameter ``mean``, ``std``, ``min`` and ``max`` of the zoo's rows of ``layers``
    (the dataset of ``Zoo.param_stats``)."""
    names = selected_layers(zoo, layers)
    moments = layer_moments(zoo, names)
    parts = {
        "mean": [moments[n].mean() for n in names],
        "std": [moments[n].std(ddof) for n in names],
        "min": [moments[n].min for n in names],
        "max": [moments[n].max for n in names],
    }
    coords = {
        key: xr.Variable(
            ("param",),
            np.concatenate([layer_param_variables(zoo.layout, n)[key].values for n in names]),
        )
        for key in ("layer", "tensor", "index")
    }
    return xr.Dataset(
        {key: (("param",), np.concatenate(values)) for key, values in parts.items()},
        coords=coords,
        attrs={"store": zoo.url, "arch": zoo._arch, "rows": len(zoo), "ddof": ddof},
    )
