"""Structured views: exact conventions (torch and real Keras rows), functions computed from the
views, nfn invariance under wspace's permutations, streamed batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nfn.common import network_spec_from_wsfeat
from nfn.layers import HNPLinear, HNPPool, NPLinear, TupleOp

import wspace
from tests.conftest import keras_data_dir
from tests.ws_nets import cnn_bn, digit_images, digits, lenet_zoo, make_zoo, mlp
from wspace.architectures import lenet5_layout
from wspace.errors import SchemaMismatchError
from wspace.io import import_zoo
from wspace.weightspace.views import to_view


@pytest.fixture(scope="module")
def keras_zoo(tmp_path_factory):
    url = str(tmp_path_factory.mktemp("keras") / "k.zarr")
    import_zoo("keras-h5", keras_data_dir(), url, progress=False)
    return wspace.open(url)


def torch_rows(zoo) -> np.ndarray:
    """The zoo's rows as torch LeNet-5 flat vectors (through zoo.module)."""
    return np.stack([lenet5_layout().flatten(zoo.module(i)) for i in range(len(zoo))])


def invariant_nfn(wsfeat) -> torch.nn.Module:
    torch.manual_seed(0)
    spec = network_spec_from_wsfeat(wsfeat)
    return torch.nn.Sequential(
        NPLinear(spec, 1, 4, io_embed=True), TupleOp(torch.nn.ReLU()), HNPLinear(spec, 4, 4),
        TupleOp(torch.nn.ReLU()), HNPPool(spec), torch.nn.Flatten(),
        torch.nn.LazyLinear(1),
    ).eval()  # fmt: skip


def test_nfn_view_of_lenet5_is_torch_convention_with_conv_like_dense(tmp_path):
    zoo = wspace.open(lenet_zoo(str(tmp_path / "l.zarr"), 2))
    feat = zoo.features("nfn")
    net = zoo.module(1)
    assert [tuple(w.shape) for w in feat.weights][-2:] == [(2, 1, 84, 120, 2, 2), (2, 1, 1, 84)]
    torch.testing.assert_close(feat.weights[0][1, 0], net.conv2d.weight, rtol=0, atol=0)
    torch.testing.assert_close(feat.weights[3][1, 0].reshape(84, 480), net.dense.weight)
    torch.testing.assert_close(feat.biases[3][1, 0], net.dense.bias)


