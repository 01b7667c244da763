"""The ``graph`` view: one ``torch_geometric.data.Data`` per network (neural graphs).

As Kofinas et al. ("Graph neural networks for learning equivariant representations of neural
networks") and Lim et al. (graph metanetworks) build them: a node per neuron — the inputs of the
first layer, then every weight layer's outputs (a convolution's channels) — and a directed edge
``in -> out`` per weight (a convolution's ``kh x kw`` kernel, or a flattened map's ``h x w``
positions, on one edge). Node features ``x`` ``(N, 1)``: the neuron's bias (0 for inputs);
edge features ``edge_attr`` ``(E, K)``: the values at each kernel position, zero-padded to the
largest ``K`` of the layout; ``node_layer`` / ``edge_layer``: the layer index. Batch-norm layers
are folded (``norm="fold"``). A batch comes as a ``torch_geometric.data.Batch``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from wspace.layout import Layout
from wspace.weightspace.symmetry import Symmetry
from wspace.weightspace.views.common import NormMode, spatial, torch_form

__all__ = ["graph_view"]


@functools.lru_cache(maxsize=16)
def _structure(sizes: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, ...]:
    """Edge index, edge layer and node layer of a chain of ``(n_in, n_out)`` layers."""
    edges, edge_layer = [], []
    first = 0
    node_layer = [np.zeros(sizes[0][0], dtype=np.int64)]
    for layer, (n_in, n_out) in enumerate(sizes):
        src = first + np.arange(n_in)
        dst = first + n_in + np.arange(n_out)
        edges.append(np.stack([np.tile(src, n_out), np.repeat(dst, n_in)]))  # (out, in) order
        edge_layer.append(np.full(n_in * n_out, layer, dtype=np.int64))
        node_layer.append(np.full(n_out, layer + 1, dtype=np.int64))
        first += n_in
    return np.concatenate(edges, axis=1), np.concatenate(edge_layer), np.concatenate(node_layer)


def graph_view(
    layout: Layout,
    symmetry: Symmetry,
    rows: np.ndarray,
    *,
    norm: NormMode = "fold",
    eps: float = 1e-5,
) -> Any:
    """``rows`` ``(B, size)`` as a ``torch_geometric.data.Batch`` of one graph per row."""
    try:
        from torch_geometric.data import Batch, Data
    except ImportError as exc:  # pragma: no cover - the extra is part of the dev install
        raise ImportError(
            "the 'graph' view needs torch-geometric: pip install 'wspace[weightspace]'"
        ) from exc
    layers = torch_form(layout, symmetry, rows, norm=norm, eps=eps)
    batch = len(rows)
    spatials = [spatial(a) for a in layers]
    width = max(k for _, k in spatials)
    edge_attr = []
    for w, k in spatials:  # (B, out, in, k) -> (B, out * in, K)
        flat = w.reshape(batch, -1, k)
        if k < width:
            flat = np.concatenate([flat, np.zeros((*flat.shape[:2], width - k), flat.dtype)], -1)
        edge_attr.append(flat)
    sizes = tuple((w.shape[2], w.shape[1]) for w, _ in spatials)
    edge_index, edge_layer, node_layer = _structure(sizes)
    first_inputs = np.zeros((batch, sizes[0][0]), dtype=np.float32)
    x = np.concatenate([first_inputs, *(a.bias for a in layers)], axis=1)[..., None]
    attrs = torch.from_numpy(np.concatenate(edge_attr, axis=1).astype(np.float32, copy=False))
    nodes = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    index = torch.from_numpy(edge_index)
    e_layer, n_layer = torch.from_numpy(edge_layer), torch.from_numpy(node_layer)
    graphs = [
        Data(
            x=nodes[b], edge_index=index, edge_attr=attrs[b], node_layer=n_layer, edge_layer=e_layer
        )
        for b in range(batch)
    ]
    return Batch.from_data_list(graphs)
