"""wspace: a weight-space storage engine and query library for neural-network model zoos.

>>> import wspace
>>> from wspace.testing import tiny_zoo
>>> zoo = wspace.open(tiny_zoo("memory://doc-init", n_models=4))
>>> zoo.sel(cls="church").layer("dense_1").shape
(2, 85)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from wspace import errors
from wspace.errors import (
    ArchitectureNotFoundError,
    CommitConflictError,
    CoordinateNotFoundError,
    CorruptDataError,
    DTypeError,
    DuplicateModelError,
    FormatError,
    LayerNotFoundError,
    ModelNotFoundError,
    NonFiniteWeightsError,
    ReadOnlyStoreError,
    SchemaMismatchError,
    SourceNotFoundError,
    StorageError,
    StoreExistsError,
    StoreNotFoundError,
    TensorNotFoundError,
    UnsafePickleError,
    WspaceError,
)
from wspace.layout import Layout, TensorSpec
from wspace.store import (
    StoreLike,
    VerifyReport,
    Writer,
    add_arch,
    compact,
    create,
    info,
    vacuum,
    verify,
    writer,
)
from wspace.store.reader import open_store
from wspace.zoo import Zoo

__version__ = "0.1.0"

__all__ = [
    "ArchitectureNotFoundError",
    "CommitConflictError",
    "CoordinateNotFoundError",
    "CorruptDataError",
    "DTypeError",
    "DuplicateModelError",
    "FormatError",
    "LayerNotFoundError",
    "Layout",
    "ModelNotFoundError",
    "NonFiniteWeightsError",
    "ReadOnlyStoreError",
    "SchemaMismatchError",
    "SourceNotFoundError",
    "StorageError",
    "StoreExistsError",
    "StoreLike",
    "StoreNotFoundError",
    "TensorNotFoundError",
    "TensorSpec",
    "UnsafePickleError",
    "VerifyReport",
    "Writer",
    "WspaceError",
    "Zoo",
    "__version__",
    "add_arch",
    "compact",
    "create",
    "errors",
    "info",
    "open",
    "vacuum",
    "verify",
    "writer",
]


def open(
    url: StoreLike,
    *,
    storage_options: Mapping[str, Any] | None = None,
    arch: str | None = None,
    mode: Literal["r"] = "r",
) -> Zoo:
    """Open a store as a lazy :class:`Zoo`.

    Reads the commit log and the (small) metadata columns; weights stay on storage until
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
    return open_store(url, storage_options=storage_options, read_only=True).zoo(arch)
