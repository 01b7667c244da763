"""Layout: structure, validation, exact flatten/unflatten round trips (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import wspace
from wspace.layout import Layout

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@st.composite
def layouts(draw: st.DrawFn) -> Layout:
    n_layers = draw(st.integers(1, 5))
    tensors = []
    for i in range(n_layers):
        for param in draw(
            st.lists(
                st.sampled_from(["weight", "bias", "gamma"]), min_size=1, max_size=3, unique=True
            )
        ):
            tensors.append({"name": f"l{i}/{param}", "shape": list(draw(shapes))})
    return Layout.from_dict({"name": "h", "tensors": tensors})


@settings(max_examples=60, deadline=None)
@given(data=st.data(), layout=layouts())
def test_flatten_unflatten_round_trip_is_bit_exact(data, layout):
    vector = data.draw(
        arrays(
            np.float32,
            layout.size,
            elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
        )
    )
    tensors = layout.unflatten(vector)
    assert list(tensors) == list(layout.tensor_names)
    for spec in layout:
        assert tensors[spec.name].shape == spec.shape
    back = layout.flatten(tensors)
    assert back.dtype == np.float32
    assert np.array_equal(back.view(np.uint32), vector.view(np.uint32))
    batch = np.stack([vector, vector])
    assert layout.unflatten(batch)[layout.tensors[0].name].shape == (2, *layout.tensors[0].shape)


@settings(max_examples=60, deadline=None)
@given(layout=layouts())
def test_dict_round_trip(layout):
    assert Layout.from_dict(layout.to_dict()) == layout
    sizes = [layout.layer_size(layer) for layer in layout.layers]
    assert sum(sizes) == layout.size
    assert layout.layer_slice(layout.layers[-1]).stop == layout.size


def test_from_torch_state_dict_and_module_agree():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    lay = Layout.from_torch(net)
    assert lay.tensor_names == (
        "0/weight",
        "0/bias",
        "1/weight",
        "1/bias",
        "1/running_mean",
        "1/running_var",
    )  # integer num_batches_tracked skipped
    assert Layout.from_torch(net.state_dict()) == lay
    v = lay.flatten(net)
    assert v.shape == (lay.size,) and lay.size == 18 + 2 + 2 + 2 + 2 + 2
    for key, tensor in lay.to_state_dict(v).items():
        assert torch.equal(tensor, net.state_dict()[key].float())


def small() -> Layout:
    return Layout.from_dict(
        {
            "name": "mlp",
            "tensors": [{"name": "fc/weight", "shape": [4, 3]}, {"name": "fc/bias", "shape": [4]}],
        }
    )


def test_errors_name_what_is_wrong():
    lay = small()
    good = {"fc/weight": np.zeros((4, 3)), "fc/bias": np.zeros(4)}
    with pytest.raises(wspace.SchemaMismatchError, match="missing tensor.*fc/bias"):
        lay.flatten({"fc/weight": np.zeros((4, 3))})
    with pytest.raises(wspace.SchemaMismatchError, match="unexpected tensor.*'x/y'"):
        lay.flatten({**good, "x/y": np.zeros(2)})
    with pytest.raises(wspace.SchemaMismatchError, match=r"fc/weight.*\(4, 3\); got \(3, 4\)"):
        lay.flatten({**good, "fc/weight": np.zeros((3, 4))})
    with pytest.raises(wspace.DTypeError, match="fc/bias.*int64"):
        lay.flatten({**good, "fc/bias": np.zeros(4, dtype=np.int64)})
    with pytest.raises(wspace.DTypeError, match="fc/bias"):
        lay.flatten({**good, "fc/bias": torch.zeros(4, dtype=torch.int32)})
    with pytest.raises(wspace.SchemaMismatchError, match="16 values; got shape"):
        lay.unflatten(np.zeros(15))
    with pytest.raises(wspace.LayerNotFoundError, match="no layer 'fx'.*'fc'"):
        lay.layer_slice("fx")
    with pytest.raises(wspace.TensorNotFoundError, match="fc/weight"):
        lay["fc/nope"]
    with pytest.raises(wspace.SchemaMismatchError, match="contiguous"):
        Layout.from_dict(
            {
                "tensors": [
                    {"name": "a/w", "shape": [1]},
                    {"name": "b/w", "shape": [1]},
                    {"name": "a/b", "shape": [1]},
                ]
            }
        )
    with pytest.raises(wspace.SchemaMismatchError, match="no tensors"):
        Layout.from_dict({"tensors": []})
    with pytest.raises(wspace.SchemaMismatchError, match="repeated"):
        Layout.from_dict(
            {"tensors": [{"name": "a/w", "shape": [1]}, {"name": "a/w", "shape": [1]}]}
        )


def test_float_dtypes_are_cast_to_float32():
    lay = small()
    v = lay.flatten(
        {
            "fc/weight": torch.ones(4, 3, dtype=torch.bfloat16),
            "fc/bias": np.ones(4, dtype=np.float16),
        }
    )
    assert v.dtype == np.float32 and (v == 1).all()


def test_describe_table():
    table = small().describe()
    assert table["tensor"].tolist() == ["fc/weight", "fc/bias"]
    assert table["offset"].tolist() == [0, 12]
