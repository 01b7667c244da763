"""Published snapshots: rows of one architecture as one archive at the root of a new store.

A snapshot (``wspace export URL DST --format zarr``, :meth:`wspace.Zoo.to_zarr`) is the thing
to upload to a hub. Its root group *is* a format-2 archive (:mod:`wspace.store.archive`), so
``xarray.open_zarr(DST)`` reads it with no wspace installed; beside it, a minimal commit log
makes it a complete wspace store that ``wspace.open(DST)`` opens like any other::

    DST/zarr.json                        the archive group (consolidated metadata)
    DST/conv2d/ ... DST/dense_1/          layer arrays; DST/model/, DST/cls/ ...: columns
    DST/_log/00000000000000000000.json   create: format version, settings, the layout
    DST/_log/00000000000000000001.json   compact: base 0, rows, keys, columns, "path": ""

The ``compact`` record's ``path`` (``""``: the root) is what says where the archive is; a
reader that replays the log reads it from there (``docs/format-spec.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from wspace.errors import StoreExistsError
from wspace.layout import Layout
from wspace.store.archive import RowReader, row_keys, write_archive
from wspace.store.backend import StoreLike, resolve
from wspace.store.config import FORMAT_VERSION, StoreConfig
from wspace.store.log import CommitLog, record_key
from wspace.store.records import CompactRecord, CreateRecord

__all__ = ["write_snapshot"]


def write_snapshot(
    dst: StoreLike,
    *,
    layout: Layout,
    config: StoreConfig,
    arch: str,
    models: pd.DataFrame,
    source: RowReader,
    positions: np.ndarray,
    storage_options: Mapping[str, Any] | None = None,
) -> str:
    """Write rows ``positions`` of ``source`` (metadata ``models``, decoded, one row each) as a
    snapshot store at ``dst``; return its URL.

    Raises
    ------
    StoreExistsError
        Something (a store, a Zarr group) is already at ``dst``.
    """
    backend = resolve(dst, storage_options=storage_options, read_only=False)
    backend.check_writable()
    if backend.exists(record_key(0)) or backend.exists("zarr.json"):
        raise StoreExistsError(f"{backend.url!r} already holds a store or a Zarr group")
    segment_id, columns = write_archive(
        backend,
        layout,
        config,
        arch=arch,
        models=models.reset_index(drop=True),
        source=source,
        positions=positions,
        format_version=FORMAT_VERSION,
        path="",
    )
    log = CommitLog(backend)
    log.publish(CreateRecord(format_version=FORMAT_VERSION, config=config, archs={arch: layout}))
    log.publish(
        CompactRecord(
            arch=arch,
            base=0,
            segment=segment_id,
            rows=len(models),
            keys=tuple(row_keys(models)),
            columns=columns,
            path="",
        )
    )
    return backend.url
