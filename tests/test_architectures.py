"""The LeNet-5 of docs/formats.md and the architecture registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wspace.architectures import (
    ARCHITECTURES,
    LENET5_LAYERS,
    LeNet5,
    build,
    lenet5,
    lenet5_keras_layout,
    lenet5_layout,
    register,
)
from wspace.errors import ArchitectureNotFoundError

SIZES = {"conv2d": 456, "conv2d_1": 2_416, "conv2d_2": 48_120, "dense": 40_404, "dense_1": 85}


def test_lenet5_parameter_counts_and_layout():
    net = LeNet5()
    assert sum(p.numel() for p in net.parameters()) == 91_481
    for layer, size in SIZES.items():
        assert sum(p.numel() for p in getattr(net, layer).parameters()) == size
    lay = lenet5_layout()
    assert lay.size == 91_481
    assert lay.layers == tuple(SIZES)
    assert [lay.layer_size(layer) for layer in lay.layers] == list(SIZES.values())
    assert lay.tensor_names[:2] == ("conv2d/weight", "conv2d/bias")
    assert lay["conv2d/weight"].shape == (6, 3, 5, 5) and lay["dense/weight"].shape == (84, 480)
    assert lay["dense/weight"].flatten_shape == (120, 2, 2)
    assert [t.name for t in lay if t.flatten_shape is not None] == ["dense/weight"]
    assert all(t.convention == "torch" for t in lay)
    assert lay["dense_1/bias"].source_name == "dense_1.bias"
    assert lay.architecture == "lenet5" and lay.name == "lenet5"
    assert lay == lenet5_layout() == type(lay).from_torch(lenet5(seed=9))


def test_lenet5_forward():
    net = lenet5(seed=1).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(x)
    assert out.shape == (3, 1) and out.dtype == torch.float32
    assert bool(((out > 0) & (out < 1)).all())
    assert all(p.device.type == "cpu" and p.is_floating_point() for p in net.parameters())


def test_seeding_is_reproducible_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = lenet5(seed=5), lenet5(seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(lenet5(seed=6).dense.weight, a.dense.weight)
    torch.manual_seed(123)
    c = lenet5()  # unseeded: the global RNG, as torch layers do
    torch.manual_seed(123)
    assert torch.equal(lenet5().conv2d.weight, c.conv2d.weight)
    assert not torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.parametrize("layer", list(SIZES))
def test_torch_init_matches_torch_defaults(layer):
    module = getattr(lenet5(seed=0), layer)
    bound = module.weight[0].numel() ** -0.5  # kaiming_uniform(a=sqrt 5): 1/sqrt(fan_in)
    for tensor in (module.weight, module.bias):
        top = float(tensor.detach().abs().max())
        assert top <= bound and (tensor.numel() < 50 or top > 0.8 * bound)


@pytest.mark.parametrize("layer", list(SIZES))
def test_keras_init_is_glorot_uniform_with_zero_bias(layer):
    module = getattr(lenet5(init="keras", seed=0), layer)
    receptive = module.weight[0, 0].numel()
    fan_in, fan_out = module.weight.shape[1] * receptive, module.weight.shape[0] * receptive
    bound = (6 / (fan_in + fan_out)) ** 0.5
    assert float(module.bias.detach().abs().max()) == 0.0
    top = float(module.weight.detach().abs().max())
    assert top <= bound and (module.weight.numel() < 100 or top > 0.9 * bound)


def test_bad_init_is_refused():
    with pytest.raises(ValueError, match="init must be"):
        LeNet5(init="jax")  # type: ignore[arg-type]


def test_registry(monkeypatch):
    monkeypatch.setattr("wspace.architectures.ARCHITECTURES", dict(ARCHITECTURES))
    from wspace import architectures

    assert isinstance(build("lenet5"), LeNet5)
    assert build("lenet5") is not build("lenet5")
    with pytest.raises(ArchitectureNotFoundError, match="'nope'.*known: 'lenet5'"):
        build("nope")
    with pytest.raises(KeyError):  # also the builtin
        build("nope")
    register("tiny-linear", lambda: torch.nn.Linear(2, 1))
    assert isinstance(build("tiny-linear"), torch.nn.Linear)
    assert "tiny-linear" in architectures.ARCHITECTURES
    with pytest.raises(ValueError, match="non-empty string"):
        register("", lambda: torch.nn.Linear(2, 1))
    with pytest.raises(TypeError, match="callable"):
        register("x", torch.nn.Linear(2, 1).weight)  # type: ignore[arg-type]


def test_lenet5_keras_layout_is_the_keras_view_of_the_torch_one():
    torch_layout, keras = lenet5_layout(), lenet5_keras_layout()
    assert keras.size == torch_layout.size and keras.layers == LENET5_LAYERS
    assert keras.architecture == "lenet5" and keras.name == "lenet5-keras"
    assert all(t.convention == "keras" for t in keras)
    for layer in LENET5_LAYERS:
        assert [t.name for t in keras.layer_tensors(layer)] == [f"{layer}/kernel", f"{layer}/bias"]
        assert keras[f"{layer}/kernel"].shape == torch_layout.view(f"{layer}/kernel")[2]
        assert keras.layer_size(layer) == torch_layout.layer_size(layer)
    assert keras["dense/kernel"].flatten_shape == (2, 2, 120)
    # torch weights -> Keras row -> state_dict gives the same tensors back, exactly
    net = lenet5(seed=3)
    v = torch_layout.flatten(net)
    keras_row = np.empty_like(v)
    for spec in keras:
        stored, index, _ = torch_layout.view(spec.name)
        keras_row[spec.slice()] = v[stored.offset + index]
    state = keras.to_state_dict(keras_row)
    for key, tensor in net.state_dict().items():
        assert torch.equal(state[key], tensor)
