"""Built-in format ``zarr``: a self-describing Zarr v3 snapshot of a zoo (export only).

The snapshot is written by :meth:`wspace.Zoo.to_zarr` (:mod:`wspace.store.snapshot`): a store
whose root group is a format-2 archive, readable by ``xarray.open_zarr(dst)``, zarr-python or
TensorStore without wspace, and by ``wspace.open(dst)`` (it carries a minimal commit log).
There is nothing to import: ``wspace.open`` reads a snapshot as it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wspace.errors import FormatError
from wspace.io.format import Format, ImportReport, Source

if TYPE_CHECKING:
    from collections.abc import Mapping

    from wspace.query import Zoo
    from wspace.store.backend import StoreLike

__all__ = ["ZarrSnapshot"]


class ZarrSnapshot(Format):
    """``zarr``: the rows (any selection) as one self-describing Zarr v3 group.

    Export only: the destination (a folder, or an fsspec URL whose credentials fsspec finds
    itself; :meth:`wspace.Zoo.to_zarr` takes ``storage_options``) must not exist. See
    ``docs/format-spec.md`` ("Snapshots") and ``docs/guide.md`` ("Publishing a zoo").
    """

    name = "zarr"
    summary = "self-describing Zarr v3 snapshot (xarray.open_zarr reads it; so does wspace.open)"

    def import_(
        self,
        src: Source,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = True,
    ) -> ImportReport:
        raise FormatError(
            f"{os.fspath(src)!r}: a zarr snapshot is a wspace store already; open it with "
            "wspace.open(path) (nothing to import)"
        )

    def export(self, zoo: Zoo, dst: Source, *, progress: bool = True) -> list[Path]:
        target = os.fspath(dst)
        zoo.to_zarr(target)
        folder = Path(target)
        if "://" in target or not folder.is_dir():
            return [folder]
        return sorted(p for p in folder.rglob("*") if p.is_file())
