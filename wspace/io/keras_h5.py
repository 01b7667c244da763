"""Format ``keras-h5``: the per-model Keras 2 HDF5 files of the LeNet-5 zoo (docs/formats.md).

Import reads a folder of ``binary_oneVall_{class}_{count}_model.h5`` files, full-model files
(weights under ``model_weights/``; ``optimizer_weights/`` is ignored) or weights-only files (layer
groups at the root), one file at a time, into the Keras-convention architecture group
``lenet5-keras`` (:func:`~wspace.architectures.lenet5_keras_layout`): ``model="{class}_{count}"``
with columns ``cls`` and ``count``. Export writes any LeNet-5 zoo, of the torch-convention
``lenet5`` layout or the Keras one, as Keras 2.15 full-model files that ``keras.models.load_model``
and ``model.load_weights`` accept, converting torch weights exactly (kernel transposes and the
Flatten ``(c, h, w) -> (h, w, c)`` row order of ``dense/kernel``).

Examples
--------
>>> import tempfile, wspace
>>> from wspace.io import export_zoo, import_zoo
>>> from wspace.testing import tiny_zoo
>>> zoo = wspace.open(tiny_zoo("memory://doc-keras", n_models=2))
>>> folder = tempfile.mkdtemp()
>>> [p.name for p in export_zoo(zoo, folder, "keras-h5", progress=False)]
['binary_oneVall_church_0_model.h5', 'binary_oneVall_tench_1_model.h5']
>>> report = import_zoo("keras-h5", folder, "memory://doc-keras-back", progress=False)
>>> wspace.open("memory://doc-keras-back").models[["model", "cls", "count"]]
      model     cls  count
0  church_0  church      0
1   tench_1   tench      1
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pandas as pd

from wspace.architectures import LENET5_LAYERS, lenet5_keras_layout, lenet5_layout
from wspace.errors import (
    CorruptDataError,
    DTypeError,
    ModelNotFoundError,
    NonFiniteWeightsError,
    SchemaMismatchError,
    TensorNotFoundError,
    WspaceError,
    listing,
)
from wspace.io.files import atomic_file, source_files
from wspace.io.keras_config import KERAS_VERSION, LAYER_NAMES, model_config, training_config
from wspace.io.options import option_bool, option_int
from wspace.io.row_files import one_row_per_model, write_rows
from wspace.io.session import ImportSession
from wspace.io.values import refuse_repeats
from wspace.layout import Layout
from wspace.store.rows import NONFINITE_HINT

if TYPE_CHECKING:
    from wspace.io.format import ImportReport
    from wspace.query import Zoo
    from wspace.store.backend import StoreLike

__all__ = [
    "KERAS_VERSION",
    "LAYER_NAMES",
    "check_file",
    "export_zoo",
    "file_name",
    "import_zoo",
    "keras_index",
    "model_config",
    "parse_file_name",
    "read_file",
    "split_name",
    "target_layout",
    "to_row",
    "training_config",
    "write_file",
]

FILE_NAME = re.compile(r"^binary_oneVall_(?P<cls>.+)_(?P<count>\d+)_(?:model|weights)\.h5$")


# -- names ------------------------------------------------------------------------------------
def parse_file_name(name: str) -> tuple[str, str, int]:
    """``(model, cls, count)`` of a file name ``binary_oneVall_{class}_{count}_model.h5``.

    Class names may contain underscores; the count is the last ``_``-separated number.
    ``..._weights.h5`` (``save_weights`` files) are read the same way.

    Examples
    --------
    >>> parse_file_name("binary_oneVall_golf_ball_1060_model.h5")
    ('golf_ball_1060', 'golf_ball', 1060)
    """
    match = FILE_NAME.match(Path(name).name)
    if match is None:
        raise SchemaMismatchError(
            f"{name!r}: not a LeNet-5 zoo file name (expected "
            "binary_oneVall_{class}_{count}_model.h5)"
        )
    cls, count = match["cls"], int(match["count"])
    return f"{cls}_{count}", cls, count


def file_name(cls: str, count: int) -> str:
    """The published file name of model ``{cls}_{count}``.

    Examples
    --------
    >>> file_name("church", 3)
    'binary_oneVall_church_3_model.h5'
    """
    return f"binary_oneVall_{cls}_{int(count)}_model.h5"


# -- the Keras view of a LeNet-5 layout ---------------------------------------------------------
def keras_index(layout: Layout) -> dict[str, tuple[np.ndarray, tuple[int, ...]]]:
    """Where each Keras tensor of LeNet-5 lies in a row of ``layout``.

    Returns ``{h5 path: (index, shape)}`` in Keras' ``weight_names`` order (per layer kernel,
    then bias), such that ``row[index].reshape(shape)`` is the Keras tensor stored at
    ``model_weights/<h5 path>``; ``layout`` is the torch-convention ``lenet5`` layout (kernels
    transposed, ``dense`` rows reordered from ``(c, h, w)`` to ``(h, w, c)``) or a
    Keras-convention one (identity).

    Raises
    ------
    SchemaMismatchError
        ``layout`` is not a LeNet-5 layout (missing tensor, wrong shape, or a dense weight
        without the ``flatten_shape`` that its conversion needs).

    Examples
    --------
    >>> from wspace.architectures import lenet5_layout
    >>> index, shape = keras_index(lenet5_layout())["dense/dense/kernel:0"]
    >>> shape
    (480, 84)
    """
    expected = lenet5_keras_layout()
    out: dict[str, tuple[np.ndarray, tuple[int, ...]]] = {}
    for keras_spec in expected:
        try:
            spec, index, shape = layout.view(keras_spec.name)
        except (TensorNotFoundError, SchemaMismatchError) as exc:
            raise SchemaMismatchError(
                f"layout {layout.name!r} is not a LeNet-5 layout: {exc}"
            ) from None
        if shape != keras_spec.shape:
            raise SchemaMismatchError(
                f"layout {layout.name!r} is not a LeNet-5 layout: {keras_spec.name!r} has "
                f"Keras shape {shape}, not {keras_spec.shape}"
            )
        if keras_spec.flatten_shape is not None and spec.flatten_shape is None:
            raise SchemaMismatchError(
                f"layout {layout.name!r}: {spec.name!r} reads the flattened feature map but "
                "has no flatten_shape, so its rows cannot be put in Keras' (h, w, c) order"
            )
        out[keras_spec.source_name] = (spec.offset + index, shape)
    return out


# -- one file ---------------------------------------------------------------------------------
def write_file(
    path: str | os.PathLike[str],
    tensors: Mapping[str, np.ndarray],
    *,
    weights_only: bool = False,
    keras_version: str = KERAS_VERSION,
) -> None:
    """Write one LeNet-5 as a Keras 2 HDF5 file, with the attributes Keras 2.15 writes.

    Parameters
    ----------
    path
        The file to write (replaced atomically).
    tensors
        ``{h5 path: array}`` for every tensor of :func:`keras_index` (Keras shapes, float32).
    weights_only
        Write a ``save_weights`` file (layer groups at the root, no ``model_config``).
        Otherwise a full-model file with ``model_config`` and ``training_config`` (the zoo's
        compile settings) but no ``optimizer_weights``: Keras loads it compiled, with a fresh
        optimizer state.
    keras_version
        Value of the ``keras_version`` attributes.
    """
    with atomic_file(path) as tmp:
        _write_h5(tmp, tensors, weights_only, keras_version, where=repr(os.fspath(path)))


def _write_h5(
    path: Path,
    tensors: Mapping[str, np.ndarray],
    weights_only: bool,
    keras_version: str,
    *,
    where: str,
) -> None:
    expected = lenet5_keras_layout()
    with h5py.File(path, "w") as f:
        if not weights_only:  # keras.src.saving.legacy.hdf5_format.save_model_to_hdf5
            f.attrs["keras_version"] = keras_version
            f.attrs["backend"] = "tensorflow"
            f.attrs["model_config"] = json.dumps(model_config()).encode("utf8")
            f.attrs["training_config"] = json.dumps(training_config()).encode("utf8")
        root = f if weights_only else f.create_group("model_weights")
        # save_weights_to_hdf5_group: lists of bytes make variable-length ASCII attributes
        root.attrs["layer_names"] = [name.encode("utf8") for name in LAYER_NAMES]
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = keras_version.encode("utf8")
        for layer in sorted(LAYER_NAMES):
            group = root.create_group(layer)
            specs = expected.layer_tensors(layer) if layer in LENET5_LAYERS else ()
            group.attrs["weight_names"] = [
                f"{layer}/{s.name.rpartition('/')[2]}:0".encode() for s in specs
            ]
            for spec in specs:
                value = np.asarray(tensors[spec.source_name], dtype=np.float32)
                if value.shape != spec.shape:
                    raise SchemaMismatchError(
                        f"{where}: {spec.source_name} must have shape {spec.shape}, got "
                        f"{value.shape}"
                    )
                name = f"{layer}/{spec.name.rpartition('/')[2]}:0"
                group.create_dataset(name, value.shape, dtype=np.float32)[...] = value
        root.create_group("top_level_model_weights").attrs["weight_names"] = []


def read_file(
    path: str | os.PathLike[str], *, allow_nonfinite: bool = False
) -> dict[str, np.ndarray]:
    """Read and check the LeNet-5 weights of one Keras 2 HDF5 file.

    Returns ``{h5 path: float32 array}`` (paths under ``model_weights``, Keras shapes) in the
    order of :func:`~wspace.architectures.lenet5_keras_layout`. Full-model files (weights under
    ``model_weights/``) and weights-only files (at the root) are read alike; optimizer state is
    ignored.

    Raises
    ------
    CorruptDataError
        The file is not readable HDF5 (truncated, garbage).
    SchemaMismatchError
        A weight dataset is missing, unexpected, of the wrong shape, or disagrees with its
        layer's ``weight_names``.
    DTypeError
        A weight is not float32.
    NonFiniteWeightsError
        A weight is NaN or infinite (unless ``allow_nonfinite``).
    """
    where = repr(os.fspath(path))
    with _open(path) as datasets:
        try:
            out = {name: np.asarray(data[()], dtype=np.float32) for name, data in datasets.items()}
        except (OSError, RuntimeError, ValueError) as exc:
            raise CorruptDataError(f"{where}: not a readable Keras HDF5 file ({exc})") from exc
    for name, value in out.items():
        if not allow_nonfinite and not np.isfinite(value).all():
            bad = int((~np.isfinite(value)).sum())
            raise NonFiniteWeightsError(
                f"{where}: {bad} non-finite value(s) in {name}; {NONFINITE_HINT}"
            )
    return out


def check_file(path: str | os.PathLike[str]) -> None:
    """The checks of :func:`read_file` that need no weight values (names, shapes, dtypes)."""
    with _open(path):
        pass


@contextlib.contextmanager
def _open(path: str | os.PathLike[str]) -> Iterator[dict[str, h5py.Dataset]]:
    """The checked LeNet-5 weight datasets of a file (see :func:`read_file`), while open."""
    where = repr(os.fspath(path))
    try:
        f = h5py.File(path, "r")
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise CorruptDataError(f"{where}: not a readable Keras HDF5 file ({exc})") from exc
    with f:
        try:
            datasets = _checked(f, where)
        except WspaceError:
            raise
        except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CorruptDataError(f"{where}: not a readable Keras HDF5 file ({exc})") from exc
        yield datasets


def _datasets(group: h5py.Group, skip: str | None) -> dict[str, h5py.Dataset]:
    found: dict[str, h5py.Dataset] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and name.split("/")[0] != skip:
            found[name] = obj

    group.visititems(visit)
    return found


def _checked(f: h5py.File, where: str) -> dict[str, h5py.Dataset]:
    layout = lenet5_keras_layout()
    full = "model_weights" in f
    root = f["model_weights"] if full else f
    found = _datasets(root, None if full else "optimizer_weights")
    expected = [t.source_name for t in layout]
    missing = [name for name in expected if name not in found]
    extra = [name for name in found if name not in expected]
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"missing weight(s) {listing(missing)}")
        if extra:
            problems.append(f"unexpected dataset(s) {listing(extra)}")
        raise SchemaMismatchError(f"{where}: not the LeNet-5 of the zoo: {'; '.join(problems)}")
    for spec in layout:
        data = found[spec.source_name]
        if data.shape != spec.shape:
            raise SchemaMismatchError(
                f"{where}: {spec.source_name} has shape {data.shape}; LeNet-5 needs {spec.shape}"
            )
        if data.dtype != np.float32:
            raise DTypeError(f"{where}: {spec.source_name} is {data.dtype}, not float32")
    for layer in LENET5_LAYERS:
        names = _weight_names(root[layer])
        wanted = sorted(
            f"{layer}/{t.name.rpartition('/')[2]}:0" for t in layout.layer_tensors(layer)
        )
        if names is not None and sorted(names) != wanted:
            raise SchemaMismatchError(
                f"{where}: layer {layer!r} lists weight_names {names}, expected {wanted}"
            )
    return {name: found[name] for name in expected}


def _weight_names(group: h5py.Group) -> list[str] | None:
    """A layer group's ``weight_names`` (also when Keras split it into numbered chunks)."""
    attrs = group.attrs
    if "weight_names" in attrs:
        raw = list(attrs["weight_names"])
    elif "weight_names0" in attrs:
        raw, i = [], 0
        while f"weight_names{i}" in attrs:
            raw.extend(attrs[f"weight_names{i}"])
            i += 1
    else:
        return None
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in raw]


