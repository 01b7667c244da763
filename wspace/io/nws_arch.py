"""The networks of the NWS data set (Eilertsen et al., "Classifying the classifier"): their
layouts, rebuilt from the architecture fields of a split CSV, and their snapshot epochs.

From the authors' code (github.com/gabrieleilertsen/nws):

* ``model.py`` ``deepnn``: 3 conv blocks of ``filter_size`` kernels (SAME padding, 2x2 max-pool
  after each, so 32x32 inputs end at 4x4); ``depth_conv`` layers spread over the blocks
  (``blockc``: ``depth_conv // 3`` each, the remainder added from the last block back, at least
  one conv per block); block ``c`` has ``width_conv * 2**c`` channels; then ``depth_fc`` dense
  layers of ``int(width_fc * 2**-c)`` units and ``fc_final`` with 20 outputs. Inputs have 3
  channels (MNIST is tiled to 3). Every conv and dense layer but ``fc_final`` has a TensorLayer
  ``BatchNormLayer`` when ``batch_norm``, whose variables are created ``beta, gamma,
  moving_mean, moving_variance`` (``tensorlayer/layers/normalization.py``).
* ``model.py`` ``print_all_vars``: the vector is every global variable outside the
  ``optimizer`` scope, in creation order (``<l>_W, <l>_b[, <l>_bn/beta, gamma, moving_mean,
  moving_variance]`` per layer); a 4-D kernel ``(kh, kw, in, out)`` is written as the slices
  ``var[:, :, j, i]`` for each output channel ``i`` then input channel ``j``, a 2-D kernel
  ``(in, out)`` as columns ``var[:, i]``. Both are exactly the C-order flattening of the torch
  layout ``(out, in, kh, kw)`` / ``(out, in)``, so wspace stores NWS rows in torch convention
  (``zoo.tensor("conv11/kernel")`` gives the TensorFlow kernel back). The first dense layer
  reads the 4x4 feature map in TensorFlow's ``(h, w, c)`` order.
* ``classifier.py``: snapshot ``k`` (``weights/00k.bin``) is epoch
  ``round(linspace(1, epochs, 20))[k - 1]`` where ``epochs`` is ``stat.bin[0]``.

Assumption (the released CSVs were not available to check): the optimizer's slot and
``beta1_power`` variables live in the ``optimizer`` scope and are not in the vector, so a
snapshot has ``weightn_conv + weightn_fc`` values, as ``util.py`` asserts.

Examples
--------
>>> lay = nws_layout(filter_size=5, depth_conv=3, depth_fc=2, width_conv=8, width_fc=128)
>>> lay.name, lay.layers[:3], lay["conv11/weight"].shape
('nws-f5-c3x8-d2x128-bn1', ('conv11', 'conv11_bn', 'conv21'), (8, 3, 5, 5))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from wspace.errors import FormatError, listing
from wspace.io.values import py_value
from wspace.layout import Layout

__all__ = [
    "ARCH_FIELDS",
    "CSV_COLUMNS",
    "NWSArchitecture",
    "nws_layout",
    "snapshot_epochs",
]

CSV_COLUMNS = (
    "dataset",
    "lrate",
    "batch_size",
    "batch_norm",
    "augmentation",
    "optimizer",
    "activation",
    "initialization",
    "filter_size",
    "depth_conv",
    "depth_fc",
    "width_conv",
    "width_fc",
    "weightn_conv",
    "weightn_fc",
    "path",
)
"""Columns of a split CSV, in the published order."""
META_COLUMNS = CSV_COLUMNS[:13]
"""Columns ``classifier.py`` writes to a run's ``meta.csv``."""
ARCH_FIELDS = ("filter_size", "depth_conv", "depth_fc", "width_conv", "width_fc", "batch_norm")
SNAPSHOTS = 20
BN_PARAMS = ("beta", "gamma", "moving_mean", "moving_variance")
INPUT_CHANNELS, INPUT_SIZE, OUTPUTS, BLOCKS = 3, 32, 20, 3


def snapshot_epochs(epochs: int, count: int = SNAPSHOTS) -> list[int]:
    """Epochs of the snapshots of a run of ``epochs`` epochs: ``round(linspace(1, epochs, 20))``.

    Examples
    --------
    >>> snapshot_epochs(39)[:5]
    [1, 3, 5, 7, 9]
    """
    return [int(e) for e in np.round(np.linspace(1, epochs, count))]


def as_int(value: Any, column: str, where: str) -> int:
    value = py_value(value)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise FormatError(f"{where}: {column}={value!r} is not an integer")
    return int(value)


