"""The ``tokens`` view: SANE-style (Schürholt et al.) per-neuron tokens.

Each output neuron (channel) of each weight layer becomes one row of its parameters in torch
form — incoming weights (``in * kh * kw`` values, a flattened map's inputs in ``(c, h, w)``
order), then its bias, then the values of the per-channel layers after it (batch-norm's
``scale, shift, mean, var``, carried, not folded) — cut into tokens of ``token_size`` values,
the last one zero-padded. Every stored value appears in exactly one token position.

Returns a dict: ``tokens`` ``(B, T, token_size)`` float32; ``mask`` ``(B, T, token_size)`` bool
(``True`` on real values); ``positions`` ``(B, T, 3)`` int64: the token's index ``t``, its layer's
index in the chain and its neuron's index in the layer (SANE's three position encodings).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from wspace.errors import SchemaMismatchError
from wspace.layout import Layout
from wspace.weightspace.symmetry import Symmetry
from wspace.weightspace.views.common import NormMode, torch_form

__all__ = ["tokens_view"]


@functools.lru_cache(maxsize=16)
def _plan(widths: tuple[tuple[int, int], ...], token_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per layer ``(neurons, width)``: the token positions ``(T, 3)`` and pieces per neuron."""
    positions = []
    for layer, (neurons, width) in enumerate(widths):
        pieces = math.ceil(width / token_size)
        for j in range(neurons):
            positions += [(layer, j)] * pieces
    pos = np.array(positions, dtype=np.int64).reshape(-1, 2)
    pos = np.concatenate([np.arange(len(pos))[:, None], pos], axis=1)
    pieces_per_layer = np.array([math.ceil(w / token_size) for _, w in widths], dtype=np.int64)
    return pos, pieces_per_layer


def tokens_view(
    layout: Layout,
    symmetry: Symmetry,
    rows: np.ndarray,
    *,
    token_size: int = 64,
    norm: NormMode = "carry",
    eps: float = 1e-5,
) -> dict[str, torch.Tensor]:
    """``rows`` ``(B, size)`` as SANE-style tokens (see the module docs)."""
    if token_size < 1:
        raise SchemaMismatchError(f"token_size must be >= 1, not {token_size}")
    batch = len(rows)
    blocks, masks, widths = [], [], []
    for arrays in torch_form(layout, symmetry, rows, norm=norm, eps=eps):
        w = arrays.weight
        n_out, n_w = w.shape[1], math.prod(w.shape[2:])
        extras = [arrays.bias] + [v for norm_layer in arrays.norms for v in norm_layer.values()]
        width = n_w + len(extras)
        pieces = math.ceil(width / token_size)
        padded = np.zeros((batch, n_out, pieces * token_size), dtype=np.float32)
        # one strided copy per layer for the whole batch, straight into the token buffer
        np.copyto(padded[..., :n_w].reshape(w.shape), w)
        for j, extra in enumerate(extras):
            padded[..., n_w + j] = extra
        mask = np.zeros(pieces * token_size, dtype=bool)
        mask[:width] = True
        blocks.append(padded.reshape(batch, -1, token_size))
        masks.append(np.tile(mask.reshape(pieces, token_size), (n_out, 1)))
        widths.append((n_out, width))
    positions, _ = _plan(tuple(widths), token_size)
    tokens = torch.from_numpy(np.concatenate(blocks, axis=1))
    mask_t = torch.from_numpy(np.concatenate(masks, axis=0))
    return {
        "tokens": tokens,
        "mask": mask_t.expand(batch, *mask_t.shape),
        "positions": torch.from_numpy(positions).expand(batch, *positions.shape),
    }
