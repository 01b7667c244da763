"""The queries Q1-Q5 on wspace, the published formats and the physical limits.

Every system is two steps, timed apart by :mod:`benchmarks.child`: ``open`` (what a user does
once: ``wspace.open``, a glob of the HDF5 folder, ``pickle.load``, ``np.load(mmap_mode="r")``)
and the query on what ``open`` returned. A fresh process reports both: "query only" is the
query on the opened store, "end to end" is open + query (a user's first query). Imports are
never timed. The peers (Lance, Zarr by hand, safetensors) are in :mod:`benchmarks.peers`.

A query returns the system's natural result; :data:`CANONICAL` turns it, untimed, into the
rows in the zoo's row order (torch convention) with their model names, or per-layer
statistics, for the result check (:mod:`benchmarks.check`).

Queries (parameters in the manifest, :mod:`benchmarks.generate`):

* Q1 ``sel(cls=...).layer(...)`` -> numpy: one layer of one class's models.
* Q2 the full vectors of ``q2_models`` random models (by position / by name / by file).
* Q3 per-parameter mean and std of every layer over all models.
* Q4 one model's full vector by name.
* Q5 ``open()`` alone (its "query" is the row count).
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.check import Answer

__all__ = ["CANONICAL", "OPEN", "QUERIES", "load_manifest"]

Manifest = dict[str, Any]
Stats = dict[str, tuple[np.ndarray, np.ndarray]]


# -- wspace -----------------------------------------------------------------------------------
def ws_open(m: Manifest) -> Any:
    import wspace

    return wspace.open(m["store"])


def ws_q1(zoo: Any, m: Manifest) -> np.ndarray:
    return np.asarray(zoo.sel(cls=m["q1"]["cls"]).layer(m["q1"]["layer"]).values)


def ws_q2(zoo: Any, m: Manifest) -> np.ndarray:
    return np.asarray(zoo.isel(model=np.asarray(m["q2"]["positions"])).values)


def ws_q3(zoo: Any, m: Manifest) -> Stats:
    """The documented spelling: ``zoo.param_stats(layer)`` (one fused pass per layer); the
    xarray spellings (``zoo.layer(layer).mean("model")``, through Dask) are timed side by side
    in :mod:`benchmarks.spellings`."""
    out = {}
    for layer in zoo.layout.layers:
        stats = zoo.param_stats(layer)
        out[layer] = (stats["mean"].values, stats["std"].values)
    return out


def ws_q4(zoo: Any, m: Manifest) -> np.ndarray:
    return np.asarray(zoo.row(m["q4"]["model"]))


def count(handle: Any, m: Manifest) -> np.ndarray:
    """Q5's "query": the number of rows the opened store has."""
    return np.array([len(handle)], dtype=np.float32)


def raw_count(handle: tuple[Any, np.ndarray], m: Manifest) -> np.ndarray:
    """Q5's "query" on the raw files: the number of rows (of the class sidecar)."""
    return np.array([len(handle[1])], dtype=np.float32)


# -- HDF5 folder (keras-h5 as published: one full-model file per model) ------------------------
def h5_open(m: Manifest) -> list[str]:
    """The researcher's index of the folder: the file names."""
    return sorted(os.listdir(m["h5"]))


def _h5_tensors(path: str, layers: list[str]) -> dict[str, np.ndarray]:
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        for layer in layers:
            group = f[f"model_weights/{layer}/{layer}"]
            for name in ("kernel:0", "bias:0"):
                out[f"{layer}/{layer}/{name}"] = group[name][()]
    return out


def _h5_model(name: str) -> str:
    return name[len("binary_oneVall_") : -len("_model.h5")]


def h5_q1(names: list[str], m: Manifest) -> list[tuple[str, dict[str, np.ndarray]]]:
    prefix = f"binary_oneVall_{m['q1']['cls']}_"
    return [
        (_h5_model(n), _h5_tensors(os.path.join(m["h5"], n), [m["q1"]["layer"]]))
        for n in names
        if n.startswith(prefix)
    ]


