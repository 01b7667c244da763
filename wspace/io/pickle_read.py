"""Reading the LeNet-5 pickles: every item of an unpickled modelwise or layerwise pickle
checked (structure, shapes, dtypes, finiteness) and turned into per-model tensors."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wspace.architectures import LENET5_LAYERS, lenet5_keras_layout
from wspace.errors import NonFiniteWeightsError, SchemaMismatchError, listing
from wspace.io.keras_lenet import split_name
from wspace.io.pickle_orders import h5_paths
from wspace.io.pickle_sidecar import read_sidecar, sidecar_path
from wspace.store.rows import NONFINITE_HINT

__all__ = ["check_finite", "drain", "layerwise_rows", "modelwise_rows"]


def _dict_with(obj: Any, keys: Sequence[str], what: str) -> dict[str, Any]:
    """``obj`` if it is a dict with exactly ``keys``; else an error ``what`` and what was found
    instead (a dict's keys or the type's name)."""
    if not isinstance(obj, dict) or set(obj) != set(keys):
        found = f"dict with keys {listing(obj)}" if isinstance(obj, dict) else type(obj).__name__
        raise SchemaMismatchError(f"{what}; got a {found}")
    return obj


def _tensor(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        if value.dtype != torch.float32:
            raise SchemaMismatchError(f"{what} is a {value.dtype} tensor, not float32")
        array = value.detach().cpu().numpy()
    elif isinstance(value, np.ndarray):
        if value.dtype != np.float32:
            raise SchemaMismatchError(f"{what} is a {value.dtype} array, not float32")
        array = value
    else:
        raise SchemaMismatchError(f"{what} is a {type(value).__name__}, not a tensor or array")
    if tuple(array.shape) != shape:
        raise SchemaMismatchError(f"{what} has shape {tuple(array.shape)}, not {shape}")
    return array


def _items(data: Any, where: str, kind: str, keys: list[str]) -> Iterator[tuple[int, Any]]:
    """``(i, item)`` of a pickle's list (checked at once), each item a dict with exactly
    ``keys`` (checked when reached) and released from the list once taken."""
    if not isinstance(data, list):
        raise SchemaMismatchError(
            f"{where}: a {kind} pickle holds a list of dicts, not a {type(data).__name__}"
        )

    def items() -> Iterator[tuple[int, Any]]:
        for i, item in enumerate(drain(data)):
            yield i, _dict_with(item, keys, f"{where}: item {i} must be a dict with keys {keys}")

    return items()


def modelwise_rows(data: Any, where: str) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """``(model, {h5 path: Keras-shaped array})`` of each item of an unpickled modelwise pickle.

    Each item is checked when reached (keys, name, shapes, float32, and ``parameters_flat``
    against ``parameters_by_layer``); a bad one raises :class:`SchemaMismatchError` naming
    ``where`` and the model. The items are released from ``data`` as they are taken.
    """
    shapes = {t.source_name: t.shape for t in lenet5_keras_layout()}
    paths = h5_paths()
    keys = ["model", "parameters_by_layer", "parameters_flat"]
    for i, item in _items(data, where, "modelwise", keys):
        model = item["model"]
        if not isinstance(model, str) or not model:
            raise SchemaMismatchError(f"{where}: item {i} has model {model!r}, not a name")
        must = f"{where}: model {model!r}: parameters_by_layer must map the h5 paths"
        by_layer = _dict_with(item["parameters_by_layer"], paths, f"{must} {listing(paths)}")
        tensors = {
            p: _tensor(by_layer[p], shapes[p], f"{where}: model {model!r}: {p}") for p in paths
        }
        size = sum(int(np.prod(s)) for s in shapes.values())
        flat = _tensor(
            item["parameters_flat"], (size,), f"{where}: model {model!r}: parameters_flat"
        )
        expected = np.concatenate([tensors[p].ravel() for p in paths])
        if not np.array_equal(flat.view(np.uint32), expected.view(np.uint32)):
            raise SchemaMismatchError(
                f"{where}: model {model!r}: parameters_flat is not the concatenation of "
                "parameters_by_layer in h5 order"
            )
        yield model, tensors


def _class_rows(
    data: Any, where: str, names: dict[str, list[str]] | None
) -> Iterator[tuple[str, str, dict[str, np.ndarray]]]:
    items = _items(data, where, "layerwise", ["class", "parameters"])
    layout = lenet5_keras_layout()
    if names is not None:
        present = {item.get("class") for item in data if isinstance(item, dict)}
        if set(names) - present:
            raise SchemaMismatchError(
                f"{where}: the sidecar names class(es) {listing(sorted(set(names) - present))} "
                "that the pickle does not have"
            )
    seen: set[str] = set()
    for i, item in items:
        cls, parameters = item["class"], item["parameters"]
        if not isinstance(cls, str) or not cls or cls in seen:
            raise SchemaMismatchError(f"{where}: item {i} has class {cls!r} (empty or repeated)")
        seen.add(cls)
        must = f"{where}: class {cls!r}: parameters must map the layers {listing(LENET5_LAYERS)}"
        parameters = _dict_with(parameters, LENET5_LAYERS, must)
        counts = {
            layer: len(rows) if isinstance(rows, list) else -1 for layer, rows in parameters.items()
        }
        if len(set(counts.values())) != 1 or -1 in counts.values():
            raise SchemaMismatchError(
                f"{where}: class {cls!r}: every layer needs a list with one array per model; "
                f"got row counts {counts}"
            )
        n = counts[LENET5_LAYERS[0]]
        models = [f"{cls}_{j}" for j in range(n)] if names is None else names.get(cls)
        if models is None or len(models) != n:
            got = "no entry" if models is None else f"{len(models)} names"
            raise SchemaMismatchError(
                f"{where}: class {cls!r} has {n} rows but its sidecar has {got}"
            )
        for j, model in enumerate(models):
            tensors: dict[str, np.ndarray] = {}
            for layer in LENET5_LAYERS:
                bias, kernel = (layout[f"{layer}/bias"], layout[f"{layer}/kernel"])
                what = f"{where}: class {cls!r} row {j} of {layer!r}"
                row = _tensor(parameters[layer][j], (bias.size + kernel.size,), what)
                parameters[layer][j] = None
                tensors[bias.source_name] = row[: bias.size]
                tensors[kernel.source_name] = row[bias.size :].reshape(kernel.shape)
            yield cls, model, tensors


def drain(items: list[Any]) -> Iterator[Any]:
    """The items of a list, each released from it once taken."""
    for i in range(len(items)):
        item, items[i] = items[i], None
        yield item


def check_finite(rows: list[tuple[str, Any, dict[str, np.ndarray]]], where: str) -> None:
    """Raise :class:`NonFiniteWeightsError` naming the model and tensor of a NaN or infinity
    in ``(model, meta, tensors)`` rows."""
    for model, _meta, tensors in rows:
        for path, array in tensors.items():
            bad = int(np.count_nonzero(~np.isfinite(array)))
            if bad:
                raise NonFiniteWeightsError(
                    f"{where}: model {model!r}: {bad} non-finite value(s) in {path}; "
                    + NONFINITE_HINT
                )


def layerwise_rows(
    data: Any, where: str, path: Path, sidecar: str | os.PathLike[str] | None
) -> Iterator[tuple[str, dict[str, Any], dict[str, np.ndarray]]]:
    """``(model, metadata, {h5 path: array})`` of each model of an unpickled layerwise pickle.

    Model names come from ``sidecar`` (default: :func:`sidecar_path` of ``path`` when it
    exists); without one they are ``{class}_{i}`` and the metadata says ``names_inferred``.
    Each class and row is checked when reached (a bad one raises :class:`SchemaMismatchError`
    naming ``where``) and released from ``data``.
    """
    side = Path(sidecar) if sidecar is not None else sidecar_path(path)
    names: dict[str, list[str]] | None = None
    inferred = True
    if sidecar is not None or side.exists():
        names, inferred = read_sidecar(side)
    for cls, model, tensors in _class_rows(data, where, names):
        meta: dict[str, Any] = {"cls": cls}
        parsed = split_name(model)
        if not inferred and parsed.get("cls") == cls:
            meta["count"] = parsed["count"]
        if inferred:
            meta["names_inferred"] = True
        yield model, meta, tensors
