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

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wspace.errors import ModelNotFoundError, SchemaMismatchError
from wspace.io.files import source_files
from wspace.io.keras_config import KERAS_VERSION, LAYER_NAMES, model_config, training_config
from wspace.io.keras_h5_file import check_file, read_file, write_file, write_h5
from wspace.io.keras_lenet import FILE_NAME as FILE_NAME
from wspace.io.keras_lenet import (
    file_name,
    keras_index,
    parse_file_name,
    split_name,
    target_layout,
    to_row,
)
from wspace.io.options import option_bool, option_int
from wspace.io.row_files import one_row_per_model, write_rows
from wspace.io.session import ImportSession
from wspace.io.values import refuse_repeats

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
        write_h5(tmp, tensors, only_weights, KERAS_VERSION, where=repr(str(paths[i])))

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
