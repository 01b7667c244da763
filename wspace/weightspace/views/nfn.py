"""The ``nfn`` view: :class:`nfn.common.WeightSpaceFeatures` (Zhou et al.'s neural functionals).

Weights ``(B, 1, n_out, n_in)`` for dense layers and ``(B, 1, n_out, n_in, kh, kw)`` for 2-D
convolutions, biases ``(B, 1, n_out)``, in the layers' order, in torch's convention (Keras rows
are transposed). nfn has no flatten: a dense layer reading a flattened ``c x h x w`` map becomes a
conv-like ``(B, 1, n_out, c, h, w)`` weight (torch's flatten order), so that permuting the
previous layer's channels moves whole ``h x w`` blocks, as nfn's layers expect. nfn's
``state_dict_to_tensors`` needs strictly alternating weights and biases: a layer without a bias
gets zeros, and batch-norm layers are folded into the layer before them (``norm="fold"``, the
default; ``norm="error"`` refuses them instead).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from wspace.errors import SchemaMismatchError
from wspace.layout import Layout
from wspace.weightspace.symmetry import Symmetry
from wspace.weightspace.views.common import NormMode, torch_form

__all__ = ["nfn_view"]


def nfn_view(
    layout: Layout,
    symmetry: Symmetry,
    rows: np.ndarray,
    *,
    norm: NormMode = "fold",
    eps: float = 1e-5,
) -> Any:
    """``rows`` ``(B, size)`` as an ``nfn.common.WeightSpaceFeatures``."""
    try:
        from nfn.common import WeightSpaceFeatures
    except ImportError as exc:  # pragma: no cover - the extra is part of the dev install
        raise ImportError(
            "the 'nfn' view needs the nfn package: pip install 'wspace[weightspace]'"
        ) from exc
    if norm == "carry":
        raise SchemaMismatchError("the 'nfn' view cannot carry norm layers; use norm='fold'")
    weights, biases = [], []
    for arrays in torch_form(layout, symmetry, rows, norm=norm, eps=eps):
        w = arrays.weight
        if arrays.map_shape is not None:
            w = w.reshape(w.shape[0], w.shape[1], *arrays.map_shape)
        if w.ndim not in (3, 5):
            raise SchemaMismatchError(
                f"layout {layout.name!r}: layer {arrays.layer.name!r} has a {w.ndim - 1}-D "
                "weight; nfn takes dense and 2-D convolution layers only"
            )
        weights.append(torch.from_numpy(np.ascontiguousarray(w)).unsqueeze(1))
        biases.append(torch.from_numpy(np.ascontiguousarray(arrays.bias)).unsqueeze(1))
    return WeightSpaceFeatures(weights, biases)
