"""Symmetry specs: LeNet-5 (torch and Keras), NWS, from_torch layouts, and clear refusals."""

from __future__ import annotations

import pytest
from torch import nn

from tests.ws_nets import cnn_bn, mlp
from wspace.architectures import lenet5_keras_layout, lenet5_layout
from wspace.errors import SchemaMismatchError
from wspace.io.nws_arch import nws_layout
from wspace.layout import Layout
from wspace.weightspace.symmetry import AxisRef, Symmetry, analyze


def test_lenet5_torch_groups_and_fixed_axes():
    sym = lenet5_layout().symmetry
    assert sym.sizes == {"conv2d": 6, "conv2d_1": 16, "conv2d_2": 120, "dense": 84}
    assert sym.group("conv2d_1").members == (
        AxisRef("conv2d_1/weight", 0),
        AxisRef("conv2d_1/bias", 0),
        AxisRef("conv2d_2/weight", 1),
    )
    # through the flatten: channel c of conv2d_2 is inputs 4c..4c+3 of dense (torch (c, h, w))
    assert sym.group("conv2d_2").members[-1] == AxisRef("dense/weight", 1, 4, "major")
    assert set(sym.fixed) == {
        AxisRef("conv2d/weight", 1),
        AxisRef("dense_1/weight", 0),
        AxisRef("dense_1/bias", 0),
    }
    assert [w.kind for w in sym.layers] == ["conv", "conv", "conv", "dense", "dense"]
    assert Symmetry.from_dict(sym.to_dict()) == sym


def test_lenet5_keras_axes_and_channels_last_flatten():
    sym = lenet5_keras_layout().symmetry
    assert sym.sizes == lenet5_layout().symmetry.sizes
    # Keras kernels are (kh, kw, in, out) and (in, out); the flatten is (h, w, c)
    assert sym.group("conv2d").members[0] == AxisRef("conv2d/kernel", 3)
    assert sym.group("conv2d").members[-1] == AxisRef("conv2d_1/kernel", 2)
    assert sym.group("conv2d_2").members[-1] == AxisRef("dense/kernel", 0, 4, "minor")
    assert sym.group("dense").members[-1] == AxisRef("dense_1/kernel", 0)


def test_nws_layout_with_batch_norm_layers():
    lay = nws_layout(filter_size=3, depth_conv=4, depth_fc=2, width_conv=4, width_fc=16)
    sym = lay.symmetry
    conv = [w.name for w in sym.layers if w.kind == "conv"]
    assert len(conv) == 4 and len(sym.groups) == len(sym.layers) - 1
    last_conv = sym.group(conv[-1])
    # batch-norm tensors move with their channels; NWS reads the 4x4 map in (h, w, c) order
    assert {m.tensor for m in last_conv.members} >= {
        f"{conv[-1]}_bn/{p}" for p in ("beta", "gamma", "moving_mean", "moving_variance")
    }
    assert last_conv.members[-1] == AxisRef("fc1/weight", 1, 16, "minor")


def test_from_torch_mlp_and_cnn_with_batch_norm():
    sym = Layout.from_torch(mlp()).symmetry
    assert sym.sizes == {"0": 32, "2": 16}
    cnn = Layout.from_torch(cnn_bn()).symmetry
    assert cnn.sizes == {"0": 4, "4": 6}
    assert AxisRef("1/running_var", 0) in cnn.group("0").members
    assert cnn.group("4").members[-1] == AxisRef("9/weight", 1, 16, "major")


def test_flatten_without_recorded_order_is_refused_not_guessed():
    lay = Layout.from_torch(cnn_bn(flatten=False))
    with pytest.raises(SchemaMismatchError, match=r"'9'.*flatten order is unknown.*flatten_order"):
        lay.symmetry
    sym = analyze(lay, flatten_order={"9": "chw"})
    assert sym.group("4").members[-1] == AxisRef("9/weight", 1, 16, "major")


@pytest.mark.parametrize(
    ("tensors", "match"),
    [
        ([("a/weight", [4, 3]), ("b/weight", [2, 5])], r"'b'.*takes 5 inputs.*'a'.*gives 4"),
        ([("n/running_mean", [3]), ("a/weight", [4, 3])], r"per-channel layer 'n' comes before"),
        ([("a/weight", [4, 3]), ("a/scale", [4])], r"layer 'a' has tensor\(s\) 'a/scale'"),
        ([("a/weight", [4, 3]), ("n/foo", [4])], r"'n'.*unknown tensor\(s\) 'n/foo'"),
        ([("a/weight", [4, 3]), ("n/beta", [5])], r"'n'.*4 channels\) has sizes \{5\}"),
        ([("a/weight", [4, 3]), ("c/weight", [2, 8, 3, 3])], r"'c' \(conv\) takes 8.*not a seq"),
        ([("a/embedding", [4, 3])], r"neither a weight layer"),
    ],
)
def test_what_cannot_be_analysed_says_so(tensors, match):
    lay = Layout.from_dict(
        {"name": "odd", "tensors": [{"name": n, "shape": s} for n, s in tensors]}
    )
    with pytest.raises(SchemaMismatchError, match=r"layout 'odd': cannot analyse.*" + match):
        lay.symmetry


def test_a_residual_block_whose_shapes_do_not_chain_is_refused():
    class Res(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(8, 16)
            self.skip = nn.Linear(8, 16)
            self.out = nn.Linear(16, 2)

    with pytest.raises(SchemaMismatchError, match=r"'skip'.*takes 8 inputs.*gives 16"):
        Layout.from_torch(Res()).symmetry
