"""Layout: the parameter layout of one architecture, and exact flatten / unflatten."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd

from wspace.convention import keras_to_torch_index, torch_to_keras_index
from wspace.errors import (
    DTypeError,
    LayerNotFoundError,
    SchemaMismatchError,
    TensorNotFoundError,
    listing,
)

__all__ = ["Convention", "Layout", "TensorSpec"]

Convention: TypeAlias = Literal["torch", "keras"]
"""Framework convention of tensor shapes."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One tensor of a layout."""

    name: str
    """wspace name, ``"<layer>/<param>"``: ``"dense_1/weight"`` (torch), ``"dense_1/kernel"``."""
    layer: str
    """Layer the tensor belongs to (``"dense_1"``)."""
    shape: tuple[int, ...]
    """Shape in its own convention."""
    offset: int
    """Start in the flat vector."""
    size: int
    """Number of values (product of ``shape``)."""
    convention: Convention = "torch"
    """Framework convention of ``shape``."""
    source_name: str = ""
    """Name in the source: a ``state_dict`` key, or an HDF5 path."""
    flatten_shape: tuple[int, ...] | None = None
    """For a dense weight reading a flattened feature map: that map's shape in this
    convention (``(c, h, w)`` torch, ``(h, w, c)`` Keras)."""

    @property
    def stop(self) -> int:
        """End (exclusive) in the flat vector."""
        return self.offset + self.size

    def slice(self) -> slice:
        """``slice(offset, stop)``."""
        return slice(self.offset, self.stop)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        out: dict[str, Any] = {
            "name": self.name,
            "layer": self.layer,
            "shape": list(self.shape),
            "offset": self.offset,
            "size": self.size,
            "convention": self.convention,
            "source_name": self.source_name,
        }
        if self.flatten_shape is not None:
            out["flatten_shape"] = list(self.flatten_shape)
        return out


def _float_array(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu()
        if not value.dtype.is_floating_point:
            raise DTypeError(f"tensor {name!r} must be floating point, got {value.dtype}")
        value = value.float().numpy()
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.floating):
        raise DTypeError(f"tensor {name!r} must be floating point, got {array.dtype}")
    return array


