"""Derived objects of a store (statistics, canonical permutations, splits) beside its data.

They live under ``_weightspace/<arch>/<kind>/<key>.<ext>`` at the store's root, written with
fsspec through the store's URL, outside the commit log: the weight data and the log are never
touched, ``vacuum`` and ``compact`` leave them alone, and every object records the log
``version`` and the fingerprint of the rows it was computed from, so a reader can tell whether it
still describes the rows it sees. A store given as a zarr store object (not a URL) cannot hold
them. Each object is one small JSON (or ``.npz``) file written whole; the last writer wins.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from typing import Any, cast

import fsspec
import numpy as np

from wspace.errors import SchemaMismatchError, StorageError

__all__ = ["PREFIX", "fingerprint", "object_path", "read_object", "write_object"]

PREFIX = "_weightspace"
"""Root of the derived objects in a store."""


def fingerprint(zoo: Any) -> str:
    """SHA-256 of the identity of the zoo's rows: architecture, ``model`` and ``step``, in order.

    Rows added, removed or reordered give another fingerprint; the weights are not read.
    """
    models = zoo.models
    steps = models["step"].tolist() if "step" in models else [None] * len(models)
    ident = [
        str(zoo.layout.name),
        [[str(m), s] for m, s in zip(models["model"], steps, strict=True)],
    ]
    text = json.dumps(ident, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def object_path(arch: str, kind: str, key: str) -> str:
    """``_weightspace/<arch>/<kind>/<key>`` (a path relative to the store root)."""
    for part in (arch, kind, key):
        if not part or "/" in part or part.startswith("."):
            raise SchemaMismatchError(f"derived object name part {part!r} is not a plain name")
    return f"{PREFIX}/{arch}/{kind}/{key}"


def _fs(url: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    if not isinstance(url, str) or not url:
        raise SchemaMismatchError(
            "derived objects need the store's URL or path; a store given as an object has none"
        )
    fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    return fs, root.rstrip("/")


def write_object(
    url: str,
    path: str,
    value: Mapping[str, Any],
    *,
    arrays: Mapping[str, np.ndarray] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Write ``value`` as ``<path>.json`` (and ``arrays`` as ``<path>.npz``) under the store."""
    fs, root = _fs(url, storage_options)
    try:
        fs.makedirs(f"{root}/{path.rpartition('/')[0]}", exist_ok=True)
        if arrays is not None:
            buffer = io.BytesIO()
            cast(Any, np.savez_compressed)(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
            fs.pipe_file(f"{root}/{path}.npz", buffer.getvalue())
        fs.pipe_file(f"{root}/{path}.json", json.dumps(value, indent=1).encode())
    except OSError as exc:
        raise StorageError(f"store {url!r}: could not write {path!r}: {exc}") from exc


def read_object(
    url: str, path: str, *, storage_options: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """The JSON value and arrays of ``<path>`` under the store, or ``None`` if absent."""
    fs, root = _fs(url, storage_options)
    try:
        if not fs.exists(f"{root}/{path}.json"):
            return None
        value = json.loads(fs.cat_file(f"{root}/{path}.json"))
        arrays: dict[str, np.ndarray] = {}
        if fs.exists(f"{root}/{path}.npz"):
            with np.load(io.BytesIO(fs.cat_file(f"{root}/{path}.npz"))) as npz:
                arrays = {k: npz[k] for k in npz.files}
    except OSError as exc:
        raise StorageError(f"store {url!r}: could not read {path!r}: {exc}") from exc
    return value, arrays