def h5_q2(names: list[str], m: Manifest) -> list[tuple[str, dict[str, np.ndarray]]]:
    return [
        (_h5_model(n), _h5_tensors(os.path.join(m["h5"], n), m["layers"])) for n in m["q2"]["files"]
    ]


def h5_q3(names: list[str], m: Manifest) -> Stats:
    sums: dict[str, np.ndarray] = {}
    squares: dict[str, np.ndarray] = {}
    for n in names:
        tensors = _h5_tensors(os.path.join(m["h5"], n), m["layers"])
        for layer in m["layers"]:
            row = np.concatenate(
                [
                    tensors[f"{layer}/{layer}/bias:0"].ravel(),
                    tensors[f"{layer}/{layer}/kernel:0"].ravel(),
                ]
            ).astype(np.float64)
            if layer in sums:
                sums[layer] += row
                squares[layer] += row * row
            else:
                sums[layer], squares[layer] = row.copy(), row * row
    return mean_std(sums, squares, len(names))


def h5_q4(names: list[str], m: Manifest) -> list[tuple[str, dict[str, np.ndarray]]]:
    return [(m["q4"]["model"], _h5_tensors(os.path.join(m["h5"], m["q4"]["file"]), m["layers"]))]


def mean_std(sums: Stats | dict[str, np.ndarray], squares: dict[str, np.ndarray], n: int) -> Stats:
    """Per-parameter mean and (population) std from float64 sums and sums of squares."""
    out = {}
    for layer, total in sums.items():
        mean = np.asarray(total) / n
        out[layer] = (mean, np.sqrt(np.maximum(squares[layer] / n - mean * mean, 0)))
    return out


# -- pickles (opening a pickle is loading it) -------------------------------------------------
def _load(path: str) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)


def layerwise_open(m: Manifest) -> Any:
    return _load(m["layerwise"])


def layerwise_q1(data: Any, m: Manifest) -> np.ndarray:
    entry = next(d for d in data if d["class"] == m["q1"]["cls"])
    return np.stack(entry["parameters"][m["q1"]["layer"]])


def layerwise_q3(data: Any, m: Manifest) -> Stats:
    out = {}
    for layer in m["layers"]:
        rows = np.stack([r for d in data for r in d["parameters"][layer]])
        out[layer] = (rows.mean(axis=0, dtype=np.float64), rows.std(axis=0, dtype=np.float64))
        del rows
    return out


def modelwise_open(m: Manifest) -> Any:
    import torch  # noqa: F401  (unpickling tensors needs it; its import is not timed)

    data = _load(m["modelwise"])
    return {d["model"]: d for d in data}


def modelwise_q2(by_name: Any, m: Manifest) -> np.ndarray:
    return np.stack([by_name[name]["parameters_flat"].numpy() for name in m["q2"]["models"]])


def modelwise_q4(by_name: Any, m: Manifest) -> np.ndarray:
    return np.asarray(by_name[m["q4"]["model"]]["parameters_flat"].numpy())[None]


# -- physical limits: raw float32 .npy through a memory map -----------------------------------
def raw_open(m: Manifest) -> tuple[np.ndarray, np.ndarray]:
    return np.load(m["raw"], mmap_mode="r"), np.load(m["raw_classes"])


def raw_q1(h: tuple[np.ndarray, np.ndarray], m: Manifest) -> np.ndarray:
    data, classes = h
    start, stop = m["layer_slices"][m["q1"]["layer"]]
    return np.asarray(data[np.flatnonzero(classes == m["q1"]["cls"]), start:stop])


def raw_q2(h: tuple[np.ndarray, np.ndarray], m: Manifest) -> np.ndarray:
    return np.asarray(h[0][np.asarray(m["q2"]["positions"])])


def _scan(blocks: Any, slices: dict[str, tuple[int, int]], n: int) -> Stats:
    sums: dict[str, np.ndarray] = {}
    squares: dict[str, np.ndarray] = {}
    for rows in blocks:
        for layer, (a, b) in slices.items():
            part = np.asarray(rows[:, a:b], dtype=np.float64)
            if layer in sums:
                sums[layer] += part.sum(axis=0)
                squares[layer] += (part * part).sum(axis=0)
            else:
                sums[layer], squares[layer] = part.sum(axis=0), (part * part).sum(axis=0)
    return mean_std(sums, squares, n)


