"""One Keras 2 HDF5 file of a LeNet-5: written with the attributes Keras 2.15 writes, and read
with every weight checked (names, shapes, dtypes, finiteness)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wspace.architectures import LENET5_LAYERS, lenet5_keras_layout
from wspace.errors import (
    CorruptDataError,
    DTypeError,
    NonFiniteWeightsError,
    SchemaMismatchError,
    WspaceError,
    listing,
)
from wspace.io.files import atomic_file
from wspace.io.keras_config import KERAS_VERSION, LAYER_NAMES, model_config, training_config
from wspace.store.rows import NONFINITE_HINT

__all__ = ["check_file", "read_file", "write_file", "write_h5"]


def write_file(
    path: str | os.PathLike[str],
    tensors: Mapping[str, np.ndarray],
    *,
    weights_only: bool = False,
    keras_version: str = KERAS_VERSION,
) -> None:
    """Write one LeNet-5 as a Keras 2 HDF5 file, with the attributes Keras 2.15 writes.

    Parameters
    ----------
    path
        The file to write (replaced atomically).
    tensors
        ``{h5 path: array}`` for every tensor of :func:`keras_index` (Keras shapes, float32).
    weights_only
        Write a ``save_weights`` file (layer groups at the root, no ``model_config``).
        Otherwise a full-model file with ``model_config`` and ``training_config`` (the zoo's
        compile settings) but no ``optimizer_weights``: Keras loads it compiled, with a fresh
        optimizer state.
    keras_version
        Value of the ``keras_version`` attributes.
    """
    with atomic_file(path) as tmp:
        write_h5(tmp, tensors, weights_only, keras_version, where=repr(os.fspath(path)))


def write_h5(
    path: Path,
    tensors: Mapping[str, np.ndarray],
    weights_only: bool,
    keras_version: str,
    *,
    where: str,
) -> None:
    """Write the LeNet-5 ``tensors`` to the HDF5 file ``path`` as :func:`write_file` does, in
    place (no atomic replace); ``where`` names the file in errors."""
    expected = lenet5_keras_layout()
    with h5py.File(path, "w") as f:
        if not weights_only:  # keras.src.saving.legacy.hdf5_format.save_model_to_hdf5
            f.attrs["keras_version"] = keras_version
            f.attrs["backend"] = "tensorflow"
            f.attrs["model_config"] = json.dumps(model_config()).encode("utf8")
            f.attrs["training_config"] = json.dumps(training_config()).encode("utf8")
        root = f if weights_only else f.create_group("model_weights")
        # save_weights_to_hdf5_group: lists of bytes make variable-length ASCII attributes
        root.attrs["layer_names"] = [name.encode("utf8") for name in LAYER_NAMES]
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = keras_version.encode("utf8")
        for layer in sorted(LAYER_NAMES):
            group = root.create_group(layer)
            specs = expected.layer_tensors(layer) if layer in LENET5_LAYERS else ()
            group.attrs["weight_names"] = [
                f"{layer}/{s.name.rpartition('/')[2]}:0".encode() for s in specs
            ]
            for spec in specs:
                value = np.asarray(tensors[spec.source_name], dtype=np.float32)
                if value.shape != spec.shape:
                    raise SchemaMismatchError(
                        f"{where}: {spec.source_name} must have shape {spec.shape}, got "
                        f"{value.shape}"
                    )
                name = f"{layer}/{spec.name.rpartition('/')[2]}:0"
                group.create_dataset(name, value.shape, dtype=np.float32)[...] = value
        root.create_group("top_level_model_weights").attrs["weight_names"] = []


def read_file(
    path: str | os.PathLike[str], *, allow_nonfinite: bool = False
) -> dict[str, np.ndarray]:
    """Read and check the LeNet-5 weights of one Keras 2 HDF5 file.

    Returns ``{h5 path: float32 array}`` (paths under ``model_weights``, Keras shapes) in the
    order of :func:`~wspace.architectures.lenet5_keras_layout`. Full-model files (weights under
    ``model_weights/``) and weights-only files (at the root) are read alike; optimizer state is
    ignored.

    Raises
    ------
    CorruptDataError
        The file is not readable HDF5 (truncated, garbage).
    SchemaMismatchError
        A weight dataset is missing, unexpected, of the wrong shape, or disagrees with its
        layer's ``weight_names``.
    DTypeError
        A weight is not float32.
    NonFiniteWeightsError
        A weight is NaN or infinite (unless ``allow_nonfinite``).
    """
    where = repr(os.fspath(path))
    with _open(path) as datasets:
        try:
            out = {name: np.asarray(data[()], dtype=np.float32) for name, data in datasets.items()}
        except (OSError, RuntimeError, ValueError) as exc:
            raise CorruptDataError(f"{where}: not a readable Keras HDF5 file ({exc})") from exc
    for name, value in out.items():
        if not allow_nonfinite and not np.isfinite(value).all():
            bad = int((~np.isfinite(value)).sum())
            raise NonFiniteWeightsError(
                f"{where}: {bad} non-finite value(s) in {name}; {NONFINITE_HINT}"
            )
    return out


def check_file(path: str | os.PathLike[str]) -> None:
    """The checks of :func:`read_file` that need no weight values (names, shapes, dtypes)."""
    with _open(path):
        pass


@contextlib.contextmanager
def _open(path: str | os.PathLike[str]) -> Iterator[dict[str, h5py.Dataset]]:
    """The checked LeNet-5 weight datasets of a file (see :func:`read_file`), while open."""
    where = repr(os.fspath(path))
    try:
        f = h5py.File(path, "r")
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise CorruptDataError(f"{where}: not a readable Keras HDF5 file ({exc})") from exc
    with f:
        try:
            datasets = _checked(f, where)
        except WspaceError:
            raise
        except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CorruptDataError(f"{where}: not a readable Keras HDF5 file ({exc})") from exc
        yield datasets


def _datasets(group: h5py.Group, skip: str | None) -> dict[str, h5py.Dataset]:
    found: dict[str, h5py.Dataset] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and name.split("/")[0] != skip:
            found[name] = obj

    group.visititems(visit)
    return found


def _checked(f: h5py.File, where: str) -> dict[str, h5py.Dataset]:
    layout = lenet5_keras_layout()
    full = "model_weights" in f
    root = f["model_weights"] if full else f
    found = _datasets(root, None if full else "optimizer_weights")
    expected = [t.source_name for t in layout]
    missing = [name for name in expected if name not in found]
    extra = [name for name in found if name not in expected]
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"missing weight(s) {listing(missing)}")
        if extra:
            problems.append(f"unexpected dataset(s) {listing(extra)}")
        raise SchemaMismatchError(f"{where}: not the LeNet-5 of the zoo: {'; '.join(problems)}")
    for spec in layout:
        data = found[spec.source_name]
        if data.shape != spec.shape:
            raise SchemaMismatchError(
                f"{where}: {spec.source_name} has shape {data.shape}; LeNet-5 needs {spec.shape}"
            )
        if data.dtype != np.float32:
            raise DTypeError(f"{where}: {spec.source_name} is {data.dtype}, not float32")
    for layer in LENET5_LAYERS:
        names = _weight_names(root[layer])
        wanted = sorted(
            f"{layer}/{t.name.rpartition('/')[2]}:0" for t in layout.layer_tensors(layer)
        )
        if names is not None and sorted(names) != wanted:
            raise SchemaMismatchError(
                f"{where}: layer {layer!r} lists weight_names {names}, expected {wanted}"
            )
    return {name: found[name] for name in expected}


def _weight_names(group: h5py.Group) -> list[str] | None:
    """A layer group's ``weight_names`` (also when Keras split it into numbered chunks)."""
    attrs = group.attrs
    if "weight_names" in attrs:
        raw = list(attrs["weight_names"])
    elif "weight_names0" in attrs:
        raw, i = [], 0
        while f"weight_names{i}" in attrs:
            raw.extend(attrs[f"weight_names{i}"])
            i += 1
    else:
        return None
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in raw]
