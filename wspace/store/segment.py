"""Segments: groups of layer-aligned weight arrays and metadata arrays that one writer owns.

A segment lives at ``archs/<arch>/seg/<id>``. It holds one float32 array per layer, of shape
``(capacity, layer_size)``, and one array per metadata column; their names depend on the
store's format version (:mod:`wspace.store.naming`: ``conv2d``, ``cls`` in format 2;
``w000``, ``m000`` in format 1). The capacity of a writer segment is fixed when it is made,
so array metadata is written once and never resized: how many rows are real is known only
from the commit log (``docs/format-spec.md`` says why outside readers read archives instead).
Chunks span whole layers (``(rows, layer_size)``), so a layer read touches only that layer's
arrays and a row read touches one chunk per layer. Only the owning writer writes; a chunk may
be rewritten with more rows while it is still partial, which is safe because every store
write is atomic (temp file and rename locally, a single PUT on object storage) and committed
rows never change. Compacted archives are written by :mod:`wspace.store.archive`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr
from zarr.core.metadata import ArrayV3Metadata

from wspace.layout import Layout
from wspace.store.backend import Backend
from wspace.store.codecs import ChunkEncoder, chunk_encoder, column_compressors
from wspace.store.columns import MISSING_STR, encode, merge_kinds
from wspace.store.config import StoreConfig, codec_chain
from wspace.store.faults import fault_point
from wspace.store.flusher import ChunkFlusher, FlushTask
from wspace.store.log import SEGMENT_ID, Columns, RowKey, new_id
from wspace.store.naming import (
    MODEL_DIM,
    column_array,
    layout_arrays,
    param_dim,
    taken_by_layers,
)
from wspace.store.records import AppendRecord
from wspace.store.state import segment_path

__all__ = [
    "CAPACITY",
    "SegmentWriter",
    "create_column",
    "create_segment",
    "segment_ids",
    "segment_path",
]

CAPACITY = 2**32
"""Rows a writer segment can hold; its arrays are created at this shape and never resized."""
ROWS_NOTE = (
    "capacity, not rows: the rows that exist are those the commit log (_log/) publishes; "
    "read compacted archives instead (docs/format-spec.md)"
)
"""What a writer segment's attributes say about its arrays' row count."""


def segment_ids(backend: Backend, arch: str) -> list[str]:
    """Identifiers of every segment of ``arch`` on storage, committed or not, oldest first."""
    return [s for s in backend.list_dir(f"archs/{arch}/seg") if SEGMENT_ID.fullmatch(s)]


def create_segment(
    backend: Backend,
    layout: Layout,
    config: StoreConfig,
    *,
    arch: str,
    kind: str,
    rows: int = CAPACITY,
    chunk_rows: Mapping[str, int] | int,
    shard_rows: Mapping[str, int | None] | None = None,
    codec: str | None = None,
    attrs: Mapping[str, Any] | None = None,
    format_version: int,
    path: str | None = None,
    coordinates: Mapping[str, str] | None = None,
) -> tuple[str, list[zarr.Array[Any]]]:
    """Create a segment group and its layer arrays; return ``(segment_id, arrays)``.

    With ``shard_rows``, a layer's chunks are stored in shards of that many rows (zarr's
    sharding codec: one object per shard, with an index of its chunks). ``codec`` is a
    preset name (default: the store's ``codec``). ``format_version`` names the arrays
    (:func:`~wspace.store.naming.layout_arrays`); in format 2 they carry
    ``dimension_names``, and ``coordinates`` (layer -> the ``coordinates`` attribute of its
    array, for xarray). ``path`` places the group elsewhere than ``archs/<arch>/seg/<id>``.
    """
    segment_id = new_id()
    path = segment_path(arch, segment_id) if path is None else path
    group = zarr.create_group(
        backend.store,
        path=path,
        attributes={
            "wspace": {"kind": kind, "arch": arch, "created": time.time(), **dict(attrs or {})}
        },
    )
    codecs = codec_chain(codec or config.codec)
    names = layout_arrays(layout, format_version)
    named = format_version >= 2
    arrays = []
    for layer in layout.layers:
        width = layout.layer_size(layer)
        crow = chunk_rows if isinstance(chunk_rows, int) else chunk_rows[layer]
        srow = None if shard_rows is None else shard_rows.get(layer)
        array_attrs: dict[str, Any] = {
            "wspace": {
                "layer": layer,
                "tensors": [t.name for t in layout.layer_tensors(layer)],
            }
        }
        if coordinates and layer in coordinates:
            array_attrs["coordinates"] = coordinates[layer]
        arrays.append(
            group.create_array(
                names[layer],
                shape=(rows, width),
                chunks=(crow, width),
                shards=None if srow is None else (srow, width),
                dtype="float32",
                fill_value=np.nan,
                filters=codecs.filters,
                serializer=codecs.serializer,
                compressors=codecs.compressors,
                config={"write_empty_chunks": True},
                dimension_names=(MODEL_DIM, param_dim(names[layer])) if named else None,
                attributes=array_attrs,
            )
        )
    return segment_id, arrays


def create_column(
    group_path: str,
    backend: Backend,
    key: str,
    kind: str,
    name: str,
    rows: int,
    chunk_rows: int,
    *,
    format_version: int,
) -> zarr.Array[Any]:
    """Create one metadata-column array in a segment.

    Numbers and booleans are float64 (NaN: missing), strings and JSON variable-length UTF-8
    (:data:`~wspace.store.columns.MISSING_STR`: missing); the fill value is the missing
    value. In format 2 the array has ``dimension_names = ["model"]`` and its kind in its
    attributes.
    """
    numeric = kind in ("int", "float", "bool")
    named = format_version >= 2
    meta: dict[str, Any] = {"column": name, "kind": kind} if named else {"column": name}
    return zarr.create_array(
        backend.store,
        name=f"{group_path}/{key}" if group_path else key,
        shape=(rows,),
        chunks=(chunk_rows,),
        dtype="float64" if numeric else str,
        fill_value=np.nan if numeric else MISSING_STR,
        compressors=column_compressors(),  # checksummed like the weights
        config={"write_empty_chunks": True},
        dimension_names=(MODEL_DIM,) if named else None,
        attributes={"wspace": meta},
    )


class SegmentWriter:
    """Buffers rows of one architecture and writes them as whole chunks of its own segment.

    Parameters
    ----------
    backend, layout, config
        Where, what shape, which settings.
    arch
        Architecture group name.
    writer_id
        Identifier recorded in the segment's attributes.
    flusher
        The writer's background flush: full chunks are handed to it and written while rows
        go on being buffered (:mod:`wspace.store.flusher`); ``None``: written in the
        caller's thread.
    """

    def __init__(
        self,
        backend: Backend,
        layout: Layout,
        config: StoreConfig,
        *,
        arch: str,
        writer_id: str,
        format_version: int,
        flusher: ChunkFlusher | None = None,
    ) -> None:
        self.backend = backend
        self.flusher = flusher
        self.layout = layout
        self.arch = arch
        self.chunks = [config.segment_chunk_rows(layout.layer_size(ly)) for ly in layout.layers]
        self.meta_chunk = config.meta_rows
        self.segment_id, self.arrays = create_segment(
            backend,
            layout,
            config,
            arch=arch,
            kind="segment",
            chunk_rows=dict(zip(layout.layers, self.chunks, strict=True)),
            codec=config.segment_codec_name(),
            attrs={"writer": writer_id, "rows": ROWS_NOTE},
            format_version=format_version,
        )
        self.encoders = [array_encoder(array) for array in self.arrays]
        self.format_version = format_version
        self.taken = taken_by_layers(layout, format_version)
        self.path = segment_path(arch, self.segment_id)
        self.slices = [layout.layer_slice(layer) for layer in layout.layers]
        # one buffer per layer holding the rows of its chunk being filled
        self.bufs = [
            np.full((rows, layout.layer_size(layer)), np.nan, dtype=np.float32)
            for rows, layer in zip(self.chunks, layout.layers, strict=True)
        ]
        self.spare: list[list[np.ndarray]] = [[] for _ in self.bufs]  # written, for reuse
        self.n = 0  # rows appended (committed or not)
        self.committed = 0
        self.starts = [0] * len(self.chunks)  # per layer: first row of the chunk being filled
        self.meta_start = 0
        self.meta: list[dict[str, Any]] = []  # rows since meta_start
        self.columns: Columns = {}
        self.column_arrays: dict[str, tuple[zarr.Array[Any], ChunkEncoder | None]] = {}
        self.pending_keys: list[RowKey] = []

    # -- appending ---------------------------------------------------------------------------
    def append(
        self, vector: np.ndarray, meta: dict[str, Any], kinds: dict[str, str | None], key: RowKey
    ) -> None:
        """Buffer one validated row and flush the chunks that become full.

        A storage failure may interrupt the flush: the row stays buffered (it counts as
        appended) and the full chunks are written by the next append or commit. A failure of
        the background flush is raised here, before the row is buffered.
        """
        self.flush_full()  # what an earlier failure left unwritten, before buffers move on
        new_columns = {}
        for name, kind in kinds.items():
            old = self.columns.get(name)
            merged = merge_kinds(old[0] if old else None, kind, column=name)
            if merged is not None:
                new_columns[name] = merged
        for name, kind in new_columns.items():
            if name not in self.columns:
                ckey = column_array(
                    name, self.taken | {k for _, k in self.columns.values()}, self.format_version
                )
                array = create_column(
                    self.path,
                    self.backend,
                    ckey,
                    kind,
                    name,
                    CAPACITY,
                    self.meta_chunk,
                    format_version=self.format_version,
                )
                self.column_arrays[name] = (array, array_encoder(array))
                self.columns[name] = (kind, ckey)
            else:
                self.columns[name] = (kind, self.columns[name][1])
        # from here on no I/O until the row is fully buffered
        for buf, start, cols in zip(self.bufs, self.starts, self.slices, strict=True):
            buf[self.n - start] = vector[cols]
        self.meta.append(meta)
        self.pending_keys.append(key)
        self.n += 1

    def flush_full(self) -> None:
        """Write every chunk (weights and metadata) whose rows are all appended.

        With a background flush the weight chunks are handed over, not yet written; a
        failure of an earlier background write is raised first.
        """
        if self.flusher is not None:
            self.flusher.check()
        for i, rows in enumerate(self.chunks):
            if self.n - self.starts[i] == rows:
                self._write_layer(i)
                self.starts[i] = self.n
                if self.flusher is None:
                    self.bufs[i].fill(np.nan)
                else:  # the full buffer went to the thread: another one (a partial chunk
                    spare = self.spare[i]  # is NaN-padded when written)
                    self.bufs[i] = spare.pop() if spare else np.empty_like(self.bufs[i])
        if self.n - self.meta_start == self.meta_chunk:
            self._write_meta()
            self.meta_start = self.n
            self.meta = []

    def _write_layer(self, i: int) -> None:
        # always a whole chunk (NaN-padded): nothing is read first
        array, encoder = self.arrays[i], self.encoders[i]
        if self.flusher is None:
            _write_layer_chunk(self.backend, array, encoder, self.starts[i], self.bufs[i], None)
            return
        filled = self.n - self.starts[i]
        chunk = self.bufs[i]
        spare: list[np.ndarray] | None = self.spare[i]  # where the buffer goes once written
        if filled < self.chunks[i]:  # a partial chunk (a commit): the caller keeps filling it
            chunk = chunk.copy()
            chunk[filled:] = np.nan
            spare = None
        what = (
            f"layer {self.layout.layers[i]!r} rows {self.starts[i]}:"
            f"{self.starts[i] + self.chunks[i]} of segment {self.path!r} in store "
            f"{self.backend.url!r}"
        )
        write = functools.partial(
            _write_layer_chunk, self.backend, array, encoder, self.starts[i], chunk, spare
        )
        self.flusher.submit(FlushTask(write, chunk.nbytes, what))

    def _write_meta(self) -> None:
        for name, (kind, _) in self.columns.items():
            values = [row.get(name) for row in self.meta]
            chunk = encode(kind, values, self.meta_chunk)
            array, encoder = self.column_arrays[name]
            _write_chunk(self.backend, array, encoder, self.meta_start, chunk)

    # -- committing --------------------------------------------------------------------------
    def prepare_commit(self) -> AppendRecord | None:
        """Write the partial chunks; return the ``append`` record draft (``None``: nothing new)."""
        if self.n == self.committed:
            return None
        if self.flusher is not None:
            self.flusher.wait()  # chunks an earlier failure left are written again first
        self.flush_full()
        for i, start in enumerate(self.starts):
            if self.n > start:
                self._write_layer(i)
        if self.n > self.meta_start:
            self._write_meta()
        if self.flusher is not None:
            self.flusher.wait()  # the record must never name a chunk not yet written
        return AppendRecord(
            arch=self.arch,
            segment=self.segment_id,
            start=self.committed,
            stop=self.n,
            keys=tuple(self.pending_keys),
            columns=dict(self.columns),
        )

    def committed_ok(self, stop: int | None = None) -> list[RowKey]:
        """Mark the rows appended so far (or up to ``stop``) as committed; return their keys."""
        stop = self.n if stop is None else stop
        done = self.pending_keys[: stop - self.committed]
        self.pending_keys = self.pending_keys[stop - self.committed :]
        self.committed = stop
        return done

    @property
    def txn(self) -> str:
        """Identifier of the commit of the rows from ``committed`` on (see ``publish``)."""
        return f"{self.segment_id}/{self.committed}"

    @property
    def pending(self) -> int:
        """Rows appended but not committed."""
        return self.n - self.committed


def _write_chunk(
    backend: Backend,
    array: zarr.Array[Any],
    encoder: ChunkEncoder | None,
    start: int,
    chunk: np.ndarray,
) -> None:
    """Write the whole chunk of ``array`` that begins at row ``start``: encoded here and
    written through the backend when wspace knows its codec chain (``encoder``, which
    gives the bytes zarr would write), else by zarr."""
    rows = len(chunk)
    if encoder is None:
        array[start : start + rows] = chunk
        return
    index = (start // rows,) + (0,) * (array.ndim - 1)
    backend.write(f"{array.path}/{array.metadata.encode_chunk_key(index)}", encoder.encode(chunk))


def array_encoder(array: zarr.Array[Any]) -> ChunkEncoder | None:
    """The :class:`~wspace.store.codecs.ChunkEncoder` of ``array``'s codec chain (``None``:
    a chain that zarr encodes)."""
    meta = array.metadata
    chain = meta.to_dict().get("codecs") if isinstance(meta, ArrayV3Metadata) else None
    return chunk_encoder(list(chain)) if isinstance(chain, list | tuple) else None


def _write_layer_chunk(
    backend: Backend,
    array: zarr.Array[Any],
    encoder: ChunkEncoder | None,
    start: int,
    chunk: np.ndarray,
    spare: list[np.ndarray] | None,
) -> None:
    """:func:`_write_chunk` of a weight chunk (in the caller's or the flush thread); then put
    the buffer on ``spare`` (the caller takes it from there to fill it again)."""
    _write_chunk(backend, array, encoder, start, chunk)
    fault_point("segment.chunk-written")
    if spare is not None:
        spare.append(chunk)
