"""Rows in torch form per weight layer: the shared first step of the structured views.

Every view starts from :func:`torch_form`: per weight layer of the chain, the weight in torch's
convention ``(B, out, in, *kernel)`` — a Keras kernel is transposed, and a dense layer reading a
flattened map has its inputs in torch's ``(c, h, w)`` order whatever the stored order — and the
bias ``(B, out)`` (zeros for a layer without one). Per-channel (batch-norm) layers are either
*folded* into the weight layer before them (``w * s``, ``(b - mean) * s + shift`` with
``s = scale / sqrt(var + eps)``: the same function for a network whose norm layer directly
follows the weight layer, as in torch ``Sequential`` models and NWS), *carried* as extra arrays,
or refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np

from wspace.errors import SchemaMismatchError
from wspace.layout import Layout
from wspace.weightspace.symmetry import Symmetry, WeightLayer

__all__ = ["LayerArrays", "NormMode", "spatial", "torch_form", "torch_weight", "weight_index"]

NormMode: TypeAlias = Literal["fold", "carry", "error"]
"""What a view does with per-channel (batch-norm) layers."""


@dataclass
class LayerArrays:
    """One weight layer of a batch in torch form."""

    layer: WeightLayer
    weight: np.ndarray
    """``(B, out, in, *kernel)``; a dense layer after a flatten is ``(B, out, c, h, w)``; may
    be a strided view of the rows (views copy it once, into their own layout)."""
    bias: np.ndarray
    """``(B, out)``."""
    norms: list[dict[str, np.ndarray]] = field(default_factory=list)
    """Carried norm layers: role (``scale, shift, mean, var``) -> ``(B, out)``."""

    @property
    def map_shape(self) -> tuple[int, ...] | None:
        """``(c, h, w)`` of the flattened map a dense layer reads, else ``None``."""
        return None if self.layer.flatten is None else self.layer.flatten[1]


def weight_index(layout: Layout, w: WeightLayer) -> tuple[np.ndarray, tuple[int, ...]]:
    """Flat-vector positions of ``w``'s torch-form weight, and its torch shape.

    ``rows[:, index].reshape(B, *shape)`` is the weight ``(out, in, *kernel)`` with a flattened
    map's inputs in ``(c, h, w)`` order. (:func:`torch_weight` gets the same by reshapes and
    transposes, without an index.)
    """
    spec, index, shape = layout.view(f"{w.name}/weight")
    index = spec.offset + np.asarray(index)
    if w.flatten is not None and w.flatten[0] == "hwc" and spec.flatten_shape is None:
        # stored torch-shaped with inputs in (h, w, c) order (NWS): reorder to (c, h, w)
        c, *hw = w.flatten[1]
        order = np.arange(w.n_in).reshape(*hw, c).transpose(len(hw), *range(len(hw))).ravel()
        index = index.reshape(shape)[:, order].ravel()
    return index, tuple(shape)


def torch_weight(layout: Layout, w: WeightLayer, rows: np.ndarray) -> np.ndarray:
    """``w``'s weight of every row in torch form, a strided view of ``rows`` (no copy).

    ``(B, out, in, *kernel)``; a dense layer reading a flattened map is ``(B, out, c, h, w)``
    (torch's flatten order, whatever the stored one). Keras kernels ``(*kernel, in, out)`` are
    transposed by the view's strides, so that a view converts the whole batch in one copy.
    """
    spec = layout[w.weight]
    batch = len(rows)
    block = rows[:, spec.offset : spec.stop]
    if w.flatten is None:
        if spec.convention == "torch":
            return block.reshape(batch, *spec.shape)
        nd = len(spec.shape) - 2  # Keras (*kernel, in, out) -> (out, in, *kernel)
        return block.reshape(batch, *spec.shape).transpose(0, nd + 2, nd + 1, *range(1, nd + 1))
    order, (c, *hw) = w.flatten
    nd = len(hw)
    if spec.convention == "torch":
        if order == "chw":
            return block.reshape(batch, w.n_out, c, *hw)
        return block.reshape(batch, w.n_out, *hw, c).transpose(0, 1, nd + 2, *range(2, nd + 2))
    if order == "chw":  # Keras (in, out) with inputs in (c, h, w) order
        return block.reshape(batch, c, *hw, w.n_out).transpose(0, nd + 2, 1, *range(2, nd + 2))
    return block.reshape(batch, *hw, c, w.n_out).transpose(0, nd + 2, nd + 1, *range(1, nd + 1))


def torch_form(
    layout: Layout,
    symmetry: Symmetry,
    rows: np.ndarray,
    *,
    norm: NormMode = "fold",
    eps: float = 1e-5,
) -> list[LayerArrays]:
    """The weight layers of ``rows`` ``(B, size)`` in torch form (see the module docs).

    Raises
    ------
    SchemaMismatchError
        ``norm="error"`` and the layout has per-channel layers, or a norm layer lacks ``var``
        when folding.
    """
    out = []
    for w in symmetry.layers:
        weight = torch_weight(layout, w, rows)
        if w.bias is None:
            bias = np.zeros((len(rows), w.n_out), dtype=rows.dtype)
        else:
            bias = rows[:, layout[w.bias].slice()]
        arrays = LayerArrays(w, weight, bias)
        for norm_layer in w.norms:
            roles = {role: rows[:, layout[t].slice()] for role, t in norm_layer}
            if norm == "error":
                raise SchemaMismatchError(
                    f"layout {layout.name!r}: layer {w.name!r} is followed by a per-channel "
                    f"layer ({', '.join(t for _, t in norm_layer)}); pass norm='fold' or 'carry'"
                )
            if norm == "carry":
                arrays.norms.append(roles)
                continue
            if "var" not in roles and "scale" not in roles:
                arrays.bias = arrays.bias - roles.get("mean", 0) + roles.get("shift", 0)
                continue
            var = roles.get("var", np.full_like(bias, 1.0 - eps))
            s = roles.get("scale", np.ones_like(bias)) / np.sqrt(var.astype(np.float64) + eps)
            s = s.astype(rows.dtype)
            scale = s.reshape(*s.shape, *([1] * (arrays.weight.ndim - 2)))
            arrays.weight = arrays.weight * scale
            arrays.bias = (arrays.bias - roles.get("mean", 0)) * s + roles.get("shift", 0)
        out.append(arrays)
    return out


def spatial(arrays: LayerArrays) -> tuple[np.ndarray, int]:
    """The weight as ``(B, out, in_channels, k)`` with the kernel (or map) flattened to ``k``."""
    w = arrays.weight
    if arrays.map_shape is not None:
        c = arrays.map_shape[0]
        return w.reshape(w.shape[0], w.shape[1], c, -1), math.prod(arrays.map_shape[1:])
    k = math.prod(w.shape[3:])
    return w.reshape(w.shape[0], w.shape[1], w.shape[2], k), k
