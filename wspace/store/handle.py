"""An opened store: its backend and the state replayed from its commit log.

The handle knows the store's architecture groups and where their rows are; it builds no
query object (the query layer, :mod:`wspace.query`, builds a ``Zoo`` from a handle).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from wspace.errors import ArchitectureNotFoundError, listing
from wspace.store.backend import Backend, StoreLike, resolve
from wspace.store.checkpoint import load_checkpoint
from wspace.store.log import ArchState, CommitLog, Record, StoreState, replay
from wspace.store.metaread import read_models

__all__ = ["StoreHandle", "open_store"]


@dataclass
class StoreHandle:
    """An opened store: its backend and the replayed state."""

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

    def models(self, arch: str) -> pd.DataFrame:
        """Every metadata column of ``arch``'s visible rows, JSON columns decoded."""
        state = self.arch_state(arch)
        return read_models(self.backend, arch, state, state.merged())


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
