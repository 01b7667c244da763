"""Exact index permutations between torch and Keras tensor conventions.

For a tensor stored in one convention, these functions return ``(index, shape)`` such that
``flat[index].reshape(shape)`` is the same tensor in the other convention, where ``flat`` is
the stored tensor raveled in C order. Conv weights: torch ``(out, in, kh, kw)`` <-> Keras
``(kh, kw, in, out)``. Dense weights: torch ``(out, in)`` <-> Keras ``(in, out)``; when the
dense layer reads a flattened feature map (``flatten_shape``), its ``in`` axis is also
reordered between torch's ``(c, h, w)`` and Keras' ``(h, w, c)`` flatten order, so that the
converted kernel computes the same function in the other framework.
"""

from __future__ import annotations

import numpy as np

from wspace.errors import SchemaMismatchError

__all__ = ["keras_to_torch_index", "torch_to_keras_index"]


def _flatten_perm_torch_to_keras(flatten_shape: tuple[int, ...]) -> np.ndarray:
    """``p`` such that ``keras_features = torch_features[p]`` (chw -> hwc order)."""
    c, h, w = flatten_shape
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()


def torch_to_keras_index(shape: tuple[int, ...], flatten_shape: tuple[int, ...] | None = None,
                         ) -> tuple[np.ndarray, tuple[int, ...]]:
    """Index and shape that view a torch weight of ``shape`` as the Keras kernel."""
    ids = np.arange(int(np.prod(shape))).reshape(shape)
    if len(shape) == 4:
        return ids.transpose(2, 3, 1, 0).ravel(), (shape[2], shape[3], shape[1], shape[0])
    if len(shape) == 2:
        if flatten_shape is not None:
            if int(np.prod(flatten_shape)) != shape[1]:
                raise SchemaMismatchError(
                    f"flatten shape {flatten_shape} does not match {shape[1]} inputs")
            ids = ids[:, _flatten_perm_torch_to_keras(flatten_shape)]
        return ids.T.ravel(), (shape[1], shape[0])
    raise SchemaMismatchError(f"no Keras kernel view for a torch weight of shape {shape}")


def keras_to_torch_index(shape: tuple[int, ...], flatten_shape: tuple[int, ...] | None = None,
                         ) -> tuple[np.ndarray, tuple[int, ...]]:
    """Index and shape that view a Keras kernel of ``shape`` as the torch weight.

    ``flatten_shape`` is the Keras ``(h, w, c)`` shape a dense kernel's inputs came from.
    """
    ids = np.arange(int(np.prod(shape))).reshape(shape)
    if len(shape) == 4:
        return ids.transpose(3, 2, 0, 1).ravel(), (shape[3], shape[2], shape[0], shape[1])
    if len(shape) == 2:
        weight = ids.T  # (out, in) with inputs in Keras (h, w, c) order
        if flatten_shape is not None:
            h, w, c = flatten_shape
            if h * w * c != shape[0]:
                raise SchemaMismatchError(
                    f"flatten shape {flatten_shape} does not match {shape[0]} inputs")
            inverse = np.argsort(_flatten_perm_torch_to_keras((c, h, w)))
            weight = weight[:, inverse]
        return weight.ravel(), (shape[1], shape[0])
    raise SchemaMismatchError(f"no torch weight view for a Keras kernel of shape {shape}")
