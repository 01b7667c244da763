"""Opening a store as a :class:`~wspace.query.zoo.Zoo`: ``wspace.open``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from wspace.errors import SchemaMismatchError
from wspace.query.lazy import zoo_parts
from wspace.query.zoo import Zoo
from wspace.store.backend import StoreLike
from wspace.store.handle import StoreHandle, open_store

__all__ = ["open", "open_zoo"]


def open(
    url: StoreLike,
    *,
    storage_options: Mapping[str, Any] | None = None,
    arch: str | None = None,
    mode: Literal["r"] = "r",
) -> Zoo:
    """Open a store as a lazy :class:`Zoo`.

    Reads the commit log and opens the layer arrays; metadata columns are read when first
    used (a damaged one raises :class:`CorruptDataError` naming it then) and weights when
    computed. A zoo is opened read-only (``mode="r"``): nothing is ever written to the
    storage — not a byte, whatever is done with the zoo — and a write attempted through its
    store handle raises :class:`ReadOnlyStoreError`. So reading works on read-only buckets,
    mounts and directories. Rows are appended with :func:`writer`, never through a zoo.

    Parameters
    ----------
    url
        Local path, fsspec URL (``s3://bucket/zoo.zarr``, ``memory://zoo``) or zarr store.
    storage_options
        fsspec options, e.g. ``{"endpoint_url": ..., "key": ..., "secret": ...}`` for S3.
    arch
        Architecture group to open; by default the only one.
    mode
        ``"r"``, read-only: the only mode (appending is :func:`writer`'s job).

    Raises
    ------
    StoreNotFoundError
        No wspace store at ``url``.
    CorruptDataError
        A commit record is unreadable, malformed or missing: the store is refused as a
        whole rather than shown without it.

    Examples
    --------
    >>> import wspace
    >>> from wspace.testing import tiny_zoo
    >>> zoo = wspace.open(tiny_zoo("memory://doc-open", n_models=3))
    >>> len(zoo), zoo.layout.size
    (3, 91481)
    """
    if mode != "r":
        raise SchemaMismatchError(
            f"open() reads: mode must be 'r', not {mode!r}; append rows with wspace.writer(url)"
        )
    return open_zoo(open_store(url, storage_options=storage_options, read_only=True), arch)


def open_zoo(handle: StoreHandle, arch: str | None = None) -> Zoo:
    """The lazy :class:`Zoo` of one architecture group of an opened store.

    Opens the group's layer arrays (see :func:`~wspace.query.lazy.zoo_parts`); metadata
    columns and weights stay on storage until used.

    Parameters
    ----------
    handle
        The opened store (:func:`wspace.store.open_store`).
    arch
        Architecture group; by default the only one (see
        :meth:`~wspace.store.StoreHandle.default_arch`).

    Examples
    --------
    >>> from wspace.store import open_store
    >>> from wspace.testing import tiny_zoo
    >>> len(open_zoo(open_store(tiny_zoo("memory://doc-open-zoo", n_models=3))))
    3
    """
    parts = zoo_parts(handle, arch)
    return Zoo(
        parts.layers,
        parts.models,
        parts.layout,
        url=handle.backend.url,
        arch=parts.arch,
        handle=handle,
        source=parts.source,
        lazy_columns=parts.lazy_columns,
    )
