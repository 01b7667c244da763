"""Writing a zoo as NWS run folders and split CSVs (the ``nws`` export)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wspace.errors import FormatError, listing
from wspace.io.files import model_parts, write_atomic
from wspace.io.nws_arch import ARCH_FIELDS, CSV_COLUMNS, META_COLUMNS, NWSArchitecture
from wspace.io.nws_runs import BIN, DERIVED, ERROR_COLUMNS, RUN_EXTRAS
from wspace.io.options import option_int
from wspace.io.row_files import full_zoo, write_rows
from wspace.io.values import first_by_model, py_value, unescape_column

if TYPE_CHECKING:
    from wspace.query import Zoo

__all__ = ["export_zoo"]


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
        lambda tmp, _i, _meta, vector: vector.astype(BIN).tofile(tmp),
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
            table = np.asarray(curve, dtype=BIN).reshape(-1, 5)
        else:
            known = first.get("epochs") or (run_rows["step"].max() if "step" in run_rows else 0)
            table = _error_table(run_rows, int(py_value(known) or len(run_rows)))
        if stat is None:
            stat = [float(len(table)), np.nan, np.nan, np.nan]
        files.append(write_atomic(run_dir / "error.bin", table.astype(BIN).tobytes()))
        files.append(write_atomic(run_dir / "stat.bin", np.asarray(stat, BIN).tobytes()))
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
