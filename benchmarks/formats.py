"""Writers of everything the benchmark compares wspace with, from one wspace store.

* **Published formats, through wspace's own exporters** (:func:`wspace.io.export_zoo`):
  ``keras-h5`` (one full-model Keras 2 file per model), ``modelwise-pickle`` and
  ``layerwise-pickle``. The exporter writes Keras files without ``optimizer_weights`` (Keras
  loads them compiled with a fresh optimizer, ~390 KB each); the published files carry the Adam
  state (``optimizer_weights/Adam/{m,v}/...`` and ``iteration:0``, 1,148,016 bytes each), so
  :func:`add_optimizer_state` adds it the way Keras 2.15 lays it out: the HDF5 baseline then
  reads files of the published size. Both sizes are reported (Q7).
* **Physical limits:** :func:`write_raw` (one row-major float32 ``.npy``, rows in zoo order)
  and :func:`write_raw_layers` (one float32 ``.npy`` per layer: the columnar limit of a layer
  scan), both read through ``np.load(mmap_mode="r")``.
* **Peers** a user would pick instead of wspace: :mod:`benchmarks.peer_writers`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from wspace.query import Zoo

__all__ = [
    "BATCH",
    "EXPORTERS",
    "add_optimizer_state",
    "h5_file_name",
    "write_raw",
    "write_raw_layers",
]

BATCH = 256
"""Rows read from the store at once by every writer here."""


def h5_file_name(cls: str, count: int) -> str:
    """``binary_oneVall_{class}_{count}_model.h5``."""
    return f"binary_oneVall_{cls}_{count}_model.h5"


def _export(fmt: str) -> Callable[[Zoo, Path], list[Path]]:
    def export(zoo: Zoo, dst: Path) -> list[Path]:
        from wspace.io import export_zoo

        return export_zoo(zoo, dst, fmt, progress=False)

    export.__name__ = f"export_{fmt.replace('-', '_')}"
    return export


EXPORTERS: dict[str, Callable[[Zoo, Path], list[Path]]] = {
    fmt: _export(fmt) for fmt in ("keras-h5", "modelwise-pickle", "layerwise-pickle")
}
"""Format name (as in :data:`wspace.io.FORMATS`) -> ``write(zoo, dst)`` through wspace.io."""


def add_optimizer_state(files: list[Path], seed: int = 0) -> None:
    """Add Keras 2.15's Adam state to full-model files, as the published zoo's files have it.

    Writes ``optimizer_weights/Adam/m/<layer>/<param>:0`` and ``.../v/...`` (first and second
    moment, the shapes of the weights, float32) and ``iteration:0`` (int64), with the
    ``weight_names`` attribute in Keras' order. Values are synthetic (small, like Adam's after
    a few epochs): what matters here is the bytes a reader has to skip.
    """
    rng = np.random.default_rng(seed)
    for path in files:
        with h5py.File(path, "r+") as f:
            weights: list[tuple[str, tuple[int, ...]]] = []
            root = f["model_weights"]
            for layer in root.attrs["layer_names"]:
                name = layer.decode() if isinstance(layer, bytes) else str(layer)
                for w in root[name].attrs["weight_names"]:
                    w = w.decode() if isinstance(w, bytes) else str(w)
                    weights.append((w, root[name][w].shape))
            group = f.create_group("optimizer_weights")
            names = ["iteration:0"]
            group.create_dataset("iteration:0", data=np.int64(800))
            for w, shape in weights:
                for moment, scale in (("m", 1e-3), ("v", 1e-6)):
                    value = np.abs(rng.standard_normal(shape, dtype=np.float32)) * scale
                    group.create_dataset(f"Adam/{moment}/{w}", data=value)
                    names.append(f"Adam/{moment}/{w}")
            # Keras lists m and v of each weight together: kernel m, kernel v, bias m, bias v
            group.attrs["weight_names"] = [n.encode() for n in names]


def write_raw(zoo: Zoo, dst: str | Path) -> list[Path]:
    """The row-major limit: one float32 ``.npy`` (rows in zoo order) + class and name sidecars.

    ``dst`` is the ``.npy`` path; ``<stem>.classes.npy`` holds each row's class name and
    ``<stem>.models.json`` the model names.
    """
    path = Path(dst)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float32, shape=(len(zoo), zoo.layout.size)
    )
    for first in range(0, len(zoo), BATCH):
        block = zoo.isel(slice(first, first + BATCH)).values
        out[first : first + len(block)] = block
    out.flush()
    del out
    models = zoo.models
    classes = path.with_suffix(".classes.npy")
    np.save(classes, models["cls"].to_numpy(dtype=str))
    names = path.with_suffix(".models.json")
    names.write_text(json.dumps(models["model"].tolist()))
    return [path, classes, names]


def write_raw_layers(zoo: Zoo, dst: str | Path) -> list[Path]:
    """The columnar limit: ``dst/<layer>.npy`` (float32, rows in zoo order) per layer.

    Plus ``dst/classes.npy`` and ``dst/models.json`` as in :func:`write_raw`.
    """
    folder = Path(dst)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for layer in zoo.layout.layers:
        path = folder / f"{layer}.npy"
        size = zoo.layout.layer_size(layer)
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(zoo), size))
        for first in range(0, len(zoo), 4 * BATCH):
            block = zoo.isel(slice(first, first + 4 * BATCH)).layer(layer).values
            out[first : first + len(block)] = block
        out.flush()
        del out
        written.append(path)
    models = zoo.models
    np.save(folder / "classes.npy", models["cls"].to_numpy(dtype=str))
    (folder / "models.json").write_text(json.dumps(models["model"].tolist()))
    return [*written, folder / "classes.npy", folder / "models.json"]