def as_bool(value: Any, column: str, where: str) -> bool:
    value = py_value(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise FormatError(f"{where}: {column}={value!r} is not a boolean")


@dataclass(frozen=True, slots=True)
class NWSArchitecture:
    """The architecture fields of an NWS run; they determine its layout."""

    filter_size: int
    """Conv kernel size (3, 5 or 7)."""
    depth_conv: int
    """Number of conv layers (spread over 3 blocks)."""
    depth_fc: int
    """Number of dense layers before ``fc_final``."""
    width_conv: int
    """Channels of the first block (doubled per block)."""
    width_fc: int
    """Units of the first dense layer (halved per layer)."""
    batch_norm: bool = True
    """Batch normalisation after every layer but ``fc_final``."""

    def __post_init__(self) -> None:
        for name in ARCH_FIELDS[:-1]:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FormatError(f"NWS architecture field {name}={value!r} must be an int >= 1")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str) -> NWSArchitecture:
        """The architecture of a CSV row or metadata record (``where`` names it in errors)."""
        missing = [f for f in ARCH_FIELDS if py_value(values.get(f)) is None]
        if missing:
            raise FormatError(f"{where}: no value for {listing(missing)}")
        ints = {f: as_int(values[f], f, where) for f in ARCH_FIELDS[:-1]}
        return cls(**ints, batch_norm=as_bool(values["batch_norm"], "batch_norm", where))

    @property
    def name(self) -> str:
        """Architecture-group name, e.g. ``nws-f5-c3x8-d2x128-bn1``."""
        return (
            f"nws-f{self.filter_size}-c{self.depth_conv}x{self.width_conv}-"
            f"d{self.depth_fc}x{self.width_fc}-bn{int(self.batch_norm)}"
        )

    def conv_blocks(self) -> list[int]:
        """Conv layers per block, as ``model.deepnn`` builds them."""
        blockc = [self.depth_conv // BLOCKS] * BLOCKS
        for c in range(BLOCKS - 1, 0, -1):
            if sum(blockc) < self.depth_conv:
                blockc[c] += 1
        return [1 + max(0, b - 1) for b in blockc]

    def tensors(self) -> list[tuple[str, tuple[int, ...], str, bool]]:
        """``(wspace name, torch shape, TensorFlow variable, is conv part)`` in file order."""
        out: list[tuple[str, tuple[int, ...], str, bool]] = []
        k = self.filter_size

        def layer(name: str, weight: tuple[int, ...], width: int, bn: bool, conv: bool) -> None:
            out.append((f"{name}/weight", weight, f"model/{name}_W:0", conv))
            out.append((f"{name}/bias", (width,), f"model/{name}_b:0", conv))
            if bn:
                for p in BN_PARAMS:
                    out.append((f"{name}_bn/{p}", (width,), f"model/{name}_bn/{p}:0", conv))

        channels, size = INPUT_CHANNELS, INPUT_SIZE
        for c, n in enumerate(self.conv_blocks()):
            width = self.width_conv * 2**c
            for b in range(n):
                layer(f"conv{c + 1}{b + 1}", (width, channels, k, k), width, self.batch_norm, True)
                channels = width
            size = math.ceil(size / 2)  # max-pool 2x2, stride 2, SAME
        features = size * size * channels
        for c in range(self.depth_fc):
            width = int(self.width_fc * 2.0**-c)
            if width < 1:
                raise FormatError(f"NWS architecture {self.name}: dense layer {c + 1} has no units")
            layer(f"fc{c + 1}", (width, features), width, self.batch_norm, False)
            features = width
        layer("fc_final", (OUTPUTS, features), OUTPUTS, False, False)
        return out

    def layout(self) -> Layout:
        """The torch-convention layout of a snapshot vector."""
        tensors = [
            {"name": n, "shape": list(s), "source_name": src} for n, s, src, _ in self.tensors()
        ]
        return Layout.from_dict({"name": self.name, "tensors": tensors})

    def weight_counts(self) -> tuple[int, int]:
        """``(weightn_conv, weightn_fc)``: values of the conv and dense parts."""
        conv = sum(math.prod(s) for _, s, _, is_conv in self.tensors() if is_conv)
        total = sum(math.prod(s) for _, s, _, _ in self.tensors())
        return conv, total - conv


def nws_layout(
    filter_size: int = 5,
    depth_conv: int = 3,
    depth_fc: int = 2,
    width_conv: int = 8,
    width_fc: int = 128,
    batch_norm: bool = True,
) -> Layout:
    """The layout of an NWS network (defaults: the ``nws_fixed`` architecture).

    Examples
    --------
    >>> lay = nws_layout(filter_size=3, depth_conv=3, depth_fc=2, width_conv=4, width_fc=64)
    >>> lay.size, lay["fc1/weight"].shape, lay["fc_final/weight"].shape
    (21260, (64, 256), (20, 32))
    """
    return NWSArchitecture(
        filter_size, depth_conv, depth_fc, width_conv, width_fc, batch_norm
    ).layout()