@dataclass(frozen=True, slots=True)
class Layout:
    """The ordered tensors of one architecture; the flat vector is their concatenation.

    Parameters
    ----------
    tensors
        Tensor specs in flat order; the tensors of one layer must be contiguous.
    name
        Architecture-group name in a store.
    architecture
        Name in :mod:`wspace.architectures` that rebuilds the torch module, if any.

    Examples
    --------
    >>> import numpy as np
    >>> lay = Layout.from_dict({"name": "mlp", "tensors": [
    ...     {"name": "fc/weight", "shape": [2, 3]}, {"name": "fc/bias", "shape": [2]}]})
    >>> lay.size, lay.layers
    (8, ('fc',))
    >>> v = np.arange(8, dtype="float32")
    >>> lay.unflatten(v)["fc/bias"]
    array([6., 7.], dtype=float32)
    >>> bool((lay.flatten(lay.unflatten(v)) == v).all())
    True
    """

    tensors: tuple[TensorSpec, ...]
    name: str = "default"
    architecture: str | None = None
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _by_source: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _layers: dict[str, slice] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.tensors:
            raise SchemaMismatchError(f"layout {self.name!r} has no tensors")
        offset = 0
        closed: set[str] = set()
        previous: str | None = None
        for i, t in enumerate(self.tensors):
            if t.offset != offset:
                raise SchemaMismatchError(
                    f"layout {self.name!r}: tensor {t.name!r} starts at {t.offset}, expected "
                    f"{offset}"
                )
            if t.size != math.prod(t.shape):
                raise SchemaMismatchError(
                    f"layout {self.name!r}: tensor {t.name!r} has size {t.size} but shape {t.shape}"
                )
            if "/" not in t.name or t.name.rsplit("/", 1)[0] != t.layer:
                raise SchemaMismatchError(
                    f"layout {self.name!r}: tensor name {t.name!r} must be '<layer>/<param>' "
                    f"with layer {t.layer!r}"
                )
            if t.name in self._index:
                raise SchemaMismatchError(f"layout {self.name!r}: tensor {t.name!r} repeated")
            if t.layer != previous:
                if t.layer in closed:
                    raise SchemaMismatchError(
                        f"layout {self.name!r}: tensor {t.name!r} is separated from the other "
                        f"tensors of layer {t.layer!r}; a layer must be contiguous"
                    )
                if previous is not None:
                    closed.add(previous)
                self._layers[t.layer] = slice(t.offset, t.stop)
                previous = t.layer
            else:
                self._layers[t.layer] = slice(self._layers[t.layer].start, t.stop)
            self._index[t.name] = i
            self._by_source[t.source_name or t.name] = i
            offset = t.stop

    # -- structure ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Total number of parameters."""
        return self.tensors[-1].stop

    @property
    def layers(self) -> tuple[str, ...]:
        """Layer names in order."""
        return tuple(self._layers)

    @property
    def tensor_names(self) -> tuple[str, ...]:
        """Tensor names in order."""
        return tuple(t.name for t in self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self) -> Iterator[TensorSpec]:
        return iter(self.tensors)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> TensorSpec:
        try:
            return self.tensors[self._index[name]]
        except KeyError:
            raise TensorNotFoundError(
                f"no tensor {name!r} in layout {self.name!r}; tensors: {listing(self.tensor_names)}"
            ) from None

    def layer_slice(self, layer: str) -> slice:
        """The contiguous slice of the flat vector holding ``layer``."""
        try:
            return self._layers[layer]
        except KeyError:
            raise LayerNotFoundError(
                f"no layer {layer!r} in layout {self.name!r}; layers: {listing(self.layers)}"
            ) from None

    def layer_tensors(self, layer: str) -> tuple[TensorSpec, ...]:
        """The tensors of ``layer``, in order."""
        self.layer_slice(layer)
        return tuple(t for t in self.tensors if t.layer == layer)

    def layer_size(self, layer: str) -> int:
        """Number of parameters of ``layer``."""
        part = self.layer_slice(layer)
        return part.stop - part.start

    def describe(self) -> pd.DataFrame:
        """The layout as a table: tensor, layer, shape, offset, size, source name."""
        return pd.DataFrame(
            {
                "tensor": [t.name for t in self.tensors],
                "layer": [t.layer for t in self.tensors],
                "shape": [str(tuple(t.shape)) for t in self.tensors],
                "offset": [t.offset for t in self.tensors],
                "size": [t.size for t in self.tensors],
                "source": [t.source_name for t in self.tensors],
            }
        )

    # -- flatten / unflatten -----------------------------------------------------------------
    def flatten(self, tensors: Any) -> np.ndarray:
        """The float32 flat vector of ``tensors``.

        ``tensors`` is a mapping keyed by wspace names or by source names (a torch
        ``state_dict``), of numpy arrays or torch tensors, or a torch ``nn.Module``.
        """
        if hasattr(tensors, "state_dict") and callable(tensors.state_dict):
            tensors = tensors.state_dict()
        if not isinstance(tensors, Mapping):
            raise SchemaMismatchError(
                f"layout {self.name!r}: flatten() takes a mapping of tensors or a module, got "
                f"{type(tensors).__name__}"
            )
        out = np.empty(self.size, dtype=np.float32)
        seen: set[int] = set()
        extra = []
        for key, value in tensors.items():
            i = self._index.get(key, self._by_source.get(key))
            if i is None:
                if hasattr(value, "dtype") and not (
                    np.issubdtype(np.asarray(value).dtype, np.floating)
                    if not hasattr(value, "detach")
                    else value.dtype.is_floating_point
                ):
                    continue  # integer buffers such as BatchNorm's num_batches_tracked
                extra.append(key)
                continue
            spec = self.tensors[i]
            array = _float_array(value, spec.name)
            if tuple(array.shape) != spec.shape:
                raise SchemaMismatchError(
                    f"tensor {spec.name!r} of layout {self.name!r} has shape {spec.shape}; got "
                    f"{tuple(array.shape)}"
                )
            out[spec.slice()] = array.reshape(-1)
            seen.add(i)
        if extra:
            raise SchemaMismatchError(
                f"unexpected tensor(s) {listing(extra)} for layout {self.name!r}; tensors: "
                f"{listing(self.tensor_names)}"
            )
        if len(seen) != len(self.tensors):
            missing = [t.name for i, t in enumerate(self.tensors) if i not in seen]
            raise SchemaMismatchError(
                f"missing tensor(s) {listing(missing)} for layout {self.name!r}"
            )
        return out

    def unflatten(self, vector: Any) -> dict[str, np.ndarray]:
        """Tensors of a flat vector ``(size,)`` or a batch ``(n, size)``, keyed by name."""
        array = np.asarray(vector)
        if array.ndim not in (1, 2) or array.shape[-1] != self.size:
            raise SchemaMismatchError(
                f"layout {self.name!r} needs vectors of {self.size} values; got shape {array.shape}"
            )
        lead = array.shape[:-1]
        return {
            t.name: array[..., t.offset : t.stop].reshape(*lead, *t.shape) for t in self.tensors
        }

    def to_state_dict(self, vector: Any) -> dict[str, Any]:
        """A torch ``state_dict`` (keys = source names) of a flat vector of a torch layout."""
        import torch

        if any(t.convention != "torch" for t in self.tensors):
            raise SchemaMismatchError(
                f"layout {self.name!r} is in Keras convention; convert it before building a "
                "torch state_dict"
            )
        return {
            t.source_name or t.name: torch.from_numpy(np.array(a, dtype=np.float32))
            for t, a in zip(self.tensors, self.unflatten(vector).values(), strict=True)
        }

    # -- views across conventions ------------------------------------------------------------
    def view(self, name: str) -> tuple[TensorSpec, np.ndarray, tuple[int, ...]]:
        """Resolve ``name`` to ``(stored spec, index, shape)``.

        ``flat[spec.offset + index].reshape(shape)`` is tensor ``name``; names of the other
        convention (``<layer>/kernel`` in a torch layout, ``<layer>/weight`` in a Keras one)
        resolve to exact converted views.
        """
        if name in self._index:
            spec = self[name]
            return spec, np.arange(spec.size), spec.shape
        layer, _, param = name.rpartition("/")
        other = {"kernel": "weight", "weight": "kernel"}.get(param)
        stored = f"{layer}/{other}"
        if other is not None and stored in self._index:
            spec = self[stored]
            if spec.convention == "torch" and param == "kernel":
                index, shape = torch_to_keras_index(spec.shape, spec.flatten_shape)
                return spec, index, shape
            if spec.convention == "keras" and param == "weight":
                index, shape = keras_to_torch_index(spec.shape, spec.flatten_shape)
                return spec, index, shape
        raise TensorNotFoundError(
            f"no tensor {name!r} in layout {self.name!r}; tensors: {listing(self.tensor_names)}"
        )

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (inverse: :meth:`from_dict`)."""
        return {
            "name": self.name,
            "architecture": self.architecture,
            "tensors": [t.to_dict() for t in self.tensors],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layout:
        """A layout from :meth:`to_dict`'s form, or a minimal ``{"tensors": [{name, shape}]}``."""
        specs = []
        offset = 0
        for t in data["tensors"]:
            shape = tuple(int(s) for s in t["shape"])
            name = str(t["name"])
            size = math.prod(shape)
            flat = t.get("flatten_shape")
            specs.append(
                TensorSpec(
                    name=name,
                    layer=str(t.get("layer", name.rsplit("/", 1)[0])),
                    shape=shape,
                    offset=int(t.get("offset", offset)),
                    size=int(t.get("size", size)),
                    convention=t.get("convention", "torch"),
                    source_name=str(t.get("source_name", name)),
                    flatten_shape=None if flat is None else tuple(int(s) for s in flat),
                )
            )
            offset += size
        return cls(
            tuple(specs),
            name=str(data.get("name", "default")),
            architecture=data.get("architecture"),
        )

    @classmethod
    def from_torch(
        cls, module: Any, *, name: str | None = None, architecture: str | None = None
    ) -> Layout:
        """The layout of a torch ``nn.Module`` or ``state_dict`` (floating entries, in order).

        Examples
        --------
        >>> import torch
        >>> Layout.from_torch(torch.nn.Sequential(torch.nn.Linear(3, 2))).tensor_names
        ('0/weight', '0/bias')
        """
        arch = getattr(module, "wspace_architecture", None)
        flatten_inputs: Mapping[str, tuple[int, ...]] = getattr(module, "wspace_flatten_inputs", {})
        state = module.state_dict() if hasattr(module, "state_dict") else module
        specs = []
        offset = 0
        for key, value in state.items():
            if hasattr(value, "is_floating_point") and not value.is_floating_point():
                continue
            layer, _, param = key.rpartition(".")
            layer = layer or "root"  # parameters of the top-level module itself
            shape = tuple(int(s) for s in value.shape)
            size = math.prod(shape)
            flat = flatten_inputs.get(layer) if param == "weight" else None
            specs.append(
                TensorSpec(
                    name=f"{layer}/{param}",
                    layer=layer,
                    shape=shape,
                    offset=offset,
                    size=size,
                    convention="torch",
                    source_name=key,
                    flatten_shape=flat,
                )
            )
            offset += size
        return cls(tuple(specs), name=name or arch or "default", architecture=architecture or arch)
