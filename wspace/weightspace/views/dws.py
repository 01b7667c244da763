"""The ``dws`` view: DWSNets' (Navon et al.) ``(weights, biases)`` tuples.

Weights ``(B, d_in, d_out, C)`` and biases ``(B, d_out, C)`` per layer, in torch's function
order (layer ``i`` maps ``d_in`` to ``d_out``). A dense layer has ``C = 1``; a convolution puts its
``kh * kw`` kernel values on ``C``; a dense layer reading a flattened ``c x h x w`` map has
``d_in = c`` and its ``h * w`` positions on ``C``, so every hidden-neuron permutation acts on
``d_in``/``d_out`` only. Biases are zero-padded to the layer's ``C`` (biases of a conv layer are
``(B, d_out, 1)`` with ``pad_bias=False``). Batch-norm layers are folded (``norm="fold"``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from wspace.layout import Layout
from wspace.weightspace.symmetry import Symmetry
from wspace.weightspace.views.common import NormMode, torch_form

__all__ = ["dws_view"]


def dws_view(
    layout: Layout,
    symmetry: Symmetry,
    rows: np.ndarray,
    *,
    norm: NormMode = "fold",
    eps: float = 1e-5,
    pad_bias: bool = False,
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """``rows`` ``(B, size)`` as DWSNets' ``(weights, biases)``."""
    weights, biases = [], []
    for arrays in torch_form(layout, symmetry, rows, norm=norm, eps=eps):
        w = arrays.weight  # (B, out, in, *kernel) or (B, out, c, h, w), maybe strided
        k = math.prod(w.shape[3:])
        # one copy per layer for the whole batch: swap (out, in), then merge the kernel axes
        swapped = np.ascontiguousarray(w.swapaxes(1, 2)).reshape(w.shape[0], w.shape[2], -1, k)
        weights.append(torch.from_numpy(swapped))
        b = arrays.bias[..., None]
        if pad_bias and k > 1:
            b = np.concatenate([b, np.zeros((*b.shape[:2], k - 1), dtype=b.dtype)], axis=-1)
        biases.append(torch.from_numpy(np.ascontiguousarray(b)))
    return tuple(weights), tuple(biases)
