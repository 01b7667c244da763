"""The commit log: numbered records created atomically, replayed into the visible state.

A store's truth is its log, ``_log/<version>.json``, versions 0, 1, 2, ... without gaps. A record
is published by creating the next number with an atomic create-if-absent; a writer that loses the
race reads the records it missed, re-validates (duplicate models), and tries the next number. So
records are totally ordered and every record was validated against all records before it — the
protocol of table formats such as Delta Lake, on plain object storage, with no locks.

Record kinds (``op``):

``create``   version 0: format version, store settings, initial layouts.
``add_arch`` a new architecture group and its layout.
``append``   rows ``[start, stop)`` of a writer segment become visible; carries their
             ``(model, step)`` keys, those of them that replace earlier rows (``replaces``), and the
             segment's metadata columns (name -> kind, array key).
``compact``  an archive segment now holds the arch's rows as of version ``base``; later
             ``append`` records apply on top of it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np

from wspace.errors import (
    CommitConflictError,
    CorruptDataError,
    SchemaMismatchError,
    StoreNotFoundError,
)
from wspace.layout import Layout
from wspace.store.backend import Backend
from wspace.store.config import FORMAT_VERSION, StoreConfig
from wspace.store.faults import fault_point

__all__ = ["ArchState", "CommitLog", "Piece", "RowKey", "StoreState", "replay"]

LOG_DIR = "_log"
OPS = frozenset({"create", "add_arch", "append", "compact"})
"""Record kinds this wspace knows; a log holding another kind is refused."""
SEGMENT_ID = re.compile(r"\d{13}-[0-9a-f]{12}")
"""Form of segment identifiers (see :func:`new_id`)."""
RowKey: TypeAlias = tuple[str, "int | None"]
"""Identity of a row: ``(model, step)``; ``step`` is ``None`` for zoos without snapshots."""

Columns: TypeAlias = dict[str, tuple[str, str]]
"""Metadata columns of one segment: name -> (kind, array key)."""


def record_key(version: int) -> str:
    """Object key of the record with this version."""
    return f"{LOG_DIR}/{version:020d}.json"


def new_id() -> str:
    """A unique, time-sortable identifier for segments and writers."""
    return f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:12]}"


def as_key(item: Iterable[Any]) -> RowKey:
    """A row key from its JSON form ``[model, step]``."""
    model, step = item
    return (str(model), None if step is None else int(step))


class CommitLog:
    """Reader and publisher of one store's commit log.

    Parameters
    ----------
    backend
        The resolved store.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.records: list[dict[str, Any]] = []

    def refresh(self) -> list[dict[str, Any]]:
        """Read the records published since the last call; return them in order."""
        names = self.backend.list_dir(LOG_DIR)
        versions = sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())
        if not versions and not self.records:
            raise StoreNotFoundError(f"no wspace store at {self.backend.url!r} (no commit log)")
        start = len(self.records)
        wanted = [v for v in versions if v >= start]
        if wanted and wanted != list(range(start, start + len(wanted))):
            missing = sorted(set(range(start, wanted[-1] + 1)) - set(wanted))
            raise CorruptDataError(
                f"store {self.backend.url!r}: commit log is missing record(s) {missing[:10]}"
            )
        raws = self.backend.read_many(map(record_key, wanted))
        # a listing may lag behind creates (eventual listings, caches): probe past its end
        while True:
            nxt = start + len(wanted)
            raw = self.backend.read(record_key(nxt))
            if raw is None:
                break
            wanted.append(nxt)
            raws.append(raw)
        new: list[dict[str, Any]] = []
        for version, raw in zip(wanted, raws, strict=True):
            if raw is None:
                raise CorruptDataError(
                    f"store {self.backend.url!r}: commit record {record_key(version)} vanished"
                )
            try:
                rec = json.loads(raw)
                if rec.get("version") != version or "op" not in rec:
                    raise ValueError("version or op field wrong")
            except (ValueError, UnicodeDecodeError) as exc:
                raise CorruptDataError(
                    f"store {self.backend.url!r}: commit record {record_key(version)} is "
                    f"corrupt ({exc})"
                ) from exc
            new.append(rec)
        self.records.extend(new)
        return new

    def publish(
        self,
        record: dict[str, Any],
        validate: Callable[[list[dict[str, Any]]], None] | None = None,
        *,
        txn: str | None = None,
        max_attempts: int = 10_000,
    ) -> int:
        """Publish ``record`` as the next version; return that version.

        ``validate`` is called with every record published by others since this log was last
        read, before each attempt; it raises to abandon the commit (e.g. a duplicate model).

        ``txn`` identifies the commit (a fresh one by default) and is stored in the record. A
        record found on the log with this ``txn`` is this commit, published by an earlier
        attempt whose answer was lost (a dropped connection after the server created it, a
        crash of the caller that a retry follows): its version is returned, so a retried
        commit is published exactly once.
        """
        txn = txn or uuid.uuid4().hex
        for _ in range(max_attempts):
            new = self.refresh() if self.records else []
            for rec in new:
                if rec.get("txn") == txn:
                    return int(rec["version"])
            if validate is not None and new:
                validate(new)
            version = len(self.records)
            body = {
                **record,
                "txn": txn,
                "version": version,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            data = json.dumps(body, separators=(",", ":")).encode()
            fault_point("log.before-create")
            if self.backend.create_if_absent(record_key(version), data):
                fault_point("log.after-create")
                self.records.append(body)
                return version
            if not self.records:  # version 0 taken: by an earlier try of ours, or another store
                self.refresh()
                if self.records[0].get("txn") == txn:
                    return 0
                self.records = []
                raise CommitConflictError(f"store {self.backend.url!r} already exists")
        raise CommitConflictError(
            f"store {self.backend.url!r}: gave up publishing after {max_attempts} attempts"
        )


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

    def add(
        self,
        segment: str,
        start: int,
        stop: int,
        keys: list[RowKey],
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


@dataclass
class StoreState:
    """Everything a reader needs: settings and the visible rows of every architecture."""

    config: StoreConfig
    archs: dict[str, ArchState]
    version: int


def replay(records: list[dict[str, Any]], *, url: str = "") -> StoreState:
    """Replay commit records (version order, starting at 0) into a :class:`StoreState`.

    A record that lacks a field its kind needs, or holds one of the wrong type, raises
    :class:`CorruptDataError` naming it: a store whose log cannot be replayed exactly is
    refused as a whole, because skipping a record would show wrong data (rows missing, or
    replaced rows back).
    """
    where = f"store {url!r}: " if url else ""
    if not records or records[0].get("op") != "create":
        raise CorruptDataError(f"{where}commit log does not start with a 'create' record")
    fmt = records[0].get("format_version", FORMAT_VERSION)
    if isinstance(fmt, int) and fmt > FORMAT_VERSION:
        raise SchemaMismatchError(
            f"{where}written in wspace store format {fmt}; this wspace reads formats up to "
            f"{FORMAT_VERSION}: upgrade wspace"
        )
    current = [0]  # the record being applied, for the message
    try:
        return _replay(records, current)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CorruptDataError(
            f"{where}commit record {record_key(current[0])} is malformed "
            f"({type(exc).__name__}: {exc}); the store is refused rather than shown without it"
        ) from exc


def _replay(records: list[dict[str, Any]], current: list[int]) -> StoreState:
    first = records[0]
    config = StoreConfig.from_dict(first.get("config", {}))
    layouts: dict[str, Layout] = {
        name: Layout.from_dict(d) for name, d in first.get("archs", {}).items()
    }
    for rec in records[1:]:
        current[0] = rec["version"]
        if rec["op"] not in OPS:
            raise ValueError(f"unknown op {rec['op']!r} (written by a newer wspace?)")
        if "segment" in rec and not SEGMENT_ID.fullmatch(str(rec["segment"])):
            raise ValueError(f"segment id {rec['segment']!r} is not one wspace makes")
        if rec["op"] == "add_arch":
            layouts[rec["arch"]] = Layout.from_dict(rec["layout"])
    archs: dict[str, ArchState] = {}
    for name, layout in layouts.items():
        mine = [r for r in records if r.get("arch") == name and r["op"] in ("append", "compact")]
        compacts = [r for r in mine if r["op"] == "compact"]
        state = ArchState(name=name, layout=layout)
        base = -1
        if compacts:
            last = compacts[-1]
            current[0] = last["version"]
            base = int(last["base"])
            state.columns[last["segment"]] = _columns(last)
            keys = [as_key(k) for k in last["keys"]]
            if len(keys) != int(last["rows"]):
                raise ValueError(f"{last['rows']} rows do not match its {len(keys)} keys")
            state.add(last["segment"], 0, int(last["rows"]), keys)
        for rec in mine:
            if rec["op"] != "append" or rec["version"] <= base:
                continue
            current[0] = rec["version"]
            start, stop = int(rec["start"]), int(rec["stop"])
            keys = [as_key(k) for k in rec["keys"]]
            if not 0 <= start < stop or len(keys) != stop - start:
                raise ValueError(f"rows {start}-{stop} do not match its {len(keys)} keys")
            state.columns[rec["segment"]] = _columns(rec)
            state.add(
                rec["segment"],
                start,
                stop,
                keys,
                frozenset(as_key(k) for k in rec.get("replaces", ())),
            )
        archs[name] = state
    return StoreState(config=config, archs=archs, version=records[-1]["version"])


def _columns(rec: dict[str, Any]) -> Columns:
    return {name: (str(kind), str(key)) for name, (kind, key) in rec.get("columns", {}).items()}
