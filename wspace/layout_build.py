"""Building a :class:`~wspace.layout.Layout` from its dict form or from a torch module.

The functions here are the bodies of ``Layout.from_dict`` and ``Layout.from_torch``; they take
the class to build so that a subclass gets its own kind.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from wspace.errors import SchemaMismatchError, listing
from wspace.layout_convert import is_floating, torch_module
from wspace.tensor_spec import TensorSpec

if TYPE_CHECKING:
    from wspace.layout import Layout

__all__ = ["layout_from_dict", "layout_from_torch"]

LayoutT = TypeVar("LayoutT", bound="Layout")


def _int(value: Any, tensor: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise SchemaMismatchError(f"tensor {tensor!r}: {what} {value!r} is not an integer")
    return int(value)


def _int_tuple(value: Any, tensor: str, what: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple):
        raise SchemaMismatchError(f"tensor {tensor!r}: {what} {value!r} is not a list of integers")
    return tuple(_int(v, tensor, what) for v in value)


def layout_from_dict(cls: type[LayoutT], data: Mapping[str, Any]) -> LayoutT:
    """A layout of kind ``cls`` from its dict form, full or minimal; see
    :meth:`Layout.from_dict <wspace.layout.Layout.from_dict>`."""
    if not isinstance(data, Mapping) or not isinstance(data.get("tensors"), list):
        raise SchemaMismatchError(
            "a layout dict needs a 'tensors' list of {'name': ..., 'shape': [...]} entries"
        )
    arch = data.get("architecture")
    name = data.get("name", "default")
    if not isinstance(name, str) or not (arch is None or isinstance(arch, str)):
        raise SchemaMismatchError(
            f"a layout's name must be a string and its architecture a string or None; "
            f"got {name!r} and {arch!r}"
        )
    specs = []
    offset = 0
    for t in data["tensors"]:
        if not isinstance(t, Mapping) or "name" not in t or "shape" not in t:
            raise SchemaMismatchError(f"layout tensor entry {t!r} needs 'name' and 'shape'")
        tensor = t["name"]
        if not isinstance(tensor, str):
            raise SchemaMismatchError(f"layout tensor name {tensor!r} is not a string")
        shape = _int_tuple(t["shape"], tensor, "shape")
        flat = t.get("flatten_shape")
        texts = {
            k: t.get(k, d)
            for k, d in (
                ("layer", tensor.rpartition("/")[0]),
                ("convention", "torch"),
                ("source_name", tensor),
            )
        }
        for key, value in texts.items():
            if not isinstance(value, str):
                raise SchemaMismatchError(f"tensor {tensor!r}: {key} {value!r} is not a string")
        specs.append(
            TensorSpec(
                tensor,
                texts["layer"],
                shape,
                _int(t.get("offset", offset), tensor, "offset"),
                _int(t.get("size", math.prod(shape)), tensor, "size"),
                texts["convention"],  # validated by TensorSpec
                texts["source_name"],
                None if flat is None else _int_tuple(flat, tensor, "flatten_shape"),
            )
        )
        offset = specs[-1].stop
    return cls(tuple(specs), name=name, architecture=arch)


def layout_from_torch(
    cls: type[LayoutT], module: Any, name: str | None, architecture: str | None
) -> LayoutT:
    """The torch-convention layout of kind ``cls`` of a module or a ``state_dict``; see
    :meth:`Layout.from_torch <wspace.layout.Layout.from_torch>`."""
    torch = torch_module()
    arch = getattr(module, "wspace_architecture", None)
    flatten_inputs = dict(getattr(module, "wspace_flatten_inputs", None) or {})
    if torch is not None and isinstance(module, torch.nn.Module):
        module = module.state_dict()
    if not isinstance(module, Mapping):
        raise SchemaMismatchError(
            f"from_torch() takes a torch module or a state_dict, not {type(module).__name__}"
        )
    specs = []
    offset = 0
    for key, value in module.items():
        if not is_floating(value):
            continue  # integer buffers (num_batches_tracked), extra state
        layer, _, param = str(key).rpartition(".")
        layer = layer or "root"
        shape = tuple(int(s) for s in value.shape)
        flat = flatten_inputs.pop(layer, None) if param == "weight" else None
        spec = TensorSpec(
            f"{layer}/{param}", layer, shape, offset, math.prod(shape), "torch", str(key), flat
        )
        specs.append(spec)
        offset = spec.stop
    if flatten_inputs:
        raise SchemaMismatchError(
            f"wspace_flatten_inputs names layer(s) {listing(flatten_inputs)} without a "
            "'weight' in the state_dict"
        )
    return cls(tuple(specs), name=name or arch or "default", architecture=architecture or arch)
