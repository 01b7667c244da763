"""The storage engine: URL resolution, segments, commit log, writer, chunk reads, the store
handle, maintenance. Imports nothing from the query layer (:mod:`wspace.query`) or above."""

from __future__ import annotations

from wspace.store.backend import Backend, StoreLike, resolve
from wspace.store.config import CODECS, StoreConfig
from wspace.store.create import add_arch, create
from wspace.store.handle import StoreHandle, open_store
from wspace.store.maintenance import VerifyReport, compact, info, vacuum, verify
from wspace.store.writer import Writer, writer

__all__ = [
    "CODECS",
    "Backend",
    "StoreConfig",
    "StoreHandle",
    "StoreLike",
    "VerifyReport",
    "Writer",
    "add_arch",
    "compact",
    "create",
    "info",
    "open_store",
    "resolve",
    "vacuum",
    "verify",
    "writer",
]
