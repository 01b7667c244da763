"""Store maintenance: compaction into read-optimised archives, verification, and a summary."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from wspace.errors import CorruptDataError
from wspace.store.archive import row_keys, write_archive
from wspace.store.backend import StoreLike
from wspace.store.checkpoint import checkpoint_log
from wspace.store.chunks import (
    LayerReader,
    object_rows,
    open_arrays,
    piece_row_names,
    read_block,
    row_source,
)
from wspace.store.faults import fault_point
from wspace.store.handle import StoreHandle, open_store
from wspace.store.log import CommitLog
from wspace.store.records import CompactRecord
from wspace.store.segment import segment_ids
from wspace.store.vacuum import vacuum

__all__ = ["Problem", "VerifyReport", "compact", "info", "info_text", "vacuum", "verify"]

log = logging.getLogger(__name__)


def compact(
    url: StoreLike, *, arch: str | None = None, storage_options: Mapping[str, Any] | None = None
) -> dict[str, int]:
    """Rewrite the rows of each architecture group into one read-optimised archive segment.

    The archive is chunked per layer by bytes (about ``chunk_bytes`` per chunk, in shards of
    about ``shard_bytes``, see :class:`~wspace.store.config.StoreConfig`) and published by one
    commit record: readers see the old segments or the archive, never a mix, and writers may
    keep appending while it runs (their commits apply on top of the archive). Old segments
    stay until vacuumed. A log checkpoint of the new head is written last, so that ``open``
    reads it instead of every commit record.

    Returns
    -------
    dict
        Rows compacted per architecture group (groups already compact are left out).

    Examples
    --------
    >>> import wspace
    >>> from wspace.testing import tiny_zoo
    >>> url = tiny_zoo("memory://doc-compact", n_models=3, writers=2)
    >>> wspace.compact(url)
    {'lenet5': 3}
    """
    handle = open_store(url, storage_options=storage_options, read_only=False)
    backend = handle.backend
    backend.check_writable()
    names = [arch] if arch else handle.archs
    done: dict[str, int] = {}
    for name in names:
        state = handle.arch_state(name)
        pieces = state.merged()
        if not pieces or (
            len(pieces) == 1
            and pieces[0].live is None
            and pieces[0].start == 0
            and _is_archive(handle, name, pieces[0].segment)
        ):
            continue
        models = handle.models(name)
        n = len(models)
        names_of_rows = models["model"].to_numpy(dtype=object)
        segment_id, columns = write_archive(
            backend,
            state.layout,
            handle.state.config,
            arch=name,
            models=models,
            source=row_source(backend, state, pieces, names_of_rows),
            positions=np.arange(n),
            format_version=handle.state.format_version,
        )
        fault_point("compact.copied")
        keys = row_keys(models)
        clog = CommitLog(backend)
        clog.records = []
        clog.refresh()
        clog.publish(
            CompactRecord(
                arch=name,
                base=handle.state.version,
                segment=segment_id,
                rows=n,
                keys=tuple(keys),
                columns=columns,
            )
        )
        fault_point("compact.after-publish")
        log.info("compacted %d rows of %s into %s", n, name, segment_id)
        done[name] = n
    checkpoint_log(backend)  # open() then reads one checkpoint, not every record
    return done


def _is_archive(handle: StoreHandle, arch: str, segment: str) -> bool:
    path = handle.arch_state(arch).location(segment)
    group = zarr.open_group(handle.backend.store, path=path, mode="r")
    meta = group.attrs.get("wspace", {})
    return isinstance(meta, dict) and meta.get("kind") == "archive"


@dataclass(frozen=True, slots=True)
class Problem:
    """One damaged chunk found by :func:`verify`."""

    arch: str
    """Architecture group."""
    segment: str
    """Segment holding the chunk."""
    item: str
    """Layer name; ``metadata`` for metadata columns, ``commit-log`` for the log."""
    rows: tuple[int, int]
    """Row range ``[start, stop)`` of the chunk inside its segment."""
    models: tuple[str, ...]
    """Models whose rows the chunk holds."""
    error: str
    """What went wrong."""
    tensors: tuple[str, ...] = ()
    """Tensors of the layer (all of them are in the damaged chunk)."""


@dataclass
class VerifyReport:
    """Outcome of :func:`verify`."""

    url: str
    chunks_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no chunk is damaged."""
        return not self.problems

    @property
    def damaged_models(self) -> list[str]:
        """Models with at least one damaged chunk, sorted."""
        return sorted({m for p in self.problems for m in p.models})


