"""Built-in formats of other published zoos: ``nws``, ``cnn-zoo``, ``model-zoos``.

Light: the methods import the module implementing each format only when called. Options
common to every importer and exporter: :mod:`wspace.io.builtin`.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wspace.io.format import Format, ImportReport, Source, has_any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from wspace.query import Zoo
    from wspace.store.backend import StoreLike

__all__ = ["CnnZoo", "ModelZoos", "Nws"]

HEADER_BYTES = 64 * 1024
"""Most bytes read of a CSV's first line."""


class Nws(Format):
    """``nws``: the neural weight space of Eilertsen et al.: run folders and split CSVs.

    Import options: ``csv`` (glob of the split CSVs in a folder, default ``*.csv``), ``root``
    (folder the CSVs' ``path`` values start from; default the CSV's folder). Export options:
    ``split`` (CSV of runs without a ``split`` column; default ``nws``), ``batch_rows``.
    """

    name = "nws"
    summary = "NWS run folders (weights/NNN.bin float64) + split CSVs"

    def can_open(self, src: Path) -> bool:
        from wspace.io.nws_arch import CSV_COLUMNS

        files = [src] if src.is_file() else sorted(src.glob("*.csv"))
        return bool(files) and all(
            f.suffix == ".csv" and set(CSV_COLUMNS) <= _csv_header(f) for f in files
        )

    def import_(
        self,
        src: Source,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = True,
        csv: str | None = None,
        root: str | None = None,
        commit_rows: int | None = None,
        allow_nonfinite: bool = False,
        codec: str | None = None,
    ) -> ImportReport:
        from wspace.io import nws

        return nws.import_zoo(
            src,
            url,
            storage_options=storage_options,
            progress=progress,
            csv=csv,
            root=root,
            commit_rows=commit_rows,
            allow_nonfinite=allow_nonfinite,
            codec=codec,
        )

    def export(
        self,
        zoo: Zoo,
        dst: Source,
        *,
        progress: bool = True,
        split: str | None = None,
        batch_rows: int = 256,
    ) -> list[Path]:
        from wspace.io import nws

        return nws.export_zoo(zoo, dst, progress=progress, split=split, batch_rows=batch_rows)


class CnnZoo(Format):
    """``cnn-zoo``: the Small CNN Zoo's ``weights.npy``, ``metrics.csv(.gz)``, ``layout.csv``.

    Import options: ``arch`` (group name for the layout), and other defaults of the common
    ones: ``commit_rows=4096``, ``allow_nonfinite=True`` (the published matrices hold diverged
    runs). Export options: ``compress`` (``metrics.csv.gz``, else ``metrics.csv``),
    ``batch_rows``.
    """

    name = "cnn-zoo"
    summary = "Small CNN Zoo: weights.npy + metrics.csv + layout.csv"

    def can_open(self, src: Path) -> bool:
        return (src / "weights.npy").is_file() and (src / "layout.csv").is_file()

    def import_(
        self,
        src: Source,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = True,
        arch: str = "cnn-zoo",
        commit_rows: int | None = 4096,
        allow_nonfinite: bool = True,
        codec: str | None = None,
    ) -> ImportReport:
        from wspace.io import cnn_zoo

        return cnn_zoo.import_zoo(
            src,
            url,
            storage_options=storage_options,
            progress=progress,
            arch=arch,
            commit_rows=commit_rows,
            allow_nonfinite=allow_nonfinite,
            codec=codec,
        )

    def export(
        self,
        zoo: Zoo,
        dst: Source,
        *,
        progress: bool = True,
        compress: bool = True,
        batch_rows: int = 1024,
    ) -> list[Path]:
        from wspace.io import cnn_zoo

        return cnn_zoo.export_zoo(
            zoo, dst, progress=progress, compress=compress, batch_rows=batch_rows
        )


class ModelZoos(Format):
    """``model-zoos``: the Model Zoos of Schürholt et al.: Ray Tune trial folders.

    Import option: ``arch`` (group name for the layout of the first checkpoint). Export
    option: ``batch_rows``.
    """

    name = "model-zoos"
    summary = "Model Zoos (Schürholt et al.): Ray Tune trial folders with checkpoints"

    def can_open(self, src: Path) -> bool:
        for depth in range(3):  # a trial folder, a folder of them, or one level deeper
            result = next(src.glob("*/" * depth + "result.json"), None)
            if result is not None:
                return has_any(p for p in result.parent.glob("checkpoint_*") if p.is_dir())
        return False

    def import_(
        self,
        src: Source,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = True,
        arch: str = "model-zoos",
        commit_rows: int | None = None,
        allow_nonfinite: bool = False,
        codec: str | None = None,
    ) -> ImportReport:
        from wspace.io import model_zoos

        return model_zoos.import_zoo(
            src,
            url,
            storage_options=storage_options,
            progress=progress,
            arch=arch,
            commit_rows=commit_rows,
            allow_nonfinite=allow_nonfinite,
            codec=codec,
        )

    def export(
        self, zoo: Zoo, dst: Source, *, progress: bool = True, batch_rows: int = 256
    ) -> list[Path]:
        from wspace.io import model_zoos

        return model_zoos.export_zoo(zoo, dst, progress=progress, batch_rows=batch_rows)


def _csv_header(path: Path) -> set[str]:
    """The column names of a CSV's first line (empty when it cannot be read as text)."""
    try:
        with path.open("rb") as file:
            line = file.readline(HEADER_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return set()
    return {name.strip() for name in next(csv.reader([line]), [])}