# -- import / export --------------------------------------------------------------------------
def target_layout(convention: str) -> Layout:
    """The layout imported Keras tensors are stored in: ``"keras"`` (as in the files, group
    ``lenet5-keras``) or ``"torch"`` (converted exactly, group ``lenet5``)."""
    if convention == "keras":
        return lenet5_keras_layout()
    if convention == "torch":
        return lenet5_layout()
    raise WspaceError(f"option convention={convention!r}: expected 'keras' or 'torch'")


def to_row(tensors: Mapping[str, Any], layout: Layout) -> Any:
    """Writer input of ``layout`` from Keras tensors keyed by h5 path (see :func:`read_file`)."""
    if layout.tensors[0].convention == "keras":
        return tensors  # keyed by h5 paths, the Keras layout's source names
    keras = lenet5_keras_layout()
    return keras.to_state_dict(keras.flatten(tensors))


def split_name(model: str) -> dict[str, Any]:
    """``{"cls": ..., "count": ...}`` parsed from a model name ``{class}_{count}`` (or ``{}``).

    Examples
    --------
    >>> split_name("golf_ball_1060"), split_name("mystery")
    ({'cls': 'golf_ball', 'count': 1060}, {})
    """
    match = re.fullmatch(r"(?P<cls>.+)_(?P<count>\d+)", model)
    return {} if match is None else {"cls": match["cls"], "count": int(match["count"])}


