"""Log checkpoints: the replayable state as of one version, so ``open`` reads one object.

Replaying the log needs only a few of its records: the ``create`` record, ``add_arch``
records, and per architecture the latest ``compact`` record and the ``append`` records after
its base. A checkpoint stores exactly those records, as of version ``v``, in
``_log/<v>.checkpoint.json``; ``_log/_last_checkpoint`` names the latest one (the pattern of
Delta Lake's ``_last_checkpoint``). A reader then reads the pointer, the checkpoint and the
records after ``v`` — three small objects instead of thousands of records.

A checkpoint is an optimisation, never the truth: it is created atomically (complete or
absent) only after the records it summarises exist, records are never rewritten, and any doubt
(no pointer, a missing, unreadable or inconsistent checkpoint) falls back to replaying every
record, which gives the same state. Readers and writers that know nothing of checkpoints
ignore these objects (their names are not ``<digits>.json``) and stay correct.

The ``compact`` record of a checkpoint omits its row keys (100,000 rows make megabytes of
JSON): the visible rows follow from its row count, and the keys are read from the record
itself only when someone asks for ``ArchState.keys`` or a later record replaces rows.

A checkpoint's records go through the same :func:`~wspace.store.state.replay` as a full
replay of the log, so both give the same state by construction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from wspace.errors import CorruptDataError
from wspace.store.backend import Backend
from wspace.store.records import (
    AddArchRecord,
    AppendRecord,
    CompactRecord,
    CreateRecord,
    Record,
    RowKey,
    parse_record,
    record_key,
)
from wspace.store.state import KeysLoader, StoreState, replay

__all__ = [
    "POINTER",
    "checkpoint_key",
    "checkpoint_log",
    "load_checkpoint",
    "write_checkpoint",
]

log = logging.getLogger(__name__)

POINTER = "_log/_last_checkpoint"
"""Object naming the latest checkpoint: ``{"version": v}``."""
FORMAT = 1
PROBE = 8
"""Records probed at once past a checkpoint."""


def checkpoint_key(version: int) -> str:
    """Object key of the checkpoint as of ``version``."""
    return f"_log/{version:020d}.checkpoint.json"


def _summary(records: Sequence[Record]) -> dict[str, Any]:
    """The records a replay of ``records`` (versions 0..v, in order) depends on, as JSON."""
    create = records[0]
    if not isinstance(create, CreateRecord):
        raise ValueError("a checkpoint needs the log's 'create' record first")
    added = [r for r in records if isinstance(r, AddArchRecord)]
    archs: dict[str, Any] = {}
    for name in [*create.archs, *(r.arch for r in added)]:
        compacts = [r for r in records if isinstance(r, CompactRecord) and r.arch == name]
        compact = compacts[-1] if compacts else None
        base = -1 if compact is None else compact.base
        archs[name] = {
            "compact": None if compact is None else compact.without_keys().to_json(),
            "appends": [
                r.to_json()
                for r in records
                if isinstance(r, AppendRecord) and r.arch == name and (r.version or 0) > base
            ],
        }
    return {
        "format": FORMAT,
        "version": records[-1].version,
        "create": create.to_json(),
        "add_arch": [r.to_json() for r in added],
        "archs": archs,
    }


def write_checkpoint(backend: Backend, records: Sequence[Record]) -> int:
    """Write the checkpoint of ``records`` (the whole log up to some version); return it.

    ``records`` must be every record from version 0, in order, as published. The checkpoint
    is created atomically (an existing one for the same version is left as it is), then the
    pointer is moved to it unless it already names a later one.
    """
    version = records[-1].version if records else None
    if version is None or [r.version for r in records] != list(range(version + 1)):
        raise ValueError("a checkpoint needs every record from version 0")
    body = json.dumps(_summary(records), separators=(",", ":")).encode()
    backend.create_if_absent(checkpoint_key(version), body)
    current = _pointer(backend)
    if current is None or current < version:
        backend.write(POINTER, json.dumps({"version": version}).encode())
    return version


def checkpoint_log(backend: Backend) -> int:
    """Read the whole log and checkpoint its head (unless the pointer names it); return it."""
    from wspace.store.log import CommitLog

    clog = CommitLog(backend)
    clog.refresh()
    head = clog.records[-1].version
    assert head is not None  # records read from the log are published
    if _pointer(backend) != head:
        write_checkpoint(backend, clog.records)
    return head


def _pointer(backend: Backend) -> int | None:
    try:
        raw = backend.read(POINTER)
    except FileNotFoundError:  # no store at all: the full replay says so properly
        return None
    if raw is None:
        return None
    try:
        return int(json.loads(raw)["version"])
    except (ValueError, KeyError, TypeError):
        return None


def _compact_keys(backend: Backend) -> KeysLoader:
    """Reads the keys of a compact record a checkpoint stores without them, from the log."""

    def load(compact: CompactRecord) -> Sequence[RowKey]:
        version = compact.version
        raw = None if version is None else backend.read(record_key(version))
        rec = None
        if raw is not None:
            rec = parse_record(json.loads(raw), version=version, url=backend.url)
        if (
            not isinstance(rec, CompactRecord)
            or rec.keys is None
            or (rec.arch, rec.segment, rec.rows) != (compact.arch, compact.segment, compact.rows)
        ):
            raise CorruptDataError(
                f"store {backend.url!r}: compact record {record_key(version or 0)} is missing "
                "or does not match the checkpoint"
            )
        return rec.keys

    return load


def _records(body: dict[str, Any], url: str) -> list[Record]:
    """The records a checkpoint's body holds, in version order (compact keys left out)."""

    def published(data: Any) -> int:
        version = data.get("version") if isinstance(data, dict) else None
        if type(version) is not int:
            raise ValueError(f"a record in the checkpoint has version {version!r}")
        return version

    records = [parse_record(body["create"], version=published(body["create"]), url=url)]
    records += [parse_record(d, version=published(d), url=url) for d in body["add_arch"]]
    for entry in body["archs"].values():
        if entry["compact"] is not None:
            data = entry["compact"]
            records.append(
                CompactRecord.from_checkpoint_json(data, version=published(data), url=url)
            )
        records += [parse_record(d, version=published(d), url=url) for d in entry["appends"]]
    return sorted(records, key=lambda r: r.version or 0)


