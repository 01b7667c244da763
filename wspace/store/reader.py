"""Reading a store: replay the log, load metadata eagerly, wrap weights lazily in Dask."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
import pandas as pd
import zarr
import zarr.api.asynchronous as zasync
from zarr.core.sync import sync

from wspace.errors import ArchitectureNotFoundError, CorruptDataError, StorageError, listing
from wspace.layout import Layout
from wspace.store.backend import Backend, StoreLike, resolve
from wspace.store.checkpoint import load_checkpoint
from wspace.store.fastread import RowSource, object_rows, read_block
from wspace.store.log import ArchState, CommitLog, Piece, Record, StoreState, replay
from wspace.store.metaread import read_metadata
from wspace.store.segment import layer_key, segment_path

if TYPE_CHECKING:
    from wspace.zoo import Zoo

__all__ = ["LayerReader", "StoreHandle", "open_store"]


class LayerReader:
    """Array-like view of the committed rows of one layer array, read chunk by chunk by Dask.

    Turns any failure to decode a chunk — checksum mismatch, truncated or garbage bytes, a
    chunk that vanished — into a :class:`CorruptDataError` naming the store, the layer, its
    tensors and the models whose rows the chunk holds. A storage failure (network, server)
    is not corruption: it raises :class:`StorageError` with the same names.
    """

    def __init__(
        self,
        backend: Backend,
        array: zarr.Array,
        rows: int,
        models: np.ndarray,
        *,
        layer: str,
        segment: str,
        tensors: tuple[str, ...] = (),
    ) -> None:
        self.backend = backend
        self.array = array
        self.shape = (rows, int(array.shape[1]))
        self.dtype = np.dtype(np.float32)
        self.ndim = 2
        self.models = models
        self.layer = layer
        self.segment = segment
        self.tensors = tensors

    def _what(self, rows: slice) -> str:
        tensors = f" (tensor(s) {listing(self.tensors, 8)})" if self.tensors else ""
        return (
            f"store {self.backend.url!r}: layer {self.layer!r}{tensors} of model(s) "
            f"{listing(self.models[rows], 10)} (segment {self.segment}, rows "
            f"{rows.start}-{rows.stop - 1})"
        )

    def _fail(self, rows: slice, why: str) -> CorruptDataError:
        return CorruptDataError(f"{self._what(rows)} is corrupt: {why}")

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows = key[0] if isinstance(key, tuple) else key
        if not isinstance(rows, slice):
            rows = slice(0, self.shape[0])
        start, stop, _ = rows.indices(self.shape[0])
        rows = slice(start, stop)
        try:
            block = np.asarray(self.array[key])
        except StorageError as exc:
            error = StorageError(f"{self._what(rows)} could not be read: {exc}")
            error.errno = exc.errno
            raise error from exc
        except Exception as exc:  # zarr raises codec-specific errors for damaged chunks
            raise self._fail(rows, f"{type(exc).__name__}: {exc}") from exc
        if block.size and np.isnan(block).any():
            self._check_chunks_exist(rows)
        return block

    def _check_chunks_exist(self, rows: slice) -> None:
        size = object_rows(self.array)
        for index in range(rows.start // size, (rows.stop - 1) // size + 1):
            key = f"{self.array.path}/c/{index}/0"
            if not self.backend.exists(key):
                part = slice(max(rows.start, index * size), min(rows.stop, (index + 1) * size))
                raise self._fail(part, f"chunk {key} is missing")


@dataclass
class StoreHandle:
    """An opened store: its backend and the replayed state, able to build a Zoo per arch."""

    backend: Backend
    state: StoreState
    storage_options: Mapping[str, Any] | None = None
    state_records: list[Record] = field(default_factory=list)
    """The commit records the state was replayed from (after a checkpoint: the records it
    summarises, compact keys left out, and every later record)."""

    @property
    def archs(self) -> list[str]:
        """Names of the architecture groups."""
        return list(self.state.archs)

    def default_arch(self) -> str:
        """The only architecture, or the one with rows when exactly one has rows."""
        names = self.archs
        if len(names) == 1:
            return names[0]
        with_rows = [n for n in names if self.state.archs[n].n_rows]
        if len(with_rows) == 1:
            return with_rows[0]
        raise ArchitectureNotFoundError(
            f"store {self.backend.url!r} holds several architectures ({listing(names)}); "
            "choose one with zoo.arch(name)"
        )

    def arch_state(self, name: str) -> ArchState:
        """The replayed state of architecture ``name``."""
        try:
            return self.state.archs[name]
        except KeyError:
            raise ArchitectureNotFoundError(
                f"store {self.backend.url!r} has no architecture {name!r}; it has "
                f"{listing(self.archs)}"
            ) from None

    def zoo(self, arch: str | None = None) -> Zoo:
        """Build the lazy :class:`~wspace.zoo.Zoo` of one architecture group."""
        from wspace.zoo import Zoo

        name = arch or self.default_arch()
        state = self.arch_state(name)
        pieces = state.merged()
        models_df, lazy = read_metadata(self.backend, name, state, pieces)
        layers, source = lazy_layers(self.backend, name, state.layout, pieces, models_df)
        return Zoo(
            layers,
            models_df,
            state.layout,
            url=self.backend.url,
            arch=name,
            handle=self,
            source=source,
            lazy_columns=lazy,
        )


def open_store(
    url: StoreLike,
    *,
    storage_options: Mapping[str, Any] | None = None,
    read_only: bool = True,
    checkpoint: bool = True,
) -> StoreHandle:
    """Resolve ``url`` and replay its commit log (from the latest checkpoint, if any).

    With ``read_only`` (the default) nothing is ever written to the storage: every write
    through the handle's backend raises :class:`~wspace.errors.ReadOnlyStoreError`.
    """
    backend = resolve(url, storage_options=storage_options, read_only=read_only)
    if checkpoint:
        loaded = load_checkpoint(backend)
        if loaded is not None:
            state, records = loaded
            return StoreHandle(backend, state, storage_options, state_records=records)
    log = CommitLog(backend)
    log.refresh()
    return StoreHandle(
        backend=backend,
        state=replay(log.records, url=backend.url),
        storage_options=storage_options,
        state_records=log.records,
    )


def _open_arrays(backend: Backend, paths: list[str]) -> list[zarr.Array]:
    # pieces of one segment share its arrays: open each once, reading only its zarr.json
    unique = list(dict.fromkeys(paths))

    async def go() -> list[Any]:
        return list(
            await asyncio.gather(
                *(
                    zasync.open_array(store=backend.store, path=p, mode="r", zarr_format=3)
                    for p in unique
                )
            )
        )

    try:
        opened = dict(zip(unique, (zarr.Array(a) for a in sync(go())), strict=True))
        return [opened[p] for p in paths]
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise CorruptDataError(
            f"store {backend.url!r}: array missing or unreadable: {exc}"
        ) from exc


def _read_block(reader: LayerReader, key: tuple[slice, slice]) -> np.ndarray:
    # A getter Dask does not recognise, so that it never fuses later slices into the read:
    # a chunk is read and decoded once, then split, however the graph slices it. Blocks span
    # whole rows; they are read by the direct path (fetch + decode on a thread pool).
    rows = key[0] if isinstance(key, tuple) else key
    cols = key[1] if isinstance(key, tuple) and len(key) > 1 else slice(None)
    width = reader.shape[1]
    if isinstance(rows, slice) and isinstance(cols, slice) and cols.indices(width) == (0, width, 1):
        return read_block(reader, rows)
    return reader[key]


def lazy_layers(
    backend: Backend, arch: str, layout: Layout, pieces: list[Piece], models: pd.DataFrame
) -> tuple[dict[str, da.Array], RowSource]:
    """Per layer, the ``(model, layer param)`` Dask array over every visible row, and the
    :class:`~wspace.store.fastread.RowSource` that reads any rows of them directly.

    Each Dask array has one block per stored object (a shard, or a chunk), so a layer scan
    reads each object once. Nothing is read until computed.
    """
    readers: dict[str, list[LayerReader]] = {layer: [] for layer in layout.layers}
    piece_of = np.repeat(np.arange(len(pieces)), [p.n_live for p in pieces])
    row_of = np.concatenate(
        [
            np.arange(p.start, p.stop)[p.live] if p.live is not None else np.arange(p.start, p.stop)
            for p in pieces
        ]
        or [np.zeros(0, np.int64)]
    )
    source = RowSource(readers, piece_of, row_of.astype(np.int64))
    if not pieces:
        return _empty_layers(layout), source
    return _lazy_layers(backend, arch, layout, pieces, models, readers), source


def _empty_layers(layout: Layout) -> dict[str, da.Array]:
    """Empty per-layer Dask arrays (a zoo without rows)."""
    return {
        layer: da.zeros(
            (0, layout.layer_size(layer)),
            dtype=np.float32,
            chunks=((0,), (layout.layer_size(layer),)),
        )
        for layer in layout.layers
    }


def _lazy_layers(
    backend: Backend,
    arch: str,
    layout: Layout,
    pieces: list[Piece],
    models: pd.DataFrame,
    readers: dict[str, list[LayerReader]],
) -> dict[str, da.Array]:
    paths = [
        f"{segment_path(arch, p.segment)}/{layer_key(i)}"
        for p in pieces
        for i in range(len(layout.layers))
    ]
    arrays = iter(_open_arrays(backend, paths))
    names = models["model"].to_numpy(dtype=object)
    blocks: dict[str, list[da.Array]] = {layer: [] for layer in layout.layers}
    offset = 0
    for piece in pieces:
        row_names = np.full(piece.stop, "?", dtype=object)
        visible = np.arange(piece.start, piece.stop)
        if piece.live is not None:
            visible = visible[piece.live]
        row_names[visible] = names[offset : offset + len(visible)]
        offset += len(visible)
        for layer in layout.layers:
            array = next(arrays)
            reader = LayerReader(
                backend,
                array,
                piece.stop,
                row_names,
                layer=layer,
                segment=piece.segment,
                tensors=tuple(t.name for t in layout.layer_tensors(layer)),
            )
            readers[layer].append(reader)
            size = object_rows(array)
            full, rest = divmod(piece.stop, size)
            chunks = ((size,) * full + ((rest,) if rest else ()), (reader.shape[1],))
            name = f"wspace-{backend.url}-{arch}-{piece.segment}-{layer}-{piece.stop}"
            lazy = da.from_array(
                reader,
                chunks=chunks,
                name=name,
                lock=False,
                fancy=False,
                asarray=True,
                getitem=_read_block,
                meta=np.empty((0, 0), np.float32),
            )
            if piece.start or piece.stop != lazy.shape[0]:
                lazy = lazy[piece.start : piece.stop]
            if piece.live is not None:
                lazy = lazy[np.flatnonzero(piece.live)]
            blocks[layer].append(lazy)
    return {
        layer: parts[0] if len(parts) == 1 else da.concatenate(parts, axis=0)
        for layer, parts in blocks.items()
    }
