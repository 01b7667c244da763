"""Import and export of model-zoo formats (``docs/formats.md``), and the registry of formats.

Each format is a :class:`Format` subclass (:mod:`wspace.io.builtin`: name, summary, a cheap
``can_open`` test, and ``import_``/``export`` methods whose options are explicit keyword-only
parameters) implemented in a module of its own that is imported only when used; a third-party
package adds one through the entry-point group ``wspace.formats`` (:mod:`wspace.io.registry`).
:func:`import_zoo` and :func:`export_zoo` look a format up by name and take its options as
keywords, as ``-O KEY=VALUE`` strings or typed.

All importers give the same guarantees (see :func:`import_zoo` and ``docs/formats.md``): the
source is checked before anything is written, a model is committed whole or not at all,
commits fall between models, the store is created with the first model appended, and a re-run
skips the models already there.

Examples
--------
>>> from wspace.io import FORMATS, formats
>>> "keras-h5" in FORMATS and set(FORMATS) <= set(formats())
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wspace.io.builtin import BUILTIN
from wspace.io.format import Format, ImportReport
from wspace.io.options import bind_options
from wspace.io.registry import AUTO, GROUP, detect_format, formats, get_format

if TYPE_CHECKING:
    from wspace.query import Zoo
    from wspace.store.backend import StoreLike

__all__ = [
    "AUTO",
    "FORMATS",
    "GROUP",
    "Format",
    "ImportReport",
    "detect_format",
    "export_zoo",
    "formats",
    "get_format",
    "import_zoo",
]

FORMATS: dict[str, Format] = {f.name: f for f in BUILTIN}
"""The built-in formats by name (:func:`formats` adds those of plugins)."""


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
        A format name (:func:`formats`), or ``"auto"``: the one format whose ``can_open``
        accepts ``src`` (:func:`detect_format`; the report's ``format`` says which).
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
        gives them; an unknown option is an error naming the format's options.

    Returns the :class:`ImportReport`. The structure of the whole source is checked first (a
    problem raises an error naming the file, and nothing is written); models already in the
    store are skipped; all rows of a model are checked before any is appended and commits
    fall between models, so a problem found while reading values stops the import after the
    last complete model, with nothing of the failing one committed.
    """
    format_ = detect_format(src) if fmt == AUTO else get_format(fmt)
    kwargs = bind_options(format_.name, format_.import_, options)
    return format_.import_(src, url, storage_options=storage_options, progress=progress, **kwargs)


def export_zoo(
    zoo: Zoo, dst: str | os.PathLike[str], fmt: str, *, progress: bool = True, **options: Any
) -> list[Path]:
    """Export the rows of ``zoo`` (any selection) to ``dst`` in format ``fmt``.

    ``options`` are the format's own and ``batch_rows`` (alias ``batch_size``: rows read from
    the store at once); an unknown option is an error. Every file is written to a temporary
    name and moved into place (complete or absent); model names become paths below ``dst``
    only. Returns the files written.
    """
    format_ = get_format(fmt)
    kwargs = bind_options(format_.name, format_.export, options)
    return format_.export(zoo, dst, progress=progress, **kwargs)
