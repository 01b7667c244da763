"""Writers of the baselines: the published formats (docs/formats.md) and the raw reference.

Every writer has the signature of :func:`wspace.io.export_zoo` — ``write(zoo, dst, fmt)`` —
and writes the rows of a wspace :class:`~wspace.Zoo`, so the benchmark exports its store the
way a user would.

INTERIM: ``wspace.io.keras_h5`` and ``wspace.io.pickles`` are being written in other branches.
Until they land, :data:`EXPORTERS` points at the small writers below, which produce the same
structure with h5py and pickle (per-model Keras 2 files without optimizer state, as
``wspace.io.keras_h5`` writes them — smaller than the published 1.1 MB files, so the HDF5
baseline is, if anything, flattered). Switching is one line per format::

    EXPORTERS["keras-h5"] = functools.partial(wspace.io.export_zoo, fmt="keras-h5", progress=False)

(and likewise ``modelwise-pickle``, ``layerwise-pickle``). The interim writers also handle the
scale test's ``lenet5-small`` layout, which the real exporters refuse (they write LeNet-5 only).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wspace.layout import Layout
from wspace.query import Zoo

__all__ = ["EXPORTERS", "h5_file_name", "keras_tensors", "write_raw"]

LAYER_NAMES = (
    "conv2d",
    "average_pooling2d",
    "conv2d_1",
    "average_pooling2d_1",
    "conv2d_2",
    "flatten",
    "dense",
    "dense_1",
)
BATCH = 256


def h5_file_name(cls: str, count: int) -> str:
    """``binary_oneVall_{class}_{count}_model.h5``."""
    return f"binary_oneVall_{cls}_{count}_model.h5"


def keras_tensors(layout: Layout) -> dict[str, tuple[np.ndarray, tuple[int, ...]]]:
    """``{h5 path under model_weights: (flat index, Keras shape)}``, kernel then bias per layer.

    ``row[index].reshape(shape)`` is the Keras tensor of a torch-convention row.
    """
    out: dict[str, tuple[np.ndarray, tuple[int, ...]]] = {}
    for layer in layout.layers:
        for param in ("kernel", "bias"):
            spec, index, shape = layout.view(f"{layer}/{param}")
            out[f"{layer}/{layer}/{param}:0"] = (spec.offset + np.asarray(index), tuple(shape))
    return out


def _rows(zoo: Zoo) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    return zoo.rows(BATCH)


def _model_config(layout: Layout) -> str:
    layers = [
        {"class_name": "Conv2D" if name.startswith("conv") else "Dense", "config": {"name": name}}
        for name in layout.layers
    ]
    return json.dumps(
        {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}
    )


def export_keras_h5(zoo: Zoo, dst: str | Path, fmt: str = "keras-h5") -> list[Path]:
    """INTERIM Keras 2 full-model HDF5 files, one per row (no optimizer state)."""
    folder = Path(dst)
    folder.mkdir(parents=True, exist_ok=True)
    index = keras_tensors(zoo.layout)
    config = _model_config(zoo.layout)
    written = []
    for meta, row in _rows(zoo):
        path = folder / h5_file_name(str(meta["cls"]), int(meta["count"]))
        with h5py.File(path, "w") as f:
            f.attrs["keras_version"] = "2.15.0"
            f.attrs["backend"] = "tensorflow"
            f.attrs["model_config"] = config
            root = f.create_group("model_weights")
            root.attrs["layer_names"] = [n.encode() for n in LAYER_NAMES]
            root.attrs["backend"] = b"tensorflow"
            root.attrs["keras_version"] = b"2.15.0"
            for layer in sorted(LAYER_NAMES):
                group = root.create_group(layer)
                weighted = layer in zoo.layout.layers
                params = ("kernel", "bias") if weighted else ()
                group.attrs["weight_names"] = [f"{layer}/{p}:0".encode() for p in params]
                for p in params:
                    flat, shape = index[f"{layer}/{layer}/{p}:0"]
                    group.create_dataset(f"{layer}/{p}:0", data=row[flat].reshape(shape))
        written.append(path)
    return written


def _bias_kernel(
    index: dict[str, tuple[np.ndarray, tuple[int, ...]]], row: np.ndarray, layer: str
) -> tuple[np.ndarray, np.ndarray]:
    kernel, kshape = index[f"{layer}/{layer}/kernel:0"]
    bias, bshape = index[f"{layer}/{layer}/bias:0"]
    return row[bias].reshape(bshape), row[kernel].reshape(kshape)


def export_modelwise_pickle(zoo: Zoo, dst: str | Path, fmt: str = "modelwise-pickle") -> list[Path]:
    """INTERIM modelwise pickle: a list of ``{model, parameters_by_layer, parameters_flat}``.

    Tensors are torch tensors in Keras shapes; ``parameters_by_layer`` is keyed by the h5 path
    in h5py's alphabetical order (bias before kernel), ``parameters_flat`` concatenates them.
    """
    import torch

    path = Path(dst)
    path.parent.mkdir(parents=True, exist_ok=True)
    index = keras_tensors(zoo.layout)
    paths = sorted(index)

    def items() -> Iterator[dict[str, Any]]:
        for meta, row in _rows(zoo):
            by_layer = {p: torch.from_numpy(row[index[p][0]].reshape(index[p][1])) for p in paths}
            flat = torch.cat([t.reshape(-1) for t in by_layer.values()])
            yield {
                "model": str(meta["model"]),
                "parameters_by_layer": by_layer,
                "parameters_flat": flat,
            }

    _dump(path, _Streamed(items()))
    return [path]


def export_layerwise_pickle(zoo: Zoo, dst: str | Path, fmt: str = "layerwise-pickle") -> list[Path]:
    """INTERIM layerwise pickle: per class ``{class, parameters: {layer: [rows]}}``.

    Each row is ``concatenate(bias.ravel(), kernel.ravel())`` of one model (Keras shapes),
    models in zoo order, classes in order of first appearance.
    """
    path = Path(dst)
    path.parent.mkdir(parents=True, exist_ok=True)
    index = keras_tensors(zoo.layout)
    classes = zoo.models["cls"].to_numpy(dtype=object)
    order = list(dict.fromkeys(classes.tolist()))
    perms = {}
    for layer in zoo.layout.layers:
        kernel, _ = index[f"{layer}/{layer}/kernel:0"]
        bias, _ = index[f"{layer}/{layer}/bias:0"]
        perms[layer] = np.concatenate([bias, kernel])

    def layer_rows(part: Zoo, layer: str) -> Iterator[np.ndarray]:
        start = zoo.layout.layer_slice(layer).start
        for first in range(0, len(part), BATCH):
            block = part.isel(slice(first, first + BATCH)).layer(layer).values
            for row in block:
                yield np.ascontiguousarray(row[perms[layer] - start])

    def items() -> Iterator[dict[str, Any]]:
        for cls in order:
            part = zoo.isel(np.flatnonzero(classes == cls))
            parameters = {layer: _Streamed(layer_rows(part, layer)) for layer in zoo.layout.layers}
            yield {"class": cls, "parameters": parameters}

    _dump(path, _Streamed(items()))
    return [path]


class _Streamed:
    """Pickles as a ``list`` whose items are produced one at a time (never all in memory)."""

    def __init__(self, items: Iterator[Any]) -> None:
        self.items = items

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (), None, self.items)


def _dump(path: Path, obj: Any) -> None:
    with path.open("wb") as f:
        pickler = pickle.Pickler(f, protocol=4)
        pickler.fast = True  # no memo: items are dropped once written
        pickler.dump(obj)


def write_raw(zoo: Zoo, dst: str | Path) -> list[Path]:
    """The physical-limit reference: one float32 ``.npy`` (rows in zoo order) + class sidecar.

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


Exporter = Callable[[Zoo, Path], list[Path]]

EXPORTERS: dict[str, Exporter] = {
    # INTERIM: replace each by functools.partial(wspace.io.export_zoo, fmt=..., progress=False)
    "keras-h5": export_keras_h5,
    "modelwise-pickle": export_modelwise_pickle,
    "layerwise-pickle": export_layerwise_pickle,
}
"""Format name (as in :data:`wspace.io.FORMATS`) -> ``write(zoo, dst)``."""
