"""URL -> zarr store, and the raw object operations the engine needs beyond zarr.

The implementations live in :mod:`wspace.store.backends` (one module per store kind); this
module keeps the import path the rest of the engine uses.
"""

from __future__ import annotations

from wspace.store.backends import Backend, StoreLike, resolve

__all__ = ["Backend", "StoreLike", "resolve"]
