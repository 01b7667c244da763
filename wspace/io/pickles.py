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

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wspace.errors import WspaceError
from wspace.io.builtin_lenet import LAYERWISE_PREFIX, MODELWISE_PREFIX
from wspace.io.files import source_files, timestamp
from wspace.io.keras_lenet import keras_index, split_name, target_layout, to_row
from wspace.io.options import expect_format, option_bool, option_int
from wspace.io.pickle_orders import h5_paths, layerwise_permutation, modelwise_permutation
from wspace.io.pickle_read import check_finite, drain, layerwise_rows, modelwise_rows
from wspace.io.pickle_sidecar import SIDECAR_FORMAT as SIDECAR_FORMAT
from wspace.io.pickle_sidecar import read_sidecar, sidecar_path, write_sidecar
from wspace.io.pickle_write import write_pickle
from wspace.io.row_files import one_row_per_model
from wspace.io.safe_pickle import load
from wspace.io.session import ImportSession
from wspace.io.values import refuse_repeats

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

_FORMATS = ("modelwise-pickle", "layerwise-pickle")
_PREFIX = {"modelwise-pickle": MODELWISE_PREFIX, "layerwise-pickle": LAYERWISE_PREFIX}


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
    return write_pickle(zoo, path, format, batch_rows=batch, progress=progress, overwrite=replace)


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
                rows = [(m, split_name(m), t) for m, t in modelwise_rows(data, where)]
            else:
                rows = list(layerwise_rows(data, where, path, sidecar))
            del data
            refuse_repeats((row[0] for row in rows), where)
            if not session.allow_nonfinite:
                check_finite(rows, where)
            for model, meta, tensors in session.todo(
                drain(rows), key=lambda r: r[0], progress=progress, desc=f"{format} import"
            ):
                row = (to_row(tensors, layout), meta)
                session.add(model, [row], layout=layout, source=where)
    return session.report
