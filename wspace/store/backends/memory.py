"""zarr's ``MemoryStore``: a dict in this process.

Only this process can reach the store, so a lock of this process makes create-if-absent
atomic: under it, an existence check and zarr's ``set_if_not_exists`` (a ``dict.setdefault``)
decide the one winner. Every call goes through the store chain, wrappers included; only
public zarr API is used.
"""

from __future__ import annotations

import threading
from typing import ClassVar

from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import MemoryStore

from wspace.store.backends.base import Backend

__all__ = ["MemoryBackend"]

_CREATE_LOCK = threading.Lock()
"""Serialises create-if-absent on in-memory stores (all of them: it is held briefly)."""


class MemoryBackend(Backend):
    """A zarr ``MemoryStore`` (tests, scratch zoos)."""

    store_type: ClassVar[type[Store]] = MemoryStore

    def create_if_absent(self, key: str, data: bytes) -> bool:
        self._check_create()
        buf = default_buffer_prototype().buffer.from_bytes(data)
        with _CREATE_LOCK:
            if self.exists(key):
                return False
            sync(self.store.set_if_not_exists(key, buf))
        return True
