"""Import and export of the published model-zoo formats (``docs/formats.md``).

One module per format; each streams (never a whole zoo in memory) through an
:class:`~wspace.io._common.ImportSession` on import and from a :class:`~wspace.Zoo` on export.
Formats are looked up by name in :data:`FORMATS` and their modules imported only when used.

Every module exposes two functions with these signatures::

    def import_zoo(src, url, *, storage_options=None, progress=True, format, **options)
        -> ImportReport
    def export_zoo(zoo, dst, *, progress=True, format, **options) -> list[pathlib.Path]

All importers give the same guarantees (see :func:`import_zoo` and ``docs/formats.md``): the
source is checked before anything is written, a model is committed whole or not at all,
commits fall between models, the store is created with the first model appended, and a re-run
skips the models already there.

Examples
--------
>>> from wspace.io import FORMATS
>>> "keras-h5" in FORMATS
True
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wspace.errors import WspaceError, listing

if TYPE_CHECKING:
    from wspace.store.backend import StoreLike
    from wspace.zoo import Zoo

__all__ = ["FORMATS", "Format", "ImportReport", "export_zoo", "get_format", "import_zoo"]


@dataclass(frozen=True, slots=True)
class Format:
    """One external format: its name, what it is, and the module implementing it."""

    name: str
    """Name used on the command line (``keras-h5``)."""
    summary: str
    """One line for ``wspace import --help``."""
    module: str
    """Module with ``import_zoo`` and ``export_zoo`` functions (imported when used)."""

    def load(self) -> Any:
        """The implementing module."""
        return importlib.import_module(self.module)


@dataclass
class ImportReport:
    """What an import did."""

    url: str
    """The store written."""
    rows: int = 0
    """Rows committed by this import."""
    models: list[str] = field(default_factory=list)
    """Model names committed (in order)."""
    archs: list[str] = field(default_factory=list)
    """Architecture groups written to."""
    skipped: list[str] = field(default_factory=list)
    """Models already in the store, left as they were."""


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "keras-h5",
            "folder of Keras 2 HDF5 files binary_oneVall_{class}_{count}_model.h5 (LeNet-5 zoo)",
            "wspace.io.keras_h5",
        ),
        Format(
            "modelwise-pickle",
            "lenet5_onevall_wghts_bymodel_*.pkl: list of {model, parameters_by_layer, "
            "parameters_flat}",
            "wspace.io.pickles",
        ),
        Format(
            "layerwise-pickle",
            "lenet5_onevall_wghts_bylayer_class_*.pkl: per class {class, parameters: {layer: "
            "list of rows}}",
            "wspace.io.pickles",
        ),
        Format("nws", "NWS run folders (weights/NNN.bin float64) + split CSVs", "wspace.io.nws"),
        Format(
            "cnn-zoo", "Small CNN Zoo: weights.npy + metrics.csv + layout.csv", "wspace.io.cnn_zoo"
        ),
        Format(
            "model-zoos",
            "Model Zoos (Schürholt et al.): Ray Tune trial folders with checkpoints",
            "wspace.io.model_zoos",
        ),
        Format(
            "state-dict", "folder of torch state_dict files (*.pt), one per row", "wspace.io.torch_"
        ),
        Format("safetensors", "folder of safetensors files, one per row", "wspace.io.torch_"),
    )
}
"""Registry: format name -> :class:`Format`."""


def get_format(name: str) -> Format:
    """The registered format ``name``; a clear error listing the known ones otherwise."""
    try:
        return FORMATS[name]
    except KeyError:
        raise WspaceError(f"unknown format {name!r}; formats: {listing(FORMATS)}") from None


def import_zoo(
    fmt: str,
    src: str | os.PathLike[str],
    url: StoreLike,
    *,
    storage_options: Mapping[str, Any] | None = None,
    progress: bool = True,
    **options: Any,
) -> ImportReport:
    """Import ``src`` in format ``fmt`` into the store at ``url`` (created when missing).

    Parameters
    ----------
    fmt
        A name of :data:`FORMATS`.
    src
        The file or folder to import (what each format reads: ``docs/formats.md``).
    url, storage_options
        The store, created with the first model appended (an import that fails before that
        leaves no store); an existing architecture group with the same tensors is reused
        whatever its name.
    progress
        Show tqdm progress bars.
    **options
        The format's own options, and those of every importer: ``commit_rows`` (alias
        ``commit_every``; commit once this many rows of complete models are pending,
        default the store's ``commit_every``, 256; 4096 for ``cnn-zoo``),
        ``allow_nonfinite`` (store NaN/infinite weights instead of refusing the model) and
        ``codec`` (of a store the import creates). Values may be strings, as ``-O KEY=VALUE``
        gives them; an unknown option is an error.

    Returns the :class:`ImportReport`. The structure of the whole source is checked first (a
    problem raises an error naming the file, and nothing is written); models already in the
    store are skipped; all rows of a model are checked before any is appended and commits
    fall between models, so a problem found while reading values stops the import after the
    last complete model, with nothing of the failing one committed.
    """
    module = get_format(fmt).load()
    report: ImportReport = module.import_zoo(
        src, url, storage_options=storage_options, progress=progress, format=fmt, **options
    )
    return report


def export_zoo(
    zoo: Zoo, dst: str | os.PathLike[str], fmt: str, *, progress: bool = True, **options: Any
) -> list[Path]:
    """Export the rows of ``zoo`` (any selection) to ``dst`` in format ``fmt``.

    ``options`` are the format's own and ``batch_rows`` (alias ``batch_size``: rows read from
    the store at once); an unknown option is an error. Every file is written to a temporary
    name and moved into place (complete or absent); model names become paths below ``dst``
    only. Returns the files written.
    """
    module = get_format(fmt).load()
    files: list[Path] = module.export_zoo(zoo, dst, progress=progress, format=fmt, **options)
    return files
