"""The queries Q1-Q5, written the way a user of each system would write them.

Each function takes the benchmark manifest (paths and query parameters, see
:mod:`benchmarks.generate`) and returns ``(seconds, result)``: the wall-clock time of the query
alone, and its result (an array, or per-layer statistics) that :func:`summary` turns into a
checksum so the runner can check that every system answered the same.

What is timed:

* **wspace** — the query on an opened zoo; ``wspace.open`` itself is Q5 and is not included
  (a researcher opens once and queries many times). Imports are never timed.
* **HDF5 folder** — the researcher's loop: find the files (glob on the published names), open
  each with h5py, read the datasets needed.
* **pickles** — ``pickle.load`` of the whole file, then indexing (torch and numpy imported
  before the clock starts).
* **raw memmap** — ``np.load(..., mmap_mode="r")`` and a numpy index: the physical limit.
"""

from __future__ import annotations

import glob
import json
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["QUERIES", "summary"]

Manifest = dict[str, Any]
Result = Any


def _clock() -> float:
    return time.perf_counter()


# -- wspace -----------------------------------------------------------------------------------
def _open(m: Manifest) -> Any:
    import wspace

    return wspace.open(m["store"])


def ws_q1(m: Manifest) -> tuple[float, Result]:
    zoo = _open(m)
    t = _clock()
    out = zoo.sel(cls=m["q1"]["cls"]).layer(m["q1"]["layer"]).values
    return _clock() - t, out


def ws_q2(m: Manifest) -> tuple[float, Result]:
    zoo = _open(m)
    t = _clock()
    out = zoo.isel(model=np.asarray(m["q2"]["positions"])).values
    return _clock() - t, out


def ws_q3(m: Manifest) -> tuple[float, Result]:
    import dask

    zoo = _open(m)
    t = _clock()
    lazy = {}
    for layer in zoo.layout.layers:
        data = zoo.layer(layer)
        lazy[layer] = (data.mean("model").data, data.std("model").data)
    (stats,) = dask.compute(lazy)
    return _clock() - t, {k: (np.asarray(a), np.asarray(b)) for k, (a, b) in stats.items()}


def ws_q4(m: Manifest) -> tuple[float, Result]:
    zoo = _open(m)
    t = _clock()
    out = zoo.row(m["q4"]["model"])
    return _clock() - t, out


def ws_q5(m: Manifest) -> tuple[float, Result]:
    import wspace

    t = _clock()
    zoo = wspace.open(m["store"])
    n = len(zoo)
    return _clock() - t, np.array([n], dtype=np.float32)


# -- HDF5 folder ------------------------------------------------------------------------------
def _h5_row(f: Any, layers: list[str]) -> np.ndarray:
    parts = []
    for layer in layers:
        group = f[f"model_weights/{layer}/{layer}"]
        parts += [group["bias:0"][()].ravel(), group["kernel:0"][()].ravel()]
    return np.concatenate(parts)


def h5_q1(m: Manifest) -> tuple[float, Result]:
    import h5py

    layer = m["q1"]["layer"]
    t = _clock()
    rows = []
    for path in sorted(glob.glob(os.path.join(m["h5"], f"binary_oneVall_{m['q1']['cls']}_*"))):
        with h5py.File(path, "r") as f:
            rows.append(_h5_row(f, [layer]))
    out = np.stack(rows)
    return _clock() - t, out


def h5_q2(m: Manifest) -> tuple[float, Result]:
    import h5py

    layers = m["layers"]
    t = _clock()
    rows = []
    for name in m["q2"]["files"]:
        with h5py.File(os.path.join(m["h5"], name), "r") as f:
            rows.append(_h5_row(f, layers))
    out = np.stack(rows)
    return _clock() - t, out


def h5_q3(m: Manifest) -> tuple[float, Result]:
    import h5py

    layers = m["layers"]
    t = _clock()
    sums: dict[str, np.ndarray] = {}
    squares: dict[str, np.ndarray] = {}
    n = 0
    for path in glob.glob(os.path.join(m["h5"], "binary_oneVall_*_model.h5")):
        with h5py.File(path, "r") as f:
            for layer in layers:
                row = _h5_row(f, [layer]).astype(np.float64)
                if layer in sums:
                    sums[layer] += row
                    squares[layer] += row * row
                else:
                    sums[layer], squares[layer] = row.copy(), row * row
        n += 1
    out = _mean_std(sums, squares, n)
    return _clock() - t, out


def h5_q4(m: Manifest) -> tuple[float, Result]:
    import h5py

    t = _clock()
    with h5py.File(os.path.join(m["h5"], m["q4"]["file"]), "r") as f:
        out = _h5_row(f, m["layers"])
    return _clock() - t, out


def h5_q5(m: Manifest) -> tuple[float, Result]:
    t = _clock()
    names = sorted(os.listdir(m["h5"]))
    index = [n[len("binary_oneVall_") : -len("_model.h5")].rsplit("_", 1) for n in names]
    return _clock() - t, np.array([len(index)], dtype=np.float32)


def _mean_std(
    sums: dict[str, np.ndarray], squares: dict[str, np.ndarray], n: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for layer, total in sums.items():
        mean = total / n
        out[layer] = (mean, np.sqrt(np.maximum(squares[layer] / n - mean * mean, 0)))
    return out


# -- pickles ----------------------------------------------------------------------------------
def _load(path: str) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)


