"""The Writer: append rows to a store; they become visible, all at once, at commit."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from wspace.errors import (
    ArchitectureNotFoundError,
    DuplicateModelError,
    SchemaMismatchError,
    listing,
)
from wspace.layout import Layout
from wspace.store.backend import StoreLike, resolve
from wspace.store.faults import fault_point
from wspace.store.flusher import ChunkFlusher
from wspace.store.log import CommitLog, RowKey, new_id, replay
from wspace.store.records import AddArchRecord, AppendRecord, Record
from wspace.store.rows import CheckedRow, RowValidator, fits
from wspace.store.segment import SegmentWriter

__all__ = ["Writer", "writer"]

log = logging.getLogger(__name__)


class Writer:
    """Appends rows to a wspace store through a segment of its own and a commit log.

    Rows become visible to readers only when committed: by :meth:`commit`, every
    ``commit_every`` rows, and when a ``with`` block exits cleanly. When the block exits with
    an exception, uncommitted rows are discarded and never become visible. Each commit is one
    atomically created record per architecture group written, so any number of writers, in
    any number of processes or machines, can append to one store without locks.

    Parameters
    ----------
    url
        Store location (path, fsspec URL or zarr store).
    storage_options
        fsspec options for remote stores.
    commit_every
        Commit by itself after this many rows (default: the store's setting, 256).
    allow_nonfinite
        Accept NaN and infinite weights (refused by default).
    background_flush
        Encode and write full chunks in a background thread while :meth:`append` goes on
        (default). At most 64 MiB of chunks wait for it; a storage failure there is raised
        by the next :meth:`append`, :meth:`commit` or :meth:`close`, and the rows stay
        pending as when the write fails in :meth:`append` itself. A commit waits for every
        chunk before its record is published. ``False``: chunks are written inside
        :meth:`append`.

    Examples
    --------
    >>> import numpy as np, wspace
    >>> from wspace.architectures import lenet5_layout
    >>> wspace.create("memory://doc-writer", lenet5_layout())
    >>> with wspace.writer("memory://doc-writer") as w:
    ...     w.append(np.zeros(91481, "float32"), model="church_1", cls="church", seed=1)
    >>> len(wspace.open("memory://doc-writer"))
    1
    """

    def __init__(
        self,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        commit_every: int | None = None,
        allow_nonfinite: bool = False,
        background_flush: bool = True,
    ) -> None:
        self.backend = resolve(url, storage_options=storage_options)
        self.backend.check_writable()
        self.log = CommitLog(self.backend)
        self.log.refresh()
        state = replay(self.log.records, url=self.backend.url)
        self.config = state.config
        self.format_version = state.format_version
        self.layouts: dict[str, Layout] = {name: a.layout for name, a in state.archs.items()}
        self.committed_keys: set[RowKey] = {k for a in state.archs.values() for k in a.keys}
        self.commit_every = int(commit_every or self.config.commit_every)
        self.validator = RowValidator(self.backend.url, allow_nonfinite=allow_nonfinite)
        self.id = new_id()
        self.segments: dict[str, SegmentWriter] = {}
        self.pending: dict[RowKey, bool] = {}  # key -> replace
        self.closed = False
        self.flusher = ChunkFlusher(name=f"wspace-flush-{self.id}") if background_flush else None

    # -- context manager ---------------------------------------------------------------------
    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- appending ---------------------------------------------------------------------------
    @property
    def allow_nonfinite(self) -> bool:
        """Whether NaN and infinite weights are accepted."""
        return self.validator.allow_nonfinite

    @allow_nonfinite.setter
    def allow_nonfinite(self, allow: bool) -> None:
        self.validator = RowValidator(self.backend.url, allow_nonfinite=allow)

    def append(
        self,
        weights: Any,
        *,
        model: str,
        arch: str | None = None,
        replace: bool = False,
        **metadata: Any,
    ) -> None:
        """Append one row (one model, or one snapshot of a model).

        Parameters
        ----------
        weights
            A flat vector (numpy array, torch tensor, list), a ``{tensor name: array}`` dict,
            a torch ``state_dict``, or an ``nn.Module``.
        model
            The model's unique name; with ``step`` it identifies the row.
        arch
            Architecture group; needed only when the store has several and it cannot be
            inferred from ``weights``.
        replace
            Replace an already committed row with the same ``model`` and ``step`` (by a new
            commit); otherwise such a duplicate raises :class:`DuplicateModelError`.
        **metadata
            Any further columns: ``cls``, ``seed``, ``step``, metrics, hyper-parameters,
            curves (lists). Columns missing from a row are filled as missing.
        """
        if self.closed:
            raise SchemaMismatchError(f"writer for {self.backend.url!r} is closed")
        row = self.validate_row(weights, model=model, arch=arch, **metadata)
        if row.key in self.pending:
            raise DuplicateModelError(
                self._dup_message([row.key], "in this writer's uncommitted rows")
            )
        if row.key in self.committed_keys and not replace:
            raise DuplicateModelError(self._dup_message([row.key], "already committed"))
        segment = self.segments.get(row.arch)
        if segment is None:
            layout = self.layouts[row.arch]
            segment = SegmentWriter(
                self.backend,
                layout,
                self.config,
                arch=row.arch,
                writer_id=self.id,
                format_version=self.format_version,
                flusher=self.flusher,
            )
            self.segments[row.arch] = segment
        segment.append(row.vector, row.columns, row.kinds, row.key)
        self.pending[row.key] = replace
        segment.flush_full()  # a storage error here leaves the row pending, flushed later
        # (with the background flush the chunks are written, or fail, after this returns)
        if len(self.pending) >= self.commit_every:
            self.commit()

    def validate_row(
        self, weights: Any, *, model: str, arch: str | None = None, **metadata: Any
    ) -> CheckedRow:
        """Check a row as :meth:`append` does, without appending it or looking for duplicates.

        Takes the arguments of :meth:`append` (but ``replace``) and returns the
        :class:`~wspace.store.rows.CheckedRow`: its group, key and float32 vector. Raises what
        :meth:`append` raises for a bad row (:class:`~wspace.store.rows.RowValidator`).
        """
        self.validator.check_model(model)
        name, layout = self._arch_for(weights, arch, model)
        return self.validator.check(weights, layout, model=model, metadata=metadata, arch=name)

    def _arch_for(self, weights: Any, arch: str | None, model: str) -> tuple[str, Layout]:
        if arch is not None:
            if arch not in self.layouts:
                self._refresh_layouts()  # a group added since this writer was opened
            if arch not in self.layouts:
                raise ArchitectureNotFoundError(
                    f"store {self.backend.url!r} has no architecture {arch!r}; it has "
                    f"{listing(self.layouts)}"
                )
            return arch, self.layouts[arch]
        if len(self.layouts) == 1:
            return next(iter(self.layouts.items()))
        matches = [(n, lay) for n, lay in self.layouts.items() if fits(weights, lay)]
        if len(matches) == 1:
            return matches[0]
        raise ArchitectureNotFoundError(
            f"model {model!r}: cannot tell which architecture of {listing(self.layouts)} the "
            f"weights belong to ({len(matches)} fit); pass arch=..."
        )

    def _refresh_layouts(self) -> None:
        self.log.refresh()
        for name, group in replay(self.log.records, url=self.backend.url).archs.items():
            self.layouts.setdefault(name, group.layout)

    # -- committing --------------------------------------------------------------------------
    def commit(self) -> int | None:
        """Publish every appended row; return the last commit version (``None``: nothing new).

        Safe to call again after it failed: rows stay pending until their record is on the
        log, and a record that an interrupted call did publish is found there, not doubled.

        Raises
        ------
        DuplicateModelError
            Another writer committed a row with the same key first; this writer's
            uncommitted rows are discarded.
        StorageError
            The storage failed even after retries; the uncommitted rows are kept, so
            ``commit()`` can be called again once it works.
        """
        version = None
        for name, segment in list(self.segments.items()):
            while segment.pending:
                draft = segment.prepare_commit()
                if draft is None:
                    break
                mine = {k: self.pending[k] for k in segment.pending_keys}
                body = dataclasses.replace(
                    draft, replaces=tuple(k for k, r in mine.items() if r), writer=self.id
                )
                fault_point("commit.before-publish")
                try:
                    version = self.log.publish(
                        body, functools.partial(self._validate, mine=mine), txn=segment.txn
                    )
                except DuplicateModelError:
                    self.discard()
                    raise
                fault_point("commit.after-publish")
                # an earlier, interrupted commit may have published fewer rows: go on from there
                published = self.log.records[version]
                assert isinstance(published, AppendRecord)  # the record with our txn
                done = segment.committed_ok(published.stop)
                self.committed_keys.update(done)
                for key in done:
                    del self.pending[key]
                log.debug("committed %d rows of %s as version %s", len(done), name, version)
        return version

    def _validate(self, records: list[Record], mine: dict[RowKey, bool]) -> None:
        for rec in records:
            if isinstance(rec, AddArchRecord):
                self.layouts.setdefault(rec.arch, rec.layout)
            if not isinstance(rec, AppendRecord):
                continue
            clash = [k for k in rec.keys if k in mine and not mine[k]]
            if clash:
                raise DuplicateModelError(
                    self._dup_message(clash, f"committed concurrently by writer {rec.writer}")
                )
            self.committed_keys.update(rec.keys)

    def discard(self) -> None:
        """Drop every uncommitted row; they never become visible."""
        if self.flusher is not None:
            self.flusher.drop()  # chunks of those rows still queued are not written
        for name in [n for n, s in self.segments.items() if s.pending]:
            del self.segments[name]  # the next append starts a fresh segment
        self.pending.clear()

    def abort(self) -> None:
        """Drop every uncommitted row and close the writer (what an exception in a ``with``
        block does)."""
        self.discard()
        self.closed = True
        if self.flusher is not None:
            self.flusher.close()

    def close(self) -> None:
        """Commit what is pending and close the writer."""
        if not self.closed:
            self.commit()
            self.closed = True
            if self.flusher is not None:
                self.flusher.close()

    @property
    def uncommitted(self) -> int:
        """Number of rows appended but not yet committed."""
        return len(self.pending)

    def _dup_message(self, keys: list[RowKey], why: str) -> str:
        shown = listing(f"{m}" if s is None else f"{m}@step={s}" for m, s in keys)
        return (
            f"store {self.backend.url!r}: duplicate model(s) {shown} ({why}); "
            "pass replace=True to replace"
        )


def writer(
    url: StoreLike,
    *,
    storage_options: Mapping[str, Any] | None = None,
    commit_every: int | None = None,
    allow_nonfinite: bool = False,
    background_flush: bool = True,
) -> Writer:
    """Open a :class:`Writer` on an existing store (use it as a context manager)."""
    return Writer(
        url,
        storage_options=storage_options,
        commit_every=commit_every,
        allow_nonfinite=allow_nonfinite,
        background_flush=background_flush,
    )
