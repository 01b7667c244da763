"""Torch architectures of the reference zoos, and a registry to rebuild them by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

import torch
from torch import nn

from wspace.errors import ArchitectureNotFoundError, listing
from wspace.layout import Layout

__all__ = ["ARCHITECTURES", "LeNet5", "build", "lenet5", "lenet5_layout", "register"]


class LeNet5(nn.Module):
    """The LeNet-5 of the hypernetwork zoo (Kurtenbach & Shamir), in torch.

    Input ``(N, 3, 32, 32)`` in [0, 1]; output ``(N, 1)``, the sigmoid probability of the
    positive class. Modules carry the Keras layer names, so ``zoo.layer("dense_1")`` means the
    same layer whichever framework made the zoo. 91,481 parameters: conv2d 456, conv2d_1
    2,416, conv2d_2 48,120, dense 40,404, dense_1 85.

    Examples
    --------
    >>> net = LeNet5()
    >>> sum(p.numel() for p in net.parameters())
    91481
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 1])
    """

    wspace_architecture: ClassVar[str] = "lenet5"
    # (c, h, w) of the feature map that ``dense`` reads through Flatten
    wspace_flatten_inputs: ClassVar[dict[str, tuple[int, ...]]] = {"dense": (120, 2, 2)}

    def __init__(
        self, init: Literal["torch", "keras"] = "torch", generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.conv2d = nn.Conv2d(3, 6, 5, padding=2)  # Keras padding="same"
        self.average_pooling2d = nn.AvgPool2d(2)
        self.conv2d_1 = nn.Conv2d(6, 16, 5)
        self.average_pooling2d_1 = nn.AvgPool2d(2)
        self.conv2d_2 = nn.Conv2d(16, 120, 5)
        self.flatten = nn.Flatten()
        self.dense = nn.Linear(480, 84)
        self.dense_1 = nn.Linear(84, 1)
        self.reset(init, generator)

    def reset(
        self, init: Literal["torch", "keras"] = "torch", generator: torch.Generator | None = None
    ) -> None:
        """Re-initialise: torch defaults, or Keras 2 defaults (Glorot-uniform, zero bias)."""
        with torch.no_grad():
            modules: tuple[nn.Conv2d | nn.Linear, ...] = (
                self.conv2d,
                self.conv2d_1,
                self.conv2d_2,
                self.dense,
                self.dense_1,
            )
            for module in modules:
                weight, bias = module.weight, module.bias
                assert bias is not None
                if init == "keras":
                    fan_out = weight.shape[0] * weight[0, 0].numel()
                    fan_in = weight.shape[1] * weight[0, 0].numel()
                    bound = (6.0 / (fan_in + fan_out)) ** 0.5
                    bias.zero_()
                else:
                    bound = 1.0 / weight[0].numel() ** 0.5  # torch's kaiming_uniform(a=sqrt 5)
                    bias.copy_(torch.rand(bias.shape, generator=generator) * 2 * bound - bound)
                weight.copy_(torch.rand(weight.shape, generator=generator) * 2 * bound - bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probability of the positive class, ``(N, 1)``."""
        x = self.average_pooling2d(torch.tanh(self.conv2d(x)))
        x = self.average_pooling2d_1(torch.tanh(self.conv2d_1(x)))
        x = self.flatten(torch.tanh(self.conv2d_2(x)))
        return torch.sigmoid(self.dense_1(torch.tanh(self.dense(x))))


def lenet5(*, init: Literal["torch", "keras"] = "torch", seed: int | None = None) -> LeNet5:
    """A LeNet-5, initialised from a private generator when ``seed`` is given.

    The global torch random state is not touched when ``seed`` is given.
    """
    if seed is None:
        return LeNet5(init=init)
    generator = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):  # the layers' own default init draws globally
        return LeNet5(init=init, generator=generator)


def lenet5_layout() -> Layout:
    """The torch-convention :class:`~wspace.layout.Layout` of :class:`LeNet5`."""
    return Layout.from_torch(LeNet5())


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {"lenet5": lenet5}
"""Registry: architecture name (``Layout.architecture``) -> factory of a fresh module."""


def register(name: str, factory: Callable[[], nn.Module]) -> None:
    """Register a factory so that ``zoo.module(i)`` can rebuild zoos of that architecture."""
    ARCHITECTURES[name] = factory


def build(name: str) -> nn.Module:
    """A fresh module of the registered architecture ``name``."""
    try:
        return ARCHITECTURES[name]()
    except KeyError:
        raise ArchitectureNotFoundError(
            f"no registered architecture {name!r}; known: {listing(ARCHITECTURES)}; add one "
            "with wspace.architectures.register(name, factory)"
        ) from None
