"""Layout: the parameter layout of one architecture, and exact flatten / unflatten.

A :class:`Layout` is an ordered tuple of :class:`TensorSpec`; the flat vector of a model is the
C-order concatenation of its tensors in that order, and the tensors of one layer are contiguous,
so a layer is one slice of the flat vector.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, get_args

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

if TYPE_CHECKING:
    from wspace.weightspace.symmetry import Symmetry

__all__ = ["Convention", "Layout", "TensorSpec"]

Convention: TypeAlias = Literal["torch", "keras"]
"""Framework convention of weight shapes: torch ``(out, in, kh, kw)`` or Keras ``(kh, kw, in,
out)``."""

_CONVENTIONS: tuple[str, ...] = get_args(Convention)
_KERAS_TO_TORCH = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
"""Keras parameter name -> torch parameter name, for :meth:`Layout.to_state_dict`."""
_OTHER_NAME = {"torch": ("kernel", "weight"), "keras": ("weight", "kernel")}
"""Per stored convention: (name asked for in the other convention, stored parameter name)."""


def _torch() -> Any:
    """The torch module if it is imported (a value cannot be a torch object otherwise)."""
    return sys.modules.get("torch")


def _is_torch_tensor(value: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(value, torch.Tensor)


def _dtype(value: Any) -> Any:
    return value.dtype if _is_torch_tensor(value) else np.asarray(value).dtype


def _is_floating(value: Any) -> bool:
    dtype = _dtype(value)
    return bool(dtype.is_floating_point if _is_torch_tensor(value) else dtype.kind == "f")


def _int(value: Any, tensor: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise SchemaMismatchError(f"tensor {tensor!r}: {what} {value!r} is not an integer")
    return int(value)


def _int_tuple(value: Any, tensor: str, what: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple):
        raise SchemaMismatchError(f"tensor {tensor!r}: {what} {value!r} is not a list of integers")
    return tuple(_int(v, tensor, what) for v in value)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One tensor of a layout: where it lies in the flat vector, and where it came from.

    Examples
    --------
    >>> spec = TensorSpec("fc/weight", "fc", (2, 3), 4, 6, "torch", "fc.weight")
    >>> spec.stop, spec.slice()
    (10, slice(4, 10, None))
    """

    name: str
    """wspace name ``"<layer>/<param>"``: ``"dense_1/weight"`` (torch), ``"dense_1/kernel"``."""
    layer: str
    """The layer, ``name`` up to its last ``/`` (``"dense_1"``)."""
    shape: tuple[int, ...]
    """Shape in this tensor's own ``convention``."""
    offset: int
    """Start in the flat vector."""
    size: int
    """Number of values, the product of ``shape``."""
    convention: Convention
    """Framework convention of ``shape``: ``"torch"`` or ``"keras"``."""
    source_name: str
    """Name in the source: a ``state_dict`` key (``"dense_1.weight"``) or an HDF5 path."""
    flatten_shape: tuple[int, ...] | None = None
    """Only for a dense weight that reads a flattened feature map: that map's shape in this
    convention, ``(c, h, w)`` for torch and ``(h, w, c)`` for Keras."""

    def __post_init__(self) -> None:
        # Normalise torch.Size / numpy integers / lists, so that equality and hashing are exact.
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if self.flatten_shape is not None:
            object.__setattr__(self, "flatten_shape", tuple(int(s) for s in self.flatten_shape))
        layer, _, param = self.name.rpartition("/")
        problem = None
        if not layer or not param or layer != self.layer:
            problem = f"its name must be '<layer>/<param>' with layer {self.layer!r}"
        elif any(s < 0 for s in self.shape):
            problem = f"its shape {self.shape} has a negative dimension"
        elif self.size != math.prod(self.shape):
            problem = f"its size {self.size} is not the product of its shape {self.shape}"
        elif self.offset < 0:
            problem = f"its offset {self.offset} is negative"
        elif self.convention not in _CONVENTIONS:
            problem = f"its convention {self.convention!r} is not one of {_CONVENTIONS}"
        elif self.flatten_shape is not None:
            in_axis = 1 if self.convention == "torch" else 0
            if len(self.shape) != 2 or math.prod(self.flatten_shape) != self.shape[in_axis]:
                problem = (
                    f"its flatten_shape {self.flatten_shape} needs a 2-D dense weight with "
                    f"{math.prod(self.flatten_shape)} inputs, not shape {self.shape}"
                )
        if problem:
            raise SchemaMismatchError(f"invalid tensor {self.name!r}: {problem}")

    @property
    def stop(self) -> int:
        """End (exclusive) in the flat vector, ``offset + size``."""
        return self.offset + self.size

    def slice(self) -> slice:
        """The tensor's slice of the flat vector, ``slice(offset, stop)``."""
        return slice(self.offset, self.stop)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, every field (shapes as lists)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


