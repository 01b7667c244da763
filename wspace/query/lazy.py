"""The Dask glue: the parts of a Zoo read from an opened store, and per-layer Dask arrays
over its rows (whose numpy conversion :mod:`wspace.query.direct` routes to the direct
reader)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np
import pandas as pd

from wspace.layout import Layout
from wspace.store.chunks import LayerReader, RowSource, object_rows, read_block, row_source
from wspace.store.handle import StoreHandle
from wspace.store.log import Piece
from wspace.store.metaread import LazyColumns

__all__ = ["ZooParts", "lazy_layers", "side_by_side", "zoo_parts"]


@dataclass(frozen=True)
class ZooParts:
    """What the Zoo of one architecture group is built from."""

    arch: str
    layout: Layout
    layers: dict[str, da.Array]
    """Per layer, the Dask array over every visible row (:func:`lazy_layers`)."""
    models: pd.DataFrame | None
    """The scalar metadata columns of the visible rows; ``None``: unread (``lazy_columns``)."""
    source: RowSource
    """Reads any visible rows directly."""
    lazy_columns: LazyColumns
    """Every metadata column, read when first used."""


def zoo_parts(handle: StoreHandle, arch: str | None = None) -> ZooParts:
    """Open the layer arrays (their ``zarr.json``) of architecture group ``arch`` (by default
    the only one) and wrap them in Dask; read no weights and no metadata column (they are
    read when first used)."""
    name = arch or handle.default_arch()
    state = handle.arch_state(name)
    pieces = state.merged()
    lazy = LazyColumns.of(handle.backend, name, state, pieces)
    source = row_source(handle.backend, state, pieces, lazy.model_names)
    layers = lazy_layers(source, pieces, state.layout, url=handle.backend.url, arch=name)
    return ZooParts(name, state.layout, layers, None, source, lazy)


def _read_dask_block(reader: LayerReader, key: tuple[slice, slice]) -> np.ndarray:
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
    source: RowSource, pieces: Sequence[Piece], layout: Layout, *, url: str, arch: str
) -> dict[str, da.Array]:
    """Per layer, the ``(model, layer param)`` Dask array over every visible row.

    ``source`` holds one reader per layer and piece (see
    :func:`~wspace.store.chunks.row_source`). Each Dask array has one block per stored object
    (a shard, or a chunk), so a layer scan reads each object once. Nothing is read until
    computed.
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
    blocks: dict[str, list[da.Array]] = {layer: [] for layer in layout.layers}
    for p, piece in enumerate(pieces):
        for layer in layout.layers:
            reader = source.readers[layer][p]
            size = object_rows(reader.array)
            full, rest = divmod(piece.stop, size)
            chunks = ((size,) * full + ((rest,) if rest else ()), (reader.shape[1],))
            name = f"wspace-{url}-{arch}-{piece.segment}-{layer}-{piece.stop}"
            lazy = da.from_array(
                reader,
                chunks=chunks,
                name=name,
                lock=False,
                fancy=False,
                asarray=True,
                getitem=_read_dask_block,
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


def side_by_side(parts: Sequence[da.Array], layout: Layout) -> da.Array:
    """The per-layer Dask arrays ``parts`` (in ``layout`` order) as one ``(model, param)``
    array, every layer rechunked to the row blocks of the widest layer."""
    widest = max(layout.layers, key=layout.layer_size)
    rows = parts[layout.layers.index(widest)].chunks[0]
    # method="tasks": left to choose, Dask imports distributed (~0.5 s) to look for a client
    joined: da.Array = da.concatenate([p.rechunk({0: rows}, method="tasks") for p in parts], axis=1)
    return joined
