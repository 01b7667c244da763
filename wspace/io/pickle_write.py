"""Writing the LeNet-5 pickles as streams: rows are read from the store in batches while the
pickler writes them, so memory holds one batch, never the zoo."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wspace.architectures import LENET5_LAYERS
from wspace.errors import SchemaMismatchError
from wspace.io.files import atomic_file, progress_bar
from wspace.io.keras_lenet import keras_index, split_name
from wspace.io.pickle_orders import h5_paths, layerwise_permutation, modelwise_permutation
from wspace.io.pickle_sidecar import sidecar_path, write_sidecar

if TYPE_CHECKING:
    from wspace.query import Zoo

__all__ = ["write_pickle"]


class _Streamed:
    """Pickles as a ``list`` whose items come from an iterator (pickle's ``listitems``).

    The unpickled object is a plain ``list``; the items are produced, pickled and dropped one
    at a time, so the list never exists in the writer's memory.
    """

    def __init__(self, items: Iterator[Any]) -> None:
        self.items = items

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (), None, self.items)


def _dump(path: Path, obj: Any, *, overwrite: bool) -> None:
    with atomic_file(path, overwrite=overwrite) as tmp, tmp.open("wb") as f:
        pickler = pickle.Pickler(f, protocol=4)  # protocol 4 frames flush to the file as written
        # No memo: it would keep every pickled item alive. Our data has no shared or cyclic
        # references, so nothing is lost (references are written out instead of memo lookups).
        pickler.fast = True
        pickler.dump(obj)


def _classes(zoo: Zoo) -> list[str]:
    models = zoo.models
    if "cls" in models and models["cls"].map(lambda c: isinstance(c, str) and bool(c)).all():
        return [str(c) for c in models["cls"]]
    out = []
    for name in models["model"]:
        parsed = split_name(str(name))
        if not parsed:
            raise SchemaMismatchError(
                f"store {zoo.url!r}: model {name!r} has no cls column value and its name is not "
                "'{class}_{count}'; a layerwise pickle groups models by class"
            )
        out.append(parsed["cls"])
    return out


def _modelwise_items(zoo: Zoo, batch_size: int, progress: bool) -> Iterator[dict[str, Any]]:
    import torch

    index = keras_index(zoo.layout)
    paths = h5_paths()
    perm = modelwise_permutation(zoo.layout)
    rows = progress_bar(
        zoo.rows(batch_size), enabled=progress, desc="modelwise-pickle", total=len(zoo), unit="row"
    )
    for meta, row in rows:
        by_layer = {p: torch.from_numpy(row[index[p][0]].reshape(index[p][1])) for p in paths}
        flat = torch.from_numpy(row[perm])
        yield {
            "model": str(meta["model"]),
            "parameters_by_layer": by_layer,
            "parameters_flat": flat,
        }


def _layerwise_items(
    zoo: Zoo, classes: list[str], batch_size: int, progress: bool
) -> Iterator[dict[str, Any]]:
    column = np.asarray(classes, dtype=object)
    order = list(dict.fromkeys(classes))
    bar = progress_bar(
        iter(range(len(zoo) * len(LENET5_LAYERS))),
        enabled=progress,
        desc="layerwise-pickle",
        total=len(zoo) * len(LENET5_LAYERS),
        unit="row-layer",
    )

    def layer_rows(part: Zoo, layer: str) -> Iterator[np.ndarray]:
        start = zoo.layout.layer_slice(layer).start
        perm = layerwise_permutation(zoo.layout, layer) - start
        for first in range(0, len(part), batch_size):
            block = part.isel(slice(first, first + batch_size)).layer(layer).values
            for values in block:
                next(bar, None)
                yield np.ascontiguousarray(values[perm])

    for cls in order:
        part = zoo.isel(np.flatnonzero(column == cls))
        parameters = {layer: _Streamed(layer_rows(part, layer)) for layer in LENET5_LAYERS}
        yield {"class": cls, "parameters": parameters}


def write_pickle(
    zoo: Zoo, path: Path, format: str, *, batch_rows: int, progress: bool, overwrite: bool
) -> list[Path]:
    """Stream the rows of a LeNet-5 zoo into the pickle ``path`` of ``format``.

    ``format`` is ``"modelwise-pickle"`` or ``"layerwise-pickle"``; returns the files written:
    the pickle, and for ``layerwise-pickle`` its sidecar. Layerwise classes come in the order
    of their first row in ``zoo``, models in zoo order.
    """
    if format == "modelwise-pickle":
        _dump(path, _Streamed(_modelwise_items(zoo, batch_rows, progress)), overwrite=overwrite)
        return [path]
    classes = _classes(zoo)
    models = zoo.models
    names = [str(m) for m in models["model"]]
    inferred = "names_inferred" in models and bool(models["names_inferred"].eq(True).all())
    groups: dict[str, list[str]] = {}
    for cls, name in zip(classes, names, strict=True):
        groups.setdefault(cls, []).append(name)
    side = sidecar_path(path)
    _dump(
        path, _Streamed(_layerwise_items(zoo, classes, batch_rows, progress)), overwrite=overwrite
    )
    write_sidecar(side, path.name, list(groups.items()), names_inferred=inferred)
    return [path, side]
