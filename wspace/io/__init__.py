"""Import and export of the published model-zoo formats (``../shared/design/FORMATS.md``).

One module per format; each streams row by row (never a whole zoo in memory) through a
:class:`~wspace.Writer` on import and from a :class:`~wspace.Zoo` on export. Formats are looked
up by name in :data:`FORMATS` and their modules imported only when used.

Every module exposes two functions with these signatures::

    def import_zoo(src, url, *, storage_options=None, progress=True, **options) -> ImportReport
    def export_zoo(zoo, dst, *, progress=True, **options) -> list[pathlib.Path]

``import_zoo`` creates the store at ``url`` if it does not exist (with the layout the source
implies) and appends every model; a model that fails validation raises a
:class:`~wspace.WspaceError` naming the file, and nothing of that model is committed.
``export_zoo`` writes the rows of ``zoo`` (any selection) under ``dst`` and returns the files
written.

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
    """Import ``src`` in format ``fmt`` into the store at ``url`` (created when missing)."""
    module = get_format(fmt).load()
    report: ImportReport = module.import_zoo(
        src, url, storage_options=storage_options, progress=progress, format=fmt, **options
    )
    return report


def export_zoo(
    zoo: Zoo, dst: str | os.PathLike[str], fmt: str, *, progress: bool = True, **options: Any
) -> list[Path]:
    """Export the rows of ``zoo`` to ``dst`` in format ``fmt``; return the files written."""
    module = get_format(fmt).load()
    files: list[Path] = module.export_zoo(zoo, dst, progress=progress, format=fmt, **options)
    return files
