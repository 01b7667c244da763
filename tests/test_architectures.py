"""LeNet-5 of FORMATS.md §1 and the architecture registry."""

from __future__ import annotations

import pytest
import torch

import wspace
from wspace.architectures import LeNet5, build, lenet5, lenet5_layout, register


def test_lenet5_parameter_counts():
    lay = lenet5_layout()
    assert lay.size == 91_481
    assert lay.layers == ("conv2d", "conv2d_1", "conv2d_2", "dense", "dense_1")
    assert [lay.layer_size(layer) for layer in lay.layers] == [456, 2416, 48120, 40404, 85]
    assert lay["dense/weight"].flatten_shape == (120, 2, 2)
    assert lay.architecture == "lenet5" and lay.name == "lenet5"


def test_lenet5_forward_and_seeding():
    x = torch.rand(3, 3, 32, 32)
    out = lenet5(seed=1)(x)
    assert out.shape == (3, 1) and bool(((out > 0) & (out < 1)).all())
    state = torch.random.get_rng_state()
    a, b = lenet5(seed=5), lenet5(seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(lenet5(seed=6).dense.weight, a.dense.weight)


def test_keras_init_is_glorot_uniform_with_zero_bias():
    net = lenet5(init="keras", seed=0)
    assert float(net.dense.bias.detach().abs().max()) == 0.0
    bound = (6 / (480 + 84)) ** 0.5
    assert float(net.dense.weight.detach().abs().max()) <= bound
    assert float(net.dense.weight.detach().abs().max()) > 0.9 * bound


def test_registry():
    assert isinstance(build("lenet5"), LeNet5)
    with pytest.raises(wspace.ArchitectureNotFoundError, match="'nope'.*lenet5"):
        build("nope")
    register("tiny-linear", lambda: torch.nn.Linear(2, 1))
    assert isinstance(build("tiny-linear"), torch.nn.Linear)