def import_zoo(
    src: str | os.PathLike[str],
    url: StoreLike,
    *,
    storage_options: Mapping[str, Any] | None,
    progress: bool,
    pattern: str,
    convention: str,
    commit_rows: int | None,
    allow_nonfinite: bool,
    codec: str | None,
) -> ImportReport:
    """Import a folder of LeNet-5 Keras files (or one file) into the store at ``url``.

    Parameters
    ----------
    src
        A folder (its files matching ``pattern``, in name order) or one ``.h5`` file.
    pattern
        Glob of the files to read in a folder (``binary_oneVall_*_weights.h5`` for
        ``save_weights`` files).
    convention
        ``"keras"`` stores the tensors as in the files, group ``lenet5-keras``; ``"torch"``
        converts them exactly to the torch-convention group ``lenet5``.
    commit_rows, allow_nonfinite, codec
        The options of :class:`~wspace.io.session.ImportSession`.

    The defaults are those of :class:`wspace.io.builtin.KerasH5`, which calls this.

    Rows get ``model="{class}_{count}"``, ``cls`` and ``count`` from the file name. Models the
    store already holds are skipped. The names and the structure of every file (datasets,
    shapes, dtypes) are checked before anything is written; a file whose values are refused
    (non-finite) stops the import after the models before it, with nothing of it committed.
    """
    session = ImportSession(
        url,
        storage_options=storage_options,
        fmt="keras-h5",
        commit_rows=commit_rows,
        allow_nonfinite=allow_nonfinite,
        codec=codec,
    )
    layout = target_layout(convention)
    paths = source_files(Path(src), pattern, what=f"file matches {pattern!r}")
    files = [(*parse_file_name(p.name), p) for p in paths]
    refuse_repeats((model for model, *_ in files), repr(str(src)))
    for model, _cls, _count, path in files:
        if not session.is_committed(model):
            check_file(path)
    with session:
        for model, cls, count, path in session.todo(
            files, key=lambda f: f[0], progress=progress, desc="keras-h5 import", unit="file"
        ):
            tensors = read_file(path, allow_nonfinite=session.allow_nonfinite)
            row = (to_row(tensors, layout), {"cls": cls, "count": count})
            session.add(model, [row], layout=layout, source=repr(str(path)))
    return session.report