def load_checkpoint(backend: Backend) -> tuple[StoreState, list[Record]] | None:
    """The state from the latest checkpoint and the records after it; ``None``: no usable one.

    Returns the state and the records it was built from (the checkpoint's records, compact
    keys omitted, then every later record).
    """
    version = _pointer(backend)
    if version is None:
        return None
    raw = backend.read(checkpoint_key(version))
    try:
        body = json.loads(raw) if raw is not None else None
        if not body or body.get("format") != FORMAT or body.get("version") != version:
            raise ValueError("checkpoint missing or not for its version")
        records = _records(body, backend.url)
        if not records or records[-1].version != version:
            raise ValueError("checkpoint's records do not end at its version")
        newer: list[Record] = []
        while True:
            first = version + 1 + len(newer)
            raws = backend.read_many(record_key(v) for v in range(first, first + PROBE))
            for i, item in enumerate(raws):
                if item is None:
                    if any(r is not None for r in raws[i:]):
                        raise ValueError(f"record {first + i} missing before later ones")
                    break
                newer.append(parse_record(json.loads(item), version=first + i, url=backend.url))
            else:
                continue
            break
        records += newer
        state = replay(records, url=backend.url, load_keys=_compact_keys(backend))
    except (ValueError, KeyError, TypeError, AttributeError, CorruptDataError) as exc:
        log.warning(
            "store %r: ignoring checkpoint %d (%s); replaying the log", backend.url, version, exc
        )
        return None
    return state, records
