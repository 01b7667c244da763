"""The commit log: numbered records created atomically, replayed into the visible state.

A store's truth is its log, ``_log/<version>.json``, versions 0, 1, 2, ... without gaps. A record
is published by creating the next number with an atomic create-if-absent; a writer that loses the
race reads the records it missed, re-validates (duplicate models), and tries the next number. So
records are totally ordered and every record was validated against all records before it — the
protocol of table formats such as Delta Lake, on plain object storage, with no locks.

Record kinds (``op``) are the typed records of :mod:`wspace.store.records`; the state they
replay into, and the replay itself, are in :mod:`wspace.store.state` (re-exported here).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from wspace.errors import CommitConflictError, CorruptDataError, StoreNotFoundError
from wspace.store.backend import Backend
from wspace.store.faults import fault_point
from wspace.store.records import (
    LOG_DIR,
    SEGMENT_ID,
    Columns,
    Record,
    RowKey,
    as_key,
    parse_record,
    record_key,
)
from wspace.store.state import ArchState, Piece, StoreState, replay

__all__ = [
    "LOG_DIR",
    "SEGMENT_ID",
    "ArchState",
    "Columns",
    "CommitLog",
    "Piece",
    "Record",
    "RowKey",
    "StoreState",
    "as_key",
    "new_id",
    "record_key",
    "replay",
]


def new_id() -> str:
    """A unique, time-sortable identifier for segments and writers."""
    return f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:12]}"


class CommitLog:
    """Reader and publisher of one store's commit log.

    Parameters
    ----------
    backend
        The resolved store.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.records: list[Record] = []

    def refresh(self) -> list[Record]:
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
        new: list[Record] = []
        for version, raw in zip(wanted, raws, strict=True):
            if raw is None:
                raise CorruptDataError(
                    f"store {self.backend.url!r}: commit record {record_key(version)} vanished"
                )
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise CorruptDataError(
                    f"store {self.backend.url!r}: commit record {record_key(version)} is "
                    f"corrupt ({exc})"
                ) from exc
            new.append(parse_record(data, version=version, url=self.backend.url))
        self.records.extend(new)
        return new

    def publish(
        self,
        record: Record | Mapping[str, Any],
        validate: Callable[[list[Record]], None] | None = None,
        *,
        txn: str | None = None,
        max_attempts: int = 10_000,
    ) -> int:
        """Publish ``record`` (a draft) as the next version; return that version.

        ``record`` is a typed record, or its JSON form (``op`` and the kind's fields), which is
        checked as :func:`~wspace.store.records.parse_record` checks a record read back.

        ``validate`` is called with every record published by others since this log was last
        read, before each attempt; it raises to abandon the commit (e.g. a duplicate model).

        ``txn`` identifies the commit (a fresh one by default) and is stored in the record. A
        record found on the log with this ``txn`` is this commit, published by an earlier
        attempt whose answer was lost (a dropped connection after the server created it, a
        crash of the caller that a retry follows): its version is returned, so a retried
        commit is published exactly once.
        """
        if not isinstance(record, Record):
            record = parse_record(dict(record), version=None, url=self.backend.url)
        txn = txn or uuid.uuid4().hex
        for _ in range(max_attempts):
            new = self.refresh() if self.records else []
            for rec in new:
                if rec.txn == txn and rec.version is not None:
                    return rec.version
            if validate is not None and new:
                validate(new)
            version = len(self.records)
            body = record.published(
                txn=txn, version=version, time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            )
            data = json.dumps(body.to_json(), separators=(",", ":")).encode()
            fault_point("log.before-create")
            if self.backend.create_if_absent(record_key(version), data):
                fault_point("log.after-create")
                self.records.append(body)
                return version
            if not self.records:  # version 0 taken: by an earlier try of ours, or another store
                self.refresh()
                if self.records[0].txn == txn:
                    return 0
                self.records = []
                raise CommitConflictError(f"store {self.backend.url!r} already exists")
        raise CommitConflictError(
            f"store {self.backend.url!r}: gave up publishing after {max_attempts} attempts"
        )
