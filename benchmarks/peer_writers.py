"""Writers of the peers: the stores a user would pick instead of wspace, each as its docs say.

* **Lance** (``pylance``): one dataset; a ``fixed_size_list<float32>`` column per layer plus
  the metadata columns ``model``, ``cls`` and ``count``; written once from a stream of record
  batches (``lance.write_dataset`` with a ``RecordBatchReader``), with the scalar indexes the
  Lance docs recommend for filtered columns (``BTREE`` on the unique ``model``, ``BITMAP`` on the
  low-cardinality ``cls``).
* **Zarr by hand with xarray**: one ``xr.Dataset`` with a ``(model, p_<layer>)`` float32 array
  per layer and the coordinates ``model``, ``cls`` and ``count``; written by one writer with
  ``to_zarr`` (the first batch creates it, the others ``append_dim="model"``), chunks of about
  1 MiB uncompressed (Zarr's advice: at least 1 MB per chunk), zarr's default codec (zstd).
* **safetensors folder**: ``<model>.safetensors`` per model, the tensors under their layout
  names in their own shapes (the Hugging Face habit: one file per checkpoint).

Every writer reads the rows of a wspace :class:`~wspace.Zoo` in batches (the same rows, in zoo
order).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.formats import BATCH
from wspace.query import Zoo

__all__ = ["PEER_WRITERS", "write_lance", "write_safetensors", "write_xzarr"]

CHUNK_BYTES = 1 << 20
"""Uncompressed bytes per chunk of the Zarr-by-hand arrays."""


def _batches(zoo: Zoo, rows: int = BATCH) -> Iterator[tuple[Any, np.ndarray]]:
    for first in range(0, len(zoo), rows):
        part = zoo.isel(slice(first, first + rows))
        yield part.models, part.values


def write_lance(zoo: Zoo, dst: str | Path) -> list[Path]:
    """One Lance dataset: a fixed-size-list column per layer + ``model``/``cls``/``count``."""
    import lance
    import pyarrow as pa

    layout = zoo.layout
    fields = [
        pa.field("model", pa.string()),
        pa.field("cls", pa.string()),
        pa.field("count", pa.int64()),
    ]
    fields += [
        pa.field(layer, pa.list_(pa.float32(), layout.layer_size(layer))) for layer in layout.layers
    ]
    schema = pa.schema(fields)

    def batches() -> Iterator[pa.RecordBatch]:
        for models, values in _batches(zoo):
            columns: list[pa.Array] = [
                pa.array(models["model"].astype(str).tolist(), pa.string()),
                pa.array(models["cls"].astype(str).tolist(), pa.string()),
                pa.array(models["count"].astype(np.int64).to_numpy(), pa.int64()),
            ]
            for layer in layout.layers:
                part = np.ascontiguousarray(values[:, layout.layer_slice(layer)])
                columns.append(
                    pa.FixedSizeListArray.from_arrays(
                        pa.array(part.ravel()), layout.layer_size(layer)
                    )
                )
            yield pa.RecordBatch.from_arrays(columns, schema=schema)

    reader = pa.RecordBatchReader.from_batches(schema, batches())
    dataset = lance.write_dataset(reader, str(dst), schema=schema, mode="create")
    dataset.create_scalar_index("model", "BTREE")
    dataset.create_scalar_index("cls", "BITMAP")
    return [Path(dst)]


def write_xzarr(zoo: Zoo, dst: str | Path) -> list[Path]:
    """One Zarr store written by xarray: a ``(model, p_<layer>)`` array per layer."""
    import xarray as xr

    layout = zoo.layout
    encoding: dict[str, dict[str, Any]] = {
        layer: {
            "chunks": (
                max(1, CHUNK_BYTES // (4 * layout.layer_size(layer))),
                layout.layer_size(layer),
            )
        }
        for layer in layout.layers
    }
    encoding["cls"] = {"chunks": (1 << 16,)}
    encoding["count"] = {"chunks": (1 << 16,)}
    encoding["model"] = {"chunks": (1 << 16,)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's notes on consolidated metadata
        for k, (models, values) in enumerate(_batches(zoo, 1024)):
            variables = {
                layer: (("model", f"p_{layer}"), values[:, layout.layer_slice(layer)])
                for layer in layout.layers
            }
            coords = {
                "model": np.asarray(models["model"].astype(str).tolist(), dtype=object),
                "cls": ("model", np.asarray(models["cls"].astype(str).tolist(), dtype=object)),
                "count": ("model", models["count"].astype(np.int64).to_numpy()),
            }
            ds = xr.Dataset(variables, coords=coords)
            if k == 0:
                ds.to_zarr(str(dst), mode="w", encoding=encoding)
            else:
                ds.to_zarr(str(dst), append_dim="model")
    return [Path(dst)]


def write_safetensors(zoo: Zoo, dst: str | Path) -> list[Path]:
    """``dst/<model>.safetensors`` per model: every tensor under its layout name and shape."""
    from safetensors.numpy import save_file

    folder = Path(dst)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    specs = list(zoo.layout)
    for models, values in _batches(zoo):
        for name, row in zip(models["model"].astype(str), values, strict=True):
            tensors = {s.name: row[s.offset : s.stop].reshape(s.shape) for s in specs}
            path = folder / f"{name}.safetensors"
            save_file(tensors, str(path))
            written.append(path)
    return written


PEER_WRITERS = {"lance": write_lance, "xzarr": write_xzarr, "safetensors": write_safetensors}
"""Peer -> ``write(zoo, dst)``."""
