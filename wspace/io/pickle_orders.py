"""The orders of the LeNet-5 pickles: h5 paths, and the permutations from a zoo row to a
modelwise pickle's ``parameters_flat`` and a layerwise pickle's per-layer arrays."""

from __future__ import annotations

import numpy as np

from wspace.architectures import lenet5_keras_layout
from wspace.io.keras_lenet import keras_index
from wspace.layout import Layout

__all__ = ["h5_paths", "layerwise_permutation", "modelwise_permutation"]


def h5_paths() -> list[str]:
    """The LeNet-5 h5 paths in h5py's order (groups, then datasets, by name: bias first).

    Examples
    --------
    >>> h5_paths()[:3]
    ['conv2d/conv2d/bias:0', 'conv2d/conv2d/kernel:0', 'conv2d_1/conv2d_1/bias:0']
    """
    return sorted((t.source_name for t in lenet5_keras_layout()), key=lambda p: p.split("/"))


def modelwise_permutation(layout: Layout) -> np.ndarray:
    """Indices ``perm`` with ``parameters_flat == row[perm]`` for a row of a LeNet-5 zoo.

    ``layout`` is the zoo's (torch ``lenet5`` or Keras ``lenet5-keras``); the permutation puts
    each Keras tensor (converted from torch where needed, see :func:`~wspace.io.keras_lenet.
    keras_index`) in :func:`h5_paths` order.

    Examples
    --------
    >>> import numpy as np
    >>> from wspace.architectures import lenet5_keras_layout, lenet5_layout
    >>> perm = modelwise_permutation(lenet5_keras_layout())
    >>> perm[:6].tolist() == list(range(450, 456))  # conv2d's bias comes first
    True
    >>> sorted(modelwise_permutation(lenet5_layout())) == list(range(91481))
    True
    """
    index = keras_index(layout)
    return np.concatenate([index[path][0] for path in h5_paths()])


def layerwise_permutation(layout: Layout, layer: str) -> np.ndarray:
    """Indices ``perm`` with ``layerwise array == row[perm]``: ``layer``'s bias, then kernel.

    Examples
    --------
    >>> from wspace.architectures import lenet5_keras_layout
    >>> layerwise_permutation(lenet5_keras_layout(), "dense_1").tolist()[:2]
    [91480, 91396]
    """
    index = keras_index(layout)
    return np.concatenate(
        [index[f"{layer}/{layer}/bias:0"][0], index[f"{layer}/{layer}/kernel:0"][0]]
    )
