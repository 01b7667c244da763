"""The visible state of a store, and the one replay of commit records that builds it.

:func:`replay` is the only code that turns commit records into a :class:`StoreState`: a full
replay of the log (:class:`~wspace.store.log.CommitLog`) and a checkpoint load
(:mod:`wspace.store.checkpoint`) both go through it. It needs, per architecture, only the
latest ``compact`` record and the ``append`` records after its base, so it gives the same
state from every record or from just those (a checkpoint's records and the ones after it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from wspace.errors import CorruptDataError
from wspace.layout import Layout
from wspace.store.config import StoreConfig
from wspace.store.naming import layout_arrays
from wspace.store.records import (
    AddArchRecord,
    AppendRecord,
    Columns,
    CompactRecord,
    CreateRecord,
    Record,
    RowKey,
    record_key,
)

__all__ = [
    "ArchState",
    "KeysLoader",
    "LazyKeysArchState",
    "Piece",
    "StoreState",
    "replay",
    "segment_path",
]

KeysLoader = Callable[[CompactRecord], Sequence[RowKey]]
"""Reads the row keys of a ``compact`` record stored without them (in a checkpoint)."""


def segment_path(arch: str, segment_id: str) -> str:
    """Group path of a segment (where it is unless its record says otherwise)."""
    return f"archs/{arch}/seg/{segment_id}"


@dataclass
class Piece:
    """A run of rows ``[start, stop)`` of one segment, in visible order."""

    segment: str
    start: int
    stop: int
    live: np.ndarray | None = None
    """Boolean mask of rows still visible (``None``: all); rows hidden by a later replace."""

    @property
    def n_live(self) -> int:
        """Visible rows in this piece."""
        return self.stop - self.start if self.live is None else int(self.live.sum())


@dataclass
class ArchState:
    """The visible rows of one architecture group after replaying the log."""

    name: str
    layout: Layout
    pieces: list[Piece] = field(default_factory=list)
    columns: dict[str, Columns] = field(default_factory=dict)
    """Per segment: its metadata columns as of the latest record."""
    keys: dict[RowKey, tuple[int, int]] = field(default_factory=dict)
    """Visible key -> (piece index, offset in piece)."""
    format_version: int = 1
    """Store format version: how the arrays inside its segments are named."""
    paths: dict[str, str] = field(default_factory=dict)
    """Segments stored elsewhere than ``archs/<arch>/seg/<id>`` (an export's archive)."""

    def location(self, segment: str) -> str:
        """Group path of ``segment``."""
        return self.paths.get(segment, segment_path(self.name, segment))

    @property
    def arrays(self) -> dict[str, str]:
        """Layer -> array name inside this group's segments."""
        return layout_arrays(self.layout, self.format_version)

    def add(
        self,
        segment: str,
        start: int,
        stop: int,
        keys: Sequence[RowKey],
        replaces: frozenset[RowKey] = frozenset(),
    ) -> None:
        """Apply an ``append`` (or a compaction's archive) to the state."""
        index = len(self.pieces)
        self.pieces.append(Piece(segment, start, stop))
        for offset, key in enumerate(keys):
            previous = self.keys.get(key)
            replace = key in replaces
            if previous is not None and replace:
                old = self.pieces[previous[0]]
                if old.live is None:
                    old.live = np.ones(old.stop - old.start, dtype=bool)
                old.live[previous[1]] = False
            if previous is None or replace:
                self.keys[key] = (index, offset)

    @property
    def n_rows(self) -> int:
        """Number of visible rows."""
        return sum(p.n_live for p in self.pieces)

    def merged(self) -> list[Piece]:
        """Pieces with contiguous runs of one segment joined (fewer, larger reads)."""
        out: list[Piece] = []
        for p in self.pieces:
            last = out[-1] if out else None
            if last is not None and last.segment == p.segment and last.stop == p.start:
                if last.live is not None or p.live is not None:
                    a = (
                        last.live
                        if last.live is not None
                        else np.ones(last.stop - last.start, bool)
                    )
                    b = p.live if p.live is not None else np.ones(p.stop - p.start, bool)
                    last.live = np.concatenate([a, b])
                last.stop = p.stop
            else:
                out.append(
                    Piece(p.segment, p.start, p.stop, None if p.live is None else p.live.copy())
                )
        return [p for p in out if p.n_live]


class LazyKeysArchState(ArchState):
    """An :class:`ArchState` whose compacted rows' keys are read when first needed."""

    _loader: Callable[[], Sequence[RowKey]] | None = None

    @property
    def keys(self) -> dict[RowKey, tuple[int, int]]:
        """Visible key -> (piece index, offset in piece)."""
        loader = self._loader
        if loader is not None:
            self._loader = None
            compacted = {key: (0, i) for i, key in enumerate(loader())}
            later = self.__dict__["_keys"]
            # as in a full replay: the compacted rows come first; later appends without
            # `replaces` never override them (writers refuse such duplicates anyway)
            compacted.update({k: v for k, v in later.items() if k not in compacted})
            self.__dict__["_keys"] = compacted
        keys: dict[RowKey, tuple[int, int]] = self.__dict__["_keys"]
        return keys

    @keys.setter
    def keys(self, value: dict[RowKey, tuple[int, int]]) -> None:
        self.__dict__["_keys"] = value


@dataclass
class StoreState:
    """Everything a reader needs: settings and the visible rows of every architecture."""

    config: StoreConfig
    archs: dict[str, ArchState]
    version: int
    format_version: int = 1
    """The store's format version (its ``create`` record's)."""


def replay(
    records: Sequence[Record], *, url: str = "", load_keys: KeysLoader | None = None
) -> StoreState:
    """Replay published commit records (in version order, from 0) into a :class:`StoreState`.

    ``records`` may be every record of the log, or only those a replay depends on (the
    ``create`` record, ``add_arch`` records, and per architecture its latest ``compact``
    record and the ``append`` records after that one's base): both give the same state.

    A ``compact`` record without its keys (as a checkpoint stores it) needs ``load_keys``;
    they are then read when first asked for (:class:`LazyKeysArchState`), or at once when a
    later record replaces rows.

    Raises
    ------
    CorruptDataError
        The records do not start with a ``create`` record, are unpublished or out of order, or
        a compact record's keys are missing; the message names the store and the record.
    """
    where = f"store {url!r}: " if url else ""
    if not records or not isinstance(records[0], CreateRecord):
        raise CorruptDataError(f"{where}commit log does not start with a 'create' record")
    versions = [r.version for r in records if r.version is not None]
    if len(versions) != len(records) or any(a >= b for a, b in pairwise(versions)):
        raise CorruptDataError(f"{where}commit records are unpublished or out of order")
    first = records[0]
    layouts: dict[str, Layout] = dict(first.archs)
    compacts: dict[str, CompactRecord] = {}
    for rec in records:
        if isinstance(rec, AddArchRecord):
            layouts[rec.arch] = rec.layout
        elif isinstance(rec, CompactRecord):
            compacts[rec.arch] = rec
    archs: dict[str, ArchState] = {}
    for name, layout in layouts.items():
        compact = compacts.get(name)
        base = -1 if compact is None else compact.base
        appends = [
            r
            for r in records
            if isinstance(r, AppendRecord) and r.arch == name and _version(r) > base
        ]
        archs[name] = _arch_state(name, layout, compact, appends, where, load_keys)
        archs[name].format_version = first.format_version
    return StoreState(
        config=first.config,
        archs=archs,
        version=versions[-1],
        format_version=first.format_version,
    )


def _arch_state(
    name: str,
    layout: Layout,
    compact: CompactRecord | None,
    appends: list[AppendRecord],
    where: str,
    load_keys: KeysLoader | None,
) -> ArchState:
    lazy: Callable[[], Sequence[RowKey]] | None = None
    state = ArchState(name=name, layout=layout)
    if compact is not None:
        keys: Sequence[RowKey] | None = compact.keys
        if keys is None:
            if load_keys is None:
                raise CorruptDataError(
                    f"{where}compact record {record_key(_version(compact))} has no keys"
                )
            if any(r.replaces for r in appends):
                keys = _checked(compact, load_keys(compact), where)
            else:
                state = LazyKeysArchState(name=name, layout=layout)
                lazy = _deferred(compact, load_keys, where)
        state.columns[compact.segment] = dict(compact.columns)
        if compact.path is not None:
            state.paths[compact.segment] = compact.path
        state.add(compact.segment, 0, compact.rows, keys or ())
    for rec in appends:
        state.columns[rec.segment] = dict(rec.columns)
        state.add(rec.segment, rec.start, rec.stop, rec.keys, frozenset(rec.replaces))
    if isinstance(state, LazyKeysArchState):
        state._loader = lazy
    return state


def _deferred(
    compact: CompactRecord, load_keys: KeysLoader, where: str
) -> Callable[[], Sequence[RowKey]]:
    return lambda: _checked(compact, load_keys(compact), where)


def _checked(compact: CompactRecord, keys: Sequence[RowKey], where: str) -> Sequence[RowKey]:
    if len(keys) != compact.rows:
        raise CorruptDataError(
            f"{where}compact record {record_key(_version(compact))}: {len(keys)} keys "
            f"read for its {compact.rows} rows"
        )
    return keys


def _version(rec: Record) -> int:
    return -1 if rec.version is None else rec.version
