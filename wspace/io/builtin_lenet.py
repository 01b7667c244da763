"""Built-in formats of the LeNet-5 hypernetwork zoo: ``keras-h5`` and the two pickles.

Light: the methods import :mod:`wspace.io.keras_h5` and :mod:`wspace.io.pickles` (h5py, torch)
only when called. Options common to every importer and exporter: :mod:`wspace.io.builtin`.
"""

from __future__ import annotations

import io
import pickletools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wspace.io.format import Format, ImportReport, Source, has_any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from wspace.query import Zoo
    from wspace.store.backend import StoreLike

__all__ = [
    "KERAS_PATTERN",
    "LAYERWISE_PREFIX",
    "MODELWISE_PREFIX",
    "KerasH5",
    "LayerwisePickle",
    "ModelwisePickle",
]

KERAS_PATTERN = "binary_oneVall_*_model.h5"
"""Default glob of the ``keras-h5`` files read in a folder."""
MODELWISE_PREFIX = "lenet5_onevall_wghts_bymodel_"
"""Published file-name prefix of ``modelwise-pickle`` files."""
LAYERWISE_PREFIX = "lenet5_onevall_wghts_bylayer_class_"
"""Published file-name prefix of ``layerwise-pickle`` files."""
HEADER_BYTES = 64 * 1024
"""Most bytes read of a pickle to tell what it holds."""


class KerasH5(Format):
    """``keras-h5``: the LeNet-5 zoo's Keras 2 HDF5 files, one per model.

    Import options: ``pattern`` (glob of the files read in a folder), ``convention``
    (``keras``: tensors as in the files, group ``lenet5-keras``; ``torch``: converted exactly,
    group ``lenet5``). Export options: ``weights_only`` (``save_weights`` files),
    ``overwrite`` (replace existing files), ``batch_rows``.
    """

    name = "keras-h5"
    summary = "folder of Keras 2 HDF5 files binary_oneVall_{class}_{count}_model.h5 (LeNet-5 zoo)"

    def can_open(self, src: Path) -> bool:
        if src.is_file():
            return src.suffix == ".h5"
        return has_any(src.glob(KERAS_PATTERN))

    def import_(
        self,
        src: Source,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = True,
        pattern: str = KERAS_PATTERN,
        convention: str = "keras",
        commit_rows: int | None = None,
        allow_nonfinite: bool = False,
        codec: str | None = None,
    ) -> ImportReport:
        from wspace.io import keras_h5

        return keras_h5.import_zoo(
            src,
            url,
            storage_options=storage_options,
            progress=progress,
            pattern=pattern,
            convention=convention,
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
        weights_only: bool = False,
        overwrite: bool = True,
        batch_rows: int = 64,
    ) -> list[Path]:
        from wspace.io import keras_h5

        return keras_h5.export_zoo(
            zoo,
            dst,
            progress=progress,
            weights_only=weights_only,
            overwrite=overwrite,
            batch_rows=batch_rows,
        )


class _Pickle(Format):
    """The LeNet-5 zoo's pickles (``modelwise-pickle``, ``layerwise-pickle``)."""

    prefix: str
    """Published file-name prefix."""
    keys: frozenset[str]
    """Keys of an item, all of which appear at the start of a pickle of this format."""

    def can_open(self, src: Path) -> bool:
        if src.is_dir():
            return has_any(src.glob(f"{self.prefix}*.pkl"))
        if src.suffix != ".pkl":
            return False
        return src.name.startswith(self.prefix) or self.keys <= _pickle_strings(src)

    def _import(
        self, src: Source, url: StoreLike, sidecar: Source | None, **kwargs: Any
    ) -> ImportReport:
        from wspace.io import pickles

        return pickles.import_zoo(src, url, format=self.name, sidecar=sidecar, **kwargs)

    def export(
        self,
        zoo: Zoo,
        dst: Source,
        *,
        progress: bool = True,
        overwrite: bool = True,
        batch_rows: int = 64,
    ) -> list[Path]:
        from wspace.io import pickles

        return pickles.export_zoo(
            zoo,
            dst,
            progress=progress,
            format=self.name,
            overwrite=overwrite,
            batch_rows=batch_rows,
        )


class ModelwisePickle(_Pickle):
    """``modelwise-pickle``: a list with one dict per model.

    Import option: ``convention`` (``keras`` or ``torch``, as for ``keras-h5``). Export
    options: ``overwrite``, ``batch_rows``; ``dst`` is a folder (the file gets its published,
    time-stamped name) or a ``.pkl`` path.
    """

    name = "modelwise-pickle"
    summary = (
        "lenet5_onevall_wghts_bymodel_*.pkl: list of {model, parameters_by_layer, parameters_flat}"
    )
    prefix = MODELWISE_PREFIX
    keys = frozenset({"model", "parameters_by_layer"})

    def import_(
        self,
        src: Source,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = True,
        convention: str = "keras",
        commit_rows: int | None = None,
        allow_nonfinite: bool = False,
        codec: str | None = None,
    ) -> ImportReport:
        return self._import(
            src,
            url,
            None,
            storage_options=storage_options,
            progress=progress,
            convention=convention,
            commit_rows=commit_rows,
            allow_nonfinite=allow_nonfinite,
            codec=codec,
        )


class LayerwisePickle(_Pickle):
    """``layerwise-pickle``: per class, per layer, one row per model.

    Import options: ``sidecar`` (the model-names file; default: the pickle's
    ``.models.json`` when it exists, else models are named ``{class}_{i}``), ``convention``.
    Export options: ``overwrite``, ``batch_rows`` (the sidecar is written beside the pickle).
    """

    name = "layerwise-pickle"
    summary = (
        "lenet5_onevall_wghts_bylayer_class_*.pkl: per class {class, parameters: {layer: "
        "list of rows}}"
    )
    prefix = LAYERWISE_PREFIX
    keys = frozenset({"class", "parameters"})

    def import_(
        self,
        src: Source,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = True,
        sidecar: str | None = None,
        convention: str = "keras",
        commit_rows: int | None = None,
        allow_nonfinite: bool = False,
        codec: str | None = None,
    ) -> ImportReport:
        return self._import(
            src,
            url,
            sidecar,
            storage_options=storage_options,
            progress=progress,
            convention=convention,
            commit_rows=commit_rows,
            allow_nonfinite=allow_nonfinite,
            codec=codec,
        )


def _pickle_strings(path: Path, most: int = 16) -> set[str]:
    """The first ``most`` strings of a pickle (keys, names: what its top-level items look
    like) from its first bytes; none for a file that is not a pickle."""
    found: set[str] = set()
    try:
        with path.open("rb") as file:
            head = file.read(HEADER_BYTES)
        for _op, arg, _pos in pickletools.genops(io.BytesIO(head)):
            if isinstance(arg, str):
                found.add(arg)
                if len(found) >= most:
                    break
    except (OSError, ValueError):  # unreadable, not a pickle, or the head ends: what was seen
        pass
    return found
