"""Q1-Q5 on the peers (written by :mod:`benchmarks.peer_writers`), each as its docs recommend.

* **Lance**: ``lance.dataset(path)`` opens; Q1 is ``to_table`` with the filter pushed down
  (``cls = '...'``, answered by the BITMAP index) reading only the layer's column; Q2 is
  ``take(positions)``; Q3 scans each layer column in record batches; Q4 filters on ``model``
  (BTREE index).
* **Zarr by hand**: ``xr.open_zarr(path)`` opens (coordinates loaded, data lazy); Q1 is
  ``ds[layer].sel(cls=...)`` after ``set_xindex("cls")``; Q2 ``isel(model=positions)``; Q3
  ``mean``/``std`` over ``model`` computed with Dask; Q4 ``sel(model=name)``.
* **safetensors folder**: opening lists the folder; every read is ``safe_open`` of a model's
  file and ``get_tensor`` of only the tensors needed.

Results come back in zoo order (Lance, Zarr) or in file-name order (safetensors, with names),
in the layout's torch order: :data:`CANONICAL` entries for the result check.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.check import Answer
from benchmarks.queries import CANONICAL, OPEN, QUERIES, Manifest, Stats, mean_std, zoo_order

__all__ = ["register"]


def _flat(column: Any, width: int) -> np.ndarray:
    """A ``fixed_size_list<float32>`` column as a ``(rows, width)`` array (no copy if one chunk)."""
    parts = getattr(column, "chunks", [column])  # a ChunkedArray (table) or an Array (batch)
    chunks = [c.flatten().to_numpy(zero_copy_only=False) for c in parts]
    flat = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
    return flat.reshape(-1, width)


def _width(m: Manifest, layer: str) -> int:
    a, b = m["layer_slices"][layer]
    return int(b - a)


# -- Lance ------------------------------------------------------------------------------------
def lance_open(m: Manifest) -> Any:
    import lance

    return lance.dataset(m["lance"])


def lance_q1(ds: Any, m: Manifest) -> np.ndarray:
    layer = m["q1"]["layer"]
    table = ds.to_table(columns=[layer], filter=f"cls = '{m['q1']['cls']}'")
    return _flat(table.column(layer), _width(m, layer))


def lance_q2(ds: Any, m: Manifest) -> np.ndarray:
    table = ds.take(m["q2"]["positions"], columns=m["layers"])
    return np.concatenate(
        [_flat(table.column(layer), _width(m, layer)) for layer in m["layers"]], axis=1
    )


def lance_q3(ds: Any, m: Manifest) -> Stats:
    sums: dict[str, np.ndarray] = {}
    squares: dict[str, np.ndarray] = {}
    for layer in m["layers"]:
        width = _width(m, layer)
        total = np.zeros(width)
        square = np.zeros(width)
        for batch in ds.to_batches(columns=[layer], batch_size=4096):
            part = _flat(batch.column(0), width).astype(np.float64)
            total += part.sum(axis=0)
            square += (part * part).sum(axis=0)
        sums[layer], squares[layer] = total, square
    return mean_std(sums, squares, ds.count_rows())


def lance_q4(ds: Any, m: Manifest) -> np.ndarray:
    table = ds.to_table(columns=m["layers"], filter=f"model = '{m['q4']['model']}'")
    return np.concatenate(
        [_flat(table.column(layer), _width(m, layer)) for layer in m["layers"]], axis=1
    )


def lance_count(ds: Any, m: Manifest) -> np.ndarray:
    return np.array([ds.count_rows()], dtype=np.float32)


# -- Zarr by hand, through xarray -------------------------------------------------------------
def xzarr_open(m: Manifest) -> Any:
    import xarray as xr

    return xr.open_zarr(m["xzarr"])


def xzarr_q1(ds: Any, m: Manifest) -> np.ndarray:
    by_cls = ds[[m["q1"]["layer"]]].set_xindex("cls")
    return np.asarray(by_cls[m["q1"]["layer"]].sel(cls=m["q1"]["cls"]).values)


def xzarr_q2(ds: Any, m: Manifest) -> np.ndarray:
    part = ds.isel(model=np.asarray(m["q2"]["positions"]))
    return np.concatenate([part[layer].values for layer in m["layers"]], axis=1)


def xzarr_q3(ds: Any, m: Manifest) -> Stats:
    from dask.base import compute

    lazy = {
        layer: (ds[layer].mean("model").data, ds[layer].std("model").data) for layer in m["layers"]
    }
    (stats,) = compute(lazy)
    return {k: (np.asarray(a), np.asarray(b)) for k, (a, b) in stats.items()}


def xzarr_q4(ds: Any, m: Manifest) -> np.ndarray:
    row = ds.sel(model=m["q4"]["model"])
    return np.concatenate([row[layer].values for layer in m["layers"]])[None]


def xzarr_count(ds: Any, m: Manifest) -> np.ndarray:
    return np.array([ds.sizes["model"]], dtype=np.float32)


# -- safetensors folder -----------------------------------------------------------------------
def st_open(m: Manifest) -> list[str]:
    return sorted(os.listdir(m["safetensors"]))


def _st_row(m: Manifest, name: str, layers: list[str]) -> np.ndarray:
    from safetensors import safe_open

    parts = []
    with safe_open(os.path.join(m["safetensors"], name), framework="numpy") as f:
        for t in m["tensors"]:
            if t["layer"] in layers:
                parts.append(f.get_tensor(t["name"]).ravel())
    return np.concatenate(parts)


def _st_model(file: str) -> str:
    return file[: -len(".safetensors")]


def st_q1(files: list[str], m: Manifest) -> tuple[list[str], np.ndarray]:
    prefix = f"{m['q1']['cls']}_"
    mine = [f for f in files if f.startswith(prefix)]
    rows = [_st_row(m, f, [m["q1"]["layer"]]) for f in mine]
    return [_st_model(f) for f in mine], np.stack(rows)


def st_q2(files: list[str], m: Manifest) -> tuple[list[str], np.ndarray]:
    names = m["q2"]["models"]
    return names, np.stack([_st_row(m, f"{n}.safetensors", m["layers"]) for n in names])


def st_q3(files: list[str], m: Manifest) -> Stats:
    sums: dict[str, np.ndarray] = {}
    squares: dict[str, np.ndarray] = {}
    for f in files:
        for layer in m["layers"]:
            row = _st_row(m, f, [layer]).astype(np.float64)
            if layer in sums:
                sums[layer] += row
                squares[layer] += row * row
            else:
                sums[layer], squares[layer] = row.copy(), row * row
    return mean_std(sums, squares, len(files))


def st_q4(files: list[str], m: Manifest) -> tuple[list[str], np.ndarray]:
    name = m["q4"]["model"]
    return [name], _st_row(m, f"{name}.safetensors", m["layers"])[None]


def st_canonical(m: Manifest, q: str, result: Any) -> Answer:
    if isinstance(result, tuple):
        names, rows = result
        return Answer(rows=np.asarray(rows, dtype=np.float32), names=list(names))
    return zoo_order(m, q, result)


def register() -> None:
    """Add the peers to :data:`benchmarks.queries.OPEN`, ``QUERIES`` and ``CANONICAL``."""
    systems: dict[str, tuple[Callable[[Manifest], Any], list[Any], Callable[..., Answer]]] = {
        "lance": (lance_open, [lance_q1, lance_q2, lance_q3, lance_q4, lance_count], zoo_order),
        "xzarr": (xzarr_open, [xzarr_q1, xzarr_q2, xzarr_q3, xzarr_q4, xzarr_count], zoo_order),
        "safetensors": (st_open, [st_q1, st_q2, st_q3, st_q4, None], st_canonical),
    }
    for system, (opener, queries, canonical) in systems.items():
        OPEN[system] = opener
        CANONICAL[system] = canonical
        for q, fn in zip(("q1", "q2", "q3", "q4", "q5"), queries, strict=True):
            QUERIES[q][system] = fn if fn is not None else QUERIES["q5"]["hdf5"]


register()
