"""Vacuum: delete data no reader can see any more, once older than a grace period."""

from __future__ import annotations

import calendar
import logging
import time
from collections.abc import Mapping
from typing import Any

from wspace.store.backend import StoreLike
from wspace.store.chunks import object_rows
from wspace.store.handle import open_store
from wspace.store.records import AppendRecord, CompactRecord
from wspace.store.segment import segment_ids, segment_path

__all__ = ["vacuum"]

log = logging.getLogger(__name__)


def _epoch(stamp: str) -> float:
    return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))


def vacuum(
    url: StoreLike,
    *,
    grace_seconds: float = 3600.0,
    dry_run: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Delete data that no reader can see any more, once it is older than a grace period.

    Removes (1) segments that no commit references — left by writers that crashed or
    discarded before committing — and segments superseded by a compaction, (2) chunks of
    live segments that hold only never-committed rows, and (3) on local disk, the temporary
    ``*.partial`` files of writes a crash interrupted. Data younger than ``grace_seconds``
    (by creation or last commit) is kept, so running writers and readers that opened the
    store before a compaction are safe.

    Returns
    -------
    dict
        ``{"segments": [...], "chunks": [...], "bytes": n}`` removed (or that would be, with
        ``dry_run``).

    Examples
    --------
    >>> import wspace
    >>> from wspace.testing import tiny_zoo
    >>> url = tiny_zoo("memory://doc-vacuum", n_models=4, writers=2)
    >>> _ = wspace.compact(url)
    >>> len(wspace.vacuum(url, grace_seconds=0)["segments"])
    2
    """
    # every record, not a checkpoint: a segment's last use is in records a checkpoint drops
    handle = open_store(url, storage_options=storage_options, read_only=dry_run, checkpoint=False)
    backend = handle.backend
    if not dry_run:
        backend.check_writable()
    now = time.time()
    last_use: dict[str, float] = {}
    committed_stop: dict[str, int] = {}
    for rec in handle.state_records:
        if isinstance(rec, AppendRecord | CompactRecord) and rec.time is not None:
            seg = rec.segment
            last_use[seg] = max(last_use.get(seg, 0.0), _epoch(rec.time))
            stop = rec.stop if isinstance(rec, AppendRecord) else rec.rows
            committed_stop[seg] = max(committed_stop.get(seg, 0), stop)
    removed: dict[str, Any] = {"segments": [], "chunks": [], "bytes": 0}
    for name in handle.archs:
        state = handle.arch_state(name)
        live = {p.segment for p in state.pieces}
        for seg in segment_ids(backend, name):
            created = int(seg.split("-", 1)[0]) / 1000
            age = now - max(created, last_use.get(seg, 0.0))
            if age < grace_seconds:
                continue
            path = segment_path(name, seg)
            if seg not in live:
                removed["segments"].append(path)
                removed["bytes"] += backend.size_under(path)
                if not dry_run:
                    backend.delete_dir(path)
                continue
            stop = committed_stop.get(seg, 0)
            rows_per_chunk: dict[str, int] = {}
            for key in backend.list_prefix(f"{path}/"):
                parts = key[len(path) + 1 :].split("/")
                if len(parts) >= 3 and parts[1] == "c" and parts[2].isdigit():
                    if parts[0] not in rows_per_chunk:
                        array = backend.open_array(f"{path}/{parts[0]}")
                        rows_per_chunk[parts[0]] = object_rows(array)
                    if int(parts[2]) * rows_per_chunk[parts[0]] >= stop:
                        removed["chunks"].append(key)
                        removed["bytes"] += len(backend.read(key) or b"")
                        if not dry_run:
                            backend.delete(key)
    for key, size in backend.temp_files(older_than=now - grace_seconds).items():
        removed["chunks"].append(key)
        removed["bytes"] += size
        if not dry_run:
            backend.delete_temp(key)
    log.info(
        "vacuum removed %d segments, %d chunks", len(removed["segments"]), len(removed["chunks"])
    )
    return removed
