"""Small real networks, real inputs (scikit-learn's digits) and zoos of them, for the
weight-space tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

import wspace
from wspace.architectures import lenet5, register
from wspace.layout import Layout


def mlp() -> nn.Module:
    """A 64-32-16-10 MLP for 8x8 digits."""
    net = nn.Sequential(
        nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10)
    )
    net.wspace_architecture = "ws-mlp"  # type: ignore[assignment]
    return net


def cnn_bn(flatten: bool = True) -> nn.Module:
    """A conv-BN-ReLU-pool CNN on 3x32x32 inputs with a flatten into a dense layer."""
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(4),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 10),
    )  # fmt: skip
    net.wspace_architecture = "ws-cnn-bn"  # type: ignore[assignment]
    if flatten:
        net.wspace_flatten_inputs = {"9": (6, 4, 4)}  # type: ignore[assignment]
    with torch.no_grad():  # non-trivial running statistics, so that BN matters
        for bn in (net[1], net[5]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return net.eval()


register("ws-mlp", mlp)
register("ws-cnn-bn", cnn_bn)


def digits(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` digit images ``(n, 64)`` in [0, 1] and their labels."""
    data = load_digits()
    return (
        torch.tensor(data.data[:n] / 16.0, dtype=torch.float32),
        torch.tensor(data.target[:n], dtype=torch.long),
    )


def digit_images(n: int = 64) -> torch.Tensor:
    """``n`` digits as LeNet-5 inputs ``(n, 3, 32, 32)`` (each pixel made 4x4, 3 channels)."""
    flat, _ = digits(n)
    big = np.kron(flat.numpy().reshape(n, 8, 8), np.ones((4, 4), dtype=np.float32))
    return torch.from_numpy(np.repeat(big[:, None], 3, axis=1).copy())


def train_mlp(net: nn.Module, seed: int = 0, steps: int = 30) -> nn.Module:
    """A few Adam steps on the digits: weights that are trained, not random."""
    torch.manual_seed(seed)
    x, y = digits(512)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net.eval()


def make_zoo(
    url: str,
    factory: Callable[[], nn.Module],
    n: int,
    *,
    steps: Sequence[int] | None = None,
    train: Callable[[nn.Module, int], nn.Module] | None = None,
) -> str:
    """A store of ``n`` networks from ``factory`` (each trained with ``train(net, seed)``)."""
    torch.manual_seed(0)
    layout = Layout.from_torch(factory())
    wspace.create(url, layout)
    with wspace.writer(url) as w:
        for i in range(n):
            torch.manual_seed(i)
            net = factory()
            for step in steps or [None]:
                if train is not None:
                    net = train(net, i)
                meta: dict[str, Any] = {"cls": "ab"[i % 2], "seed": i}
                if step is not None:
                    meta["step"] = step
                w.append(layout.flatten(net), model=f"net_{i}", **meta)
    return url


def lenet_zoo(url: str, n: int) -> str:
    """A store of ``n`` randomly initialised torch LeNet-5s (each its own seed)."""
    return make_zoo(url, lenet5, n)
