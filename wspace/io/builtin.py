"""The built-in formats: one :class:`~wspace.io.format.Format` subclass each.

The subclasses (in :mod:`wspace.io.builtin_lenet`, :mod:`wspace.io.builtin_zoos`,
:mod:`wspace.io.builtin_torch`) are light: they name, describe and detect the formats, and hold
their options and defaults; each method imports the module that implements the format (h5py,
torch, ...) only when called. What each format reads and writes: ``docs/formats.md``.

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

from wspace.io.builtin_lenet import KerasH5, LayerwisePickle, ModelwisePickle
from wspace.io.builtin_torch import Safetensors, StateDict
from wspace.io.builtin_zarr import ZarrSnapshot
from wspace.io.builtin_zoos import CnnZoo, ModelZoos, Nws
from wspace.io.format import Format

__all__ = [
    "BUILTIN",
    "PUBLISHED",
    "CnnZoo",
    "KerasH5",
    "LayerwisePickle",
    "ModelZoos",
    "ModelwisePickle",
    "Nws",
    "Safetensors",
    "StateDict",
    "ZarrSnapshot",
]

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

PUBLISHED: tuple[Format, ...] = (ZarrSnapshot(),)
"""Built-in formats that only export (``zarr``: a published snapshot is a wspace store
already, opened with ``wspace.open``); :func:`wspace.io.formats` lists them after
:data:`BUILTIN`."""