def layerwise_q1(m: Manifest) -> tuple[float, Result]:
    t = _clock()
    data = _load(m["layerwise"])
    entry = next(d for d in data if d["class"] == m["q1"]["cls"])
    out = np.stack(entry["parameters"][m["q1"]["layer"]])
    return _clock() - t, out


def layerwise_q3(m: Manifest) -> tuple[float, Result]:
    t = _clock()
    data = _load(m["layerwise"])
    out = {}
    for layer in m["layers"]:
        rows = np.stack([r for d in data for r in d["parameters"][layer]])
        out[layer] = (rows.mean(axis=0, dtype=np.float64), rows.std(axis=0, dtype=np.float64))
        del rows
    return _clock() - t, out


def modelwise_q2(m: Manifest) -> tuple[float, Result]:
    import torch  # noqa: F401  (unpickling tensors needs it; its import is not timed)

    t = _clock()
    data = _load(m["modelwise"])
    by_name = {d["model"]: d for d in data}
    out = np.stack([by_name[name]["parameters_flat"].numpy() for name in m["q2"]["models"]])
    return _clock() - t, out


# -- raw memmap -------------------------------------------------------------------------------
def raw_q1(m: Manifest) -> tuple[float, Result]:
    start, stop = m["layer_slices"][m["q1"]["layer"]]
    t = _clock()
    data = np.load(m["raw"], mmap_mode="r")
    classes = np.load(m["raw_classes"])
    out = np.asarray(data[np.flatnonzero(classes == m["q1"]["cls"]), start:stop])
    return _clock() - t, out


def raw_q2(m: Manifest) -> tuple[float, Result]:
    t = _clock()
    data = np.load(m["raw"], mmap_mode="r")
    out = np.asarray(data[np.asarray(m["q2"]["positions"])])
    return _clock() - t, out


def raw_q3(m: Manifest) -> tuple[float, Result]:
    slices = m["layer_slices"]
    t = _clock()
    data = np.load(m["raw"], mmap_mode="r")
    sums: dict[str, np.ndarray] = {}
    squares: dict[str, np.ndarray] = {}
    block = max(1, (64 << 20) // (data.shape[1] * 4))  # 64 MiB of rows at a time
    for first in range(0, data.shape[0], block):
        rows = np.asarray(data[first : first + block], dtype=np.float64)
        for layer, (a, b) in slices.items():
            part = rows[:, a:b]
            if layer in sums:
                sums[layer] += part.sum(axis=0)
                squares[layer] += (part * part).sum(axis=0)
            else:
                sums[layer], squares[layer] = part.sum(axis=0), (part * part).sum(axis=0)
    out = _mean_std(sums, squares, data.shape[0])
    return _clock() - t, out


def raw_q4(m: Manifest) -> tuple[float, Result]:
    t = _clock()
    data = np.load(m["raw"], mmap_mode="r")
    out = np.array(data[m["q4"]["position"]])
    return _clock() - t, out


def raw_q5(m: Manifest) -> tuple[float, Result]:
    t = _clock()
    data = np.load(m["raw"], mmap_mode="r")
    classes = np.load(m["raw_classes"])
    return _clock() - t, np.array([min(len(data), len(classes))], dtype=np.float32)


QUERIES: dict[str, dict[str, Callable[[Manifest], tuple[float, Result]]]] = {
    "q1": {"wspace": ws_q1, "hdf5": h5_q1, "layerwise_pickle": layerwise_q1, "raw_memmap": raw_q1},
    "q2": {"wspace": ws_q2, "hdf5": h5_q2, "modelwise_pickle": modelwise_q2, "raw_memmap": raw_q2},
    "q3": {"wspace": ws_q3, "hdf5": h5_q3, "layerwise_pickle": layerwise_q3, "raw_memmap": raw_q3},
    # Q4 from the modelwise pickle would be its whole load again, as in Q2: not repeated
    "q4": {"wspace": ws_q4, "hdf5": h5_q4, "raw_memmap": raw_q4},
    "q5": {"wspace": ws_q5, "hdf5": h5_q5, "raw_memmap": raw_q5},
}
"""Query -> system -> function. Systems: wspace and its baselines."""


def summary(result: Result) -> dict[str, Any]:
    """A checksum of a query result that does not depend on parameter or row order."""
    if isinstance(result, dict):
        return {
            layer: {
                "mean": float(np.sum(a, dtype=np.float64)),
                "std": float(np.sum(b, dtype=np.float64)),
            }
            for layer, (a, b) in sorted(result.items())
        }
    array = np.asarray(result)
    return {
        "shape": list(array.shape),
        "sum": float(array.sum(dtype=np.float64)),
        "abs": float(np.abs(array).sum(dtype=np.float64)),
    }


def same(a: dict[str, Any], b: dict[str, Any], rtol: float = 1e-4) -> bool:
    """Whether two checksums agree (to ``rtol`` of their magnitude)."""
    if a.keys() != b.keys():
        return False
    for key, x in a.items():
        y = b[key]
        if isinstance(x, dict):
            if not same(x, y, rtol):
                return False
        elif isinstance(x, list):
            if x != y:
                return False
        elif abs(x - y) > rtol * max(1.0, abs(x), abs(y)):
            return False
    return True


def load_manifest(path: str | Path) -> Manifest:
    """Read the manifest written by the generator."""
    return dict(json.loads(Path(path).read_text()))
