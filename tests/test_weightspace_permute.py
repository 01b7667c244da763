"""Permutations keep every network's function (real inputs) and change its flat vector."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import wspace
from tests.conftest import keras_data_dir
from tests.ws_nets import cnn_bn, digit_images, digits, lenet_zoo, make_zoo, mlp, train_mlp
from wspace.errors import SchemaMismatchError
from wspace.io import import_zoo
from wspace.layout import Layout
from wspace.weightspace.permute import (
    compose_perms,
    identity_perms,
    invert_perms,
    permute_rows,
    random_perms,
)
from wspace.weightspace.symmetry import analyze


def outputs(net: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return net(x).numpy()


def check_same_functions(zoo, x, seeds, atol=1e-5):
    before = [outputs(zoo.module(i), x) for i in range(len(zoo))]
    rows = zoo.values
    for seed in seeds:
        permuted = zoo.permute(seed=seed)
        values = permuted.values
        for i in range(len(zoo)):
            assert not np.array_equal(values[i], rows[i]), (seed, i)
            np.testing.assert_allclose(outputs(permuted.module(i), x), before[i], atol=atol, rtol=0)


def test_lenet5_keeps_its_function_under_many_permutations(tmp_path):
    zoo = wspace.open(lenet_zoo(str(tmp_path / "lenet.zarr"), 3))
    check_same_functions(zoo, digit_images(32), seeds=range(5))


def test_trained_mlp_keeps_its_function(tmp_path):
    zoo = wspace.open(make_zoo(str(tmp_path / "mlp.zarr"), mlp, 3, train=train_mlp))
    x, y = digits(256)
    accuracy = (outputs(zoo.module(0), x).argmax(1) == y.numpy()).mean()
    assert accuracy > 0.5  # trained: the check runs on a network that computes something
    check_same_functions(zoo, x, seeds=range(10))


def test_cnn_with_batch_norm_keeps_its_function(tmp_path):
    zoo = wspace.open(make_zoo(str(tmp_path / "cnn.zarr"), cnn_bn, 2))
    check_same_functions(zoo, digit_images(16), seeds=range(8))


def test_real_keras_lenet5_files_keep_their_predictions(tmp_path):
    url = str(tmp_path / "keras.zarr")
    import_zoo("keras-h5", keras_data_dir(), url, progress=False)
    zoo = wspace.open(url)
    assert zoo.layout.tensors[0].convention == "keras"
    data = keras_data_dir()
    x = torch.from_numpy(np.load(data / "inputs_nhwc.npy")).permute(0, 3, 1, 2)
    expected = json.loads((data / "predictions.json").read_text())["predictions_on_inputs_nhwc"]
    permuted = zoo.permute(seed=3)
    for i, name in enumerate(zoo.models["model"]):
        np.testing.assert_allclose(outputs(permuted.module(i), x)[:, 0], expected[name], atol=1e-5)
        assert not np.array_equal(permuted.row(i), zoo.row(i))
    # a permutation that ignores the channels-last flatten would change the function
    wrong = zoo.layout.symmetry.to_dict()
    for group in wrong["groups"]:
        for ref in group["members"]:
            ref["order"] = "major"
    from wspace.weightspace.symmetry import Symmetry

    bad = permute_rows(
        zoo.layout, zoo.row(0), {"conv2d_2": np.roll(np.arange(120), 1)},
        symmetry=Symmetry.from_dict(wrong),
    )  # fmt: skip
    net = zoo.module(0)
    net.load_state_dict(zoo.layout.to_state_dict(bad))
    assert np.abs(outputs(net.eval(), x)[:, 0] - expected[zoo.models["model"][0]]).max() > 1e-4


def test_permutations_compose_invert_and_check_their_input():
    lay = Layout.from_torch(mlp())
    sym = lay.symmetry
    rows = np.random.default_rng(0).normal(size=(5, lay.size)).astype(np.float32)
    a, b = random_perms(sym, 5, seed=1), random_perms(sym, 5, seed=2)
    once = permute_rows(lay, permute_rows(lay, rows, a), b)
    np.testing.assert_array_equal(once, permute_rows(lay, rows, compose_perms(a, b)))
    np.testing.assert_array_equal(
        permute_rows(lay, permute_rows(lay, rows, a), invert_perms(a)), rows
    )
    np.testing.assert_array_equal(permute_rows(lay, rows, identity_perms(sym, 5)), rows)
    # one permutation for all rows equals the same permutation given per row
    one = {"0": a["0"][0]}
    np.testing.assert_array_equal(
        permute_rows(lay, rows, one), permute_rows(lay, rows, {"0": np.tile(a["0"][0], (5, 1))})
    )
    with pytest.raises(SchemaMismatchError, match=r"no neuron group\(s\) 'nope'"):
        permute_rows(lay, rows, {"nope": np.arange(3)})
    with pytest.raises(SchemaMismatchError, match=r"not a permutation"):
        permute_rows(lay, rows, {"0": np.zeros(32, dtype=int)})
    with pytest.raises(SchemaMismatchError, match=r"permutations for 4 rows, the batch has 5"):
        permute_rows(lay, rows, {"0": a["0"][:4]})


def test_explicit_perms_and_selection_of_a_permuted_zoo(tmp_path):
    zoo = wspace.open(make_zoo(str(tmp_path / "mlp.zarr"), mlp, 4))
    perms = random_perms(zoo.layout.symmetry, 4, seed=0)
    permuted = zoo.permute(perms)
    np.testing.assert_array_equal(permuted.isel([2, 3]).values, permuted.values[2:])
    np.testing.assert_array_equal(
        permuted.row("net_1"),
        permute_rows(zoo.layout, zoo.row(1), {k: v[1] for k, v in perms.items()}),
    )
    assert [meta["model"] for meta, _ in permuted.rows(batch_size=3)] == list(zoo.models["model"])
    # the same seed gives the same permutations; a flatten-order override works on rows too
    np.testing.assert_array_equal(zoo.permute(seed=5).values, zoo.permute(seed=5).values)
    lay = Layout.from_torch(cnn_bn(flatten=False))
    net = cnn_bn(flatten=False)
    sym = analyze(lay, flatten_order={"9": "chw"})
    moved = permute_rows(lay, lay.flatten(net), random_perms(sym, 1, seed=0), symmetry=sym)
    other = cnn_bn(flatten=False)
    other.load_state_dict(lay.to_state_dict(moved))
    x = digit_images(8)
    np.testing.assert_allclose(outputs(other.eval(), x), outputs(net, x), atol=1e-5)
