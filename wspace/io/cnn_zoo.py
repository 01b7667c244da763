"""Small CNN Zoo (Unterthiner et al., "Predicting Neural Network Accuracy from Weights", §3).

One folder per data set (github.com/google-research/google-research, ``dnn_predict_accuracy``)::

    weights.npy        float32 [rows, 4970]: one row per (model, checkpoint)
    metrics.csv.gz     one line per row: config.* hyper-parameters, modeldir, step,
                       test_accuracy, test_loss, train_accuracy, train_loss  (or metrics.csv)
    layout.csv         varname, start_idx, end_idx, shape: the tensor of each column range,
                       TensorFlow layouts (kernel (kh, kw, in, out), dense (in, out))

This is what NFN's ``ZooDataset`` (github.com/AllanYangZhou/nfn, ``experiments/data_utils.py``)
reads: ``np.load`` of ``weights.npy``, ``pd.read_csv(..., compression="gzip")``, and
``layout.csv`` rows sliced by ``start_idx:end_idx`` and reshaped to ``shape`` (a tuple literal).

Rows: ``model`` = ``modeldir``, ``step`` = ``step``, every other column of the metrics file as a
metadata column of the same name (the Writer accepts ``config.w_init`` or ``test/accuracy``
as they are; an empty name, a reserved one or ``model`` gets the prefix ``col:``, see
:func:`wspace.io.values.escape_column`). The layout keeps the Keras convention and the
TensorFlow names: ``varname`` ``sequential/conv2d/kernel:0`` is tensor
``sequential/conv2d/kernel`` (its ``source_name`` is the varname), so
``zoo.tensor("sequential/conv2d/weight")`` is the torch view. ``weights.npy`` is memory-mapped
and read one model at a time; the rows of a model are committed together.

Examples
--------
>>> import numpy as np, tempfile, wspace
>>> from wspace.io import export_zoo, import_zoo
>>> from wspace.layout import Layout
>>> lay = Layout.from_dict({"name": "tiny", "tensors": [
...     {"name": "d/kernel", "shape": [3, 2], "convention": "keras"},
...     {"name": "d/bias", "shape": [2], "convention": "keras"}]})
>>> wspace.create("memory://doc-cnn-zoo", lay)
>>> with wspace.writer("memory://doc-cnn-zoo") as w:
...     for step in (0, 86):
...         w.append(np.full(8, step, "float32"), model="run1", step=step, test_accuracy=0.5)
>>> folder = tempfile.mkdtemp()
>>> sorted(p.name for p in export_zoo(wspace.open("memory://doc-cnn-zoo"), folder, "cnn-zoo",
...                                    progress=False))
['layout.csv', 'metrics.csv.gz', 'weights.npy']
>>> report = import_zoo("cnn-zoo", folder, "memory://doc-cnn-zoo-2", progress=False)
>>> report.rows, wspace.open("memory://doc-cnn-zoo-2").models["step"].tolist()
(2, [0, 86])
"""

from __future__ import annotations

import ast
import json
import math
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wspace.errors import FormatError, SchemaMismatchError, SourceNotFoundError, listing
from wspace.io.files import atomic_file, progress_bar, write_atomic
from wspace.io.options import option_bool, option_int
from wspace.io.session import ImportSession
from wspace.io.values import escape_column, py_value, unescape_column
from wspace.layout import Layout

if TYPE_CHECKING:
    from wspace.io.format import ImportReport
    from wspace.query import Zoo
    from wspace.store.backend import StoreLike

__all__ = ["LAYOUT_COLUMNS", "export_zoo", "import_zoo", "read_layout"]


LAYOUT_COLUMNS = ("varname", "start_idx", "end_idx", "shape")
"""Columns of ``layout.csv``."""
MODEL_COLUMN, STEP_COLUMN = "modeldir", "step"


