"""Publishing a zoo: :meth:`Zoo.to_zarr <wspace.query.zoo.Zoo.to_zarr>` writes its rows as a
self-describing snapshot store (:mod:`wspace.store.snapshot`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from wspace.store.archive import RowReader
from wspace.store.backend import StoreLike
from wspace.store.config import StoreConfig
from wspace.store.snapshot import write_snapshot

if TYPE_CHECKING:
    from wspace.query.zoo import Zoo

__all__ = ["zoo_to_zarr"]


class _Values:
    """Rows of a zoo with no store behind it (a computed one), as a :class:`RowReader`."""

    def __init__(self, zoo: Zoo) -> None:
        self.values = zoo.values
        self.layout = zoo.layout

    def read(
        self,
        positions: np.ndarray,
        layers: Sequence[str],
        out: np.ndarray,
        columns: Sequence[slice],
    ) -> None:
        """Rows ``positions`` of ``layers`` into ``out[k, columns[j]]``."""
        rows = self.values[positions]
        for layer, cols in zip(layers, columns, strict=True):
            out[:, cols] = rows[:, self.layout.layer_slice(layer)]


def zoo_to_zarr(
    zoo: Zoo, dst: StoreLike, *, storage_options: Mapping[str, Any] | None = None
) -> str:
    """Write the rows of ``zoo`` as a snapshot store at ``dst``; return its URL (see
    :meth:`wspace.Zoo.to_zarr`)."""
    handle = zoo._handle
    config = handle.state.config if handle is not None else StoreConfig()
    source: RowReader
    if zoo._source is not None:
        source, positions = zoo._source, zoo._rows()
    else:
        source, positions = _Values(zoo), np.arange(len(zoo))
    return write_snapshot(
        dst,
        layout=zoo.layout,
        config=config,
        arch=zoo._arch,
        models=zoo._frame(),
        source=source,
        positions=positions,
        storage_options=storage_options,
    )
