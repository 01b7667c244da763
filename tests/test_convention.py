"""Torch <-> Keras views are exact: checked against real Keras 2 files and their predictions."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tests.conftest import keras_data_dir
from wspace.architectures import lenet5, lenet5_layout
from wspace.convention import keras_to_torch_index, torch_to_keras_index
from wspace.layout import Layout

DATA = keras_data_dir()
LAYERS = ("conv2d", "conv2d_1", "conv2d_2", "dense", "dense_1")


def keras_layout_and_vector(path: Path) -> tuple[Layout, np.ndarray]:
    """Read a Keras LeNet-5 file with h5py into a Keras-convention layout (test helper)."""
    tensors, values = [], []
    with h5py.File(path, "r") as f:
        root = f.get("model_weights", f)
        for layer in LAYERS:
            for param in ("kernel", "bias"):
                data = np.asarray(root[f"{layer}/{layer}/{param}:0"])
                spec = {
                    "name": f"{layer}/{param}",
                    "shape": list(data.shape),
                    "convention": "keras",
                    "source_name": f"{layer}/{layer}/{param}:0",
                }
                if layer == "dense" and param == "kernel":
                    spec["flatten_shape"] = [2, 2, 120]
                tensors.append(spec)
                values.append(data.ravel())
    return Layout.from_dict({"name": "lenet5-keras", "tensors": tensors}), np.concatenate(values)


def torch_from_keras(layout: Layout, vector: np.ndarray) -> torch.nn.Module:
    net = lenet5()
    state = {}
    for layer in LAYERS:
        spec, index, shape = layout.view(f"{layer}/weight")
        state[f"{layer}.weight"] = torch.from_numpy(vector[spec.offset + index].reshape(shape))
        bias = layout[f"{layer}/bias"]
        state[f"{layer}.bias"] = torch.from_numpy(vector[bias.slice()].copy())
    net.load_state_dict(state)
    return net.eval()


@pytest.mark.parametrize("name", ["church_649", "tench_3", "golf_ball_1060"])
def test_keras_files_predict_the_same_in_torch(name):
    layout, vector = keras_layout_and_vector(DATA / f"binary_oneVall_{name}_model.h5")
    assert layout.size == 91_481
    net = torch_from_keras(layout, vector)
    x = torch.from_numpy(np.load(DATA / "inputs_nhwc.npy")).permute(0, 3, 1, 2)
    expected = json.loads((DATA / "predictions.json").read_text())["predictions_on_inputs_nhwc"]
    got = net(x).detach().numpy()[:, 0]
    np.testing.assert_allclose(got, expected[name], atol=1e-5, rtol=0)


def test_weights_only_file_equals_full_model_file():
    a = keras_layout_and_vector(DATA / "binary_oneVall_church_649_model.h5")[1]
    b = keras_layout_and_vector(DATA / "binary_oneVall_church_649_weights.h5")[1]
    np.testing.assert_array_equal(a, b)


def test_torch_to_keras_to_torch_is_identity():
    lay = lenet5_layout()
    net = lenet5(seed=2)
    v = lay.flatten(net)
    for layer in LAYERS:
        spec = lay[f"{layer}/weight"]
        index, shape = torch_to_keras_index(spec.shape, spec.flatten_shape)
        keras = v[spec.offset + index].reshape(shape)
        kflat = (
            (spec.flatten_shape[1], spec.flatten_shape[2], spec.flatten_shape[0])
            if spec.flatten_shape
            else None
        )
        back_index, back_shape = keras_to_torch_index(shape, kflat)
        assert back_shape == spec.shape
        np.testing.assert_array_equal(keras.ravel()[back_index], v[spec.slice()])


def test_keras_view_of_torch_net_computes_the_same_function():
    """A channels-last forward with Keras kernels equals the torch module's output."""
    lay = lenet5_layout()
    net = lenet5(seed=4).eval()
    v = lay.flatten(net)

    def kernel(layer: str) -> torch.Tensor:
        spec, index, shape = lay.view(f"{layer}/kernel")
        return torch.from_numpy(v[spec.offset + index].reshape(shape))

    def bias(layer: str) -> torch.Tensor:
        return torch.from_numpy(v[lay[f"{layer}/bias"].slice()].copy())

    def conv(x: torch.Tensor, layer: str, padding: int) -> torch.Tensor:  # NHWC in and out
        w = kernel(layer).permute(3, 2, 0, 1)  # only to call torch's conv; data stays NHWC
        y = torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), w, bias(layer), padding=padding)
        return y.permute(0, 2, 3, 1)

    def pool(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)

    x = torch.rand(6, 32, 32, 3)
    h = pool(torch.tanh(conv(x, "conv2d", 2)))
    h = pool(torch.tanh(conv(h, "conv2d_1", 0)))
    h = torch.tanh(conv(h, "conv2d_2", 0)).reshape(6, -1)  # Keras Flatten: (h, w, c) order
    h = torch.tanh(h @ kernel("dense") + bias("dense"))
    out = torch.sigmoid(h @ kernel("dense_1") + bias("dense_1"))
    expected = net(x.permute(0, 3, 1, 2))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
