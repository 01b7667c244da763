"""Exports: rows of a zoo to files, and the checks exports share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wspace.errors import FormatError, SchemaMismatchError, WspaceError, listing
from wspace.io.files import atomic_file, progress_bar

if TYPE_CHECKING:
    from wspace.query import Zoo

__all__ = ["full_zoo", "one_row_per_model", "write_rows"]


def write_rows(
    zoo: Zoo,
    paths: Sequence[Path],
    write: Callable[[Path, int, dict[str, Any], np.ndarray], None],
    *,
    batch_rows: int,
    progress: bool,
    desc: str,
    overwrite: bool = True,
) -> list[Path]:
    """Write row ``i`` of ``zoo`` to ``paths[i]`` with ``write(tmp, i, metadata, vector)``.

    Rows are read ``batch_rows`` at a time; each file is written to a temporary path and
    moved into place (:func:`atomic_file`). Two rows for one path are refused before anything
    is written. Returns ``paths``.
    """
    first: dict[Path, int] = {}
    for i, path in enumerate(paths):
        j = first.setdefault(path, i)
        if j != i:
            names = zoo.models["model"]
            raise FormatError(
                f"store {zoo.url!r}: rows {j} and {i} (models {names.iloc[j]!r} and "
                f"{names.iloc[i]!r}) would both be written to {str(path)!r}"
            )
    rows = progress_bar(
        zoo.rows(batch_rows), enabled=progress, desc=desc, total=len(zoo), unit="row"
    )
    for i, (path, (meta, vector)) in enumerate(zip(paths, rows, strict=True)):
        with atomic_file(path, overwrite=overwrite) as tmp:
            write(tmp, i, meta, vector)
    return list(paths)


def one_row_per_model(zoo: Zoo, fmt: str) -> None:
    """Refuse a zoo with several rows (snapshots) of a model: ``fmt`` has one entry per model."""
    names = zoo.models["model"]
    if names.duplicated().any():
        dup = pd.unique(names[names.duplicated()])
        raise SchemaMismatchError(
            f"store {zoo.url!r}: model(s) {listing(dup)} have several rows (snapshots); "
            f"select one row per model (e.g. --where step=20) to export {fmt}"
        )


def full_zoo(zoo: Zoo) -> Zoo:
    """All rows of ``zoo``'s architecture group (the zoo itself when it has no store)."""
    try:
        return zoo.arch(zoo.ds.attrs["arch"])
    except WspaceError:
        return zoo
