"""The built-in formats: one :class:`~wspace.io.format.Format` subclass each.

This module is light: it names, describes and detects the formats, and holds their options
and defaults; each method imports the module that implements the format (h5py, torch, ...)
only when called. What each format reads and writes: ``docs/formats.md``.

Options of every importer (besides the format's own): ``commit_rows`` (commit once this many
rows of complete models are pending; ``None``: the store's ``commit_every``, 256),
``allow_nonfinite`` (store NaN/infinite weights instead of refusing the model) and ``codec``
(of a store the import creates). Of every exporter: ``batch_rows`` (rows read from the store
at once).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> (folder / "binary_oneVall_church_649_model.h5").touch()
>>> KerasH5().can_open(folder), Nws().can_open(folder)
(True, False)
>>> sorted(KerasH5().import_options())
['allow_nonfinite', 'codec', 'commit_rows', 'convention', 'pattern']
"""

from __future__ import annotations

import csv
import io
import os
import pickletools
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from wspace.io.format import Format, ImportReport

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from wspace.store.backend import StoreLike
    from wspace.zoo import Zoo

__all__ = [
    "BUILTIN",
    "KERAS_PATTERN",
    "LAYERWISE_PREFIX",
    "MODELWISE_PREFIX",
    "CnnZoo",
    "KerasH5",
    "LayerwisePickle",
    "ModelZoos",
    "ModelwisePickle",
    "Nws",
    "Safetensors",
    "StateDict",
]

Source: TypeAlias = str | os.PathLike[str]
KERAS_PATTERN = "binary_oneVall_*_model.h5"
"""Default glob of the ``keras-h5`` files read in a folder."""
MODELWISE_PREFIX = "lenet5_onevall_wghts_bymodel_"
"""Published file-name prefix of ``modelwise-pickle`` files."""
LAYERWISE_PREFIX = "lenet5_onevall_wghts_bylayer_class_"
"""Published file-name prefix of ``layerwise-pickle`` files."""
HEADER_BYTES = 64 * 1024
"""Most bytes :meth:`~wspace.io.format.Format.can_open` reads of one file."""


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
        return _any(src.glob(KERAS_PATTERN))

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
            return _any(src.glob(f"{self.prefix}*.pkl"))
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
                return _any(p for p in result.parent.glob("checkpoint_*") if p.is_dir())
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


class _TorchFiles(Format):
    """A folder of tensor files, one per row (``state-dict``, ``safetensors``)."""

    suffixes: tuple[str, ...]

    def can_open(self, src: Path) -> bool:
        return src.is_dir() and _any(p for s in self.suffixes for p in src.rglob(f"*{s}"))

    def _import(self, src: Source, url: StoreLike, **kwargs: Any) -> ImportReport:
        from wspace.io import torch_

        return torch_.import_zoo(src, url, format=self.name, **kwargs)

    def export(
        self, zoo: Zoo, dst: Source, *, progress: bool = True, batch_rows: int = 256
    ) -> list[Path]:
        from wspace.io import torch_

        return torch_.export_zoo(
            zoo, dst, progress=progress, format=self.name, batch_rows=batch_rows
        )


class StateDict(_TorchFiles):
    """``state-dict``: a folder of torch ``state_dict`` files (``*.pt``, ``*.pth``).

    Import options: ``arch`` (group name; default the name in ``layout.json``, else
    ``state-dict``), ``key`` (the key of the state_dict in files holding a checkpoint dict).
    Export option: ``batch_rows``.
    """

    name = "state-dict"
    summary = "folder of torch state_dict files (*.pt), one per row"
    suffixes = (".pt", ".pth")

    def import_(
        self,
        src: Source,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = True,
        arch: str | None = None,
        key: str | None = None,
        commit_rows: int | None = None,
        allow_nonfinite: bool = False,
        codec: str | None = None,
    ) -> ImportReport:
        return self._import(
            src,
            url,
            storage_options=storage_options,
            progress=progress,
            arch=arch,
            key=key,
            commit_rows=commit_rows,
            allow_nonfinite=allow_nonfinite,
            codec=codec,
        )


class Safetensors(_TorchFiles):
    """``safetensors``: a folder of safetensors files (``*.safetensors``).

    Import option: ``arch`` (group name; default the name in the header, else
    ``safetensors``). Export option: ``batch_rows``.
    """

    name = "safetensors"
    summary = "folder of safetensors files, one per row"
    suffixes = (".safetensors",)

    def import_(
        self,
        src: Source,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = True,
        arch: str | None = None,
        commit_rows: int | None = None,
        allow_nonfinite: bool = False,
        codec: str | None = None,
    ) -> ImportReport:
        return self._import(
            src,
            url,
            storage_options=storage_options,
            progress=progress,
            arch=arch,
            key=None,
            commit_rows=commit_rows,
            allow_nonfinite=allow_nonfinite,
            codec=codec,
        )


BUILTIN: tuple[Format, ...] = (
    KerasH5(),
    ModelwisePickle(),
    LayerwisePickle(),
    Nws(),
    CnnZoo(),
    ModelZoos(),
    StateDict(),
    Safetensors(),
)
"""The built-in formats, in the order ``wspace formats`` lists them."""


def _any(paths: Iterator[Path]) -> bool:
    return next(paths, None) is not None


def _csv_header(path: Path) -> set[str]:
    """The column names of a CSV's first line (empty when it cannot be read as text)."""
    try:
        with path.open("rb") as file:
            line = file.readline(HEADER_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return set()
    return {name.strip() for name in next(csv.reader([line]), [])}


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
