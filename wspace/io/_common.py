"""Machinery shared by the format modules of :mod:`wspace.io`.

Importers use an :class:`ImportSession`: it knows which models the store already holds (so a
re-run skips them), creates the store or the architecture group on the first row it appends
(so an import that fails on its first file leaves no empty store behind), appends through one
:class:`~wspace.Writer` (commits every ``commit_every`` rows), and fills the
:class:`~wspace.io.ImportReport`. On an exception the rows not yet committed are discarded.
Exporters use :func:`atomic_file` so that a file appears complete or not at all, and
:func:`timestamp` for the time-stamped file names of the published formats. Options come from
the command line as strings: :func:`option_bool` and :func:`option_int` read them;
:func:`one_row_per_model` refuses zoos with snapshots for formats that have one entry per model.

Examples
--------
>>> import numpy as np, wspace
>>> from wspace.architectures import lenet5_layout
>>> with ImportSession("memory://doc-common") as session:
...     session.append(np.zeros(91481, "float32"), layout=lenet5_layout(), model="a_1",
...                    source="a.bin", cls="a")
>>> session.report.models, ImportSession("memory://doc-common").is_committed("a_1")
(['a_1'], True)
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd
from tqdm.auto import tqdm

from wspace.errors import (
    SchemaMismatchError,
    StoreExistsError,
    StoreNotFoundError,
    WspaceError,
    listing,
)
from wspace.io import ImportReport
from wspace.layout import Layout
from wspace.store.backend import StoreLike
from wspace.store.create import add_arch, create
from wspace.store.log import RowKey
from wspace.store.reader import open_store
from wspace.store.writer import Writer

if TYPE_CHECKING:
    from wspace.zoo import Zoo

__all__ = [
    "ImportSession",
    "atomic_file",
    "committed_keys",
    "ensure_arch",
    "one_row_per_model",
    "option_bool",
    "option_int",
    "progress_bar",
    "timestamp",
]

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def option_bool(value: Any, name: str) -> bool:
    """A boolean option given as a bool or as a command-line string (``true``/``false``).

    Examples
    --------
    >>> option_bool("yes", "overwrite"), option_bool(False, "overwrite")
    (True, False)
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise WspaceError(f"option {name}={value!r}: expected true or false")


def option_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """An integer option (at least ``minimum``) given as an int or a command-line string.

    Examples
    --------
    >>> option_int("64", "batch_size")
    64
    """
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise WspaceError(f"option {name}={value!r}: expected an integer") from None
    if isinstance(value, bool) or number < minimum:
        raise WspaceError(f"option {name}={value!r}: expected an integer >= {minimum}")
    return number


def progress_bar(
    items: Iterable[T], *, enabled: bool, desc: str, total: int | None = None, unit: str = "file"
) -> Iterator[T]:
    """``items`` with a tqdm progress bar on stderr when ``enabled``."""
    return iter(tqdm(items, desc=desc, total=total, unit=unit, disable=not enabled, leave=False))


def timestamp() -> str:
    """Local time as ``YYYYmmdd_HHMMSS``, for the time-stamped file names of FORMATS.md §1.

    Examples
    --------
    >>> len(timestamp()), timestamp()[8]
    (15, '_')
    """
    return time.strftime("%Y%m%d_%H%M%S")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` when the block succeeds.

    The file appears complete or not at all; on an exception the temporary file is removed.
    With ``overwrite=False`` an existing ``path`` raises :class:`~wspace.StoreExistsError`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_file(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    target = Path(path)
    if not overwrite and target.exists():
        raise StoreExistsError(f"{str(target)!r} exists; pass overwrite=true to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def one_row_per_model(zoo: Zoo, fmt: str) -> None:
    """Refuse a zoo with several rows (snapshots) of a model: ``fmt`` has one entry per model."""
    names = zoo.models["model"]
    if names.duplicated().any():
        dup = pd.unique(names[names.duplicated()])
        raise SchemaMismatchError(
            f"store {zoo.url!r}: model(s) {listing(dup)} have several rows (snapshots); "
            f"select one row per model (e.g. --where step=20) to export {fmt}"
        )


def committed_keys(
    url: StoreLike, *, storage_options: Mapping[str, Any] | None = None
) -> set[RowKey]:
    """The ``(model, step)`` keys committed in the store at ``url`` (empty when none exists)."""
    try:
        handle = open_store(url, storage_options=storage_options)
    except StoreNotFoundError:
        return set()
    return {key for arch in handle.state.archs.values() for key in arch.keys}


def ensure_arch(
    url: StoreLike, layout: Layout, *, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Create the store with ``layout``, or add ``layout`` as an architecture group to it.

    Nothing happens when the store already has the same layout under ``layout.name``; a
    different layout under that name raises :class:`~wspace.SchemaMismatchError`.
    """
    try:
        create(url, layout, storage_options=storage_options)
    except StoreExistsError:
        add_arch(url, layout, storage_options=storage_options)


class ImportSession:
    """One import into the store at ``url``: skip what is there, append, commit, report.

    Parameters
    ----------
    url
        The store; created on the first :meth:`append` when it does not exist.
    storage_options
        fsspec options for the store.
    commit_every
        Commit after this many rows (default: the store's setting).
    allow_nonfinite
        Accept NaN and infinite weights.

    Use it as a context manager: a clean exit commits, an exception discards every row not yet
    committed (they never become visible).
    """

    def __init__(
        self,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        commit_every: int | None = None,
        allow_nonfinite: bool = False,
    ) -> None:
        self.url = url
        self.storage_options = storage_options
        self.commit_every = commit_every
        self.allow_nonfinite = allow_nonfinite
        self.report = ImportReport(url=str(url))
        self._committed = committed_keys(url, storage_options=storage_options)
        self._writer: Writer | None = None

    def __enter__(self) -> ImportSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer is None:
            return
        if exc_type is None:
            self._writer.close()
        else:
            self._writer.discard()
            self._writer.closed = True

    def is_committed(self, model: str, step: int | None = None) -> bool:
        """Whether row ``(model, step)`` was in the store when the session started."""
        return (model, step) in self._committed

    def skip(self, model: str) -> None:
        """Record ``model`` as already there (left as it is)."""
        self.report.skipped.append(model)

    def append(
        self, weights: Any, *, layout: Layout, model: str, source: str, **metadata: Any
    ) -> None:
        """Append one row of architecture ``layout.name`` (created on first use).

        ``source`` (the file the row came from) prefixes the message of any error.
        """
        try:
            writer = self._writer_for(layout)
            writer.append(weights, model=model, arch=layout.name, **metadata)
        except WspaceError as exc:
            raise type(exc)(f"{source}: {exc}") from exc
        self.report.rows += 1
        self.report.models.append(model)
        if layout.name not in self.report.archs:
            self.report.archs.append(layout.name)

    def _writer_for(self, layout: Layout) -> Writer:
        if self._writer is not None and layout.name in self._writer.layouts:
            return self._writer
        ensure_arch(self.url, layout, storage_options=self.storage_options)
        if self._writer is None:
            self._writer = Writer(
                self.url,
                storage_options=self.storage_options,
                commit_every=self.commit_every,
                allow_nonfinite=self.allow_nonfinite,
            )
        # the group was just added (or already there with this very layout)
        self._writer.layouts.setdefault(layout.name, layout)
        return self._writer
