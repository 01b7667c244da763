"""Storage backends: one per kind of zarr store, all fulfilling :class:`Backend`.

A new store kind is one module with a :class:`Backend` subclass naming its zarr
``store_type``, and one :func:`register` call below. Every kind passes the shared suite
:class:`wspace.store.backends.conformance.BackendConformance`.
"""

from __future__ import annotations

from wspace.store.backends.base import Backend, StoreLike
from wspace.store.backends.fsspec import FsspecBackend
from wspace.store.backends.local import LocalBackend
from wspace.store.backends.memory import MemoryBackend
from wspace.store.backends.registry import OtherStoreBackend, backend_class, register, resolve

__all__ = [
    "Backend",
    "FsspecBackend",
    "LocalBackend",
    "MemoryBackend",
    "OtherStoreBackend",
    "StoreLike",
    "backend_class",
    "register",
    "resolve",
]

register(OtherStoreBackend)
register(LocalBackend)
register(FsspecBackend)
register(MemoryBackend)
