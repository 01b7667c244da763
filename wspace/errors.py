"""The wspace exception hierarchy.

Every error raised on purpose by wspace derives from :class:`WspaceError`, and each subclass
also inherits the matching builtin (``KeyError``, ``ValueError``, ``OSError``, ...) so that code
written against plain Python conventions keeps working.  Messages name what the user must look
at: the store URL, the model, the layer or tensor.
"""

from __future__ import annotations

import pickle

__all__ = [
    "ArchitectureNotFoundError",
    "CommitConflictError",
    "CoordinateNotFoundError",
    "CorruptDataError",
    "DTypeError",
    "DataSetNotFoundError",
    "DuplicateModelError",
    "FormatError",
    "LayerNotFoundError",
    "ModelNotFoundError",
    "NonFiniteWeightsError",
    "ReadOnlyStoreError",
    "SchemaMismatchError",
    "SourceNotFoundError",
    "StorageError",
    "StoreExistsError",
    "StoreNotFoundError",
    "TensorNotFoundError",
    "UnsafePickleError",
    "UnsupportedStoreError",
    "WspaceError",
    "WspaceWarning",
]


class WspaceError(Exception):
    """Root of every error wspace raises on purpose."""

    def __str__(self) -> str:
        # KeyError's str() quotes its argument; keep messages readable for all subclasses.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class WspaceWarning(UserWarning):
    """Root of wspace's warnings (turned into errors in wspace's own tests)."""


class StoreNotFoundError(WspaceError, FileNotFoundError):
    """No wspace store exists at the URL."""


class StoreExistsError(WspaceError, FileExistsError):
    """A store already exists where one was to be created."""


class DataSetNotFoundError(WspaceError, FileNotFoundError):
    """A training data set is not where it was said to be, or lacks the expected layout."""


class SourceNotFoundError(WspaceError, FileNotFoundError):
    """A file or folder that a source to import names (a run, a checkpoint) does not exist."""


class FormatError(WspaceError, ValueError):
    """A source to import breaks its published format: a file of the wrong length, missing
    columns, inconsistent files, or content that cannot be read safely."""


class ReadOnlyStoreError(WspaceError, PermissionError):
    """A write was attempted on a store opened read-only."""


class SchemaMismatchError(WspaceError, ValueError):
    """Weights or metadata do not fit the store's layout or column types."""


class DTypeError(WspaceError, TypeError):
    """Weights of a non-floating dtype were given."""


class NonFiniteWeightsError(WspaceError, ValueError):
    """NaN or infinite weights were given where they are refused."""


class DuplicateModelError(WspaceError, ValueError):
    """A row with the same ``model`` (and ``step``) is already in the store."""


class LayerNotFoundError(WspaceError, KeyError):
    """The named layer is not part of the layout."""


class TensorNotFoundError(WspaceError, KeyError):
    """The named tensor is not part of the layout."""


class ArchitectureNotFoundError(WspaceError, KeyError):
    """The named architecture group is not in the store."""


class CoordinateNotFoundError(WspaceError, KeyError):
    """A metadata column, or a value of it, does not exist in the zoo."""


class ModelNotFoundError(WspaceError, KeyError):
    """No row of the zoo has the requested model name."""


class StorageError(WspaceError, OSError):
    """The storage failed to read or write (network, server errors, disk full), even after
    retries. Nothing half-written becomes visible; ``errno`` is the underlying one when known."""


class UnsupportedStoreError(WspaceError, ValueError):
    """A store wspace may read but not write: its create-if-absent, on which every commit
    relies, is not known to be atomic (an fsspec protocol or wrapper not tested, or tested
    and found to check then write). The message names the store and the protocol."""


class CorruptDataError(WspaceError, OSError):
    """Stored bytes failed their checksum or could not be decoded."""


class CommitConflictError(WspaceError, RuntimeError):
    """A commit could not be published because of concurrent commits."""


class UnsafePickleError(FormatError, pickle.UnpicklingError):
    """A pickle (or a torch file, refused by ``torch.load(weights_only=True)``) asked for a
    global outside the few types its format allows; nothing was run. It is a
    :class:`FormatError` (content that cannot be read safely) and a
    ``pickle.UnpicklingError``."""


def listing(values: object, limit: int = 20) -> str:
    """Format the first ``limit`` of ``values`` for an error message (``a, b, ... (N in all)``)."""
    items = [str(v) for v in values]  # type: ignore[attr-defined]
    shown = ", ".join(repr(v) for v in items[:limit])
    if len(items) > limit:
        shown += f", ... ({len(items)} in all)"
    return shown or "(none)"
