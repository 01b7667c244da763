"""The Keras view of the LeNet-5 zoo: file and model names, where each Keras tensor lies in a
row of a LeNet-5 layout, and the layout that imported Keras tensors are stored in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wspace.architectures import lenet5_keras_layout, lenet5_layout
from wspace.errors import SchemaMismatchError, TensorNotFoundError, WspaceError
from wspace.layout import Layout

__all__ = [
    "FILE_NAME",
    "file_name",
    "keras_index",
    "parse_file_name",
    "split_name",
    "target_layout",
    "to_row",
]

FILE_NAME = re.compile(r"^binary_oneVall_(?P<cls>.+)_(?P<count>\d+)_(?:model|weights)\.h5$")


def parse_file_name(name: str) -> tuple[str, str, int]:
    """``(model, cls, count)`` of a file name ``binary_oneVall_{class}_{count}_model.h5``.

    Class names may contain underscores; the count is the last ``_``-separated number.
    ``..._weights.h5`` (``save_weights`` files) are read the same way.

    Examples
    --------
    >>> parse_file_name("binary_oneVall_golf_ball_1060_model.h5")
    ('golf_ball_1060', 'golf_ball', 1060)
    """
    match = FILE_NAME.match(Path(name).name)
    if match is None:
        raise SchemaMismatchError(
            f"{name!r}: not a LeNet-5 zoo file name (expected "
            "binary_oneVall_{class}_{count}_model.h5)"
        )
    cls, count = match["cls"], int(match["count"])
    return f"{cls}_{count}", cls, count


def file_name(cls: str, count: int) -> str:
    """The published file name of model ``{cls}_{count}``.

    Examples
    --------
    >>> file_name("church", 3)
    'binary_oneVall_church_3_model.h5'
    """
    return f"binary_oneVall_{cls}_{int(count)}_model.h5"


def keras_index(layout: Layout) -> dict[str, tuple[np.ndarray, tuple[int, ...]]]:
    """Where each Keras tensor of LeNet-5 lies in a row of ``layout``.

    Returns ``{h5 path: (index, shape)}`` in Keras' ``weight_names`` order (per layer kernel,
    then bias), such that ``row[index].reshape(shape)`` is the Keras tensor stored at
    ``model_weights/<h5 path>``; ``layout`` is the torch-convention ``lenet5`` layout (kernels
    transposed, ``dense`` rows reordered from ``(c, h, w)`` to ``(h, w, c)``) or a
    Keras-convention one (identity).

    Raises
    ------
    SchemaMismatchError
        ``layout`` is not a LeNet-5 layout (missing tensor, wrong shape, or a dense weight
        without the ``flatten_shape`` that its conversion needs).

    Examples
    --------
    >>> from wspace.architectures import lenet5_layout
    >>> index, shape = keras_index(lenet5_layout())["dense/dense/kernel:0"]
    >>> shape
    (480, 84)
    """
    expected = lenet5_keras_layout()
    out: dict[str, tuple[np.ndarray, tuple[int, ...]]] = {}
    for keras_spec in expected:
        try:
            spec, index, shape = layout.view(keras_spec.name)
        except (TensorNotFoundError, SchemaMismatchError) as exc:
            raise SchemaMismatchError(
                f"layout {layout.name!r} is not a LeNet-5 layout: {exc}"
            ) from None
        if shape != keras_spec.shape:
            raise SchemaMismatchError(
                f"layout {layout.name!r} is not a LeNet-5 layout: {keras_spec.name!r} has "
                f"Keras shape {shape}, not {keras_spec.shape}"
            )
        if keras_spec.flatten_shape is not None and spec.flatten_shape is None:
            raise SchemaMismatchError(
                f"layout {layout.name!r}: {spec.name!r} reads the flattened feature map but "
                "has no flatten_shape, so its rows cannot be put in Keras' (h, w, c) order"
            )
        out[keras_spec.source_name] = (spec.offset + index, shape)
    return out


def target_layout(convention: str) -> Layout:
    """The layout imported Keras tensors are stored in: ``"keras"`` (as in the files, group
    ``lenet5-keras``) or ``"torch"`` (converted exactly, group ``lenet5``)."""
    if convention == "keras":
        return lenet5_keras_layout()
    if convention == "torch":
        return lenet5_layout()
    raise WspaceError(f"option convention={convention!r}: expected 'keras' or 'torch'")


def to_row(tensors: Mapping[str, Any], layout: Layout) -> Any:
    """Writer input of ``layout`` from Keras tensors keyed by h5 path (see :func:`read_file`)."""
    if layout.tensors[0].convention == "keras":
        return tensors  # keyed by h5 paths, the Keras layout's source names
    keras = lenet5_keras_layout()
    return keras.to_state_dict(keras.flatten(tensors))


def split_name(model: str) -> dict[str, Any]:
    """``{"cls": ..., "count": ...}`` parsed from a model name ``{class}_{count}`` (or ``{}``).

    Examples
    --------
    >>> split_name("golf_ball_1060"), split_name("mystery")
    ({'cls': 'golf_ball', 'count': 1060}, {})
    """
    match = re.fullmatch(r"(?P<cls>.+)_(?P<count>\d+)", model)
    return {} if match is None else {"cls": match["cls"], "count": int(match["count"])}
