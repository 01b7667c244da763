"""Writing archives: an architecture group's rows as one read-optimised, self-describing group.

An archive is what :func:`~wspace.store.maintenance.compact` writes into a store and what an
export (:func:`~wspace.store.snapshot.write_snapshot`) publishes. In format 2 it is an
xarray-compatible Zarr v3 group that needs no commit log to read (``docs/format-spec.md``,
"Archives"):

* one float32 array per layer, named by the layer, ``dimension_names = ["model",
  "<layer>_param"]``, chunked by bytes in shards (see :class:`~wspace.store.config.StoreConfig`);
* ``<layer>_tensor`` (str) and ``<layer>_index`` (int64) along ``<layer>_param``: the tensor
  of each parameter and its index within it;
* one 1-D array per metadata column along ``model`` (``model`` itself: the model names),
  float64 with NaN for missing numbers, UTF-8 strings with ``"\\x00<missing>"`` (the fill
  value) for missing strings, JSON columns as JSON text;
* ``coordinates`` attributes (the CF convention xarray reads) naming the parameter and scalar
  column arrays, the JSON schema of :data:`ARCHIVE_SCHEMA` in the group's ``wspace``
  attribute, and consolidated metadata, so that one read lists it all.

In a store of format 1 the archive keeps that format's layout (``w000``, ``m000``, no
dimension names), so that the wspace versions that wrote the store still read it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np
import pandas as pd
import zarr

from wspace.layout import Layout
from wspace.store.backend import Backend
from wspace.store.codecs import column_compressors
from wspace.store.columns import MISSING_STR, encode
from wspace.store.config import StoreConfig
from wspace.store.log import Columns, RowKey
from wspace.store.naming import (
    column_array,
    layout_arrays,
    param_coordinates,
    param_dim,
    taken_by_layers,
)
from wspace.store.segment import create_column, create_segment

__all__ = ["ARCHIVE_SCHEMA", "RowReader", "column_kind", "row_keys", "write_archive"]

ARCHIVE_SCHEMA = "wspace-archive/2"
"""The ``schema`` of a format-2 archive's ``wspace`` group attribute."""


class RowReader(Protocol):
    """Reads rows of weights into an output array (as :class:`~wspace.store.chunks.RowSource`)."""

    def read(
        self,
        positions: np.ndarray,
        layers: Sequence[str],
        out: np.ndarray,
        columns: Sequence[slice],
    ) -> None:
        """Rows ``positions`` of ``layers`` into ``out[k, columns[j]]``."""


