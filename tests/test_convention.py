"""Torch <-> Keras views are exact: numpy transposes, a channels-last forward, real Keras files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import keras_data_dir
from wspace.architectures import lenet5, lenet5_layout
from wspace.convention import keras_to_torch_index, torch_to_keras_index
from wspace.errors import SchemaMismatchError
from wspace.layout import Layout, TensorSpec

LAYERS = ("conv2d", "conv2d_1", "conv2d_2", "dense", "dense_1")
dims = st.integers(1, 5)


def spec(shape, convention="torch", flatten_shape=None) -> TensorSpec:
    return TensorSpec(
        "l/w",
        "l",
        tuple(shape),
        0,
        math.prod(shape),
        convention,
        "l.w",
        None if flatten_shape is None else tuple(flatten_shape),
    )


def keras_spec(torch_spec: TensorSpec) -> TensorSpec:
    """The Keras spec of the kernel that ``torch_to_keras_index`` makes of ``torch_spec``."""
    shape = torch_to_keras_index(torch_spec)[1]
    flat = torch_spec.flatten_shape
    return spec(shape, "keras", None if flat is None else (*flat[1:], flat[0]))


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(dims, min_size=2, max_size=5).map(tuple), seed=st.integers(0, 2**32 - 1))
def test_views_are_numpy_transposes(shape, seed):
    w = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    n = len(shape)
    index, keras_shape = torch_to_keras_index(spec(shape))
    expected = w.transpose(*range(2, n), 1, 0)  # (out, in, *sp) -> (*sp, in, out)
    assert keras_shape == expected.shape
    np.testing.assert_array_equal(w.ravel()[index].reshape(keras_shape), expected)
    back, torch_shape = keras_to_torch_index(spec(expected.shape, "keras"))
    assert torch_shape == shape
    np.testing.assert_array_equal(expected.ravel()[back].reshape(shape), w)


@settings(max_examples=60, deadline=None)
@given(out=dims, chw=st.tuples(dims, dims, dims), seed=st.integers(0, 2**32 - 1))
def test_dense_after_flatten_reorders_inputs(out, chw, seed):
    c, h, w = chw
    weight = np.random.default_rng(seed).normal(size=(out, c * h * w))
    torch_spec = spec(weight.shape, flatten_shape=chw)
    index, shape = torch_to_keras_index(torch_spec)
    kernel = weight.ravel()[index].reshape(shape)
    expected = weight.reshape(out, c, h, w).transpose(0, 2, 3, 1).reshape(out, -1).T
    np.testing.assert_array_equal(kernel, expected)
    # the kernel applied to a channels-last flatten = the weight applied to channels-first
    x = np.random.default_rng(seed + 1).normal(size=(c, h, w))
    np.testing.assert_allclose(x.transpose(1, 2, 0).ravel() @ kernel, weight @ x.ravel())
    back, back_shape = keras_to_torch_index(keras_spec(torch_spec))
    assert back_shape == weight.shape
    np.testing.assert_array_equal(kernel.ravel()[back].reshape(back_shape), weight)


def test_compositions_are_identity_on_lenet5():
    lay = lenet5_layout()
    v = lay.flatten(lenet5(seed=2))
    for layer in LAYERS:
        torch_spec = lay[f"{layer}/weight"]
        index, _ = torch_to_keras_index(torch_spec)
        back, back_shape = keras_to_torch_index(keras_spec(torch_spec))
        assert back_shape == torch_spec.shape
        np.testing.assert_array_equal(index[back], np.arange(torch_spec.size))
        np.testing.assert_array_equal(v[torch_spec.offset + index[back]], v[torch_spec.slice()])


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (spec((4,)), "'l/w' of shape \\(4,\\) is not a dense or convolution weight"),
        (spec(()), "not a dense or convolution weight"),
        # duck-typed specs (TensorSpec itself refuses these flatten shapes)
        (SimpleNamespace(name="c/w", shape=(2, 3, 4, 5), flatten_shape=(3,)), "flatten_shape"),
        (SimpleNamespace(name="d/w", shape=(3, 3), flatten_shape=(2, 2)), "flatten_shape"),
    ],
)
def test_refuses_what_has_no_other_form(bad, match):
    for convert in (torch_to_keras_index, keras_to_torch_index):
        with pytest.raises(SchemaMismatchError, match=match):
            convert(bad)


def test_keras_view_of_torch_net_computes_the_same_function():
    """A channels-last forward with Keras kernels from ``view`` equals the torch module."""
    lay = lenet5_layout()
    net = lenet5(seed=4).eval()
    v = lay.flatten(net)

    def kernel(layer: str) -> torch.Tensor:
        spec, index, shape = lay.view(f"{layer}/kernel")
        assert spec.name == f"{layer}/weight"
        return torch.from_numpy(v[spec.offset + index].reshape(shape))

    def bias(layer: str) -> torch.Tensor:
        return torch.from_numpy(v[lay[f"{layer}/bias"].slice()].copy())

    def conv(x: torch.Tensor, layer: str, padding: int) -> torch.Tensor:  # NHWC in and out
        w = kernel(layer).permute(3, 2, 0, 1)  # only to call torch's conv; data stays NHWC
        y = torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), w, bias(layer), padding=padding)
        return y.permute(0, 2, 3, 1)

    def pool(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)

    x = torch.rand(6, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    h = pool(torch.tanh(conv(x, "conv2d", 2)))
    h = pool(torch.tanh(conv(h, "conv2d_1", 0)))
    h = torch.tanh(conv(h, "conv2d_2", 0)).reshape(6, -1)  # Keras Flatten: (h, w, c) order
    assert tuple(kernel("dense").shape) == (480, 84)
    h = torch.tanh(h @ kernel("dense") + bias("dense"))
    out = torch.sigmoid(h @ kernel("dense_1") + bias("dense_1"))
    with torch.no_grad():
        expected = net(x.permute(0, 3, 1, 2))
    assert out.shape == (6, 1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    # without the flatten reordering the function would differ: the test can see the bug
    plain = lay["dense/weight"]
    wrong = v[plain.slice()].reshape(plain.shape).T
    assert not np.allclose(wrong, kernel("dense").numpy())


# -- real Keras 2 files (tests/data/keras-lenet5) ---------------------------------------------
def data_dir() -> Path:
    # no skip: these files are the contract with Keras; a missing folder must fail loudly
    return keras_data_dir()


def keras_layout_and_vector(path: Path) -> tuple[Layout, np.ndarray]:
    """Read a Keras LeNet-5 file with h5py into a Keras-convention layout (test helper)."""
    tensors, values = [], []
    with h5py.File(path, "r") as f:
        root = f.get("model_weights", f)
        for layer in LAYERS:
            for param in ("kernel", "bias"):
                data = np.asarray(root[f"{layer}/{layer}/{param}:0"])
                tensors.append(
                    {
                        "name": f"{layer}/{param}",
                        "shape": list(data.shape),
                        "convention": "keras",
                        "source_name": f"{layer}/{layer}/{param}:0",
                        "flatten_shape": [2, 2, 120]
                        if layer == "dense" and param == "kernel"
                        else None,
                    }
                )
                values.append(data.ravel())
    return Layout.from_dict({"name": "lenet5-keras", "tensors": tensors}), np.concatenate(values)


def torch_from_keras(layout: Layout, vector: np.ndarray) -> torch.nn.Module:
    net = lenet5()
    state = {}
    for layer in LAYERS:
        spec, index, shape = layout.view(f"{layer}/weight")
        state[f"{layer}.weight"] = torch.from_numpy(vector[spec.offset + index].reshape(shape))
        state[f"{layer}.bias"] = torch.from_numpy(vector[layout[f"{layer}/bias"].slice()])
    net.load_state_dict(state)
    return net.eval()


@pytest.mark.parametrize("name", ["church_649", "tench_3", "golf_ball_1060"])
def test_real_keras_files_predict_the_same_in_torch(name):
    data = data_dir()
    layout, vector = keras_layout_and_vector(data / f"binary_oneVall_{name}_model.h5")
    assert layout.size == 91_481 == lenet5_layout().size
    net = torch_from_keras(layout, vector)
    x = torch.from_numpy(np.load(data / "inputs_nhwc.npy")).permute(0, 3, 1, 2)
    expected = json.loads((data / "predictions.json").read_text())["predictions_on_inputs_nhwc"]
    with torch.no_grad():
        got = net(x).numpy()[:, 0]
    np.testing.assert_allclose(got, expected[name], atol=1e-5, rtol=0)
    # and back: the torch net's Keras view is the file's kernel, bit for bit
    lay = lenet5_layout()
    v = lay.flatten(net)
    for layer in LAYERS:
        spec, index, shape = lay.view(f"{layer}/kernel")
        np.testing.assert_array_equal(
            v[spec.offset + index], vector[layout[f"{layer}/kernel"].slice()]
        )
        assert shape == layout[f"{layer}/kernel"].shape


def test_weights_only_file_equals_full_model_file():
    data = data_dir()
    a = keras_layout_and_vector(data / "binary_oneVall_church_649_model.h5")
    b = keras_layout_and_vector(data / "binary_oneVall_church_649_weights.h5")
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
