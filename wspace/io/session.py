"""The importer session: whole models appended to a store, committed in groups.

Every importer of :mod:`wspace.io` writes through an :class:`ImportSession`: all rows of a model
are checked (by the store's :class:`~wspace.store.rows.RowValidator`) before the first is
appended, commits fall between models, the store and its architecture groups are created with
the first model appended, and models already in the store are skipped.

Examples
--------
>>> import numpy as np, wspace
>>> from wspace.architectures import lenet5_layout
>>> with ImportSession("memory://doc-session", fmt="doc") as session:
...     session.add("a_1", [(np.zeros(91481, "float32"), {"cls": "a"})],
...                 layout=lenet5_layout(), source="a.bin")
>>> session.report.models, ImportSession("memory://doc-session", fmt="doc").is_committed("a_1")
(['a_1'], True)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from wspace.errors import (
    DuplicateModelError,
    StoreExistsError,
    StoreNotFoundError,
    WspaceError,
)
from wspace.io.files import progress_bar
from wspace.io.format import ImportReport
from wspace.io.options import option_bool, option_int
from wspace.io.values import py_value
from wspace.layout import Layout
from wspace.store.create import add_arch, create
from wspace.store.handle import open_store
from wspace.store.rows import CheckedRow, RowValidator
from wspace.store.writer import Writer

if TYPE_CHECKING:
    from wspace.store.backend import StoreLike

__all__ = ["ImportSession", "Row"]

log = logging.getLogger(__name__)
T = TypeVar("T")

Row = tuple[Any, Mapping[str, Any]]
"""One row a source gives: weights (flat vector or ``{name: tensor}``), metadata."""


class ImportSession:
    """One import into the store at ``url``: whole models appended, committed in groups.

    Parameters
    ----------
    url, storage_options
        The store; created when the first model is appended.
    fmt
        The format name (recorded in the report).
    commit_rows
        Commit once this many rows of complete models are pending (``None``: the store's
        ``commit_every``, 256).
    allow_nonfinite
        Store NaN and infinite weights instead of refusing the model.
    codec
        Codec of a store the session creates (``None``: the default).

    The options may be given as strings (as ``-O KEY=VALUE`` gives them).

    Use it as a context manager. A clean exit commits. When an exception escapes, the complete
    models pending are committed and nothing of the failing model is (if the failure came
    while a model's rows were being appended, which only the store can cause, everything not
    yet committed is discarded).
    """

    def __init__(
        self,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        fmt: str,
        commit_rows: int | str | None = None,
        allow_nonfinite: bool | str = False,
        codec: str | None = None,
    ) -> None:
        self.commit_rows = None if commit_rows is None else option_int(commit_rows, "commit_rows")
        self.validator = RowValidator(
            str(url), allow_nonfinite=option_bool(allow_nonfinite, "allow_nonfinite")
        )
        self.create_options: dict[str, Any] = {} if codec is None else {"codec": str(codec)}
        self.url = url
        self.storage_options = storage_options
        self.report = ImportReport(url=str(url), format=fmt)
        try:
            state = open_store(url, storage_options=storage_options).state
            self._before = {m for arch in state.archs.values() for m, _ in arch.keys}
        except StoreNotFoundError:
            self._before = set()
        self._writer: Writer | None = None
        self._groups: list[tuple[Layout, str]] = []
        self._pending: list[tuple[str, int]] = []
        self._seen: set[str] = set()
        self._partial = False

    @property
    def allow_nonfinite(self) -> bool:
        """Whether NaN and infinite weights are stored (else the model is refused)."""
        return self.validator.allow_nonfinite

    def is_committed(self, model: str) -> bool:
        """Whether rows of ``model`` were in the store when the session started."""
        return model in self._before

    def todo(
        self,
        items: Iterable[T],
        *,
        key: Callable[[T], str],
        progress: bool,
        desc: str,
        total: int | None = None,
        unit: str = "model",
    ) -> Iterator[T]:
        """The ``items`` whose model (``key(item)``) is not in the store, with a progress bar;
        the others are recorded in ``report.skipped``."""
        for item in progress_bar(items, enabled=progress, desc=desc, total=total, unit=unit):
            model = key(item)
            if model in self._before:
                self.report.skipped.append(model)
            else:
                yield item

    def add(
        self,
        model: str,
        rows: Sequence[Row],
        *,
        layout: Layout,
        source: str | Sequence[str] | None = None,
    ) -> None:
        """Append all ``rows`` of ``model`` to the group of ``layout`` (created when missing).

        Every row is checked first (:class:`~wspace.store.rows.RowValidator`: model name,
        shape, dtype, finiteness, metadata names and types, integer ``step``; missing values,
        NaN and ``None``, are left out); a problem raises before any row of the model is
        appended, prefixed with ``source`` (the source file, or one per row).
        """
        where = [source] * len(rows) if source is None or isinstance(source, str) else source
        at = where[0] if where else None
        try:
            if model in self._seen:
                raise DuplicateModelError(f"model {model!r} appears twice in the source")
            checked: list[CheckedRow] = []
            for i, (weights, meta) in enumerate(rows):
                at = where[i]
                values = {k: py_value(v) for k, v in meta.items()}
                metadata = {k: v for k, v in values.items() if v is not None}
                checked.append(
                    self.validator.check(weights, layout, model=model, metadata=metadata)
                )
            at = where[0] if where else None
            arch, writer = self._group(layout)
            self._seen.add(model)
            for row in checked:
                meta = {k: v for k, v in row.columns.items() if k != "model"}
                writer.append(row.vector, model=model, arch=arch, **meta)
                self._partial = True  # rows of the model are in the writer
            self._partial = False
        except WspaceError as exc:
            raise exc if at is None else type(exc)(f"{at}: {exc}") from None
        self._pending.append((model, len(checked)))
        if writer.uncommitted >= (self.commit_rows or writer.config.commit_every):
            self.commit()

    def _group(self, layout: Layout) -> tuple[str, Writer]:
        """The architecture group for ``layout`` (created when the store has none with its
        tensors), and the writer (opened once the store exists)."""
        name = next((n for lay, n in self._groups if lay.tensors == layout.tensors), None)
        if name is None:
            try:
                archs = open_store(self.url, storage_options=self.storage_options).state.archs
            except StoreNotFoundError:
                archs = None
            same = (n for n, a in (archs or {}).items() if a.layout.tensors == layout.tensors)
            name = next(same, None)
            if name is None:
                self._add_group(layout, create_store=archs is None)
                name = layout.name
            self._groups.append((layout, name))
        if self._writer is None:
            self._writer = Writer(
                self.url,
                storage_options=self.storage_options,
                commit_every=2**62,  # never by itself: commits fall between models
                allow_nonfinite=self.allow_nonfinite,
            )
        if name not in self.report.archs:
            self.report.archs.append(name)
        return name, self._writer

    def _add_group(self, layout: Layout, *, create_store: bool) -> None:
        where = self.storage_options
        if create_store:
            try:
                create(self.url, layout, storage_options=where, **self.create_options)
                return
            except StoreExistsError:  # created meanwhile by another process
                pass
        add_arch(self.url, layout, storage_options=where)

    def commit(self) -> None:
        """Commit the pending complete models."""
        pending, self._pending = self._pending, []
        if self._writer is None or not pending:
            return
        self._writer.commit()
        for model, n in pending:
            self.report.models.append(model)
            self.report.rows += n

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
            self.commit()
            self._writer.close()
            return
        if self._partial:  # the writer cannot drop a part of what it holds
            self._pending = []
        else:
            try:
                self.commit()
            except Exception:
                log.exception("could not commit the complete models before the error")
        self._writer.abort()
