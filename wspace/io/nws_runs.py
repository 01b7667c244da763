"""NWS run folders: the metadata columns the importer derives, the checks of a data set that
read no weights (:func:`scan`), and the rows of one checked run (:meth:`NWSRun.read`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wspace.errors import FormatError, SourceNotFoundError, listing
from wspace.io.files import read_utf8, source_files
from wspace.io.nws_arch import (
    CSV_COLUMNS,
    SNAPSHOTS,
    NWSArchitecture,
    as_int,
    snapshot_epochs,
)
from wspace.io.values import escape_column, py_value
from wspace.layout import Layout

__all__ = ["BIN", "DERIVED", "ERROR_COLUMNS", "RUN_EXTRAS", "NWSRun", "scan"]

ERROR_COLUMNS = ("iteration", "train_error", "valid_error", "test_error", "valid_error_smoothed")
RUN_EXTRAS = ("error_curve", "stat", "meta_csv")
DERIVED = ("split", "step", "snapshot", "epochs", *ERROR_COLUMNS, *RUN_EXTRAS)
"""Metadata columns the importer makes itself (a CSV column of such a name is escaped)."""
BIN = np.dtype("<f8")
"""The dtype of every NWS ``.bin`` file: little-endian float64."""


@dataclass
class NWSRun:
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
        errors = np.fromfile(self.error_file, dtype=BIN)
        if errors.size % 5 or errors.size // 5 < self.epochs:
            raise FormatError(f"{self.error_file}: changed since it was checked ({errors.size})")
        errors = errors.reshape(-1, 5)
        rows = []
        exact = True
        for number, epoch, path in self.snapshots:
            values = np.fromfile(path, dtype=BIN)
            if values.size != self.layout.size:
                raise FormatError(
                    f"{path}: {values.size} float64 values; architecture {self.arch.name} "
                    f"({self.where}) has {self.layout.size}"
                )
            vector = values.astype(np.float32)
            exact &= bool(np.array_equal(vector.astype(BIN), values, equal_nan=True))
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
) -> NWSRun:
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
    nbytes = layout.size * BIN.itemsize
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
    if size == 0 or size % (5 * BIN.itemsize):
        raise FormatError(f"{error_file}: {size} bytes is not float64 [epochs x 5]")
    rows = size // (5 * BIN.itemsize)
    stat = None
    stat_file = folder / "stat.bin"
    if stat_file.is_file():
        values = np.fromfile(stat_file, dtype=BIN)
        if stat_file.stat().st_size % BIN.itemsize or values.size < 1:
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
    return NWSRun(
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
