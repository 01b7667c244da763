"""Exact index permutations between the torch and Keras weight conventions.

A weight stored in one framework's convention is viewed in the other's through an index
permutation: for a stored tensor raveled in C order as ``flat``, ``flat[index].reshape(shape)``
is the same tensor in the other convention. Nothing is copied until the index is applied, so a
zoo made in one framework answers queries in the other's names.

- Convolutions: torch ``(out, in, *spatial)`` <-> Keras ``(*spatial, in, out)``
  (``(out, in, kh, kw)`` <-> ``(kh, kw, in, out)`` for 2-D).
- Dense layers: torch ``(out, in)`` <-> Keras ``(in, out)``. When the layer reads a flattened
  feature map (``flatten_shape``), its ``in`` axis is also reordered between torch's
  channels-first ``(c, h, w)`` and Keras' channels-last ``(h, w, c)`` flatten order, so that the
  converted kernel computes the same function in the other framework.

Examples
--------
>>> import numpy as np
>>> from wspace.layout import TensorSpec
>>> spec = TensorSpec("fc/weight", "fc", (2, 3), 0, 6, "torch", "fc.weight")
>>> index, shape = torch_to_keras_index(spec)
>>> w = np.arange(6.0).reshape(2, 3)
>>> bool((w.ravel()[index].reshape(shape) == w.T).all())
True
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from wspace.errors import SchemaMismatchError

__all__ = ["SpecLike", "keras_to_torch_index", "torch_to_keras_index"]


class SpecLike(Protocol):
    """What the index functions read from a :class:`~wspace.layout.TensorSpec`."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def flatten_shape(self) -> tuple[int, ...] | None: ...


def _check(spec: SpecLike, in_axis: int) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    shape = tuple(int(s) for s in spec.shape)
    if len(shape) < 2:
        raise SchemaMismatchError(
            f"tensor {spec.name!r} of shape {shape} is not a dense or convolution weight; only "
            "weights of 2 or more dimensions have a form in the other convention"
        )
    flat = spec.flatten_shape
    if flat is not None:
        if len(shape) != 2 or math.prod(flat) != shape[in_axis]:
            raise SchemaMismatchError(
                f"tensor {spec.name!r} of shape {shape}: flatten_shape {tuple(flat)} must be "
                f"set only on a dense weight with {math.prod(flat)} inputs"
            )
        flat = tuple(int(s) for s in flat)
    return shape, flat


def torch_to_keras_index(spec: SpecLike) -> tuple[np.ndarray, tuple[int, ...]]:
    """View a torch-convention weight as the Keras kernel.

    Parameters
    ----------
    spec
        A torch-convention weight: Linear ``(out, in)`` or convolution ``(out, in, *spatial)``.
        A ``flatten_shape`` of ``(c, h, w)`` marks a Linear weight that reads a flattened map.

    Returns
    -------
    index, shape
        ``flat[index].reshape(shape)`` is the Keras kernel, ``(in, out)`` with inputs in
        ``(h, w, c)`` order, or ``(*spatial, in, out)``; ``flat`` is the torch weight raveled.

    Examples
    --------
    >>> import numpy as np
    >>> from wspace.layout import TensorSpec
    >>> spec = TensorSpec("c/weight", "c", (4, 3, 2, 2), 0, 48, "torch", "c.weight")
    >>> index, shape = torch_to_keras_index(spec)
    >>> shape
    (2, 2, 3, 4)
    >>> w = np.random.default_rng(0).normal(size=spec.shape)
    >>> bool((w.ravel()[index].reshape(shape) == w.transpose(2, 3, 1, 0)).all())
    True
    """
    shape, flat = _check(spec, in_axis=1)
    ids = np.arange(math.prod(shape)).reshape(shape)
    if flat is not None:
        # Keras feature j reads torch feature perm[j]: (c, *rest) ids listed in (*rest, c) order.
        perm = np.arange(shape[1]).reshape(flat).transpose(*range(1, len(flat)), 0).ravel()
        ids = ids[:, perm]
    axes = (*range(2, len(shape)), 1, 0)
    return ids.transpose(axes).ravel(), tuple(shape[a] for a in axes)


def keras_to_torch_index(spec: SpecLike) -> tuple[np.ndarray, tuple[int, ...]]:
    """View a Keras-convention kernel as the torch weight (inverse of the other function).

    Parameters
    ----------
    spec
        A Keras kernel: Dense ``(in, out)`` or convolution ``(*spatial, in, out)``. A
        ``flatten_shape`` of ``(h, w, c)`` marks a Dense kernel that reads a flattened map.

    Returns
    -------
    index, shape
        ``flat[index].reshape(shape)`` is the torch weight, ``(out, in)`` with inputs in
        ``(c, h, w)`` order, or ``(out, in, *spatial)``; ``flat`` is the Keras kernel raveled.

    Examples
    --------
    >>> import numpy as np
    >>> from wspace.layout import TensorSpec
    >>> spec = TensorSpec("d/kernel", "d", (8, 3), 0, 24, "keras", "d/d/kernel:0", (2, 2, 2))
    >>> index, shape = keras_to_torch_index(spec)
    >>> k = np.arange(24).reshape(8, 3)
    >>> torch_weight = k.reshape(2, 2, 2, 3).transpose(3, 2, 0, 1).reshape(3, 8)
    >>> bool((k.ravel()[index].reshape(shape) == torch_weight).all())
    True
    """
    shape, flat = _check(spec, in_axis=0)
    n = len(shape)
    axes = (n - 1, n - 2, *range(n - 2))
    ids = np.arange(math.prod(shape)).reshape(shape).transpose(axes)
    if flat is not None:
        # torch feature i reads Keras feature perm[i]: (*rest, c) ids listed in (c, *rest) order.
        k = len(flat)
        perm = np.arange(shape[0]).reshape(flat).transpose(k - 1, *range(k - 1)).ravel()
        ids = ids[:, perm]
    return ids.ravel(), tuple(shape[a] for a in axes)
