"""The xarray parts of a zoo: coordinates, DataArrays built without re-validation, and
metadata values as coordinates and records."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from wspace.layout import Layout
from wspace.query.lazy_array import lazy_variable

__all__ = [
    "as_slice",
    "clean_record",
    "coord_values",
    "data_array",
    "layer_param_variables",
    "lazy_model_variables",
    "model_index",
    "model_variables",
    "param_coords",
    "param_values",
    "param_variables",
    "tensor_array",
]


@functools.lru_cache(maxsize=256)
def layer_param_variables(layout: Layout, layer: str) -> dict[str, xr.Variable]:
    """The ``param`` coordinates of one layer as xarray variables (cached per layer)."""
    tensors = layout.layer_tensors(layer)
    sizes = [t.size for t in tensors]
    values = {
        "layer": np.full(sum(sizes), layer),
        "tensor": np.repeat(np.array([t.name for t in tensors]), sizes),
        "index": np.concatenate([np.arange(n) for n in sizes]),
    }
    return {k: xr.Variable(("param",), v, fastpath=True) for k, v in values.items()}


def model_variables(models: pd.DataFrame) -> tuple[dict[str, xr.Variable], dict[str, Any]]:
    """The metadata columns of ``models`` as ``model`` coordinate variables, and the
    ``model`` index (a :class:`xarray.indexes.PandasIndex` of the model names)."""
    variables, indexes = model_index(models["model"])
    for c in models.columns:
        if c != "model":
            variables[c] = xr.Variable(("model",), coord_values(models[c]), fastpath=True)
    return variables, indexes


def model_index(names: pd.Series) -> tuple[dict[str, xr.Variable], dict[str, Any]]:
    """The ``model`` coordinate variable of the model ``names``, and its index (a
    :class:`xarray.indexes.PandasIndex`)."""
    values = coord_values(names)
    index = xr.indexes.PandasIndex(pd.Index(values, dtype=object, name="model"), "model")
    return dict(index.create_variables()), {"model": index}


@functools.lru_cache(maxsize=16)
def param_variables(layout: Layout) -> dict[str, xr.Variable]:
    """The ``param`` coordinates of every layer as xarray variables, computed when first
    used (cached per layout: ~4 ms of string repeats for LeNet-5's 91,481 parameters)."""
    names = {
        "layer": [t.layer for t in layout.tensors],
        "tensor": [t.name for t in layout.tensors],
    }
    dtypes = {k: np.dtype(f"<U{max(map(len, v), default=1)}") for k, v in names.items()}
    dtypes["index"] = np.dtype(np.int64)

    def values(name: str) -> Callable[[], np.ndarray]:
        return lambda: param_values(layout, name)

    return {k: lazy_variable(values(k), layout.size, d, "param") for k, d in dtypes.items()}


def param_coords(layout: Layout) -> dict[str, tuple[str, np.ndarray]]:
    """``layer``, ``tensor`` and ``index`` coordinates along ``param``."""
    return {name: ("param", param_values(layout, name)) for name in ("layer", "tensor", "index")}


def param_values(layout: Layout, name: str) -> np.ndarray:
    """The values of the ``param`` coordinate ``name`` (``layer``, ``tensor`` or ``index``)."""
    sizes = [t.size for t in layout.tensors]
    if name == "index":
        return np.concatenate([np.arange(n, dtype=np.int64) for n in sizes])
    labels = [t.layer if name == "layer" else t.name for t in layout.tensors]
    return np.repeat(np.array(labels), sizes)


def data_array(
    data: Any,
    coords: dict[str, xr.Variable],
    indexes: dict[str, Any],
    name: str,
    attrs: dict[str, Any],
) -> xr.DataArray:
    """A ``(model, param)`` DataArray from ready-made coordinate variables.

    xarray's public constructor re-validates (and deep-copies object) coordinates: 2-6 ms
    for a zoo's ~20 metadata columns, more than reading a small layer. Its internal
    ``_construct_direct`` takes them as they are; the public path is the fallback.
    """
    variable = xr.Variable(("model", "param"), data, attrs=attrs, fastpath=True)
    construct = getattr(xr.DataArray, "_construct_direct", None)
    if construct is not None:
        try:
            built: xr.DataArray = construct(variable, dict(coords), name, dict(indexes))
            return built
        except TypeError:  # pragma: no cover - another xarray signature
            pass
    return xr.DataArray(  # pragma: no cover
        data,
        dims=("model", "param"),
        coords=xr.Coordinates(coords, indexes=indexes),
        name=name,
        attrs=attrs,
    )


def tensor_array(
    layer: xr.DataArray,
    offset: int,
    size: int,
    index: np.ndarray,
    shape: tuple[int, ...],
    name: str,
) -> xr.DataArray:
    """One tensor, ``(model, *shape)``, from the DataArray of its layer.

    Parameters
    ----------
    layer
        The layer, ``(model, param)``.
    offset, size
        Where the tensor's values are among the layer's parameters.
    index
        Position (within the tensor) of each value of the view, in the view's order; the
        identity for the stored tensor.
    shape
        The view's shape.
    name
        The tensor's name.
    """
    if np.array_equal(index, np.arange(size)):
        part: Any = slice(offset, offset + size)
    else:
        part = offset + np.asarray(index)
    flat = layer.isel(param=part)
    data = flat.data.reshape((flat.shape[0], *shape))
    coords = {k: v for k, v in flat.coords.items() if v.dims == ("model",)}
    dims = ("model", *(f"axis_{k}" for k in range(len(shape))))
    return xr.DataArray(data, dims=dims, coords=coords, name=name, attrs={"tensor": name})


def coord_values(series: pd.Series) -> np.ndarray:
    """A numpy array for an xarray coordinate from a metadata column."""
    if isinstance(series.dtype, pd.Int64Dtype):
        floats: np.ndarray = series.astype("float64").to_numpy()
        return floats
    if series.dtype == object or isinstance(series.dtype, pd.BooleanDtype | pd.StringDtype):
        out = np.empty(len(series), dtype=object)
        out[:] = [None if v is pd.NA else v for v in series.tolist()]
        return out
    values: np.ndarray = series.to_numpy()
    return values


def as_slice(positions: np.ndarray) -> slice | np.ndarray:
    """``positions`` as a slice when they are a contiguous ascending run (cheaper in Dask)."""
    if len(positions) and np.array_equal(
        positions, np.arange(positions[0], positions[0] + len(positions))
    ):
        return slice(int(positions[0]), int(positions[0]) + len(positions))
    return positions


def clean_record(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata record with pandas' missing markers turned into ``None``."""
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            out[key] = None
        else:
            out[key] = value
    return out


def lazy_model_variables(
    names: pd.Series,
    columns: Mapping[str, np.dtype[Any] | None],
    frame: Callable[[], pd.DataFrame],
) -> tuple[dict[str, xr.Variable], dict[str, Any]]:
    """The ``model`` coordinates of a zoo's rows: ``model`` (the index, from ``names``) now,
    every other column of ``columns`` (name: dtype, ``None`` when known only once read) read
    from ``frame()`` — the rows' scalar metadata columns — when first used."""
    variables, indexes = model_index(names)
    n_rows = len(names)

    def column(name: str) -> Callable[[], np.ndarray]:
        return lambda: coord_values(frame()[name])

    for name, dtype in columns.items():
        if name != "model":
            variables[name] = lazy_variable(column(name), n_rows, dtype)
    return variables, indexes
