"""The CNNs of NWS-style sweeps, in torch, with the NWS variable names and layout.

:class:`NWSNet` is ``deepnn`` of the NWS authors' code as :mod:`wspace.io.nws_arch` describes
it: three conv blocks of ``filter_size`` kernels (SAME padding, a 2x2 max-pool after each
block), ``depth_conv`` conv layers spread over the blocks, ``width_conv * 2**block`` channels,
``depth_fc`` dense layers of ``int(width_fc * 2**-layer)`` units with dropout, and ``fc_final``
with 20 outputs; batch normalisation after every layer but ``fc_final`` when ``batch_norm``.
Its ``state_dict`` has the NWS names and order (``conv11.weight``, ``conv11.bias``,
``conv11_bn.beta``, ``gamma``, ``moving_mean``, ``moving_variance``, ...), so
``Layout.from_torch(net)`` has the tensors of :func:`wspace.io.nws_arch.nws_layout` and a
sweep exports as NWS run folders. The first dense layer reads the 4x4 feature map in
TensorFlow's ``(h, w, c)`` order, as in the published vectors.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wspace.io.nws_arch import NWSArchitecture
from wspace.layout import Layout

__all__ = ["ACTIVATIONS", "INITIALIZATIONS", "NWSNet", "nws_net_layout"]

ACTIVATIONS = ("relu", "elu", "sigmoid", "tanh")
"""Activation names of a sweep (NWS: ReLU, ELU, Sigmoid, TanH)."""
INITIALIZATIONS = ("constant", "random_normal", "glorot_uniform", "glorot_normal")
"""Weight initialisations (NWS: Const, RandNormal, GlorotU, GlorotN); biases start at 0."""
CONSTANT_INIT = 0.01
"""Value of every weight under ``constant`` initialisation."""
NORMAL_STD = 0.05
"""Standard deviation of ``random_normal`` initialisation (Keras' RandomNormal default)."""


class BatchNorm(nn.Module):
    """Batch normalisation with TensorLayer's variable names: ``beta, gamma`` then
    ``moving_mean, moving_variance`` (as NWS vectors hold them)."""

    moving_mean: torch.Tensor
    moving_variance: torch.Tensor

    def __init__(self, width: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(width))
        self.gamma = nn.Parameter(torch.ones(width))
        self.register_buffer("moving_mean", torch.zeros(width))
        self.register_buffer("moving_variance", torch.ones(width))
        self.momentum, self.eps = momentum, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise over every axis but the channels (axis 1)."""
        return F.batch_norm(
            x,
            self.moving_mean,
            self.moving_variance,
            self.gamma,
            self.beta,
            self.training,
            self.momentum,
            self.eps,
        )


class NWSNet(nn.Module):
    """An NWS CNN for ``(N, 3, 32, 32)`` images; ``(N, 20)`` logits.

    Parameters
    ----------
    arch
        The architecture fields (filter size, depths, widths, batch norm).
    activation
        One of :data:`ACTIVATIONS`.
    dropout
        Dropout rate of the dense layers (NWS: 0.5).
    init
        One of :data:`INITIALIZATIONS`.
    generator
        Draws the initial weights (the global generator is not used).

    Examples
    --------
    >>> arch = NWSArchitecture(3, 3, 2, 4, 64, True)
    >>> net = NWSNet(arch, generator=torch.Generator().manual_seed(0))
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 20])
    >>> list(net.state_dict())[:4]
    ['conv11.weight', 'conv11.bias', 'conv11_bn.beta', 'conv11_bn.gamma']
    """

    def __init__(
        self,
        arch: NWSArchitecture,
        *,
        activation: str = "relu",
        dropout: float = 0.5,
        init: str = "glorot_uniform",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, not {activation!r}")
        if init not in INITIALIZATIONS:
            raise ValueError(f"initialization must be one of {INITIALIZATIONS}, not {init!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), not {dropout!r}")
        self.arch, self.activation, self.dropout = arch, activation, dropout
        self.wspace_architecture = arch.name
        self.blocks: list[list[str]] = []
        self.dense: list[str] = []
        shapes = arch.tensors()
        for name, shape, _, _ in shapes:
            layer, _, param = name.partition("/")
            if param == "weight" and len(shape) == 4:
                k = shape[-1]
                self.add_module(layer, nn.Conv2d(shape[1], shape[0], k, padding=k // 2))
                block = int(layer[4]) - 1
                while len(self.blocks) <= block:
                    self.blocks.append([])
                self.blocks[block].append(layer)
            elif param == "weight":
                self.add_module(layer, nn.Linear(shape[1], shape[0]))
                if layer != "fc_final":
                    self.dense.append(layer)
            elif param == "beta":
                self.add_module(layer, BatchNorm(shape[0]))
        self.reset(init, generator)

    def reset(self, init: str, generator: torch.Generator | None = None) -> None:
        """Initialise weights by ``init``, biases and BN to their neutral values."""
        with torch.no_grad():
            for module in self.modules():
                if not isinstance(module, nn.Conv2d | nn.Linear):
                    continue
                weight = module.weight
                receptive = weight[0, 0].numel()
                fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
                if init == "constant":
                    weight.fill_(CONSTANT_INIT)
                elif init == "random_normal":
                    weight.normal_(0.0, NORMAL_STD, generator=generator)
                elif init == "glorot_uniform":
                    bound = math.sqrt(6.0 / (fan_in + fan_out))
                    weight.uniform_(-bound, bound, generator=generator)
                else:
                    weight.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)
                if module.bias is not None:
                    module.bias.zero_()

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation == "relu":
            return F.relu(x)
        if self.activation == "elu":
            return F.elu(x)
        if self.activation == "sigmoid":
            return torch.sigmoid(x)
        return torch.tanh(x)

    def _layer(self, name: str, x: torch.Tensor) -> torch.Tensor:
        x = getattr(self, name)(x)
        if self.arch.batch_norm:
            x = getattr(self, f"{name}_bn")(x)
        return self._act(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 20)`` of images ``(N, 3, 32, 32)``."""
        for block in self.blocks:
            for name in block:
                x = self._layer(name, x)
            x = F.max_pool2d(x, 2, ceil_mode=True)  # TensorFlow's SAME pooling
        x = x.permute(0, 2, 3, 1).flatten(1)  # TensorFlow's (h, w, c) flatten
        for name in self.dense:
            x = F.dropout(self._layer(name, x), self.dropout, self.training)
        out: torch.Tensor = self.get_submodule("fc_final")(x)
        return out

    def extra_repr(self) -> str:
        return f"{self.arch.name}, activation={self.activation}, dropout={self.dropout}"


def nws_net_layout(net: NWSNet | Any) -> Layout:
    """The layout of a sweep network: ``Layout.from_torch`` named by its architecture.

    Examples
    --------
    >>> net = NWSNet(NWSArchitecture(5, 3, 2, 8, 128, True))
    >>> nws_net_layout(net).name
    'nws-f5-c3x8-d2x128-bn1'
    """
    return Layout.from_torch(net, name=net.arch.name)