def verify(url: StoreLike, *, storage_options: Mapping[str, Any] | None = None) -> VerifyReport:
    """Re-read and decode every chunk holding committed rows; report damaged ones.

    Every weight chunk is checked against its crc32c checksum and decoded; a chunk that is
    missing, truncated or altered is reported with the models, layer and tensors it holds. A
    commit log that cannot be replayed (a corrupt, malformed or missing record) is reported
    as one ``commit-log`` problem naming the record; nothing else can be checked then.

    Examples
    --------
    >>> import wspace
    >>> from wspace.testing import tiny_zoo
    >>> wspace.verify(tiny_zoo("memory://doc-verify", n_models=2)).ok
    True
    """
    try:
        handle = open_store(url, storage_options=storage_options)
    except CorruptDataError as exc:
        report = VerifyReport(url=str(url))
        report.problems.append(Problem("*", "*", "commit-log", (0, 0), (), str(exc)))
        return report
    backend = handle.backend
    report = VerifyReport(url=backend.url)
    for name in handle.archs:
        state = handle.arch_state(name)
        pieces = state.merged()
        try:
            models = handle.models(name)["model"].to_numpy(dtype=object)
        except CorruptDataError as exc:
            report.problems.append(Problem(name, "*", "metadata", (0, 0), (), str(exc)))
            models = np.array(["?"] * state.n_rows, dtype=object)
        for piece, names in zip(pieces, piece_row_names(pieces, models), strict=True):
            visible = np.arange(piece.start, piece.stop)
            if piece.live is not None:
                visible = visible[piece.live]
            arrays_of = state.arrays
            paths = [
                f"{state.location(piece.segment)}/{arrays_of[layer]}"
                for layer in state.layout.layers
            ]
            try:
                arrays = open_arrays(backend, paths)
            except CorruptDataError as exc:
                report.problems.append(
                    Problem(
                        name,
                        piece.segment,
                        "*",
                        (piece.start, piece.stop),
                        tuple(names[visible]),
                        str(exc),
                    )
                )
                continue
            for layer, array in zip(state.layout.layers, arrays, strict=True):
                existing = set(backend.list_prefix(f"{array.path}/c/"))
                size = object_rows(array)  # rows per stored object (shard or chunk)
                tensors = tuple(t.name for t in state.layout.layer_tensors(layer))
                reader = LayerReader(
                    backend,
                    array,
                    piece.stop,
                    names,
                    layer=layer,
                    segment=piece.segment,
                    tensors=tensors,
                )
                for index in range(piece.start // size, (piece.stop - 1) // size + 1):
                    lo, hi = max(piece.start, index * size), min(piece.stop, (index + 1) * size)
                    report.chunks_checked += 1
                    rows = slice(lo, hi)
                    error = None
                    if f"{array.path}/c/{index}/0" not in existing:
                        error = f"chunk {array.path}/c/{index}/0 is missing"
                    else:
                        try:  # the direct reader: the registry's decoders, or zarr's
                            read_block(reader, rows)
                        except CorruptDataError as exc:
                            error = str(exc)
                    if error:
                        report.problems.append(
                            Problem(
                                name,
                                piece.segment,
                                layer,
                                (lo, hi),
                                tuple(n for n in names[rows] if n != "?"),
                                error,
                                tensors,
                            )
                        )
    return report


def info(url: StoreLike, *, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Summary of a store: rows, models, architectures, columns, segments, bytes, codec.

    ``bytes_live`` counts the segments rows are read from, ``bytes_stored`` everything under
    the architectures (superseded segments included, until ``vacuum``), ``bytes_total`` the
    whole store (commit log, checkpoints and interrupted temporary files included).
    """
    handle = open_store(url, storage_options=storage_options)
    config = handle.state.config
    archs = {}
    raw = 0
    for name in handle.archs:
        state = handle.arch_state(name)
        models = handle.models(name)
        raw += len(models) * state.layout.size * 4
        archs[name] = {
            "rows": len(models),
            "models": int(models["model"].nunique()),
            "params": state.layout.size,
            "architecture": state.layout.architecture,
            "layout": state.layout.describe(),
            "columns": {c: str(models[c].dtype) for c in models.columns},
            "live_segments": len({p.segment for p in state.pieces}),
            "segments_on_storage": len(segment_ids(handle.backend, name)),
        }
    stored = handle.backend.size_under("archs")
    live = sum(
        handle.backend.size_under(handle.arch_state(name).location(seg))
        for name in handle.archs
        for seg in {p.segment for p in handle.arch_state(name).pieces}
    )
    return {
        "url": handle.backend.url,
        "version": handle.state.version,
        "codec": config.codec,
        "archs": archs,
        "bytes_stored": stored,
        "bytes_total": handle.backend.size_under(""),
        "bytes_live": live,
        "bytes_raw": raw,
        "ratio": (raw / live) if live else float("nan"),
    }


def info_text(summary: Mapping[str, Any]) -> str:
    """The human-readable form of :func:`info`'s summary (what ``wspace info`` prints)."""
    lines = [
        f"store      {summary['url']}",
        f"version    {summary['version']} (commit records)",
        f"codec      {summary['codec']}",
        f"bytes      {summary['bytes_live']:,} live / {summary['bytes_raw']:,} raw float32 "
        f"(compression {summary['ratio']:.2f}x); {summary['bytes_stored']:,} on storage "
        "incl. superseded data (see `wspace vacuum`)",
    ]
    for name, arch in summary["archs"].items():
        lines += [
            f"\narchitecture {name!r} ({arch['architecture'] or 'no torch builder'}): "
            f"{arch['rows']} rows, {arch['models']} models, {arch['params']:,} params, "
            f"{arch['live_segments']} live segment(s), "
            f"{arch['segments_on_storage']} on storage",
            arch["layout"].to_string(index=False),
            "columns: " + ", ".join(f"{c} ({t})" for c, t in arch["columns"].items()),
        ]
    return "\n".join(lines)
