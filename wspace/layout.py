"""Layout: the parameter layout of one architecture, and exact flatten / unflatten.

A :class:`Layout` is an ordered tuple of :class:`TensorSpec`; the flat vector of a model is the
C-order concatenation of its tensors in that order, and the tensors of one layer are contiguous,
so a layer is one slice of the flat vector.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wspace.errors import LayerNotFoundError, SchemaMismatchError, TensorNotFoundError, listing
from wspace.layout_build import layout_from_dict, layout_from_torch
from wspace.layout_convert import flat_vector, resolve_view, tensors_of, torch_state_dict
from wspace.tensor_spec import Convention, TensorSpec

if TYPE_CHECKING:
    from wspace.weightspace.symmetry import Symmetry

__all__ = ["Convention", "Layout", "TensorSpec"]


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
        return flat_vector(self, tensors)

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
        return tensors_of(self, vector)

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
        return torch_state_dict(self, vector)

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
        return resolve_view(self, name)

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
        return layout_from_dict(cls, data)

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
        return layout_from_torch(cls, module, name, architecture)
