"""wspace: a weight-space storage engine and query library for neural-network model zoos.

>>> import wspace
>>> from wspace.testing import tiny_zoo
>>> zoo = wspace.open(tiny_zoo("memory://doc-init", n_models=4))
>>> zoo.sel(cls="church").layer("dense_1").shape
(2, 85)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
    UnsupportedStoreError,
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

if TYPE_CHECKING:
    from wspace import architectures as architectures
    from wspace.query import Zoo, open

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
    "UnsupportedStoreError",
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


def __getattr__(name: str) -> Any:
    """``open`` and ``Zoo`` (the query layer: xarray, Dask) and ``architectures`` (torch),
    imported on first use, so that ``import wspace.store`` alone loads neither."""
    if name in ("Zoo", "open"):
        from wspace import query

        value = getattr(query, name)
    elif name == "architectures":
        value = importlib.import_module("wspace.architectures")
    else:
        raise AttributeError(f"module 'wspace' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
