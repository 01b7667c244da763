"""The tensors of one torch ``state_dict`` or safetensors file: loaded without running code
from the file, their layout, and checked against a layout; and a row as a ``state_dict``."""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wspace.errors import FormatError, SchemaMismatchError, UnsafePickleError, listing
from wspace.layout import Layout

if TYPE_CHECKING:
    import torch

__all__ = [
    "check_tensors",
    "floating",
    "layout_of",
    "load_state_dict",
    "read_tensors",
    "row_state_dict",
]


def load_state_dict(
    path: str | os.PathLike[str], *, key: str | None = None, mmap: bool = False
) -> dict[str, torch.Tensor]:
    """Load a ``state_dict`` from a torch file with ``weights_only=True``.

    Parameters
    ----------
    path
        The file.
    key
        Take the state_dict stored under this key of a checkpoint dict
        (``"model_state_dict"``).
    mmap
        Memory-map the tensors (zip-format files; others are loaded normally).

    Raises
    ------
    UnsafePickleError
        ``torch.load(weights_only=True)`` refused the file: it needs more than tensors and
        containers to load (or is not a pickle at all); nothing in it was run.
    FormatError
        The file is not a readable torch file, or not a mapping of names to tensors.
    """
    import torch

    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n|$)", str(exc))
        reason = found[1].split(" Please use")[0] if found else str(exc).splitlines()[0]
        if found and "global" not in reason.lower():  # garbage ("Unsupported operand 110")
            raise FormatError(f"{path}: not a readable torch file: {reason}") from None
        raise UnsafePickleError(
            f"{path}: refused by torch.load(weights_only=True), nothing in it was run: {reason}"
        ) from None
    except RuntimeError as exc:
        if mmap and "mmap" in str(exc):
            return load_state_dict(path, key=key)
        raise FormatError(f"{path}: not a readable torch file: {exc}") from None
    except Exception as exc:  # untrusted bytes: IndexError, struct.error, ...
        raise FormatError(f"{path}: not a readable torch file: {exc!r}") from None
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            raise FormatError(f"{path}: no key {key!r} (-O key=...) in the file")
        obj = obj[key]
    if not isinstance(obj, Mapping) or not obj:
        raise FormatError(f"{path}: holds a {type(obj).__name__}, not a state_dict of tensors")
    bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise FormatError(
            f"{path}: not a flat state_dict: {listing(bad)} are not tensors (a checkpoint dict? "
            "pass -O key=NAME of the state_dict in it)"
        )
    return {str(k): v for k, v in obj.items()}


def floating(tensors: Mapping[str, Any]) -> dict[str, Any]:
    """The floating-point tensors of a state_dict (integer buffers such as
    ``num_batches_tracked`` are not weights)."""
    return {k: v for k, v in tensors.items() if v.is_floating_point()}


def layout_of(path: Path, name: str, fmt: str = "state-dict", key: str | None = None) -> Layout:
    """The layout of a file's floating tensors (``Layout.from_torch``, in the file's order)."""
    try:
        return Layout.from_torch(floating(read_tensors(path, fmt, key)), name=name)
    except SchemaMismatchError as exc:
        raise FormatError(f"{path}: {exc}") from None


def check_tensors(
    path: Path, layout: Layout, first: Path, fmt: str = "state-dict", key: str | None = None
) -> None:
    """Refuse a file whose floating tensors (read from its header) are not ``layout``'s,
    the layout of the file ``first``."""
    shapes = _tensor_shapes(path, fmt, key)
    expected = {t.source_name: t.shape for t in layout}
    missing = [k for k in expected if k not in shapes]
    extra = [k for k in shapes if k not in expected]
    wrong = [
        f"{k} {shapes[k]} (not {s})" for k, s in expected.items() if k in shapes and shapes[k] != s
    ]
    parts = [
        f"{what} {listing(names)}"
        for what, names in (("missing", missing), ("unexpected", extra), ("shapes", wrong))
        if names
    ]
    if parts:
        raise FormatError(
            f"{path}: its tensors do not match the layout of {first}: {'; '.join(parts)}"
        )


def _floating_dtype(dtype: Any) -> bool:
    text = str(dtype).lower()
    return any(t in text for t in ("float", "bfloat", "f16", "f32", "f64", "bf16", "f8"))


def _tensor_shapes(path: Path, fmt: str, key: str | None) -> dict[str, tuple[int, ...]]:
    """Floating tensors of a file and their shapes, without reading their data."""
    if fmt == "safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                out = {}
                for name in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                    part = f.get_slice(name)
                    if _floating_dtype(part.get_dtype()):
                        out[name] = tuple(int(s) for s in part.get_shape())
                return out
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise FormatError(f"{path}: not a readable safetensors file: {exc}") from None
    state = floating(load_state_dict(path, key=key, mmap=True))
    return {k: tuple(v.shape) for k, v in state.items()}


def read_tensors(path: Path, fmt: str, key: str | None) -> dict[str, Any]:
    """All tensors of a ``fmt`` (``"state-dict"`` or ``"safetensors"``) file, by name."""
    if fmt == "safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as exc:
            raise FormatError(f"{path}: not a readable safetensors file: {exc}") from None
    return load_state_dict(path, key=key)


def row_state_dict(layout: Layout, vector: np.ndarray) -> dict[str, Any]:
    """Contiguous float32 tensors of one row, keyed by their source names."""
    import torch

    return {
        spec.source_name: torch.from_numpy(np.array(array, dtype=np.float32, copy=True))
        for spec, array in zip(layout, layout.unflatten(vector).values(), strict=True)
    }
