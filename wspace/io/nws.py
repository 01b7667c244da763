"""NWS, the neural weight space of Eilertsen et al., "Classifying the classifier" (docs/formats.md).

A data set is a set of **run folders** listed by **split CSVs** (``nws_main_train.csv``, ...)::

    nws_main_train.csv            dataset, lrate, ..., weightn_conv, weightn_fc, path
    <path>/weights/001.bin ... 020.bin   raw float64, one flat vector per snapshot
    <path>/error.bin              float64 [epochs x 5]: step, train/valid/test error %, smoothed
    <path>/stat.bin               float64 [epochs, iterations, epochs (fraction), seconds]
    <path>/meta.csv               the run's hyper-parameters

The layout of a run is rebuilt from its CSV's architecture fields (:mod:`wspace.io.nws_arch`
says how, from the authors' code); snapshot ``k`` is epoch
``round(linspace(1, epochs, 20))[k - 1]`` with ``epochs = stat.bin[0]`` (``classifier.py``), and
``util.py`` ``import_weights`` reads ``error.bin`` at that epoch the same way.

Rows: ``model`` = the run's ``path`` as written in the CSV, ``step`` = the epoch of the
snapshot, ``snapshot`` = its file number, ``split`` = the CSV's name, every other CSV column,
``epochs``, and the ``error.bin`` row of that epoch (``iteration``, ``train_error``,
``valid_error``, ``test_error``, ``valid_error_smoothed``). The run's first snapshot row also
keeps ``error_curve`` (all of ``error.bin``), ``stat`` and ``meta_csv``, so that an export
writes those files back byte for byte. Each architecture is its own group, named by
:attr:`~wspace.io.nws_arch.NWSArchitecture.name`.

Examples
--------
>>> from wspace.io.nws import nws_layout
>>> nws_layout().name                      # the nws_fixed architecture
'nws-f5-c3x8-d2x128-bn1'
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wspace.errors import FormatError, SourceNotFoundError, listing
from wspace.io.files import model_parts, read_utf8, source_files, write_atomic
from wspace.io.nws_arch import (
    ARCH_FIELDS,
    CSV_COLUMNS,
    META_COLUMNS,
    SNAPSHOTS,
    NWSArchitecture,
    as_int,
    nws_layout,
    snapshot_epochs,
)
from wspace.io.options import option_int
from wspace.io.row_files import full_zoo, write_rows
from wspace.io.session import ImportSession
from wspace.io.values import escape_column, first_by_model, py_value, unescape_column
from wspace.layout import Layout

if TYPE_CHECKING:
    from wspace.io.format import ImportReport
    from wspace.query import Zoo
    from wspace.store.backend import StoreLike

__all__ = [
    "CSV_COLUMNS",
    "NWSArchitecture",
    "export_zoo",
    "import_zoo",
    "nws_layout",
    "scan",
    "snapshot_epochs",
]

log = logging.getLogger(__name__)

ERROR_COLUMNS = ("iteration", "train_error", "valid_error", "test_error", "valid_error_smoothed")
RUN_EXTRAS = ("error_curve", "stat", "meta_csv")
DERIVED = ("split", "step", "snapshot", "epochs", *ERROR_COLUMNS, *RUN_EXTRAS)
"""Metadata columns the importer makes itself (a CSV column of such a name is escaped)."""
_BIN = np.dtype("<f8")


# -- import --------------------------------------------------------------------------------------
@dataclass
class _Run:
    """One pre-validated run folder and everything needed to import it."""

    model: str
    folder: Path
    where: str
    arch: NWSArchitecture
    layout: Layout
    split: str
    hyper: dict[str, Any]
    epochs: int
    error_file: Path
    snapshots: list[tuple[int, int, Path]]  # (file number, epoch, path)
    stat: list[float] | None = None
    meta_csv: str | None = None

    def read(self) -> tuple[list[tuple[np.ndarray, dict[str, Any]]], bool]:
        """The rows of the run and whether every value was exact in float32."""
        errors = np.fromfile(self.error_file, dtype=_BIN)
        if errors.size % 5 or errors.size // 5 < self.epochs:
            raise FormatError(f"{self.error_file}: changed since it was checked ({errors.size})")
        errors = errors.reshape(-1, 5)
        rows = []
        exact = True
        for number, epoch, path in self.snapshots:
            values = np.fromfile(path, dtype=_BIN)
            if values.size != self.layout.size:
                raise FormatError(
                    f"{path}: {values.size} float64 values; architecture {self.arch.name} "
                    f"({self.where}) has {self.layout.size}"
                )
            vector = values.astype(np.float32)
            exact &= bool(np.array_equal(vector.astype(_BIN), values, equal_nan=True))
            meta: dict[str, Any] = {"split": self.split, **self.hyper}
            meta.update(step=epoch, snapshot=number, epochs=self.epochs)
            meta.update(zip(ERROR_COLUMNS, (float(v) for v in errors[epoch - 1]), strict=True))
            if number == self.snapshots[0][0]:
                meta["error_curve"] = errors.tolist()
                if self.stat is not None:
                    meta["stat"] = self.stat
                if self.meta_csv is not None:
                    meta["meta_csv"] = self.meta_csv
            rows.append((vector, meta))
        return rows, exact


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype={"path": str}, skipinitialspace=True)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise FormatError(f"{path}: not a readable CSV: {exc}") from exc
    missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise FormatError(
            f"{path}: missing NWS column(s) {listing(missing)}; a split CSV has "
            f"{', '.join(CSV_COLUMNS)}"
        )
    return frame


def _weight_files(folder: Path, where: str) -> list[tuple[int, Path]]:
    weights = folder / "weights"
    files = sorted((int(p.stem), p) for p in weights.glob("*.bin") if p.stem.isdigit())
    if not files:
        raise SourceNotFoundError(f"{where}: no snapshots weights/NNN.bin in {folder}")
    numbers = [n for n, _ in files]
    expected = list(range(1, len(files) + 1))
    if numbers != expected:
        gap = next(n for n in expected if n not in numbers)
        raise SourceNotFoundError(f"{where}: snapshot {weights / f'{gap:03d}.bin'} is missing")
    if len(files) > SNAPSHOTS:
        raise FormatError(f"{where}: {len(files)} snapshots in {weights}; NWS runs have <= 20")
    return files


def _scan_run(
    frame_row: Mapping[str, Any], csv_path: Path, line: int, root: Path, arch_cache: dict[Any, Any]
) -> _Run:
    where = f"{csv_path} line {line}"
    raw_path = py_value(frame_row["path"])
    if not isinstance(raw_path, str) or not raw_path.strip():
        raise FormatError(f"{where}: empty path")
    model = raw_path.strip().rstrip("/\\") or raw_path.strip()
    folder = Path(model) if os.path.isabs(model) else root / model
    try:
        found = folder.is_dir()
    except (OSError, ValueError) as exc:  # a name too long for the file system, NUL
        shown = model if len(model) <= 60 else f"{model[:60]}..."
        raise SourceNotFoundError(
            f"{where}: run folder {shown!r} cannot be looked up: "
            f"{getattr(exc, 'strerror', None) or exc}"
        ) from None
    if not found:
        raise SourceNotFoundError(f"{where}: run folder {model!r} not found (looked at {folder})")
    arch = NWSArchitecture.from_mapping(frame_row, where)
    if arch not in arch_cache:
        arch_cache[arch] = arch.layout()
    layout = arch_cache[arch]
    counts = {c: py_value(frame_row[c]) for c in ("weightn_conv", "weightn_fc")}
    if all(v is not None for v in counts.values()):
        total = sum(as_int(v, c, where) for c, v in counts.items())
        if total != layout.size:
            raise FormatError(
                f"{where}: weightn_conv + weightn_fc = {total}, but architecture {arch.name} "
                f"(from its CSV fields) has {layout.size} values"
            )
    files = _weight_files(folder, where)
    nbytes = layout.size * _BIN.itemsize
    for _, path in files:
        size = path.stat().st_size
        if size != nbytes:
            raise FormatError(
                f"{path}: {size} bytes; a snapshot of architecture {arch.name} ({where}) is "
                f"{layout.size} float64 values = {nbytes} bytes"
            )
    error_file = folder / "error.bin"
    if not error_file.is_file():
        raise SourceNotFoundError(f"{where}: {error_file} is missing")
    size = error_file.stat().st_size
    if size == 0 or size % (5 * _BIN.itemsize):
        raise FormatError(f"{error_file}: {size} bytes is not float64 [epochs x 5]")
    rows = size // (5 * _BIN.itemsize)
    stat = None
    stat_file = folder / "stat.bin"
    if stat_file.is_file():
        values = np.fromfile(stat_file, dtype=_BIN)
        if stat_file.stat().st_size % _BIN.itemsize or values.size < 1:
            raise FormatError(f"{stat_file}: {stat_file.stat().st_size} bytes is not float64")
        stat = values.tolist()
        epochs = stat[0]
        if not (np.isfinite(epochs) and epochs == int(epochs) and 1 <= epochs <= rows):
            raise FormatError(
                f"{stat_file}: epochs {epochs} does not fit {error_file} ({rows} epochs)"
            )
        epochs = int(epochs)
    else:
        epochs = rows
    steps = snapshot_epochs(epochs)[: len(files)]
    if len(set(steps)) != len(steps):
        raise FormatError(
            f"{where}: {epochs} epochs give repeated snapshot epochs {steps}; NWS runs have "
            ">= 20 epochs"
        )
    meta_file = folder / "meta.csv"
    meta_csv = read_utf8(meta_file) if meta_file.is_file() else None
    claimed = set(DERIVED)
    hyper = {
        escape_column(str(k), claimed): py_value(v) for k, v in frame_row.items() if k != "path"
    }
    snapshots = [(n, e, p) for (n, p), e in zip(files, steps, strict=True)]
    return _Run(
        model=model,
        folder=folder,
        where=where,
        arch=arch,
        layout=layout,
        split=csv_path.stem,
        hyper=hyper,
        epochs=epochs,
        error_file=error_file,
        snapshots=snapshots,
        stat=stat,
        meta_csv=meta_csv,
    )


def scan(src: str | os.PathLike[str], *, csv: str | None = None, root: Any = None) -> list[Any]:
    """Check an NWS data set without reading weights; return its runs in import order.

    Every split CSV must have the NWS columns, every run folder must exist with snapshots
    ``weights/001.bin ...`` of exactly ``8 x`` (the architecture's size) bytes, and
    ``error.bin`` (and ``stat.bin``, if present) must be float64. The first problem raises
    :class:`~wspace.errors.FormatError` or :class:`~wspace.errors.SourceNotFoundError` naming
    the file.
    """
    src = Path(src)
    runs = []
    arch_cache: dict[Any, Any] = {}
    seen: dict[str, str] = {}
    pattern = csv or "*.csv"
    for csv_path in source_files(
        src, pattern, what=f"split CSV {pattern!r} (pass the CSV or -O csv=GLOB)"
    ):
        frame = _read_csv(csv_path)
        base = Path(root) if root is not None else csv_path.parent
        for i, record in enumerate(frame.to_dict("records")):
            run = _scan_run(record, csv_path, i + 2, base, arch_cache)
            if run.model in seen:
                raise FormatError(
                    f"{run.where}: run {run.model!r} is also listed at {seen[run.model]}"
                )
            seen[run.model] = run.where
            runs.append(run)
    return runs


def import_zoo(
    src: str | os.PathLike[str],
    url: StoreLike,
    *,
    storage_options: Mapping[str, Any] | None,
    progress: bool,
    csv: str | None,
    root: str | os.PathLike[str] | None,
    commit_rows: int | None,
    allow_nonfinite: bool,
    codec: str | None,
) -> ImportReport:
    """Import NWS runs into the store at ``url`` (created when missing).

    Parameters
    ----------
    src
        A split CSV, or a folder whose CSVs (``csv`` glob, default ``*.csv``) are all split
        CSVs.
    csv
        Glob of the split CSVs in ``src``.
    root
        Folder the CSVs' relative ``path`` values start from (``None``: the CSV's folder).
    commit_rows, allow_nonfinite, codec
        The options of :class:`~wspace.io.session.ImportSession`.

    The defaults are those of :class:`wspace.io.builtin.Nws`, which calls this.

    Raises
    ------
    FormatError, SourceNotFoundError
        A CSV lacks columns, a run folder or snapshot is missing, a ``.bin`` has the wrong
        length. The whole data set is checked first, so nothing is written in these cases.
    """
    session = ImportSession(
        url,
        storage_options=storage_options,
        fmt="nws",
        commit_rows=commit_rows,
        allow_nonfinite=allow_nonfinite,
        codec=codec,
    )
    runs = scan(src, csv=csv, root=root)
    lossy = 0
    with session:
        for run in session.todo(
            runs, key=lambda r: r.model, progress=progress, desc="nws runs", unit="run"
        ):
            rows, exact = run.read()
            lossy += not exact
            session.add(run.model, rows, layout=run.layout, source=str(run.folder))
    if lossy:
        log.warning("%d run(s) had float64 weights not exact in float32; stored rounded", lossy)
    return session.report


# -- export --------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    value = py_value(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _write_csv(path: Path, header: list[str], rows: dict[str, dict[str, str]]) -> None:
    """Write split CSV ``path``; rows of runs not exported now, already in it, are kept."""
    old_header: list[str] = []
    old_rows: list[dict[str, str]] = []
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            old_header = list(reader.fieldnames or [])
            old_rows = [r for r in reader if r.get("path") not in rows]
    columns = old_header + [c for c in header if c not in old_header]
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for record in [*old_rows, *rows.values()]:
        writer.writerow([record.get(c) or "" for c in columns])
    write_atomic(path, text.getvalue())


def _meta_csv(record: Mapping[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=",", quotechar='"', quoting=csv.QUOTE_MINIMAL)
    writer.writerow(META_COLUMNS)
    writer.writerow([_cell(record.get(c)) for c in META_COLUMNS])
    return out.getvalue()


def _snapshot_numbers(models: pd.DataFrame) -> np.ndarray:
    """File number of every row: its ``snapshot``, or its rank by ``step`` within its run."""
    if "snapshot" in models and not models["snapshot"].isna().any():
        numbers = models["snapshot"]
    elif "step" in models:
        order = models["step"].astype("float64").fillna(-1)
        numbers = order.groupby(models["model"]).rank(method="first")
    else:
        numbers = models.groupby("model").cumcount() + 1
    return np.asarray(numbers, dtype=np.int64)


def _error_table(run_rows: pd.DataFrame, epochs: int) -> np.ndarray:
    """``error.bin`` of a run made elsewhere: the errors of its snapshot epochs, NaN others."""
    table = np.full((max(epochs, 1), 5), np.nan)
    if "step" not in run_rows:
        return table
    for record in run_rows.to_dict("records"):
        step = py_value(record["step"])
        if step is not None and 1 <= int(step) <= len(table):
            values = [py_value(record.get(c)) for c in ERROR_COLUMNS]
            table[int(step) - 1] = [np.nan if v is None else float(v) for v in values]
    return table


def export_zoo(
    zoo: Zoo,
    dst: str | os.PathLike[str],
    *,
    progress: bool,
    split: str | None,
    batch_rows: int,
) -> list[Path]:
    """Write the rows of ``zoo`` as NWS run folders and split CSVs under ``dst``.

    Each row becomes ``<model>/weights/<snapshot>.bin`` (float64, the slice order of the
    reference code, byte-identical to the imported file); per run, ``error.bin``, ``stat.bin``
    and ``meta.csv`` are written from the stored ``error_curve``/``stat``/``meta_csv`` (rebuilt
    from the per-row errors, NaN elsewhere, for runs that come from elsewhere); each run is a
    row of ``<split>.csv`` (the ``split`` column, else the ``split`` option, else ``nws``).
    Rows already in such a CSV for other runs are kept, so the groups of a multi-architecture
    store can be exported one after another into one folder.

    The zoo needs the architecture columns (``filter_size``, ``depth_conv``, ``depth_fc``,
    ``width_conv``, ``width_fc``, ``batch_norm``) and the layout they imply. ``batch_rows``:
    rows read from the store at once. The defaults are those of
    :class:`wspace.io.builtin.Nws`, which calls this.
    """
    batch = option_int(batch_rows, "batch_rows")
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    models = zoo.models
    missing = [c for c in ARCH_FIELDS if c not in models]
    if missing and len(zoo):
        raise FormatError(
            f"cannot export {zoo.url!r} to nws: no column(s) {listing(missing)}; NWS rows need "
            "the architecture fields"
        )
    arch_of: dict[str, NWSArchitecture] = {}
    shapes = [(t.name, t.shape) for t in zoo.layout]
    fits: dict[NWSArchitecture, bool] = {}
    for model, rows in models.groupby("model", sort=False):
        arch = NWSArchitecture.from_mapping(rows.iloc[0].to_dict(), f"model {model!r}")
        if arch not in fits:
            fits[arch] = [(t.name, t.shape) for t in arch.layout()] == shapes
        if not fits[arch]:
            raise FormatError(
                f"cannot export model {model!r} of {zoo.url!r} to nws: its architecture fields "
                f"give layout {arch.name}, not the zoo's layout {zoo.layout.name!r}"
            )
        arch_of[str(model)] = arch
    numbers = _snapshot_numbers(models)
    keys = list(zip(models["model"], numbers, strict=True))
    if len(set(keys)) != len(keys):
        raise FormatError(f"cannot export {zoo.url!r} to nws: two rows of a run share a snapshot")
    if (numbers < 1).any() or (numbers > 999).any():
        raise FormatError(f"cannot export {zoo.url!r} to nws: snapshot numbers must be 1..999")
    paths = [
        dst.joinpath(*model_parts(m), "weights", f"{int(n):03d}.bin")
        for m, n in zip(models["model"], numbers, strict=True)
    ]
    files = write_rows(
        zoo,
        paths,
        lambda tmp, _i, _meta, vector: vector.astype(_BIN).tofile(tmp),
        batch_rows=batch,
        progress=progress,
        desc="nws snapshots",
    )
    # the run files come from the first snapshot's row, which a selection may have left out
    extras = {c: first_by_model(models, c) for c in RUN_EXTRAS}
    if any(set(extras[c]) != set(arch_of) for c in RUN_EXTRAS):
        everything = full_zoo(zoo).models
        extras = {c: {**first_by_model(everything, c), **extras[c]} for c in RUN_EXTRAS}
    tables: dict[str, dict[str, dict[str, str]]] = {}
    headers: dict[str, list[str]] = {}
    for model, run_rows in models.groupby("model", sort=False):
        model = str(model)
        run_dir = dst.joinpath(*model_parts(model))
        first = {k: py_value(v) for k, v in run_rows.iloc[0].to_dict().items()}
        curve, stat, meta_text = (extras[c].get(model) for c in RUN_EXTRAS)
        if curve is not None:
            table = np.asarray(curve, dtype=_BIN).reshape(-1, 5)
        else:
            known = first.get("epochs") or (run_rows["step"].max() if "step" in run_rows else 0)
            table = _error_table(run_rows, int(py_value(known) or len(run_rows)))
        if stat is None:
            stat = [float(len(table)), np.nan, np.nan, np.nan]
        files.append(write_atomic(run_dir / "error.bin", table.astype(_BIN).tobytes()))
        files.append(write_atomic(run_dir / "stat.bin", np.asarray(stat, _BIN).tobytes()))
        files.append(write_atomic(run_dir / "meta.csv", meta_text or _meta_csv(first)))
        conv, fc = arch_of[model].weight_counts()
        record = {unescape_column(k): v for k, v in first.items() if k not in (*DERIVED, "model")}
        for column, count in (("weightn_conv", conv), ("weightn_fc", fc)):
            if record.get(column) is None:
                record[column] = count
        record["path"] = "/".join(model_parts(model))
        name = str(first.get("split") or split or "nws")
        columns = headers.setdefault(name, list(CSV_COLUMNS))
        columns += [c for c in record if c not in columns]
        tables.setdefault(name, {})[record["path"]] = {c: _cell(v) for c, v in record.items()}
    for name, rows in tables.items():
        path = dst / f"{name}.csv"
        _write_csv(path, headers[name], rows)
        files.append(path)
    return files