def raw_q3(h: tuple[np.ndarray, np.ndarray], m: Manifest) -> Stats:
    data = h[0]
    block = max(1, (64 << 20) // (data.shape[1] * 4))  # 64 MiB of rows at a time
    blocks = (data[first : first + block] for first in range(0, data.shape[0], block))
    return _scan(blocks, {k: tuple(v) for k, v in m["layer_slices"].items()}, data.shape[0])


def raw_q4(h: tuple[np.ndarray, np.ndarray], m: Manifest) -> np.ndarray:
    names = json.loads(Path(m["raw"]).with_suffix(".models.json").read_text())
    return np.array(h[0][names.index(m["q4"]["model"])])[None]


def layers_open(m: Manifest) -> tuple[dict[str, np.ndarray], np.ndarray]:
    folder = m["raw_layers"]
    arrays = {layer: np.load(f"{folder}/{layer}.npy", mmap_mode="r") for layer in m["layers"]}
    return arrays, np.load(f"{folder}/classes.npy")


def layers_q1(h: tuple[dict[str, np.ndarray], np.ndarray], m: Manifest) -> np.ndarray:
    arrays, classes = h
    return np.asarray(arrays[m["q1"]["layer"]][np.flatnonzero(classes == m["q1"]["cls"])])


def layers_q2(h: tuple[dict[str, np.ndarray], np.ndarray], m: Manifest) -> np.ndarray:
    at = np.asarray(m["q2"]["positions"])
    return np.concatenate([np.asarray(h[0][layer][at]) for layer in m["layers"]], axis=1)


def layers_q3(h: tuple[dict[str, np.ndarray], np.ndarray], m: Manifest) -> Stats:
    out: Stats = {}
    for layer, data in h[0].items():
        block = max(1, (64 << 20) // (data.shape[1] * 4))
        blocks = (data[first : first + block] for first in range(0, data.shape[0], block))
        out.update(_scan(blocks, {layer: (0, data.shape[1])}, data.shape[0]))
    return out


def layers_q4(h: tuple[dict[str, np.ndarray], np.ndarray], m: Manifest) -> np.ndarray:
    names = json.loads(Path(m["raw_layers"], "models.json").read_text())
    at = names.index(m["q4"]["model"])
    return np.concatenate([np.asarray(h[0][layer][at]) for layer in m["layers"]])[None]


# -- registry ---------------------------------------------------------------------------------
Query = Callable[[Any, Manifest], Any]

OPEN: dict[str, Callable[[Manifest], Any]] = {
    "wspace": ws_open,
    "hdf5": h5_open,
    "layerwise_pickle": layerwise_open,
    "modelwise_pickle": modelwise_open,
    "raw_rows": raw_open,
    "raw_layers": layers_open,
}
"""System -> ``open(manifest)``; :mod:`benchmarks.peers` adds the peers."""

QUERIES: dict[str, dict[str, Query]] = {
    "q1": {
        "wspace": ws_q1,
        "hdf5": h5_q1,
        "layerwise_pickle": layerwise_q1,
        "raw_rows": raw_q1,
        "raw_layers": layers_q1,
    },
    "q2": {
        "wspace": ws_q2,
        "hdf5": h5_q2,
        "modelwise_pickle": modelwise_q2,
        "raw_rows": raw_q2,
        "raw_layers": layers_q2,
    },
    "q3": {
        "wspace": ws_q3,
        "hdf5": h5_q3,
        "layerwise_pickle": layerwise_q3,
        "raw_rows": raw_q3,
        "raw_layers": layers_q3,
    },
    "q4": {
        "wspace": ws_q4,
        "hdf5": h5_q4,
        "modelwise_pickle": modelwise_q4,
        "raw_rows": raw_q4,
        "raw_layers": layers_q4,
    },
    "q5": {"wspace": count, "hdf5": count, "raw_rows": raw_count, "raw_layers": raw_count},
}
"""Query -> system -> ``query(opened, manifest)``."""


# -- canonical answers (untimed) --------------------------------------------------------------
def _names(m: Manifest, q: str) -> list[str]:
    names = {"q1": m["q1"]["models"], "q2": m["q2"]["models"], "q4": [m["q4"]["model"]]}[q]
    return [str(n) for n in names]


def zoo_order(m: Manifest, q: str, result: Any) -> Answer:
    """A result in zoo order and torch row order (wspace, raw files, Lance, Zarr)."""
    if isinstance(result, dict):
        return Answer(stats=result)
    rows = np.asarray(result, dtype=np.float32)
    if q == "q5":
        return Answer(rows=rows.reshape(1, -1), names=["count"])
    return Answer(rows=rows.reshape(len(_names(m, q)), -1), names=_names(m, q))


def _keras(m: Manifest) -> Any:
    from wspace.io.keras_h5 import keras_index
    from wspace.layout import Layout

    return keras_index(Layout.from_dict(m["layout_dict"]))


def _layer_perm(m: Manifest, layer: str) -> np.ndarray:
    from wspace.io.pickles import layerwise_permutation
    from wspace.layout import Layout

    return np.asarray(
        layerwise_permutation(Layout.from_dict(m["layout_dict"]), layer)
        - m["layer_slices"][layer][0]
    )


def _columns(m: Manifest, q: str) -> tuple[int, int]:
    return tuple(m["layer_slices"][m["q1"]["layer"]]) if q == "q1" else (0, m["params"])


def keras_files(m: Manifest, q: str, result: Any) -> Answer:
    """HDF5 results (Keras tensors per model, in file-name order) -> torch rows."""
    if isinstance(result, dict) or q == "q5":
        if isinstance(result, dict):
            return keras_layers(m, q, result)
        return zoo_order(m, q, result)
    index = _keras(m)
    start, stop = _columns(m, q)
    rows = np.zeros((len(result), m["params"]), dtype=np.float32)
    for i, (_, tensors) in enumerate(result):
        for path, value in tensors.items():
            rows[i, index[path][0]] = value.ravel()
    return Answer(rows=rows[:, start:stop], names=[name for name, _ in result])


def keras_layers(m: Manifest, q: str, result: Any) -> Answer:
    """Layerwise (bias, then Keras kernel) rows or statistics -> torch order."""
    if isinstance(result, dict):
        out: Stats = {}
        for layer, stats in result.items():
            perm = _layer_perm(m, layer)
            fixed = []
            for value in stats:
                v = np.empty_like(np.asarray(value))
                v[perm] = value
                fixed.append(v)
            out[layer] = (fixed[0], fixed[1])
        return Answer(stats=out)
    rows = np.empty_like(np.asarray(result))
    rows[:, _layer_perm(m, m["q1"]["layer"])] = result
    return Answer(rows=rows, names=_names(m, q))


def keras_flat(m: Manifest, q: str, result: Any) -> Answer:
    """Modelwise ``parameters_flat`` rows -> torch rows."""
    from wspace.io.pickles import modelwise_permutation
    from wspace.layout import Layout

    perm = modelwise_permutation(Layout.from_dict(m["layout_dict"]))
    rows = np.empty_like(np.asarray(result))
    rows[:, perm] = result
    return Answer(rows=rows, names=_names(m, q))


CANONICAL: dict[str, Callable[[Manifest, str, Any], Answer]] = {
    "wspace": zoo_order,
    "hdf5": keras_files,
    "layerwise_pickle": keras_layers,
    "modelwise_pickle": keras_flat,
    "raw_rows": zoo_order,
    "raw_layers": zoo_order,
}
"""System -> ``canonical(manifest, query, result)`` (untimed)."""


def load_manifest(path: str | Path) -> Manifest:
    """Read the manifest written by the generator."""
    return dict(json.loads(Path(path).read_text()))