@dataclass(frozen=True, slots=True, repr=False)
class Layout:
    """The ordered tensors of one architecture; the flat vector is their concatenation.

    Parameters
    ----------
    tensors
        Tensor specs in flat order, offsets contiguous from 0; a layer's tensors are adjacent.
    name
        Architecture-group name in a store.
    architecture
        Name in :mod:`wspace.architectures` that rebuilds the torch module, if any.

    Raises
    ------
    SchemaMismatchError
        No tensors, an offset gap, a repeated name, or a layer split by another layer.

    Examples
    --------
    >>> import numpy as np
    >>> lay = Layout.from_dict({"name": "mlp", "tensors": [
    ...     {"name": "fc/weight", "shape": [2, 3]}, {"name": "fc/bias", "shape": [2]}]})
    >>> lay
    Layout('mlp', 2 tensors, 1 layers, 8 params)
    >>> lay.size, lay.layers, lay.layer_slice("fc")
    (8, ('fc',), slice(0, 8, None))
    >>> v = np.arange(8, dtype="float32")
    >>> lay.unflatten(v)["fc/bias"]
    array([6., 7.], dtype=float32)
    >>> bool((lay.flatten(lay.unflatten(v)) == v).all())
    True
    """

    tensors: tuple[TensorSpec, ...]
    """Tensor specs in flat order."""
    name: str = "default"
    """Architecture-group name in a store."""
    architecture: str | None = None
    """Registry name in :mod:`wspace.architectures` that rebuilds a torch module."""
    _index: dict[str, int] = field(default_factory=dict, init=False, compare=False)
    _by_source: dict[str, int] = field(default_factory=dict, init=False, compare=False)
    _layers: dict[str, tuple[int, int]] = field(default_factory=dict, init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tensors", tuple(self.tensors))
        if not self.tensors:
            raise SchemaMismatchError(f"layout {self.name!r} has no tensors")
        offset = 0
        for i, t in enumerate(self.tensors):
            if t.offset != offset:
                raise self._mismatch(
                    f"tensor {t.name!r} starts at {t.offset}; the previous "
                    f"tensor ends at {offset}, offsets must be contiguous"
                )
            if t.name in self._index:
                raise self._mismatch(f"tensor {t.name!r} is repeated")
            if t.layer in self._layers and self.tensors[i - 1].layer != t.layer:
                raise self._mismatch(
                    f"tensor {t.name!r} is separated from the other tensors "
                    f"of layer {t.layer!r}; a layer must be contiguous"
                )
            if self._by_source.setdefault(t.source_name, i) != i:
                raise self._mismatch(f"tensor {t.name!r} repeats source name {t.source_name!r}")
            first = self._layers.get(t.layer, (i, i))[0]
            self._layers[t.layer] = (first, i + 1)
            self._index[t.name] = i
            offset = t.stop

    def _mismatch(self, problem: str) -> SchemaMismatchError:
        return SchemaMismatchError(f"layout {self.name!r}: {problem}")

    def __repr__(self) -> str:
        arch = "" if self.architecture is None else f", architecture={self.architecture!r}"
        return (
            f"Layout({self.name!r}{arch}, {len(self.tensors)} tensors, {len(self._layers)} "
            f"layers, {self.size} params)"
        )

    # -- structure ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Total number of parameters (length of the flat vector)."""
        return self.tensors[-1].stop

    @property
    def layers(self) -> tuple[str, ...]:
        """Layer names in flat order."""
        return tuple(self._layers)

    @property
    def tensor_names(self) -> tuple[str, ...]:
        """Tensor names in flat order."""
        return tuple(self._index)

    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self) -> Iterator[TensorSpec]:
        return iter(self.tensors)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> TensorSpec:
        try:
            return self.tensors[self._index[name]]
        except (KeyError, TypeError):
            raise self._no_tensor(name) from None

    def _no_tensor(self, name: object, why: str = "") -> TensorNotFoundError:
        return TensorNotFoundError(
            f"no tensor {name!r} in layout {self.name!r}{why}; tensors: "
            f"{listing(self.tensor_names)}"
        )

    def _layer_range(self, layer: str) -> tuple[int, int]:
        try:
            return self._layers[layer]
        except (KeyError, TypeError):
            raise LayerNotFoundError(
                f"no layer {layer!r} in layout {self.name!r}; layers: {listing(self.layers)}"
            ) from None

    def layer_slice(self, layer: str) -> slice:
        """The contiguous slice of the flat vector that holds ``layer``.

        Examples
        --------
        >>> from wspace.architectures import lenet5_layout
        >>> lenet5_layout().layer_slice("dense_1")
        slice(91396, 91481, None)
        """
        first, last = self._layer_range(layer)
        return slice(self.tensors[first].offset, self.tensors[last - 1].stop)

    def layer_tensors(self, layer: str) -> tuple[TensorSpec, ...]:
        """The tensors of ``layer``, in flat order."""
        first, last = self._layer_range(layer)
        return self.tensors[first:last]

    def layer_size(self, layer: str) -> int:
        """Number of parameters of ``layer``."""
        first, last = self._layer_range(layer)
        return sum(t.size for t in self.tensors[first:last])

    @property
    def symmetry(self) -> Symmetry:
        """The hidden-neuron permutation symmetries (:func:`wspace.weightspace.analyze`).

        Raises :class:`SchemaMismatchError` for a layout that is not a sequential chain.

        Examples
        --------
        >>> from wspace.architectures import lenet5_layout
        >>> lenet5_layout().symmetry.sizes
        {'conv2d': 6, 'conv2d_1': 16, 'conv2d_2': 120, 'dense': 84}
        """
        from wspace.weightspace.symmetry import analyze

        return analyze(self)

    def describe(self) -> pd.DataFrame:
        """The layout as a table: tensor, layer, shape, offset, size, convention, source.

        Examples
        --------
        >>> from wspace.architectures import lenet5_layout
        >>> lenet5_layout().describe()[["tensor", "shape", "offset", "size"]].head(2)
                  tensor          shape  offset  size
        0  conv2d/weight  (6, 3, 5, 5)       0   450
        1    conv2d/bias           (6,)     450     6
        """
        rows = [
            (t.name, t.layer, str(t.shape), t.offset, t.size, t.convention, t.source_name)
            for t in self
        ]
        columns = ["tensor", "layer", "shape", "offset", "size", "convention", "source"]
        return pd.DataFrame(rows, columns=columns)

    # -- flatten / unflatten -----------------------------------------------------------------
    def flatten(self, tensors: Any) -> np.ndarray:
        """The float32 flat vector ``(size,)`` of one model's tensors.

        Parameters
        ----------
        tensors
            A mapping keyed by wspace names (``"fc/weight"``) or source names (a torch
            ``state_dict``'s ``"fc.weight"``), of numpy arrays or torch tensors; or a torch
            ``nn.Module`` (its ``state_dict``). Floating dtypes are cast to float32. Integer
            torch buffers that are not in the layout (``num_batches_tracked``) are ignored.

        Raises
        ------
        SchemaMismatchError
            A tensor is missing, unexpected, given twice, or of the wrong shape.
        DTypeError
            A tensor is not floating point (integer, bool, complex, object).

        Examples
        --------
        >>> import torch
        >>> net = torch.nn.Linear(3, 2)
        >>> lay = Layout.from_torch(net)
        >>> lay.flatten(net).shape
        (8,)
        """
        torch = _torch()
        if torch is not None and isinstance(tensors, torch.nn.Module):
            tensors = tensors.state_dict()
        if not isinstance(tensors, Mapping):
            kind = type(tensors).__name__
            raise self._mismatch(f"flatten() takes a mapping of tensors or a module, not {kind}")
        out = np.empty(self.size, dtype=np.float32)
        given: dict[int, object] = {}
        extra = []
        for key, value in tensors.items():
            i = self._index.get(key, self._by_source.get(key))
            if i is None:
                if not _is_torch_tensor(value) or value.is_floating_point():
                    extra.append(key)
                continue
            spec = self.tensors[i]
            if i in given:
                raise self._mismatch(
                    f"tensor {spec.name!r} is given twice, as {given[i]!r} and {key!r}"
                )
            given[i] = key
            if not _is_floating(value):
                raise DTypeError(
                    f"layout {self.name!r}: tensor {spec.name!r} must be floating "
                    f"point; got {_dtype(value)}"
                )
            if _is_torch_tensor(value):
                value = value.detach().to("cpu", torch.float32).numpy()
            array = np.asarray(value)
            if array.shape != spec.shape:
                raise self._mismatch(
                    f"tensor {spec.name!r} must have shape {spec.shape}; got {array.shape}"
                )
            out[spec.offset : spec.stop] = array.reshape(-1)
        if extra:
            raise self._mismatch(
                f"unexpected tensor(s) {listing(extra)}; tensors: {listing(self.tensor_names)}"
            )
        if len(given) != len(self.tensors):
            missing = [t.name for i, t in enumerate(self.tensors) if i not in given]
            raise self._mismatch(f"missing tensor(s) {listing(missing)}")
        return out

    def unflatten(self, vector: Any) -> dict[str, np.ndarray]:
        """The tensors of a flat vector ``(size,)``, or of a batch ``(n, size)``.

        Returns a dict keyed by wspace names in layout order, of arrays shaped ``shape`` (or
        ``(n, *shape)``) — views of ``vector`` where numpy can make them. The dtype is kept.

        Examples
        --------
        >>> import numpy as np
        >>> lay = Layout.from_dict({"tensors": [{"name": "fc/weight", "shape": [2, 2]}]})
        >>> lay.unflatten(np.zeros((5, 4)))["fc/weight"].shape
        (5, 2, 2)
        """
        torch = _torch()
        if torch is not None and isinstance(vector, torch.Tensor):
            vector = vector.detach().cpu().numpy()
        array = np.asarray(vector)
        if array.ndim not in (1, 2) or array.shape[-1] != self.size:
            raise self._mismatch(
                f"needs a vector of {self.size} values, or a batch (n, "
                f"{self.size}); got shape {array.shape}"
            )
        lead = array.shape[:-1]
        return {t.name: array[..., t.offset : t.stop].reshape(lead + t.shape) for t in self}

    def to_state_dict(self, vector: Any) -> dict[str, Any]:
        """A torch ``state_dict`` (float32 tensors) of a flat vector.

        A batch ``(n, size)`` gives tensors ``(n, *shape)`` (for ``torch.func``). Torch-convention
        tensors are keyed by their source names. Keras-convention tensors are converted to
        torch's: ``"<layer>/kernel"`` becomes ``"<layer>.weight"`` through :meth:`view` (kernels
        transposed; a Dense kernel with a ``flatten_shape`` also has its inputs reordered from
        ``(h, w, c)`` to ``(c, h, w)``), and ``bias``, ``gamma``, ``beta``, ``moving_mean``,
        ``moving_variance`` become ``bias``, ``weight``, ``bias``, ``running_mean``,
        ``running_var``; any other Keras parameter raises :class:`SchemaMismatchError`.

        Examples
        --------
        >>> import torch
        >>> net = torch.nn.Linear(3, 2)
        >>> lay = Layout.from_torch(net)
        >>> net.load_state_dict(lay.to_state_dict(lay.flatten(net)))
        <All keys matched successfully>
        >>> keras = Layout.from_dict({"tensors": [
        ...     {"name": "fc/kernel", "shape": [3, 2], "convention": "keras"},
        ...     {"name": "fc/bias", "shape": [2], "convention": "keras"}]})
        >>> {k: tuple(v.shape) for k, v in keras.to_state_dict(range(8)).items()}
        {'fc.weight': (2, 3), 'fc.bias': (2,)}
        """
        import torch

        if isinstance(vector, torch.Tensor):
            vector = vector.detach().cpu().numpy()
        array = np.asarray(vector)
        parts = self.unflatten(array)  # checks the shape
        lead = array.shape[:-1]
        out: dict[str, Any] = {}
        for t in self.tensors:
            if t.convention == "torch":
                key, value = t.source_name, parts[t.name]
            else:
                param = t.name.rpartition("/")[2]
                torch_param = _KERAS_TO_TORCH.get(param)
                if torch_param is None:
                    raise self._mismatch(
                        f"Keras tensor {t.name!r} has no torch counterpart (known: "
                        f"{listing(_KERAS_TO_TORCH)})"
                    )
                key = f"{t.layer.replace('/', '.')}.{torch_param}"
                if param == "kernel":
                    spec, index, shape = self.view(f"{t.layer}/weight")
                    value = array[..., spec.offset + index].reshape(lead + shape)
                else:
                    value = parts[t.name]
            if key in out:
                raise self._mismatch(f"tensors {t.name!r} and another both map to {key!r}")
            out[key] = torch.tensor(value, dtype=torch.float32)
        return out

    # -- views across conventions ------------------------------------------------------------
    def view(self, name: str) -> tuple[TensorSpec, np.ndarray, tuple[int, ...]]:
        """Resolve tensor ``name``, in either convention, to ``(stored spec, index, shape)``.

        ``v[spec.offset + index].reshape(shape)`` is tensor ``name`` for a flat vector ``v``.
        Stored names give ``index = arange(size)``. In a torch layout ``"<layer>/kernel"`` is
        the Keras kernel of ``"<layer>/weight"`` (transposed; a dense weight with a
        ``flatten_shape`` also has its inputs reordered to Keras' ``(h, w, c)``), and in a
        Keras layout ``"<layer>/weight"`` is the torch weight of ``"<layer>/kernel"``.

        Examples
        --------
        >>> import numpy as np
        >>> lay = Layout.from_dict({"tensors": [{"name": "fc/weight", "shape": [2, 3]}]})
        >>> spec, index, shape = lay.view("fc/kernel")
        >>> v = np.arange(6.0)
        >>> v[spec.offset + index].reshape(shape)
        array([[0., 3.],
               [1., 4.],
               [2., 5.]])
        """
        if name in self._index:
            spec = self[name]
            return spec, np.arange(spec.size), spec.shape
        layer, _, param = str(name).rpartition("/")
        for convention, (asked, stored) in _OTHER_NAME.items():
            spec_i = self._index.get(f"{layer}/{stored}")
            if param != asked or spec_i is None or self.tensors[spec_i].convention != convention:
                continue
            spec = self.tensors[spec_i]
            if len(spec.shape) >= 2:
                convert = torch_to_keras_index if convention == "torch" else keras_to_torch_index
                index, shape = convert(spec)
                return spec, index, shape
            raise self._no_tensor(
                name, f" ({spec.name!r} of shape {spec.shape} has no {param!r} form)"
            )
        raise self._no_tensor(name)

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; :meth:`from_dict` gives back an equal layout."""
        tensors = [t.to_dict() for t in self.tensors]
        return {"name": self.name, "architecture": self.architecture, "tensors": tensors}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layout:
        """A layout from :meth:`to_dict`'s form, or a minimal one.

        The minimal form lists only ``name`` and ``shape`` per tensor; ``layer`` is the name up
        to its last ``/``, offsets and sizes follow from the shapes, ``convention`` defaults to
        ``"torch"`` and ``source_name`` to the name.

        Examples
        --------
        >>> lay = Layout.from_dict({"name": "m", "tensors": [{"name": "a/b/w", "shape": [3]}]})
        >>> lay["a/b/w"].layer, Layout.from_dict(lay.to_dict()) == lay
        ('a/b', True)
        """
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

    @classmethod
    def from_torch(
        cls, module: Any, *, name: str | None = None, architecture: str | None = None
    ) -> Layout:
        """The torch-convention layout of an ``nn.Module`` or a ``state_dict``.

        Every floating entry of the ``state_dict`` is kept, in order (BatchNorm running
        statistics included); integer buffers such as ``num_batches_tracked`` are skipped.
        Key ``"a.b.weight"`` becomes tensor ``"a.b/weight"`` of layer ``"a.b"``; a parameter of
        the top-level module itself (key without a dot) belongs to layer ``"root"``. A module's
        ``wspace_architecture`` is the default ``name`` and ``architecture``; its
        ``wspace_flatten_inputs`` (layer -> ``(c, h, w)``) sets ``flatten_shape`` on weights.

        Examples
        --------
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
        >>> Layout.from_torch(net).tensor_names
        ('0/weight', '0/bias', '1/weight', '1/bias', '1/running_mean', '1/running_var')
        """
        torch = _torch()
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
            if not _is_floating(value):
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
