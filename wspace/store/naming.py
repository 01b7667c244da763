"""Names of the arrays inside a segment or an archive, by store format version.

Format 1 (stores written before format 2) names a segment's layer arrays ``w000``, ``w001``,
... in layout order and its metadata-column arrays ``m000``, ... Format 2 names them so that
a reader without wspace (xarray, zarr, TensorStore) sees what they hold:

* a layer's array is the layer's name with ``/`` replaced by ``.`` (``conv2d``,
  ``encoder.block1.fc``), its dimensions ``["model", "<array>_param"]``;
* in archives, the coordinates along ``<array>_param`` are ``<array>_tensor`` (the tensor each
  parameter belongs to) and ``<array>_index`` (its index within that tensor, C order);
* a metadata column's array is the column's name, its dimension ``["model"]``.

A name that is not a usable Zarr node name (empty, ``.``/``..``, containing ``/`` or white
space — the ``coordinates`` attribute separates names by spaces —, starting with ``__``) or
that another array of the segment already took falls back to ``layer_<i>`` (layers) or
``m<j>`` (columns). The layer names follow from the layout alone (:func:`layer_arrays`); the
column names are recorded in the commit records (``columns``: name -> ``[kind, array]``), as
in format 1. ``docs/format-spec.md`` states the same rules for other implementations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from wspace.layout import Layout

__all__ = [
    "MODEL_DIM",
    "column_array",
    "layer_arrays",
    "layout_arrays",
    "legacy_layer_arrays",
    "param_coordinates",
    "param_dim",
    "taken_by_layers",
    "usable_name",
]

MODEL_DIM = "model"
"""The row dimension of every array, and the array holding the model names."""
_BAD = re.compile(r"[\s/]")


def usable_name(name: str) -> bool:
    """Whether ``name`` can name an array of an archive for every reader: a Zarr v3 node name
    (not empty, not ``.`` or ``..``, no ``/``, not starting with ``__``), not ``zarr.json``,
    and without white space (the ``coordinates`` attribute lists names separated by spaces)."""
    return (
        bool(name)
        and name not in (".", "..", "zarr.json")
        and not name.startswith("__")
        and not _BAD.search(name)
    )


def param_dim(array: str) -> str:
    """The parameter dimension of the layer array ``array``."""
    return f"{array}_param"


def param_coordinates(array: str) -> tuple[str, str]:
    """The arrays holding, along :func:`param_dim`, each parameter's tensor and index."""
    return f"{array}_tensor", f"{array}_index"


def _reserved(array: str) -> set[str]:
    return {array, param_dim(array), *param_coordinates(array)}


def layer_arrays(layout: Layout) -> dict[str, str]:
    """Layer -> array name in format 2 (see the module docstring), in layout order."""
    taken = {MODEL_DIM}
    out: dict[str, str] = {}
    for i, layer in enumerate(layout.layers):
        name = layer.replace("/", ".")
        k = 0
        while not usable_name(name) or _reserved(name) & taken:
            name = f"layer_{i:03d}" + ("" if k == 0 else f"_{k}")
            k += 1
        taken |= _reserved(name)
        out[layer] = name
    return out


def legacy_layer_arrays(layout: Layout) -> dict[str, str]:
    """Layer -> array name in format 1: ``w000``, ``w001``, ... in layout order."""
    return {layer: f"w{i:03d}" for i, layer in enumerate(layout.layers)}


def layout_arrays(layout: Layout, format_version: int) -> dict[str, str]:
    """Layer -> array name in a segment of a store of ``format_version``."""
    return legacy_layer_arrays(layout) if format_version < 2 else layer_arrays(layout)


def column_array(name: str, taken: Iterable[str], format_version: int) -> str:
    """Array name for a new metadata column ``name`` beside the arrays ``taken``.

    Format 2: the column's own name when usable and free, else the first free ``m<j>``;
    format 1: always ``m<j>``.
    """
    used = set(taken)
    if format_version >= 2 and usable_name(name) and name not in used:
        return name
    j = sum(1 for t in used if re.fullmatch(r"m\d{3,}", t))
    while f"m{j:03d}" in used:
        j += 1
    return f"m{j:03d}"


def taken_by_layers(layout: Layout, format_version: int) -> set[str]:
    """Array and dimension names the layer arrays (and their coordinates) of a segment use;
    a column named ``model`` (the model names) takes the array ``model``."""
    names = layout_arrays(layout, format_version).values()
    return {n for a in names for n in _reserved(a)}
