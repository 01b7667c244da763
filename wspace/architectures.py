"""Torch architectures of the reference zoos, and a registry to rebuild them by name.

``Layout.architecture`` names an entry of :data:`ARCHITECTURES`, so that a zoo can rebuild a
runnable module from a stored row (``zoo.module(i)``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ClassVar, Literal, TypeAlias, cast

import torch
from torch import nn

from wspace.errors import ArchitectureNotFoundError, listing
from wspace.layout import Layout

__all__ = [
    "ARCHITECTURES",
    "LENET5_LAYERS",
    "Init",
    "LeNet5",
    "build",
    "lenet5",
    "lenet5_keras_layout",
    "lenet5_layout",
    "register",
]

LENET5_LAYERS: tuple[str, ...] = ("conv2d", "conv2d_1", "conv2d_2", "dense", "dense_1")
"""The LeNet-5 layers that hold weights, in order (Keras' layer names)."""

Init: TypeAlias = Literal["torch", "keras"]
"""Initialisation scheme: torch's layer defaults, or Keras 2's (Glorot-uniform, zero bias)."""


class LeNet5(nn.Module):
    """The LeNet-5 of the hypernetwork zoo (Kurtenbach & Shamir; docs/formats.md), in torch.

    Input ``(N, 3, 32, 32)``, NCHW in [0, 1]; output ``(N, 1)``, the sigmoid probability of the
    positive class. Modules carry the Keras layer names, so ``zoo.layer("dense_1")`` means the
    same layer whichever framework made the zoo. 91,481 parameters: conv2d 456, conv2d_1
    2,416, conv2d_2 48,120, dense 40,404, dense_1 85.

    Parameters
    ----------
    init
        ``"torch"`` (the layers' default init) or ``"keras"`` (Glorot-uniform weights, zero
        biases: Keras 2 defaults).
    generator
        Draw the initial weights from this generator instead of torch's global one.

    Examples
    --------
    >>> net = LeNet5()
    >>> sum(p.numel() for p in net.parameters())
    91481
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 1])
    """

    wspace_architecture: ClassVar[str] = "lenet5"
    """Registry name (:data:`ARCHITECTURES`); also the default layout name."""
    wspace_flatten_inputs: ClassVar[dict[str, tuple[int, ...]]] = {"dense": (120, 2, 2)}
    """``(c, h, w)`` of the feature map that ``dense`` reads through ``flatten``."""

    def __init__(self, init: Init = "torch", generator: torch.Generator | None = None) -> None:
        super().__init__()
        # Built on the meta device: no memory, no draws from the global RNG; reset() draws once.
        self.conv2d = nn.Conv2d(3, 6, 5, padding=2, device="meta")  # Keras padding="same"
        self.average_pooling2d = nn.AvgPool2d(2)
        self.conv2d_1 = nn.Conv2d(6, 16, 5, device="meta")
        self.average_pooling2d_1 = nn.AvgPool2d(2)
        self.conv2d_2 = nn.Conv2d(16, 120, 5, device="meta")
        self.flatten = nn.Flatten()
        self.dense = nn.Linear(480, 84, device="meta")
        self.dense_1 = nn.Linear(84, 1, device="meta")
        self.to_empty(device="cpu")
        self.reset(init, generator)

    def reset(self, init: Init = "torch", generator: torch.Generator | None = None) -> None:
        """Re-initialise in place: torch's defaults, or Keras 2's (Glorot-uniform, zero bias).

        torch's defaults (``kaiming_uniform_(a=sqrt(5))`` weights, and biases) are both
        U(±1/sqrt(fan_in)); Keras' Glorot-uniform bound is sqrt(6 / (fan_in + fan_out)).
        """
        if init not in ("torch", "keras"):
            raise ValueError(f"init must be 'torch' or 'keras', not {init!r}")
        layers: tuple[nn.Conv2d | nn.Linear, ...] = (
            self.conv2d, self.conv2d_1, self.conv2d_2, self.dense, self.dense_1,
        )  # fmt: skip
        with torch.no_grad():
            for module in layers:
                weight, bias = module.weight, cast(torch.Tensor, module.bias)
                receptive = weight[0, 0].numel()
                fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
                if init == "keras":
                    bound = (6.0 / (fan_in + fan_out)) ** 0.5
                    bias.zero_()
                else:
                    bound = fan_in**-0.5
                    bias.uniform_(-bound, bound, generator=generator)
                weight.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probability of the positive class, ``(N, 1)``, for images ``(N, 3, 32, 32)``."""
        x = self.average_pooling2d(torch.tanh(self.conv2d(x)))
        x = self.average_pooling2d_1(torch.tanh(self.conv2d_1(x)))
        x = self.flatten(torch.tanh(self.conv2d_2(x)))
        return torch.sigmoid(self.dense_1(torch.tanh(self.dense(x))))


def lenet5(*, init: Init = "torch", seed: int | None = None) -> LeNet5:
    """A LeNet-5; with ``seed``, initialised from a private generator.

    The global torch random state is neither used nor changed when ``seed`` is given.

    Examples
    --------
    >>> a, b = lenet5(seed=0), lenet5(seed=0)
    >>> bool(torch.equal(a.dense.weight, b.dense.weight))
    True
    """
    generator = None if seed is None else torch.Generator().manual_seed(int(seed))
    return LeNet5(init=init, generator=generator)


@functools.cache
def lenet5_layout() -> Layout:
    """The torch-convention :class:`~wspace.layout.Layout` of :class:`LeNet5` (cached).

    Examples
    --------
    >>> lenet5_layout()
    Layout('lenet5', architecture='lenet5', 10 tensors, 5 layers, 91481 params)
    """
    return Layout.from_torch(LeNet5(generator=torch.Generator().manual_seed(0)))


@functools.cache
def lenet5_keras_layout() -> Layout:
    """The Keras-convention :class:`~wspace.layout.Layout` of the LeNet-5 zoo (cached).

    The layout of the published Keras files (docs/formats.md): per layer ``kernel`` then
    ``bias`` (the order of Keras' ``weight_names``), kernels ``(kh, kw, in, out)`` and
    ``(in, out)``, source names the HDF5 paths under ``model_weights``, and ``dense/kernel``
    reading the flattened ``(h, w, c) = (2, 2, 120)`` map. Its ``architecture`` is
    ``"lenet5"``, so a zoo of this layout rebuilds a torch :class:`LeNet5` (the kernels are
    converted by :meth:`~wspace.layout.Layout.to_state_dict`).

    Examples
    --------
    >>> lay = lenet5_keras_layout()
    >>> lay
    Layout('lenet5-keras', architecture='lenet5', 10 tensors, 5 layers, 91481 params)
    >>> lay["dense/kernel"].shape, lay["dense/kernel"].flatten_shape
    ((480, 84), (2, 2, 120))
    >>> lay["conv2d/kernel"].source_name
    'conv2d/conv2d/kernel:0'
    """
    torch_layout = lenet5_layout()
    tensors: list[dict[str, object]] = []
    for layer in LENET5_LAYERS:
        weight = torch_layout[f"{layer}/weight"]
        kernel_shape = torch_layout.view(f"{layer}/kernel")[2]
        flat = weight.flatten_shape
        tensors.append(
            {
                "name": f"{layer}/kernel",
                "shape": list(kernel_shape),
                "convention": "keras",
                "source_name": f"{layer}/{layer}/kernel:0",
                "flatten_shape": None if flat is None else [*flat[1:], flat[0]],
            }
        )
        tensors.append(
            {
                "name": f"{layer}/bias",
                "shape": list(torch_layout[f"{layer}/bias"].shape),
                "convention": "keras",
                "source_name": f"{layer}/{layer}/bias:0",
            }
        )
    return Layout.from_dict({"name": "lenet5-keras", "architecture": "lenet5", "tensors": tensors})


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {"lenet5": lenet5}
"""Registry: architecture name (``Layout.architecture``) -> factory of a fresh module."""


def register(name: str, factory: Callable[[], nn.Module]) -> None:
    """Register (or replace) the factory that rebuilds architecture ``name``.

    Examples
    --------
    >>> register("linear-3-1", lambda: torch.nn.Linear(3, 1))
    >>> build("linear-3-1")
    Linear(in_features=3, out_features=1, bias=True)
    >>> del ARCHITECTURES["linear-3-1"]
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"an architecture name must be a non-empty string, not {name!r}")
    if not callable(factory):
        raise TypeError(f"the factory of architecture {name!r} must be callable")
    ARCHITECTURES[name] = factory


def build(name: str) -> nn.Module:
    """A fresh module of the registered architecture ``name``.

    Raises
    ------
    ArchitectureNotFoundError
        ``name`` is not registered; the message lists the registered names.

    Examples
    --------
    >>> type(build("lenet5")).__name__
    'LeNet5'
    """
    try:
        factory = ARCHITECTURES[name]
    except KeyError:
        raise ArchitectureNotFoundError(
            f"no registered architecture {name!r}; known: {listing(ARCHITECTURES)}; add one "
            "with wspace.architectures.register(name, factory)"
        ) from None
    return factory()
