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
from wspace.store.columns import decode, to_series
from wspace.store.log import ArchState, CommitLog, Piece, StoreState, replay
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
        size = int(self.array.chunks[0])
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
    state_records: list[dict[str, Any]] = field(default_factory=list)
    """The commit records the state was replayed from."""

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
        models_df = read_metadata(self.backend, name, state, pieces)
        layers = lazy_layers(self.backend, name, state.layout, pieces, models_df)
        return Zoo(layers, models_df, state.layout, url=self.backend.url, arch=name, handle=self)


def open_store(
    url: StoreLike, *, storage_options: Mapping[str, Any] | None = None, read_only: bool = True
) -> StoreHandle:
    """Resolve ``url``, read the whole commit log and replay it.

    With ``read_only`` (the default) nothing is ever written to the storage: every write
    through the handle's backend raises :class:`~wspace.errors.ReadOnlyStoreError`.
    """
    backend = resolve(url, storage_options=storage_options, read_only=read_only)
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


def read_metadata(
    backend: Backend, arch: str, state: ArchState, pieces: list[Piece]
) -> pd.DataFrame:
    """Read the metadata columns of the visible rows into a DataFrame (row order)."""
    jobs: list[tuple[int, str, str, str]] = []  # piece, column, kind, path
    for i, piece in enumerate(pieces):
        for name, (kind, key) in state.columns[piece.segment].items():
            jobs.append((i, name, kind, f"{segment_path(arch, piece.segment)}/{key}"))
    # each column array is read once, over the rows of all its pieces, then split per piece
    spans: dict[str, tuple[int, int]] = {}
    for i, _, _, path in jobs:
        lo, hi = spans.get(path, (pieces[i].start, pieces[i].stop))
        spans[path] = (min(lo, pieces[i].start), max(hi, pieces[i].stop))
    paths = list(spans)
    arrays = _open_arrays(backend, paths)

    async def read_all() -> list[Any]:
        return list(
            await asyncio.gather(
                *(
                    arr._async_array.getitem(slice(*spans[path]))
                    for path, arr in zip(paths, arrays, strict=True)
                )
            )
        )

    try:
        read = dict(zip(paths, sync(read_all()) if jobs else [], strict=True))
    except StorageError:
        raise
    except Exception as exc:
        raise CorruptDataError(
            f"store {backend.url!r}: metadata of architecture {arch!r} is unreadable: {exc}"
        ) from exc
    raws = [
        read[path][pieces[i].start - spans[path][0] : pieces[i].stop - spans[path][0]]
        for i, _, _, path in jobs
    ]
    columns: dict[str, dict[int, np.ndarray]] = {}
    kinds: dict[str, set[str]] = {}
    order: list[str] = []
    for (i, name, kind, _), raw in zip(jobs, raws, strict=True):
        values = decode(kind, np.asarray(raw))
        if pieces[i].live is not None:
            values = values[pieces[i].live]
        if name not in columns:
            order.append(name)
        columns.setdefault(name, {})[i] = values
        kinds.setdefault(name, set()).add(kind)
    sizes = [p.n_live for p in pieces]
    data = {}
    for name in order:
        parts = []
        for i, n in enumerate(sizes):
            part = columns[name].get(i)
            if part is None:
                part = np.full(n, None, dtype=object)
            parts.append(part.astype(object) if len(kinds[name]) > 1 else part)
        merged = np.concatenate(parts) if parts else np.empty(0, dtype=object)
        data[name] = to_series(name, kinds[name], merged)
    frame = pd.DataFrame(data, index=pd.RangeIndex(sum(sizes)))
    if "model" not in frame:
        frame["model"] = pd.Series(np.empty(0, dtype=object), dtype=object)
    return frame[["model", *[c for c in frame.columns if c != "model"]]]


def _read_block(reader: LayerReader, key: tuple[slice, slice]) -> np.ndarray:
    # A getter Dask does not recognise, so that it never fuses later slices into the read:
    # a chunk is read and decoded once, then split, however the graph slices it.
    return reader[key]


def lazy_layers(
    backend: Backend, arch: str, layout: Layout, pieces: list[Piece], models: pd.DataFrame
) -> dict[str, da.Array]:
    """Per layer, the ``(model, layer param)`` Dask array over every visible row.

    Each keeps the chunking of its storage, so a layer scan reads each chunk once. Nothing is
    read until computed.
    """
    if not pieces:
        return {
            layer: da.zeros(
                (0, layout.layer_size(layer)),
                dtype=np.float32,
                chunks=((0,), (layout.layer_size(layer),)),
            )
            for layer in layout.layers
        }
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
            size = int(array.chunks[0])
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
            lazy = lazy[piece.start : piece.stop]
            if piece.live is not None:
                lazy = lazy[np.flatnonzero(piece.live)]
            blocks[layer].append(lazy)
    return {
        layer: parts[0] if len(parts) == 1 else da.concatenate(parts, axis=0)
        for layer, parts in blocks.items()
    }
