"""What a format is: the :class:`Format` base class, and the :class:`ImportReport` of an import.

A format has a ``name`` (used on the command line), a one-line ``summary``, a cheap
:meth:`Format.can_open` test that ``wspace import auto`` uses to detect it, and the methods
:meth:`Format.import_` and :meth:`Format.export`, whose options are explicit keyword-only
parameters (an option a format does not have is refused by the signature). The built-in formats
are in :mod:`wspace.io.builtin`; a third-party package adds one through the entry-point group
``wspace.formats`` (:mod:`wspace.io.registry`).

Examples
--------
>>> from pathlib import Path
>>> class Lines(Format):
...     name = "lines"
...     summary = "a text file, one comma-separated row per line"
...     def can_open(self, src: Path) -> bool:
...         return src.suffix == ".lines"
...     def import_(self, src, url, *, storage_options=None, progress=True, sep: str = ","):
...         ...
>>> Lines().can_open(Path("zoo.lines")), list(Lines().import_options())
(True, ['sep'])
"""

from __future__ import annotations

import abc
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

from wspace.errors import FormatError
from wspace.io.options import keyword_options

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from wspace.query import Zoo
    from wspace.store.backend import StoreLike

__all__ = ["Format", "ImportReport", "Source", "has_any"]

Source: TypeAlias = str | os.PathLike[str]
"""A file or folder to import from, or to export to."""


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
    format: str = ""
    """Name of the format imported."""


class Format(abc.ABC):
    """One external format of model zoos: name, summary, detection, import and export.

    A subclass sets :attr:`name` and :attr:`summary` and implements :meth:`import_` (and
    :meth:`export`, :meth:`can_open` when it can), adding its options as keyword-only
    parameters with defaults after ``storage_options`` and ``progress``. Option values may
    come from the command line as strings: :func:`wspace.io.import_zoo` converts them to the
    annotated type (``bool``, ``int``, ``float``) before calling the method. The importers of
    wspace write through :class:`wspace.io.session.ImportSession` and take the options
    ``commit_rows``, ``allow_nonfinite`` and ``codec``; the exporters take ``batch_rows``.
    """

    name: ClassVar[str]
    """Name on the command line (``keras-h5``)."""
    summary: ClassVar[str]
    """One line: what the source or the written files look like."""

    def can_open(self, src: Path) -> bool:
        """Whether :meth:`import_` with its default options reads ``src`` (a file or folder).

        It must be cheap: file names and suffixes, at most one small header read per file
        looked at. The default says no (the format is then never detected).
        """
        return False

    @abc.abstractmethod
    def import_(
        self,
        src: str | os.PathLike[str],
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = True,
    ) -> ImportReport:
        """Import ``src`` into the store at ``url`` (created when missing).

        Parameters
        ----------
        src
            The file or folder to read.
        url, storage_options
            The store; created with the first model appended.
        progress
            Show progress bars.

        Returns the :class:`ImportReport`.
        """

    def export(self, zoo: Zoo, dst: str | os.PathLike[str], *, progress: bool = True) -> list[Path]:
        """Write the rows of ``zoo`` (any selection) to ``dst``; return the files written.

        The default refuses: the format can only be imported.
        """
        raise FormatError(f"format {self.name!r} can only be imported, not exported")

    def import_options(self) -> dict[str, inspect.Parameter]:
        """The options of :meth:`import_`: name -> parameter (with its default)."""
        return keyword_options(self.import_)

    def export_options(self) -> dict[str, inspect.Parameter]:
        """The options of :meth:`export` (none when the format cannot export)."""
        return keyword_options(self.export) if self.exports else {}

    @property
    def exports(self) -> bool:
        """Whether the format can export."""
        return type(self).export is not Format.export

    def __repr__(self) -> str:
        return f"<{type(self).__name__} format {self.name!r}>"


def has_any(paths: Iterator[Path]) -> bool:
    """Whether ``paths`` (a lazy glob, say) yields one path; stops at the first."""
    return next(paths, None) is not None
