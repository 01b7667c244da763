"""Formats ``modelwise-pickle`` and ``layerwise-pickle``: the LeNet-5 pickles (docs/formats.md).

``modelwise-pickle`` — ``lenet5_onevall_wghts_bymodel_{YYYYmmdd_HHMMSS}.pkl``, a ``list`` of
``dict(model=str, parameters_by_layer={h5 path: torch.Tensor}, parameters_flat=torch.Tensor)``:
h5 paths in h5py's (alphabetical) order, so each layer's bias precedes its kernel, Keras shapes,
float32, and ``parameters_flat`` their C-order concatenation (91,481 values; the first 6 are
conv2d's bias). ``parameters_flat == row[modelwise_permutation(zoo.layout)]`` for a zoo row.

``layerwise-pickle`` — ``lenet5_onevall_wghts_bylayer_class_{YYYYmmdd_HHMMSS}.pkl``, a ``list``
with one ``dict(class=str, parameters={layer: [np.ndarray, ...]})`` per class; each array is
``concatenate(bias.ravel(), kernel.ravel())`` of one model, in the class's model order. The
model names go to a sidecar ``<same stem>.models.json`` (see :func:`write_sidecar`).

Pickles are read with :mod:`wspace.io.safe_pickle` (no code from the file runs). Exports stream:
rows are read from the store in batches while the pickler writes them (lists are pickled from
iterators, without a memo), so memory holds one batch, never the zoo. Imports must unpickle the
whole file first (a pickle cannot be read piecewise); rows are then appended one at a time and
released.

Examples
--------
>>> import tempfile, wspace
>>> from wspace.io import export_zoo, import_zoo
>>> from wspace.testing import tiny_zoo
>>> zoo = wspace.open(tiny_zoo("memory://doc-pickles", n_models=3))
>>> [path] = export_zoo(zoo, tempfile.mkdtemp(), "modelwise-pickle", progress=False)
>>> path.name.startswith("lenet5_onevall_wghts_bymodel_")
True
>>> _ = import_zoo("modelwise-pickle", path, "memory://doc-pickles-back", progress=False)
>>> wspace.open("memory://doc-pickles-back").models.model.tolist()
['church_0', 'tench_1', 'church_2']
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wspace.architectures import LENET5_LAYERS, lenet5_keras_layout
from wspace.errors import (
    CorruptDataError,
    NonFiniteWeightsError,
    SchemaMismatchError,
    WspaceError,
    listing,
)
from wspace.io.builtin_lenet import LAYERWISE_PREFIX, MODELWISE_PREFIX
from wspace.io.files import atomic_file, progress_bar, source_files, timestamp
from wspace.io.keras_h5 import keras_index, split_name, target_layout, to_row
from wspace.io.options import expect_format, option_bool, option_int
from wspace.io.row_files import one_row_per_model
from wspace.io.safe_pickle import load
from wspace.io.session import ImportSession
from wspace.io.values import refuse_repeats
from wspace.layout import Layout
from wspace.store.rows import NONFINITE_HINT

if TYPE_CHECKING:
    from wspace.io.format import ImportReport
    from wspace.query import Zoo
    from wspace.store.backend import StoreLike

__all__ = [
    "LAYERWISE_PREFIX",
    "MODELWISE_PREFIX",
    "export_zoo",
    "h5_paths",
    "import_zoo",
    "layerwise_permutation",
    "modelwise_permutation",
    "read_sidecar",
    "sidecar_path",
    "write_sidecar",
]

SIDECAR_FORMAT = "wspace layerwise-pickle model names"
_FORMATS = ("modelwise-pickle", "layerwise-pickle")
_PREFIX = {"modelwise-pickle": MODELWISE_PREFIX, "layerwise-pickle": LAYERWISE_PREFIX}


# -- orders -----------------------------------------------------------------------------------
def h5_paths() -> list[str]:
    """The LeNet-5 h5 paths in h5py's order (groups, then datasets, by name: bias first).

    Examples
    --------
    >>> h5_paths()[:3]
    ['conv2d/conv2d/bias:0', 'conv2d/conv2d/kernel:0', 'conv2d_1/conv2d_1/bias:0']
    """
    return sorted((t.source_name for t in lenet5_keras_layout()), key=lambda p: p.split("/"))


def modelwise_permutation(layout: Layout) -> np.ndarray:
    """Indices ``perm`` with ``parameters_flat == row[perm]`` for a row of a LeNet-5 zoo.

    ``layout`` is the zoo's (torch ``lenet5`` or Keras ``lenet5-keras``); the permutation puts
    each Keras tensor (converted from torch where needed, see :func:`~wspace.io.keras_h5.
    keras_index`) in :func:`h5_paths` order.

    Examples
    --------
    >>> import numpy as np
    >>> from wspace.architectures import lenet5_keras_layout, lenet5_layout
    >>> perm = modelwise_permutation(lenet5_keras_layout())
    >>> perm[:6].tolist() == list(range(450, 456))  # conv2d's bias comes first
    True
    >>> sorted(modelwise_permutation(lenet5_layout())) == list(range(91481))
    True
    """
    index = keras_index(layout)
    return np.concatenate([index[path][0] for path in h5_paths()])


def layerwise_permutation(layout: Layout, layer: str) -> np.ndarray:
    """Indices ``perm`` with ``layerwise array == row[perm]``: ``layer``'s bias, then kernel.

    Examples
    --------
    >>> from wspace.architectures import lenet5_keras_layout
    >>> layerwise_permutation(lenet5_keras_layout(), "dense_1").tolist()[:2]
    [91480, 91396]
    """
    index = keras_index(layout)
    return np.concatenate(
        [index[f"{layer}/{layer}/bias:0"][0], index[f"{layer}/{layer}/kernel:0"][0]]
    )


# -- sidecar ----------------------------------------------------------------------------------
def sidecar_path(pickle_path: str | os.PathLike[str]) -> Path:
    """The sidecar of a layerwise pickle: same folder and stem, suffix ``.models.json``.

    Examples
    --------
    >>> sidecar_path("x/lenet5_onevall_wghts_bylayer_class_20240101_000000.pkl").name
    'lenet5_onevall_wghts_bylayer_class_20240101_000000.models.json'
    """
    path = Path(pickle_path)
    return path.with_name(f"{path.stem}.models.json")


def write_sidecar(
    path: str | os.PathLike[str],
    pickle_name: str,
    classes: list[tuple[str, list[str]]],
    *,
    names_inferred: bool = False,
) -> None:
    """Write the model names of a layerwise pickle, class by class, in row order.

    The JSON object has ``format`` (``"wspace layerwise-pickle model names"``), ``version``
    (1), ``pickle`` (the pickle's file name), ``names_inferred`` (whether the names were made up
    as ``{class}_{i}`` when the zoo was imported) and ``classes``: a list, in the pickle's
    order, of ``{"class": name, "models": [model names in row order]}``.
    """
    body = {
        "format": SIDECAR_FORMAT,
        "version": 1,
        "pickle": pickle_name,
        "names_inferred": bool(names_inferred),
        "classes": [{"class": c, "models": list(models)} for c, models in classes],
    }
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(body, indent=1) + "\n")


def read_sidecar(path: str | os.PathLike[str]) -> tuple[dict[str, list[str]], bool]:
    """``({class: model names}, names_inferred)`` of a sidecar (see :func:`write_sidecar`)."""
    where = repr(os.fspath(path))
    try:
        body = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CorruptDataError(f"{where}: not a readable sidecar ({exc})") from exc
    classes = body.get("classes") if isinstance(body, dict) else None
    ok = (
        isinstance(body, dict)
        and body.get("format") == SIDECAR_FORMAT
        and isinstance(classes, list)
        and all(
            isinstance(c, dict)
            and isinstance(c.get("class"), str)
            and isinstance(c.get("models"), list)
            and all(isinstance(m, str) and m for m in c["models"])
            for c in classes
        )
    )
    if not ok or classes is None:
        raise SchemaMismatchError(
            f"{where}: not a layerwise-pickle sidecar (expected {{'format': {SIDECAR_FORMAT!r}, "
            "'classes': [{'class': ..., 'models': [...]}, ...]}})"
        )
    return {c["class"]: c["models"] for c in classes}, bool(body.get("names_inferred", False))


# -- export -----------------------------------------------------------------------------------
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


def export_zoo(
    zoo: Zoo,
    dst: str | os.PathLike[str],
    *,
    progress: bool,
    format: str,
    overwrite: bool,
    batch_rows: int,
) -> list[Path]:
    """Write the rows of a LeNet-5 zoo as one modelwise or layerwise pickle.

    Parameters
    ----------
    zoo
        A LeNet-5 zoo (torch ``lenet5`` or Keras ``lenet5-keras`` convention), any selection.
    dst
        A folder (the file gets its published, time-stamped name) or a ``.pkl`` path.
    format
        ``"modelwise-pickle"`` or ``"layerwise-pickle"``.
    overwrite
        Replace an existing file.
    batch_rows
        Rows read from the store at once (the export's memory is about one batch).

    Returns the files written: the pickle, and for ``layerwise-pickle`` its sidecar.
    Layerwise classes come in the order of their first row in ``zoo``, models in zoo order.
    The defaults are those of :mod:`wspace.io.builtin`'s formats, which call this.
    """
    expect_format(format, *_FORMATS)
    batch = option_int(batch_rows, "batch_rows")
    replace = option_bool(overwrite, "overwrite")
    keras_index(zoo.layout)  # a LeNet-5 layout, or a clear error before anything is written
    one_row_per_model(zoo, format)
    target = Path(dst)
    path = target if target.suffix == ".pkl" else target / f"{_PREFIX[format]}{timestamp()}.pkl"
    if format == "modelwise-pickle":
        _dump(path, _Streamed(_modelwise_items(zoo, batch, progress)), overwrite=replace)
        return [path]
    classes = _classes(zoo)
    models = zoo.models
    names = [str(m) for m in models["model"]]
    inferred = "names_inferred" in models and bool(models["names_inferred"].eq(True).all())
    groups: dict[str, list[str]] = {}
    for cls, name in zip(classes, names, strict=True):
        groups.setdefault(cls, []).append(name)
    side = sidecar_path(path)
    _dump(path, _Streamed(_layerwise_items(zoo, classes, batch, progress)), overwrite=replace)
    write_sidecar(side, path.name, list(groups.items()), names_inferred=inferred)
    return [path, side]


# -- import -----------------------------------------------------------------------------------
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
        for i, item in enumerate(_drain(data)):
            yield i, _dict_with(item, keys, f"{where}: item {i} must be a dict with keys {keys}")

    return items()


def _modelwise_rows(data: Any, where: str) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
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


def _layerwise_rows(
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


def import_zoo(
    src: str | os.PathLike[str],
    url: StoreLike,
    *,
    storage_options: Mapping[str, Any] | None,
    progress: bool,
    format: str,
    sidecar: str | os.PathLike[str] | None,
    convention: str,
    commit_rows: int | None,
    allow_nonfinite: bool,
    codec: str | None,
) -> ImportReport:
    """Import a modelwise or layerwise pickle (or a folder of them) into the store at ``url``.

    Parameters
    ----------
    src
        A ``.pkl`` file, or a folder: its files with the format's published prefix.
    format
        ``"modelwise-pickle"`` or ``"layerwise-pickle"``.
    sidecar
        Layerwise only: the model-names file (default: :func:`sidecar_path` of the pickle, when
        it exists). Without one, models are named ``{class}_{i}`` and get
        ``names_inferred=True``.
    convention
        ``"keras"`` (group ``lenet5-keras``) or ``"torch"`` (converted exactly, group ``lenet5``).
    commit_rows, allow_nonfinite, codec
        The options of :class:`~wspace.io.session.ImportSession`.

    Rows get ``model`` and, when the name is ``{class}_{count}``, ``cls`` and ``count``
    (layerwise: ``cls`` is the pickle's class). Models already in the store are skipped. Each
    pickle is read whole (a pickle cannot be read piecewise), with the restricted unpickler of
    :mod:`wspace.io.safe_pickle`, and every item is checked (structure, shapes, dtypes,
    finiteness, unique names) before any model of it is appended: a bad pickle raises an error
    naming the file and commits nothing of it (the models of the pickles before it stay).
    The defaults are those of :mod:`wspace.io.builtin`'s formats, which call this.
    """
    expect_format(format, *_FORMATS)
    session = ImportSession(
        url,
        storage_options=storage_options,
        fmt=format,
        commit_rows=commit_rows,
        allow_nonfinite=allow_nonfinite,
        codec=codec,
    )
    layout = target_layout(convention)
    pattern = f"{_PREFIX[format]}*.pkl"
    files = source_files(Path(src), pattern, what=f"file {pattern}")
    if sidecar is not None and len(files) != 1:
        raise WspaceError("option sidecar= needs a single pickle file as the source")
    with session:
        for path in files:
            where = repr(str(path))
            data = load(path)
            # check every item before appending any: a bad pickle commits nothing
            if format == "modelwise-pickle":
                rows = [(m, split_name(m), t) for m, t in _modelwise_rows(data, where)]
            else:
                rows = list(_with_names(data, where, path, sidecar))
            del data
            refuse_repeats((row[0] for row in rows), where)
            if not session.allow_nonfinite:
                _check_finite(rows, where)
            for model, meta, tensors in session.todo(
                _drain(rows), key=lambda r: r[0], progress=progress, desc=f"{format} import"
            ):
                row = (to_row(tensors, layout), meta)
                session.add(model, [row], layout=layout, source=where)
    return session.report


def _drain(items: list[Any]) -> Iterator[Any]:
    """The items of a list, each released from it once taken."""
    for i in range(len(items)):
        item, items[i] = items[i], None
        yield item


def _check_finite(rows: list[tuple[str, Any, dict[str, np.ndarray]]], where: str) -> None:
    for model, _meta, tensors in rows:
        for path, array in tensors.items():
            bad = int(np.count_nonzero(~np.isfinite(array)))
            if bad:
                raise NonFiniteWeightsError(
                    f"{where}: model {model!r}: {bad} non-finite value(s) in {path}; "
                    + NONFINITE_HINT
                )


def _with_names(
    data: Any, where: str, path: Path, sidecar: str | os.PathLike[str] | None
) -> Iterator[tuple[str, dict[str, Any], dict[str, np.ndarray]]]:
    side = Path(sidecar) if sidecar is not None else sidecar_path(path)
    names: dict[str, list[str]] | None = None
    inferred = True
    if sidecar is not None or side.exists():
        names, inferred = read_sidecar(side)
    for cls, model, tensors in _layerwise_rows(data, where, names):
        meta: dict[str, Any] = {"cls": cls}
        parsed = split_name(model)
        if not inferred and parsed.get("cls") == cls:
            meta["count"] = parsed["count"]
        if inferred:
            meta["names_inferred"] = True
        yield model, meta, tensors