def _names(zoo: Zoo) -> list[tuple[str, int]]:
    """``(cls, count)`` of every row, from the columns or parsed from ``model``."""
    one_row_per_model(zoo, "keras-h5")
    models = zoo.models
    out = []
    for record in models.to_dict("records"):
        cls, count = record.get("cls"), record.get("count")
        if isinstance(cls, str) and cls and not pd.isna(count):
            out.append((cls, int(count)))
            continue
        parsed = split_name(str(record["model"]))
        if not parsed:
            raise ModelNotFoundError(
                f"store {zoo.url!r}: model {record['model']!r} has no cls/count columns and "
                "its name is not '{class}_{count}', so it has no keras-h5 file name"
            )
        out.append((parsed["cls"], parsed["count"]))
    seen: dict[tuple[str, int], str] = {}
    for key, model in zip(out, models["model"], strict=True):
        if seen.setdefault(key, model) != model:
            raise SchemaMismatchError(
                f"store {zoo.url!r}: models {seen[key]!r} and {model!r} would both be written "
                f"to {file_name(*key)!r} (same cls and count)"
            )
    return out


def export_zoo(
    zoo: Zoo,
    dst: str | os.PathLike[str],
    *,
    progress: bool,
    weights_only: bool,
    overwrite: bool,
    batch_rows: int,
) -> list[Path]:
    """Write every row of ``zoo`` as ``dst/binary_oneVall_{cls}_{count}_model.h5``.

    Parameters
    ----------
    zoo
        A LeNet-5 zoo (torch ``lenet5`` or Keras ``lenet5-keras`` convention), any selection,
        one row per model.
    dst
        Folder to write (created).
    weights_only
        Write ``save_weights`` files (layer groups at the root) instead of full-model files.
    overwrite
        Replace existing files; otherwise an existing file is an error.
    batch_rows
        Rows read from the store at once.

    Returns the files written, in zoo order. The defaults are those of
    :class:`wspace.io.builtin.KerasH5`, which calls this.
    """
    batch = option_int(batch_rows, "batch_rows")
    index = keras_index(zoo.layout)
    folder = Path(dst)
    paths = [folder / file_name(cls, count) for cls, count in _names(zoo)]
    only_weights = option_bool(weights_only, "weights_only")

    def write(tmp: Path, i: int, _meta: dict[str, Any], row: np.ndarray) -> None:
        tensors = {name: row[at].reshape(shape) for name, (at, shape) in index.items()}
        _write_h5(tmp, tensors, only_weights, KERAS_VERSION, where=repr(str(paths[i])))

    folder.mkdir(parents=True, exist_ok=True)
    return write_rows(
        zoo,
        paths,
        write,
        batch_rows=batch,
        progress=progress,
        desc="keras-h5 export",
        overwrite=option_bool(overwrite, "overwrite"),
    )
