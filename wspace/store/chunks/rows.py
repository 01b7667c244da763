"""Where the visible rows of an architecture group live, and reading any of them directly."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from wspace.store.backend import Backend
from wspace.store.chunks.layer import LayerReader, open_arrays
from wspace.store.chunks.plan import Request
from wspace.store.chunks.read import read
from wspace.store.log import ArchState, Piece

__all__ = ["RowSource", "piece_row_names", "row_source"]


@dataclass
class RowSource:
    """Where every visible row of an architecture group lives, for direct reads.

    ``piece[i]`` and ``row[i]`` are the piece (a run of one segment) holding visible row ``i``
    and its row in that segment's arrays; ``readers[layer][piece]`` reads them.
    """

    readers: dict[str, list[LayerReader]]
    piece: np.ndarray
    row: np.ndarray

    def read(
        self,
        positions: np.ndarray,
        layers: Sequence[str],
        out: np.ndarray,
        columns: Sequence[slice],
    ) -> None:
        """Rows ``positions`` of ``layers`` into ``out[k, columns[j]]`` (``k``: position)."""
        read(self.requests(positions, layers, out, columns))

    def requests(
        self,
        positions: np.ndarray,
        layers: Sequence[str],
        out: np.ndarray,
        columns: Sequence[slice],
    ) -> list[Request]:
        """The requests of :meth:`read`: one per piece and layer, rows in ascending order."""
        positions = np.asarray(positions, dtype=np.int64)
        pieces = self.piece[positions]
        local = self.row[positions]
        requests = []
        found = np.unique(pieces).tolist()
        for p in found:
            dest = np.flatnonzero(pieces == p) if len(found) > 1 else np.arange(len(positions))
            rows = local[dest]
            if len(rows) > 1 and np.any(rows[1:] < rows[:-1]):
                order = np.argsort(rows, kind="stable")
                rows, dest = rows[order], dest[order]
            for layer, cols in zip(layers, columns, strict=True):
                requests.append(Request(self.readers[layer][p], rows, out, dest, cols))
        return requests


def piece_row_names(pieces: Sequence[Piece], names: np.ndarray) -> list[np.ndarray]:
    """Per piece, the model name of each row of its segment up to ``piece.stop`` (``"?"``
    for rows the piece does not show), from ``names``, the names of the visible rows."""
    out = []
    offset = 0
    for piece in pieces:
        row_names = np.full(piece.stop, "?", dtype=object)
        visible = np.arange(piece.start, piece.stop)
        if piece.live is not None:
            visible = visible[piece.live]
        row_names[visible] = names[offset : offset + len(visible)]
        offset += len(visible)
        out.append(row_names)
    return out


class _LazyPieceNames:
    """:func:`piece_row_names` computed on first use from ``names()`` (picklable, unlike a
    closure: readers travel in Dask graphs)."""

    def __init__(self, pieces: list[Piece], names: Callable[[], np.ndarray]) -> None:
        self.pieces = pieces
        self.names = names
        self._per_piece: list[np.ndarray] | None = None

    def of_piece(self, p: int) -> np.ndarray:
        """The model name of each row of piece ``p``'s segment up to its ``stop``."""
        if self._per_piece is None:
            self._per_piece = piece_row_names(self.pieces, self.names())
        return self._per_piece[p]


def row_source(
    backend: Backend,
    state: ArchState,
    pieces: Sequence[Piece],
    names: np.ndarray | Callable[[], np.ndarray],
) -> RowSource:
    """The :class:`RowSource` of the visible rows of ``pieces`` (of the architecture group
    ``state``), one reader per layer and piece (``names``: the model of each visible row, for
    error messages, or a function returning them, called only when a message needs them).
    Opens the layer arrays (their ``zarr.json``); reads no chunk."""
    layout = state.layout
    piece_of = np.repeat(np.arange(len(pieces)), [p.n_live for p in pieces])
    row_of = np.concatenate(
        [
            np.arange(p.start, p.stop)[p.live] if p.live is not None else np.arange(p.start, p.stop)
            for p in pieces
        ]
        or [np.zeros(0, np.int64)]
    )
    readers: dict[str, list[LayerReader]] = {layer: [] for layer in layout.layers}
    source = RowSource(readers, piece_of, row_of.astype(np.int64))
    if not pieces:
        return source
    arrays_of = state.arrays
    paths = [
        f"{state.location(p.segment)}/{arrays_of[layer]}" for p in pieces for layer in layout.layers
    ]
    arrays = iter(open_arrays(backend, paths))
    if callable(names):
        lazy = _LazyPieceNames(list(pieces), names)
        per_piece: list[np.ndarray | Callable[[], np.ndarray]] = [
            functools.partial(lazy.of_piece, p) for p in range(len(pieces))
        ]
    else:
        per_piece = list(piece_row_names(pieces, names))
    for piece, row_names in zip(pieces, per_piece, strict=True):
        for layer in layout.layers:
            readers[layer].append(
                LayerReader(
                    backend,
                    next(arrays),
                    piece.stop,
                    row_names,
                    layer=layer,
                    segment=piece.segment,
                    tensors=tuple(t.name for t in layout.layer_tensors(layer)),
                )
            )
    return source