def test_keras_rows_give_the_views_of_their_torch_networks(keras_zoo):
    rows, converted = keras_zoo.values, torch_rows(keras_zoo)
    lay = lenet5_layout()
    for view in ("nfn", "dws"):
        a, b = to_view(keras_zoo.layout, rows, view), to_view(lay, converted, view)
        left, right = (a.weights, b.weights) if view == "nfn" else (a[0], b[0])
        for x, y in zip(left, right, strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    a, b = to_view(keras_zoo.layout, rows, "tokens"), to_view(lay, converted, "tokens")
    torch.testing.assert_close(a["tokens"], b["tokens"], rtol=0, atol=0)
    ga, gb = to_view(keras_zoo.layout, rows, "graph"), to_view(lay, converted, "graph")
    torch.testing.assert_close(ga.edge_attr, gb.edge_attr, rtol=0, atol=0)


def test_nfn_invariant_network_ignores_wspace_permutations(tmp_path, keras_zoo):
    for zoo in (wspace.open(lenet_zoo(str(tmp_path / "l.zarr"), 2)), keras_zoo.isel([0, 1])):
        feat = zoo.features("nfn")
        model = invariant_nfn(feat)
        with torch.no_grad():
            before = model(feat)
            for seed in range(2):
                after = model(zoo.permute(seed=seed).features("nfn"))
                torch.testing.assert_close(after, before, rtol=0, atol=1e-4)
            # the test can fail: an input permutation (not a symmetry) changes the output
            moved = feat.weights[0][:, :, :, [2, 0, 1]]
            other = type(feat)((moved, *feat.weights[1:]), feat.biases)
            assert (model(other) - before).abs().max() > 1e-4


def dense_forward(weights, biases, x, acts):
    for w, b, act in zip(weights, biases, acts, strict=True):
        x = act(x @ w + b)
    return x


def test_dws_and_graph_views_compute_the_mlp(tmp_path):
    zoo = wspace.open(make_zoo(str(tmp_path / "m.zarr"), mlp, 2))
    x, _ = digits(16)
    acts = (torch.tanh, torch.relu, lambda t: t)
    weights, biases = zoo.features("dws")
    assert [tuple(w.shape) for w in weights] == [(2, 64, 32, 1), (2, 32, 16, 1), (2, 16, 10, 1)]
    graphs = zoo.features("graph")
    for i in range(2):
        expected = zoo.module(i)(x).detach()
        got = dense_forward([w[i, ..., 0] for w in weights], [b[i, :, 0] for b in biases], x, acts)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
        g = graphs[i]
        assert g.num_nodes == 64 + 32 + 16 + 10 and g.edge_index.shape == (
            2,
            64 * 32 + 32 * 16 + 160,
        )
        # message passing over the graph's edges computes the network
        h = torch.zeros(len(x), g.num_nodes)
        h[:, :64] = x
        for layer, act in enumerate(acts):
            e = g.edge_layer == layer
            src, dst = g.edge_index[:, e]
            out = torch.zeros_like(h).index_add_(1, dst, h[:, src] * g.edge_attr[e, 0])
            nodes = g.node_layer == layer + 1
            h[:, nodes] = act(out[:, nodes] + g.x[nodes, 0])
        torch.testing.assert_close(h[:, -10:], expected, atol=1e-5, rtol=0)


def test_folded_batch_norm_views_compute_the_cnn(tmp_path):
    zoo = wspace.open(make_zoo(str(tmp_path / "c.zarr"), cnn_bn, 2))
    x = digit_images(8)
    feat = zoo.features("nfn")
    assert [tuple(w.shape[2:]) for w in feat.weights] == [(4, 3, 3, 3), (6, 4, 3, 3), (10, 6, 4, 4)]
    for i in range(2):
        w, b = [t[i, 0] for t in feat.weights], [t[i, 0] for t in feat.biases]
        h = F.max_pool2d(F.relu(F.conv2d(x, w[0], b[0], padding=1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, w[1], b[1], padding=1)), 4)
        got = F.conv2d(h, w[2], b[2]).flatten(1)  # the conv-like dense weight on the map
        torch.testing.assert_close(got, zoo.module(i)(x).detach(), atol=1e-4, rtol=0)
    with pytest.raises(SchemaMismatchError, match=r"'0' is followed by a per-channel layer"):
        zoo.features("nfn", norm="error")


def test_tokens_hold_every_value_once_with_positions(tmp_path):
    zoo = wspace.open(make_zoo(str(tmp_path / "c.zarr"), cnn_bn, 2))
    view = zoo.features("tokens", token_size=16)
    tokens, mask, pos = view["tokens"], view["mask"], view["positions"]
    rows = zoo.values
    for i in range(2):
        np.testing.assert_array_equal(np.sort(tokens[i][mask[i]].numpy()), np.sort(rows[i]))
    # conv "0": 4 neurons of 27 weights + bias + 4 batch-norm values = 32 values = 2 tokens each
    assert pos[0, :8, 1].tolist() == [0] * 8 and pos[0, :8, 2].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert pos[0, :, 0].tolist() == list(range(tokens.shape[1]))


def test_batches_in_views_with_permutation_and_normalisation(tmp_path):
    url = lenet_zoo(str(tmp_path / "l.zarr"), 5)
    zoo = wspace.open(url)
    full = zoo.features("nfn")
    model = invariant_nfn(full)
    with torch.no_grad():
        expected = model(full)
        got = torch.cat([model(b.x) for b in zoo.batches(2, view="nfn", augment="permute", seed=0)])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    plain = [b.x for b in zoo.batches(2, view="flat")]
    augmented = list(zoo.batches(2, view="flat", augment="permute", seed=0))
    assert not torch.equal(torch.cat(plain), torch.cat([b.x for b in augmented]))
    assert augmented[0].perms["dense"].shape == (2, 84) and list(augmented[2].meta["model"]) == [
        "net_4"
    ]
    again = list(zoo.batches(2, view="flat", augment="permute", seed=0, shuffle=True))
    again2 = list(zoo.batches(2, view="flat", augment="permute", seed=0, shuffle=True))
    assert all(torch.equal(a.x, b.x) for a, b in zip(again, again2, strict=True))
    normed = torch.cat([b.x for b in zoo.batches(3, view="flat", normalize=True)]).numpy()
    for t in zoo.layout:
        part = normed[:, t.slice()]
        assert abs(part.mean()) < 1e-4 and abs(part.std() - 1) < 1e-3
    sd = next(zoo.batches(5, view="state_dict")).x
    torch.testing.assert_close(sd["dense.weight"][3], zoo.module(3).dense.weight)
    old = next(zoo.batches(2))  # no view: the batches of before
    assert tuple(old.weights.shape) == (2, 91481)
    with pytest.raises(SchemaMismatchError, match=r"no view 'pixels'; views: 'flat'"):
        next(zoo.batches(2, view="pixels"))
