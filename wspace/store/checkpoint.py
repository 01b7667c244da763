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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from wspace.layout import Layout
from wspace.store.backend import Backend
from wspace.store.config import StoreConfig
from wspace.store.log import ArchState, RowKey, StoreState, as_key, record_key

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


def _summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The records a replay of ``records`` (versions 0..v, in order) depends on."""
    archs: dict[str, Any] = {}
    names = list(records[0].get("archs", {})) + [
        r["arch"] for r in records if r.get("op") == "add_arch"
    ]
    for name in names:
        mine = [r for r in records if r.get("arch") == name and r["op"] in ("append", "compact")]
        compacts = [r for r in mine if r["op"] == "compact"]
        compact = compacts[-1] if compacts else None
        base = int(compact["base"]) if compact else -1
        archs[name] = {
            "compact": None
            if compact is None
            else {k: v for k, v in compact.items() if k != "keys"},
            "appends": [r for r in mine if r["op"] == "append" and r["version"] > base],
        }
    return {
        "format": FORMAT,
        "version": records[-1]["version"],
        "create": records[0],
        "add_arch": [r for r in records if r.get("op") == "add_arch"],
        "archs": archs,
    }


def write_checkpoint(backend: Backend, records: list[dict[str, Any]]) -> int:
    """Write the checkpoint of ``records`` (the whole log up to some version); return it.

    ``records`` must be every record from version 0, in order, as published. The checkpoint
    is created atomically (an existing one for the same version is left as it is), then the
    pointer is moved to it unless it already names a later one.
    """
    version = int(records[-1]["version"])
    if [r["version"] for r in records] != list(range(version + 1)):
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
    head = int(clog.records[-1]["version"])
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


class LazyKeysArchState(ArchState):
    """An :class:`ArchState` whose compacted rows' keys are read when first needed."""

    _loader: Callable[[], list[RowKey]] | None = None

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


def _compact_keys(backend: Backend, version: int, rows: int) -> Callable[[], list[RowKey]]:
    def load() -> list[RowKey]:
        raw = backend.read(record_key(version))
        rec = None if raw is None else json.loads(raw)
        if rec is None or rec.get("op") != "compact" or len(rec["keys"]) != rows:
            from wspace.errors import CorruptDataError

            raise CorruptDataError(
                f"store {backend.url!r}: compact record {record_key(version)} is missing or "
                "does not match the checkpoint"
            )
        return [as_key(k) for k in rec["keys"]]

    return load


def _columns(rec: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {name: (str(kind), str(key)) for name, (kind, key) in rec.get("columns", {}).items()}


def _state(backend: Backend, body: dict[str, Any], newer: list[dict[str, Any]]) -> StoreState:
    create = body["create"]
    config = StoreConfig.from_dict(create.get("config", {}))
    layouts = {name: Layout.from_dict(d) for name, d in create.get("archs", {}).items()}
    for rec in [*body["add_arch"], *newer]:
        if rec["op"] == "add_arch":
            layouts[rec["arch"]] = Layout.from_dict(rec["layout"])
    archs: dict[str, ArchState] = {}
    for name, layout in layouts.items():
        entry = body["archs"].get(name, {"compact": None, "appends": []})
        mine = [r for r in newer if r.get("arch") == name and r["op"] in ("append", "compact")]
        later_compacts = [r for r in mine if r["op"] == "compact"]
        compact = later_compacts[-1] if later_compacts else entry["compact"]
        base = int(compact["base"]) if compact else -1
        appends = [
            r
            for r in [*entry["appends"], *(r for r in mine if r["op"] == "append")]
            if r["version"] > base
        ]
        state = LazyKeysArchState(name=name, layout=layout)
        lazy = None
        if compact is not None:
            rows, segment = int(compact["rows"]), compact["segment"]
            state.columns[segment] = _columns(compact)
            if "keys" in compact:
                state.add(segment, 0, rows, [as_key(k) for k in compact["keys"]])
            elif any(r.get("replaces") for r in appends):
                state.add(segment, 0, rows, _compact_keys(backend, compact["version"], rows)())
            else:
                state.add(segment, 0, rows, [])
                lazy = _compact_keys(backend, compact["version"], rows)
        for rec in appends:
            state.columns[rec["segment"]] = _columns(rec)
            state.add(
                rec["segment"],
                int(rec["start"]),
                int(rec["stop"]),
                [as_key(k) for k in rec["keys"]],
                frozenset(as_key(k) for k in rec.get("replaces", ())),
            )
        state._loader = lazy
        archs[name] = state
    version = newer[-1]["version"] if newer else body["version"]
    return StoreState(config=config, archs=archs, version=int(version))


def load_checkpoint(backend: Backend) -> tuple[StoreState, list[dict[str, Any]]] | None:
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
        newer: list[dict[str, Any]] = []
        while True:
            first = version + 1 + len(newer)
            raws = backend.read_many(record_key(v) for v in range(first, first + PROBE))
            for i, item in enumerate(raws):
                if item is None:
                    if any(r is not None for r in raws[i:]):
                        raise ValueError(f"record {first + i} missing before later ones")
                    break
                rec = json.loads(item)
                if rec.get("version") != first + i or "op" not in rec:
                    raise ValueError(f"record {first + i} is malformed")
                newer.append(rec)
            else:
                continue
            break
        state = _state(backend, body, newer)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning(
            "store %r: ignoring checkpoint %d (%s); replaying the log", backend.url, version, exc
        )
        return None
    records = [body["create"], *body["add_arch"]]
    for entry in body["archs"].values():
        records += ([entry["compact"]] if entry["compact"] else []) + entry["appends"]
    records = sorted(records, key=lambda r: int(r["version"])) + newer
    return state, records