def read_layout(
    path: str | os.PathLike[str], *, name: str = "cnn-zoo", width: int | None = None
) -> Layout:
    """The Keras-convention layout described by ``layout.csv``.

    Rows must tile ``[0, width)`` without gaps or overlaps (in ``start_idx`` order) and each
    range must hold ``prod(shape)`` values; otherwise :class:`~wspace.errors.FormatError`
    names the file and the row.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"varname": str, "shape": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise FormatError(f"{path}: not a readable CSV: {exc}") from exc
    missing = [c for c in LAYOUT_COLUMNS if c not in frame.columns]
    if missing:
        raise FormatError(f"{path}: missing column(s) {listing(missing)} of {LAYOUT_COLUMNS}")
    tensors = []
    offset = 0
    for i, row in enumerate(frame.sort_values("start_idx", kind="stable").to_dict("records")):
        where = f"{path} row {i + 2} ({row['varname']!r})"
        try:
            shape = ast.literal_eval(str(row["shape"]).strip())
            shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
            start, end = int(row["start_idx"]), int(row["end_idx"])
        except (ValueError, SyntaxError, TypeError) as exc:
            raise FormatError(f"{where}: unreadable start/end/shape: {exc}") from None
        if start != offset:
            raise FormatError(f"{where}: starts at {start}; the previous range ends at {offset}")
        if end - start != math.prod(shape):
            raise FormatError(f"{where}: range {start}:{end} cannot hold shape {shape}")
        varname = str(row["varname"])
        tensor = varname[:-2] if varname.endswith(":0") else varname
        if "/" not in tensor:
            tensor = f"root/{tensor}"
        tensors.append(
            {"name": tensor, "shape": list(shape), "convention": "keras", "source_name": varname}
        )
        offset = end
    if width is not None and offset != width:
        raise FormatError(f"{path}: its ranges cover {offset} columns; weights.npy has {width}")
    try:
        return Layout.from_dict({"name": name, "tensors": tensors})
    except SchemaMismatchError as exc:
        raise FormatError(f"{path}: {exc}") from None


def _metrics_file(src: Path) -> Path:
    for name in ("metrics.csv.gz", "metrics.csv"):
        if (src / name).is_file():
            return src / name
    raise SourceNotFoundError(f"{src}: neither metrics.csv.gz nor metrics.csv")


def _step(value: Any, where: str) -> int | None:
    value = py_value(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise FormatError(f"{where}: step {value!r} is not an integer")
    return int(value)


def import_zoo(
    src: str | os.PathLike[str],
    url: StoreLike,
    *,
    storage_options: Mapping[str, Any] | None,
    progress: bool,
    arch: str,
    commit_rows: int | None,
    allow_nonfinite: bool,
    codec: str | None,
) -> ImportReport:
    """Import a Small CNN Zoo folder into the store at ``url`` (created when missing).

    Parameters
    ----------
    src
        Folder with ``weights.npy``, ``metrics.csv.gz`` (or ``metrics.csv``), ``layout.csv``.
    arch
        Architecture-group name for the layout (an existing group with the same tensors is
        used whatever its name).
    commit_rows, allow_nonfinite, codec
        The options of :class:`~wspace.io.session.ImportSession`; :class:`wspace.io.builtin.CnnZoo`
        (which calls this) has other defaults: ``commit_rows=4096`` and
        ``allow_nonfinite=True`` (the published matrices hold diverged runs; ``False``
        refuses them).

    Raises
    ------
    FormatError, SourceNotFoundError
        A file is missing, ``layout.csv`` does not tile ``weights.npy``'s columns, the metrics
        lack ``modeldir`` or have another number of rows, or a model repeats a step. These are
        checked before anything is written.
    """
    session = ImportSession(
        url,
        storage_options=storage_options,
        fmt="cnn-zoo",
        commit_rows=commit_rows,
        allow_nonfinite=allow_nonfinite,
        codec=codec,
    )
    src = Path(src)
    weights_file = src / "weights.npy"
    if not weights_file.is_file():
        raise SourceNotFoundError(f"{src}: no weights.npy")
    try:
        weights = np.load(weights_file, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # a damaged header: SyntaxError, TokenError, ...
        raise FormatError(f"{weights_file}: not a readable .npy array: {exc!r}") from exc
    if weights.ndim != 2 or weights.dtype.kind != "f":
        raise FormatError(
            f"{weights_file}: expected a 2-D float array, got {weights.dtype} {weights.shape}"
        )
    layout_file = src / "layout.csv"
    if not layout_file.is_file():
        raise SourceNotFoundError(f"{src}: no layout.csv")
    layout = read_layout(layout_file, name=arch, width=int(weights.shape[1]))
    metrics_file = _metrics_file(src)
    try:
        metrics = pd.read_csv(metrics_file, dtype={MODEL_COLUMN: str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise FormatError(f"{metrics_file}: not a readable CSV: {exc}") from exc
    if MODEL_COLUMN not in metrics:
        raise FormatError(f"{metrics_file}: no {MODEL_COLUMN!r} column (the model of each row)")
    if len(metrics) != len(weights):
        raise FormatError(
            f"{metrics_file} has {len(metrics)} rows but {weights_file} has {len(weights)}"
        )
    if metrics[MODEL_COLUMN].isna().any():
        line = int(np.flatnonzero(metrics[MODEL_COLUMN].isna().to_numpy())[0]) + 2
        raise FormatError(f"{metrics_file} line {line}: empty {MODEL_COLUMN}")
    raw_steps = metrics[STEP_COLUMN] if STEP_COLUMN in metrics else [None] * len(metrics)
    steps = [_step(v, f"{metrics_file} line {i + 2}") for i, v in enumerate(raw_steps)]
    counts = Counter(zip(metrics[MODEL_COLUMN], steps, strict=True))
    if len(counts) != len(metrics):
        model, step = next(k for k, n in counts.items() if n > 1)
        raise FormatError(f"{metrics_file}: model {model!r} has two rows at step {step}")
    columns = {  # in file order, so that an export writes them back in that order
        c: "step" if c == STEP_COLUMN else escape_column(str(c))
        for c in metrics.columns
        if c != MODEL_COLUMN
    }
    groups = metrics.groupby(MODEL_COLUMN, sort=False).indices
    table = metrics[list(columns)]
    with session:
        for model, index in session.todo(
            groups.items(),
            key=lambda g: str(g[0]),
            progress=progress,
            desc="cnn-zoo models",
            total=len(groups),
        ):
            index = np.sort(index)
            if len(index) and index[-1] - index[0] + 1 == len(index):
                block = np.asarray(weights[index[0] : index[-1] + 1])
            else:
                block = np.asarray(weights[index])
            rows = []
            records = table.iloc[index].to_dict("records")
            for i, record, vector in zip(index, records, block, strict=True):
                meta = {columns[c]: v for c, v in record.items()}
                if steps[i] is not None:
                    meta["step"] = steps[i]  # as an int
                rows.append((vector, meta))
            session.add(str(model), rows, layout=layout, source=str(weights_file))
    return session.report


def _export_plan(layout: Layout) -> tuple[np.ndarray, list[tuple[str, int, int, tuple[int, ...]]]]:
    """Column permutation of the stored vector and ``layout.csv`` rows, TensorFlow layouts.

    Keras-convention tensors are written as stored under their ``source_name``; a torch
    weight of 2 or more dimensions is written as its Keras kernel (``Layout.view``), named
    ``<layer>/kernel:0``, other torch tensors as ``<layer>/<param>:0``.
    """
    index = []
    rows = []
    offset = 0
    for spec in layout:
        if spec.convention == "keras":
            idx, shape, varname = np.arange(spec.size), spec.shape, spec.source_name
        elif len(spec.shape) >= 2 and spec.name.endswith("/weight"):
            _, idx, shape = layout.view(f"{spec.layer}/kernel")
            varname = f"{spec.layer}/kernel:0"
        else:
            idx, shape, varname = np.arange(spec.size), spec.shape, f"{spec.name}:0"
        index.append(spec.offset + np.asarray(idx))
        rows.append((varname, offset, offset + spec.size, tuple(shape)))
        offset += spec.size
    return np.concatenate(index), rows


def export_zoo(
    zoo: Zoo,
    dst: str | os.PathLike[str],
    *,
    progress: bool,
    compress: bool,
    batch_rows: int,
) -> list[Path]:
    """Write the rows of ``zoo`` as a Small CNN Zoo folder: weights.npy, metrics, layout.csv.

    ``weights.npy`` (float32) is written through a memory map, ``batch_rows`` rows at a time,
    in zoo order; ``metrics.csv.gz`` (``compress=false``: ``metrics.csv``) has ``modeldir`` (the
    model), ``step`` and every other metadata column; ``layout.csv`` describes TensorFlow
    layouts (torch weights are written as Keras kernels). The defaults are those of
    :class:`wspace.io.builtin.CnnZoo`, which calls this.
    """
    batch = option_int(batch_rows, "batch_rows")
    gz = option_bool(compress, "compress")
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    perm, layout_rows = _export_plan(zoo.layout)
    identity = bool(np.array_equal(perm, np.arange(zoo.layout.size)))
    weights_path = dst / "weights.npy"
    with atomic_file(weights_path) as tmp:
        if len(zoo) == 0:  # numpy 1 cannot memory-map an empty array
            with tmp.open("wb") as f:
                np.save(f, np.empty((0, zoo.layout.size), np.float32))
        else:
            shape = (len(zoo), zoo.layout.size)
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
            starts = range(0, len(zoo), batch)
            bar = progress_bar(starts, enabled=progress, desc="cnn-zoo rows", unit="batch")
            for start in bar:
                block = zoo.isel(slice(start, start + batch)).values
                out[start : start + len(block)] = block if identity else block[:, perm]
            out.flush()
            del out
    models = zoo.models
    frame = pd.DataFrame(index=range(len(models)))
    for column in models.columns:
        if column == "model":
            continue
        if column == "step":
            frame[MODEL_COLUMN] = models["model"].to_numpy()
        values = models[column]
        if values.dtype == object:
            values = values.map(lambda v: json.dumps(v) if isinstance(v, list | dict) else v)
        frame[unescape_column(column)] = values.to_numpy()
    if MODEL_COLUMN not in frame:
        frame[MODEL_COLUMN] = models["model"].to_numpy()
    metrics_path = dst / ("metrics.csv.gz" if gz else "metrics.csv")
    with atomic_file(metrics_path) as tmp:
        frame.to_csv(tmp, index=False, compression="gzip" if gz else None)
    layout_path = dst / "layout.csv"
    plan = [(v, s, e, str(tuple(shape))) for v, s, e, shape in layout_rows]
    write_atomic(layout_path, pd.DataFrame(plan, columns=LAYOUT_COLUMNS).to_csv(index=False))
    return [weights_path, metrics_path, layout_path]