def column_kind(series: pd.Series) -> str:
    """The stored kind (``int``, ``float``, ``bool``, ``str``, ``json``) of a metadata column."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(series.dtype):
        return "int"
    if pd.api.types.is_float_dtype(series.dtype):
        return "float"
    values = [v for v in series.tolist() if v is not None and v is not pd.NA]
    return "str" if all(isinstance(v, str) for v in values) else "json"


def row_keys(models: pd.DataFrame) -> list[RowKey]:
    """The ``(model, step)`` key of every row of a metadata frame."""
    n = len(models)
    steps = models["step"].tolist() if "step" in models else [None] * n
    return [
        (m, None if s is None or s is pd.NA or s != s else int(s))
        for m, s in zip(models["model"].tolist(), steps, strict=True)
    ]


def write_archive(
    backend: Backend,
    layout: Layout,
    config: StoreConfig,
    *,
    arch: str,
    models: pd.DataFrame,
    source: RowReader,
    positions: np.ndarray,
    format_version: int,
    path: str | None = None,
) -> tuple[str, Columns]:
    """Write rows ``positions`` of ``source`` (metadata ``models``, one row each, decoded) as
    an archive group; return its segment id and its columns (name -> ``(kind, array)``).

    ``path`` places the group (default ``archs/<arch>/seg/<id>``; ``""``: the store's root).
    Nothing refers to the archive until a ``compact`` record names it.
    """
    n = len(models)
    named = format_version >= 2
    arrays_of = layout_arrays(layout, format_version)
    kinds = {column: column_kind(models[column]) for column in models.columns}
    taken = taken_by_layers(layout, format_version)
    columns: Columns = {}
    for column in models.columns:
        key = column_array(column, taken | {k for _, k in columns.values()}, format_version)
        columns[column] = (kinds[column], key)
    scalars = [key for name, (kind, key) in columns.items() if kind != "json"]
    coordinates = {
        layer: " ".join([*param_coordinates(arrays_of[layer]), *scalars]) for layer in layout.layers
    }
    chunk_rows = {
        layer: config.archive_chunk_rows(layer, layout.layer_size(layer), n)
        for layer in layout.layers
    }
    shard_rows = {
        layer: config.archive_shard_rows(layer, layout.layer_size(layer), n)
        for layer in layout.layers
    }
    attrs: dict[str, Any] = {}
    if named:
        attrs = {
            "schema": ARCHIVE_SCHEMA,
            "format_version": format_version,
            "rows": n,
            "layout": layout.to_dict(),
            "layers": {
                layer: {"array": arrays_of[layer], "dimension": param_dim(arrays_of[layer])}
                for layer in layout.layers
            },
            "columns": {name: {"kind": k, "array": key} for name, (k, key) in columns.items()},
            "missing": {"float64": "NaN", "string": MISSING_STR},
        }
    segment_id, arrays = create_segment(
        backend,
        layout,
        config,
        arch=arch,
        kind="archive",
        rows=n,
        chunk_rows=chunk_rows,
        shard_rows=shard_rows,
        format_version=format_version,
        path=path,
        coordinates=coordinates if named else None,
        attrs=attrs,
    )
    group_path = arrays[0].path.rpartition("/")[0] if arrays else ""
    blocks = {layer: shard_rows[layer] or chunk_rows[layer] for layer in layout.layers}
    _copy_rows(source, layout, arrays, blocks, np.asarray(positions, dtype=np.int64))
    for column, (kind, key) in columns.items():
        array = create_column(
            group_path,
            backend,
            key,
            kind,
            column,
            n,
            config.meta_rows,
            format_version=format_version,
        )
        values = [
            None if v is pd.NA or (isinstance(v, float) and np.isnan(v)) else v
            for v in models[column].tolist()
        ]
        array[:] = encode(kind, values, n)
    if named:
        _write_param_coordinates(backend, group_path, layout, arrays_of)
        group = zarr.open_group(backend.store, path=group_path, mode="r+")
        group.attrs["coordinates"] = " ".join(
            [*scalars, *(c for a in arrays_of.values() for c in param_coordinates(a))]
        )
        with warnings.catch_warnings():  # "not part of the Zarr v3 specification (yet)"
            warnings.simplefilter("ignore")
            zarr.consolidate_metadata(backend.store, path=group_path, zarr_format=3)
    return segment_id, columns


def _write_param_coordinates(
    backend: Backend, group_path: str, layout: Layout, arrays_of: Mapping[str, str]
) -> None:
    """``<layer>_tensor`` and ``<layer>_index`` along each layer's parameter dimension."""
    for layer, array in arrays_of.items():
        tensors = layout.layer_tensors(layer)
        sizes = [t.size for t in tensors]
        width = sum(sizes)
        tensor_key, index_key = param_coordinates(array)
        values: dict[str, np.ndarray] = {
            tensor_key: np.repeat(np.array([t.name for t in tensors], dtype=object), sizes),
            index_key: np.concatenate([np.arange(s, dtype=np.int64) for s in sizes]),
        }
        for key, data in values.items():
            strings = data.dtype == object
            target = zarr.create_array(
                backend.store,
                name=f"{group_path}/{key}" if group_path else key,
                shape=(width,),
                chunks=(max(width, 1),),
                dtype=str if strings else "int64",
                fill_value=MISSING_STR if strings else 0,
                compressors=column_compressors(),
                dimension_names=(param_dim(array),),
                attributes={"wspace": {"layer": layer, "of": key.rpartition("_")[2]}},
            )
            target[:] = data


def _copy_rows(
    source: RowReader,
    layout: Layout,
    arrays: list[zarr.Array[Any]],
    block_rows: Mapping[str, int],
    positions: np.ndarray,
) -> None:
    """Copy rows ``positions`` of ``source`` into the archive's layer ``arrays``, one task per
    stored object (a shard, or a chunk) on a thread pool, read by the direct reader."""
    n = len(positions)
    tasks = [
        (j, layer, lo, min(lo + block_rows[layer], n))
        for j, layer in enumerate(layout.layers)
        for lo in range(0, n, block_rows[layer])
    ]

    def copy(task: tuple[int, str, int, int]) -> None:
        j, layer, lo, hi = task
        block = np.empty((hi - lo, layout.layer_size(layer)), dtype=np.float32)
        source.read(positions[lo:hi], [layer], block, [slice(None)])
        arrays[j][lo:hi] = block

    with ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="wspace-archive") as pool:
        list(pool.map(copy, tasks))
