"""Converting between a :class:`~wspace.layout.Layout`'s flat vector and its tensors: flatten,
unflatten, torch ``state_dict`` and views across the torch / Keras conventions.

The functions here are the bodies of the ``Layout`` methods of the same job; torch is used only
when it is already imported (a value cannot be a torch object otherwise) or when a torch result
is asked for.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from wspace.convention import keras_to_torch_index, torch_to_keras_index
from wspace.errors import DTypeError, listing

if TYPE_CHECKING:
    from wspace.layout import Layout
    from wspace.tensor_spec import TensorSpec

__all__ = [
    "flat_vector",
    "is_floating",
    "resolve_view",
    "tensors_of",
    "torch_module",
    "torch_state_dict",
]

_KERAS_TO_TORCH = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
"""Keras parameter name -> torch parameter name, for :func:`torch_state_dict`."""
_OTHER_NAME = {"torch": ("kernel", "weight"), "keras": ("weight", "kernel")}
"""Per stored convention: (name asked for in the other convention, stored parameter name)."""


def torch_module() -> Any:
    """The torch module if it is imported (a value cannot be a torch object otherwise)."""
    return sys.modules.get("torch")


def _is_torch_tensor(value: Any) -> bool:
    torch = torch_module()
    return torch is not None and isinstance(value, torch.Tensor)


def _dtype(value: Any) -> Any:
    return value.dtype if _is_torch_tensor(value) else np.asarray(value).dtype


def is_floating(value: Any) -> bool:
    """Whether ``value`` (a numpy array, array-like or torch tensor) has a floating dtype."""
    dtype = _dtype(value)
    return bool(dtype.is_floating_point if _is_torch_tensor(value) else dtype.kind == "f")


def flat_vector(layout: Layout, tensors: Any) -> np.ndarray:
    """The float32 flat vector of one model's tensors; see :meth:`Layout.flatten
    <wspace.layout.Layout.flatten>`."""
    torch = torch_module()
    if torch is not None and isinstance(tensors, torch.nn.Module):
        tensors = tensors.state_dict()
    if not isinstance(tensors, Mapping):
        kind = type(tensors).__name__
        raise layout._mismatch(f"flatten() takes a mapping of tensors or a module, not {kind}")
    out = np.empty(layout.size, dtype=np.float32)
    given: dict[int, object] = {}
    extra = []
    for key, value in tensors.items():
        i = layout._index.get(key, layout._by_source.get(key))
        if i is None:
            if not _is_torch_tensor(value) or value.is_floating_point():
                extra.append(key)
            continue
        spec = layout.tensors[i]
        if i in given:
            raise layout._mismatch(
                f"tensor {spec.name!r} is given twice, as {given[i]!r} and {key!r}"
            )
        given[i] = key
        if not is_floating(value):
            raise DTypeError(
                f"layout {layout.name!r}: tensor {spec.name!r} must be floating "
                f"point; got {_dtype(value)}"
            )
        if _is_torch_tensor(value):
            value = value.detach().to("cpu", torch.float32).numpy()
        array = np.asarray(value)
        if array.shape != spec.shape:
            raise layout._mismatch(
                f"tensor {spec.name!r} must have shape {spec.shape}; got {array.shape}"
            )
        out[spec.offset : spec.stop] = array.reshape(-1)
    if extra:
        raise layout._mismatch(
            f"unexpected tensor(s) {listing(extra)}; tensors: {listing(layout.tensor_names)}"
        )
    if len(given) != len(layout.tensors):
        missing = [t.name for i, t in enumerate(layout.tensors) if i not in given]
        raise layout._mismatch(f"missing tensor(s) {listing(missing)}")
    return out


def tensors_of(layout: Layout, vector: Any) -> dict[str, np.ndarray]:
    """The tensors of a flat vector or a batch of them; see :meth:`Layout.unflatten
    <wspace.layout.Layout.unflatten>`."""
    torch = torch_module()
    if torch is not None and isinstance(vector, torch.Tensor):
        vector = vector.detach().cpu().numpy()
    array = np.asarray(vector)
    if array.ndim not in (1, 2) or array.shape[-1] != layout.size:
        raise layout._mismatch(
            f"needs a vector of {layout.size} values, or a batch (n, "
            f"{layout.size}); got shape {array.shape}"
        )
    lead = array.shape[:-1]
    return {t.name: array[..., t.offset : t.stop].reshape(lead + t.shape) for t in layout}


def torch_state_dict(layout: Layout, vector: Any) -> dict[str, Any]:
    """A torch ``state_dict`` (float32 tensors) of a flat vector; see
    :meth:`Layout.to_state_dict <wspace.layout.Layout.to_state_dict>`."""
    import torch

    if isinstance(vector, torch.Tensor):
        vector = vector.detach().cpu().numpy()
    array = np.asarray(vector)
    parts = layout.unflatten(array)  # checks the shape
    lead = array.shape[:-1]
    out: dict[str, Any] = {}
    for t in layout.tensors:
        if t.convention == "torch":
            key, value = t.source_name, parts[t.name]
        else:
            param = t.name.rpartition("/")[2]
            torch_param = _KERAS_TO_TORCH.get(param)
            if torch_param is None:
                raise layout._mismatch(
                    f"Keras tensor {t.name!r} has no torch counterpart (known: "
                    f"{listing(_KERAS_TO_TORCH)})"
                )
            key = f"{t.layer.replace('/', '.')}.{torch_param}"
            if param == "kernel":
                spec, index, shape = layout.view(f"{t.layer}/weight")
                value = array[..., spec.offset + index].reshape(lead + shape)
            else:
                value = parts[t.name]
        if key in out:
            raise layout._mismatch(f"tensors {t.name!r} and another both map to {key!r}")
        out[key] = torch.tensor(value, dtype=torch.float32)
    return out


def resolve_view(layout: Layout, name: str) -> tuple[TensorSpec, np.ndarray, tuple[int, ...]]:
    """Tensor ``name``, in either convention, as ``(stored spec, index, shape)``; see
    :meth:`Layout.view <wspace.layout.Layout.view>`."""
    if name in layout._index:
        spec = layout[name]
        return spec, np.arange(spec.size), spec.shape
    layer, _, param = str(name).rpartition("/")
    for convention, (asked, stored) in _OTHER_NAME.items():
        spec_i = layout._index.get(f"{layer}/{stored}")
        if param != asked or spec_i is None or layout.tensors[spec_i].convention != convention:
            continue
        spec = layout.tensors[spec_i]
        if len(spec.shape) >= 2:
            convert = torch_to_keras_index if convention == "torch" else keras_to_torch_index
            index, shape = convert(spec)
            return spec, index, shape
        raise layout._no_tensor(
            name, f" ({spec.name!r} of shape {spec.shape} has no {param!r} form)"
        )
    raise layout._no_tensor(name)
