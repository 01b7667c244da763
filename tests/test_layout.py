"""Layout: structure, validation, exact flatten/unflatten and dict round trips (hypothesis)."""

from __future__ import annotations

import dataclasses
import json
import pickle
from typing import ClassVar

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.workers import SOAK
from wspace.errors import (
    DTypeError,
    LayerNotFoundError,
    SchemaMismatchError,
    TensorNotFoundError,
)
from wspace.layout import Layout, TensorSpec

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)
floats32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


@st.composite
def layouts(draw: st.DrawFn) -> Layout:
    """Random layouts: 1-5 layers of 1-3 tensors, any convention, source names, metadata."""
    tensors = []
    for i in range(draw(st.integers(1, 5))):
        params = draw(
            st.lists(
                st.sampled_from(["weight", "bias", "gamma", "kernel"]),
                min_size=1,
                max_size=3,
                unique=True,
            )
        )
        for param in params:
            entry: dict[str, object] = {"name": f"block.{i}/{param}", "shape": list(draw(shapes))}
            if draw(st.booleans()):
                entry["convention"] = draw(st.sampled_from(["torch", "keras"]))
                entry["source_name"] = f"block.{i}.{param}"
            tensors.append(entry)
    arch = draw(st.none() | st.sampled_from(["lenet5", "mlp"]))
    return Layout.from_dict(
        {"name": draw(st.text(min_size=1)), "architecture": arch, "tensors": tensors}
    )


@settings(max_examples=60, deadline=None)
@given(data=st.data(), layout=layouts())
def test_flatten_unflatten_round_trip_is_bit_exact(data, layout):
    vector = data.draw(arrays(np.float32, layout.size, elements=floats32))
    tensors = layout.unflatten(vector)
    assert list(tensors) == list(layout.tensor_names)
    assert all(tensors[t.name].shape == t.shape for t in layout)
    back = layout.flatten(tensors)
    assert back.dtype == np.float32 and back.shape == (layout.size,)
    assert np.array_equal(back.view(np.uint32), vector.view(np.uint32))  # NaN payloads too
    batch = np.stack([vector, vector[::-1]])
    for spec, part in zip(layout, layout.unflatten(batch).values(), strict=True):
        assert part.shape == (2, *spec.shape)
        np.testing.assert_array_equal(part[1].ravel(), vector[::-1][spec.slice()])


@settings(max_examples=40, deadline=None)
@given(data=st.data(), layout=layouts())
def test_unflatten_flatten_round_trip(data, layout):
    given_tensors = {
        t.name: data.draw(arrays(np.float32, t.shape, elements=floats32)) for t in layout
    }
    back = layout.unflatten(layout.flatten(given_tensors))
    for name, array in given_tensors.items():
        assert np.array_equal(back[name].view(np.uint32), array.view(np.uint32))


@settings(max_examples=60, deadline=None)
@given(layout=layouts())
def test_dict_round_trip_is_exact_and_json(layout):
    data = layout.to_dict()
    assert Layout.from_dict(json.loads(json.dumps(data))) == layout
    assert Layout.from_dict(data).to_dict() == data
    assert hash(Layout.from_dict(data)) == hash(layout)
    assert sum(layout.layer_size(layer) for layer in layout.layers) == layout.size
    for layer in layout.layers:
        specs = layout.layer_tensors(layer)
        assert layout.layer_slice(layer) == slice(specs[0].offset, specs[-1].stop)


def small() -> Layout:
    return Layout.from_dict(
        {
            "name": "mlp",
            "tensors": [
                {"name": "fc/weight", "shape": [4, 3]},
                {"name": "fc/bias", "shape": [4]},
                {"name": "out/weight", "shape": [1, 4]},
            ],
        }
    )


def good() -> dict[str, np.ndarray]:
    return {"fc/weight": np.zeros((4, 3)), "fc/bias": np.zeros(4), "out/weight": np.ones((1, 4))}


def test_structure_and_minimal_dict():
    lay = small()
    assert (lay.size, len(lay), lay.layers) == (20, 3, ("fc", "out"))
    assert lay.tensor_names == ("fc/weight", "fc/bias", "out/weight")
    assert [t.name for t in lay] == list(lay.tensor_names)
    assert "fc/bias" in lay and "fc.bias" not in lay and "fc" not in lay
    spec = lay["fc/bias"]
    assert (spec.layer, spec.offset, spec.size, spec.stop, spec.slice()) == (
        "fc",
        12,
        4,
        16,
        slice(12, 16),
    )
    assert (spec.convention, spec.source_name, spec.flatten_shape) == ("torch", "fc/bias", None)
    assert lay.layer_slice("out") == slice(16, 20) and lay.layer_size("fc") == 16
    assert lay.layer_tensors("fc") == (lay["fc/weight"], lay["fc/bias"])
    assert repr(lay) == "Layout('mlp', 3 tensors, 2 layers, 20 params)"
    assert (lay.name, lay.architecture) == ("mlp", None)
    assert Layout.from_dict({"tensors": [{"name": "a/w", "shape": []}]}).size == 1  # a scalar


def test_value_object_semantics():
    lay = small()
    assert pickle.loads(pickle.dumps(lay)) == lay
    assert pickle.loads(pickle.dumps(lay)).layer_slice("out") == slice(16, 20)
    assert dataclasses.replace(lay, name="other") != lay
    with pytest.raises(dataclasses.FrozenInstanceError):
        lay.name = "x"  # type: ignore[misc]
    spec = TensorSpec("a/w", "a", torch.Size([2, 3]), 0, 6, "torch", "a.w")  # type: ignore[arg-type]
    assert spec.shape == (2, 3) and type(spec.shape[0]) is int
    assert spec == TensorSpec("a/w", "a", (2, 3), 0, 6, "torch", "a.w")


def test_flatten_inputs_and_casts():
    lay = small()
    expected = np.concatenate([v.ravel() for v in good().values()]).astype(np.float32)
    np.testing.assert_array_equal(lay.flatten(good()), expected)
    by_source = {
        "fc/weight": torch.zeros(4, 3, dtype=torch.bfloat16, requires_grad=True),
        "fc/bias": np.zeros(4, dtype=np.float16),
        "out/weight": torch.ones(1, 4, dtype=torch.float64),
    }
    v = lay.flatten(by_source)
    assert v.dtype == np.float32
    np.testing.assert_array_equal(v, expected)


def test_flatten_errors_name_the_tensor():
    lay = small()
    with pytest.raises(SchemaMismatchError, match=r"missing tensor\(s\) 'fc/bias'"):
        lay.flatten({k: v for k, v in good().items() if k != "fc/bias"})
    with pytest.raises(SchemaMismatchError, match=r"unexpected tensor\(s\) 'x/y'.*'fc/weight'"):
        lay.flatten({**good(), "x/y": np.zeros(2)})
    with pytest.raises(SchemaMismatchError, match=r"unexpected.*'n'"):
        lay.flatten({**good(), "n": np.zeros(2, dtype=np.int64)})  # only torch int buffers skip
    with pytest.raises(
        SchemaMismatchError,
        match=r"'fc/weight' must have shape \(4, 3\); got "
        r"\(3, 4\)",
    ):
        lay.flatten({**good(), "fc/weight": np.zeros((3, 4))})
    with pytest.raises(SchemaMismatchError, match=r"'fc/bias' must have shape \(4,\); got \(\)"):
        lay.flatten({**good(), "fc/bias": 0.0})
    linear = Layout.from_torch(torch.nn.Linear(2, 1))
    with pytest.raises(SchemaMismatchError, match="'root/bias' is given twice, as 'bias' and"):
        linear.flatten({"bias": np.zeros(1), "root/bias": np.zeros(1), "weight": np.ones((1, 2))})
    with pytest.raises(SchemaMismatchError, match="takes a mapping"):
        lay.flatten(np.zeros(20))
    for bad in (
        np.zeros(4, dtype=np.int64),
        np.zeros(4, dtype=bool),
        np.zeros(4, dtype=np.complex64),
        np.array([None] * 4),
        torch.zeros(4, dtype=torch.int32),
        torch.zeros(4, dtype=torch.complex64),
    ):
        with pytest.raises(DTypeError, match="'fc/bias' must be floating point"):
            lay.flatten({**good(), "fc/bias": bad})


def test_unflatten_views_and_errors():
    lay = small()
    v = np.arange(20, dtype=np.float32)
    parts = lay.unflatten(v)
    assert all(np.shares_memory(p, v) for p in parts.values())
    np.testing.assert_array_equal(lay.unflatten(torch.arange(20.0))["out/weight"], [v[16:]])
    for bad in (np.zeros(19), np.zeros((2, 19)), np.zeros((2, 2, 20)), np.float32(1)):
        with pytest.raises(SchemaMismatchError, match="needs a vector of 20 values"):
            lay.unflatten(bad)


def test_lookup_errors_list_what_exists():
    lay = small()
    with pytest.raises(LayerNotFoundError, match="no layer 'fx'.*layers: 'fc', 'out'"):
        lay.layer_slice("fx")
    for call in (lay.layer_tensors, lay.layer_size):
        with pytest.raises(KeyError, match="'fc', 'out'"):
            call("nope")
    with pytest.raises(TensorNotFoundError, match="'fc/nope'.*'fc/weight', 'fc/bias'"):
        lay["fc/nope"]
    with pytest.raises(TensorNotFoundError, match="'fc/nope'"):
        lay.view("fc/nope")
    with pytest.raises(TensorNotFoundError, match=r"'fc/weight' of shape \(4,\) has no 'kernel'"):
        Layout.from_dict(
            {"tensors": [{"name": "fc/bias", "shape": [4]}, {"name": "fc/weight", "shape": [4]}]}
        ).view("fc/kernel")


@pytest.mark.parametrize(
    ("tensors", "match"),
    [
        ([], "no tensors"),
        (
            [
                {"name": "a/w", "shape": [1]},
                {"name": "b/w", "shape": [1]},
                {"name": "a/b", "shape": [1]},
            ],
            "'a/b' is separated.*layer 'a'.*contiguous",
        ),
        ([{"name": "a/w", "shape": [1]}, {"name": "a/w", "shape": [1]}], "'a/w' is repeated"),
        (
            [
                {"name": "a/w", "shape": [1], "source_name": "s"},
                {"name": "a/b", "shape": [1], "source_name": "s"},
            ],
            "'a/b' repeats source name 's'",
        ),
        (
            [{"name": "a/w", "shape": [2]}, {"name": "a/b", "shape": [1], "offset": 1}],
            "'a/b' starts at 1.*ends at 2",
        ),
        ([{"name": "a/w", "shape": [2], "offset": 1}], "'a/w' starts at 1"),
        ([{"name": "a/w", "shape": [2, 3], "size": 5}], "'a/w'.*size 5"),
        ([{"name": "w", "shape": [1]}], "'w'.*'<layer>/<param>'"),
        ([{"name": "a/", "shape": [1]}], "'a/'.*'<layer>/<param>'"),
        ([{"name": "a/w", "layer": "b", "shape": [1]}], "'a/w'.*layer 'b'"),
        ([{"name": "a/w", "shape": [-1]}], "'a/w'.*negative"),
        ([{"name": "a/w", "shape": [1], "convention": "jax"}], "'a/w'.*convention 'jax'"),
        (
            [{"name": "a/w", "shape": [3, 8], "flatten_shape": [2, 2, 3]}],
            r"'a/w'.*flatten_shape \(2, 2, 3\)",
        ),
    ],
)
def test_invalid_layouts_name_the_tensor(tensors, match):
    with pytest.raises(SchemaMismatchError, match=match):
        Layout.from_dict({"name": "bad", "tensors": tensors})


@pytest.mark.parametrize("data", [{}, {"tensors": "a/w"}, {"tensors": [{"name": "a/w"}]}, []])
def test_malformed_dicts(data):
    with pytest.raises(SchemaMismatchError, match="'name' and 'shape'|'tensors' list"):
        Layout.from_dict(data)


class Tagged(torch.nn.Module):
    wspace_architecture: ClassVar[str] = "tagged"
    wspace_flatten_inputs: ClassVar[dict[str, tuple[int, ...]]] = {"head": (2, 3, 1)}

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
        self.head = torch.nn.Linear(6, 1)
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))


def test_from_torch_module_and_state_dict():
    net = Tagged()
    lay = Layout.from_torch(net)
    assert lay.tensor_names == (
        "root/scale",
        "body.0/weight",
        "body.0/bias",
        "body.1/weight",
        "body.1/bias",
        "body.1/running_mean",
        "body.1/running_var",
        "head/weight",
        "head/bias",
    )  # integer buffers (num_batches_tracked, steps) skipped
    assert lay.layers == ("root", "body.0", "body.1", "head")
    assert (lay.name, lay.architecture) == ("tagged", "tagged")
    assert lay["body.1/running_var"].source_name == "body.1.running_var"
    assert lay["head/weight"].flatten_shape == (2, 3, 1)
    assert lay["head/bias"].flatten_shape is None
    plain = Layout.from_torch(net.state_dict(), name="tagged", architecture="tagged")
    assert plain == dataclasses.replace(
        lay, tensors=tuple(dataclasses.replace(t, flatten_shape=None) for t in lay)
    )
    assert Layout.from_torch(torch.nn.Linear(2, 2)).name == "default"
    assert Layout.from_torch(net, name="n", architecture="a").name == "n"


def test_from_torch_refuses_bad_input():
    class Wrong(torch.nn.Linear):
        wspace_flatten_inputs: ClassVar[dict[str, tuple[int, ...]]] = {"nowhere": (1, 2, 2)}

    with pytest.raises(SchemaMismatchError, match="'nowhere' without a 'weight'"):
        Layout.from_torch(Wrong(4, 1))
    with pytest.raises(SchemaMismatchError, match="takes a torch module or a state_dict"):
        Layout.from_torch([torch.zeros(2)])


def test_flatten_module_and_to_state_dict_rebuild_it():
    net = Tagged()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_()
    net.body[1].running_mean.uniform_()
    lay = Layout.from_torch(net)
    v = lay.flatten(net)  # the integer buffers are ignored, not "unexpected"
    np.testing.assert_array_equal(v, lay.flatten(net.state_dict()))
    state = lay.to_state_dict(v)
    assert list(state) == [t.source_name for t in lay]
    for key, tensor in state.items():
        assert tensor.dtype == torch.float32 and torch.equal(tensor, net.state_dict()[key])
    v[0] = 123.0
    assert float(state["body.0.weight"].flatten()[0]) != 123.0  # tensors are copies
    other = Tagged()
    other.load_state_dict(state, strict=False)
    x = torch.rand(2, 1, 5, 3)
    other.eval(), net.eval()
    torch.testing.assert_close(other.body(x), net.body(x), atol=0, rtol=0)
    batch = lay.to_state_dict(np.stack([v, v, v]))
    assert batch["head.weight"].shape == (3, 1, 6)


def test_to_state_dict_converts_keras_layouts():
    lay = Layout.from_dict(
        {
            "tensors": [
                {"name": "d/kernel", "shape": [3, 2], "convention": "keras"},
                {"name": "d/bias", "shape": [2], "convention": "keras"},
                {"name": "bn/gamma", "shape": [2], "convention": "keras"},
                {"name": "bn/moving_variance", "shape": [2], "convention": "keras"},
            ]
        }
    )
    v = np.arange(12, dtype=np.float32)
    state = lay.to_state_dict(v)
    assert list(state) == ["d.weight", "d.bias", "bn.weight", "bn.running_var"]
    np.testing.assert_array_equal(state["d.weight"].numpy(), v[:6].reshape(3, 2).T)
    np.testing.assert_array_equal(state["bn.running_var"].numpy(), v[10:])
    batch = lay.to_state_dict(np.stack([v, v + 1]))
    assert batch["d.weight"].shape == (2, 2, 3)
    np.testing.assert_array_equal(batch["d.weight"][1].numpy(), v[:6].reshape(3, 2).T + 1)
    odd = Layout.from_dict(
        {"tensors": [{"name": "d/depthwise_kernel", "shape": [3, 2], "convention": "keras"}]}
    )
    with pytest.raises(SchemaMismatchError, match="'d/depthwise_kernel' has no torch counterpart"):
        odd.to_state_dict(np.zeros(6, dtype=np.float32))


def test_view_of_stored_and_converted_names():
    lay = small()
    v = np.arange(20, dtype=np.float32)
    spec, index, shape = lay.view("fc/bias")
    assert spec is lay["fc/bias"] and shape == (4,)
    np.testing.assert_array_equal(index, np.arange(4))
    spec, index, shape = lay.view("fc/kernel")
    assert spec is lay["fc/weight"] and shape == (3, 4)
    np.testing.assert_array_equal(v[spec.offset + index].reshape(shape), v[:12].reshape(4, 3).T)
    with pytest.raises(TensorNotFoundError):
        lay.view("fc/weight_kernel")
    keras = Layout.from_dict(
        {
            "tensors": [
                {"name": "d/kernel", "shape": [3, 2], "convention": "keras"},
                {"name": "d/bias", "shape": [2], "convention": "keras"},
            ]
        }
    )
    spec, index, shape = keras.view("d/weight")
    assert spec is keras["d/kernel"] and shape == (2, 3)
    np.testing.assert_array_equal(v[index].reshape(shape), v[:6].reshape(3, 2).T)
    with pytest.raises(TensorNotFoundError, match="'d/kernel', 'd/bias'"):
        keras.view("d/gamma")
    with pytest.raises(TensorNotFoundError):  # a Keras layout has no Keras-from-torch kernel
        Layout.from_dict(
            {"tensors": [{"name": "d/weight", "shape": [3, 2], "convention": "keras"}]}
        ).view("d/kernel")


def test_describe_table():
    table = small().describe()
    assert list(table.columns)[:5] == ["tensor", "layer", "shape", "offset", "size"]
    assert table["tensor"].tolist() == ["fc/weight", "fc/bias", "out/weight"]
    assert table["offset"].tolist() == [0, 12, 16]
    assert table["size"].tolist() == [12, 4, 4]
    assert table["shape"].tolist() == ["(4, 3)", "(4,)", "(1, 4)"]


FUZZ_EXAMPLES = 5000 if SOAK else 200

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=8,
)
"""Anything JSON (and a little more: NaN, infinities, huge integers)."""


@st.composite
def mutated_layout_dicts(draw: st.DrawFn) -> object:
    """The dict of a valid layout with 0-3 fields deleted or replaced by anything JSON."""
    data = json.loads(json.dumps(draw(layouts()).to_dict()))
    for _ in range(draw(st.integers(0, 3))):
        tensors = data.get("tensors")
        targets = (
            [data] + [t for t in tensors if isinstance(t, dict) and t]
            if isinstance(tensors, list)
            else [data]
        )
        target = draw(st.sampled_from(targets))
        if not target:
            break
        key = draw(st.sampled_from(sorted(target)))
        if draw(st.booleans()):
            target[key] = draw(json_values)
        else:
            del target[key]
    return data


@st.composite
def random_layout_dicts(draw: st.DrawFn) -> object:
    """Dicts assembled field by field, each field plausible, missing or hostile."""
    return {
        **draw(st.dictionaries(st.text(max_size=5), json_values, max_size=2)),
        "name": draw(mostly(st.text(max_size=6))),
        "architecture": draw(mostly(st.none() | st.text(max_size=6))),
        "tensors": draw(mostly(st.lists(tensor_entries(), max_size=3))),
    }


@st.composite
def mostly(draw: st.DrawFn, good: st.SearchStrategy) -> object:
    """A value of ``good`` 9 times in 10, else anything JSON."""
    # hypothesis favours the first choice (its simplest): good
    choice = draw(st.sampled_from(["good"] * 9 + ["hostile"]))
    return draw(good) if choice == "good" else draw(json_values)


@st.composite
def tensor_entries(draw: st.DrawFn) -> object:
    """Tensor entries of a layout dict, each field valid, missing or hostile."""
    valid = {
        "name": st.sampled_from(["a/w", "a/b", "b/w", "c.d/e/w", "a/w", "b/v", "w", "a/", ""]),
        "shape": st.lists(st.integers(0, 4), max_size=4) | st.lists(st.integers(-1, 9), max_size=2),
        "layer": st.sampled_from(["a", "b", "a.b/c", ""]),
        "offset": st.integers(-3, 40),
        "size": st.integers(-1, 40),
        "convention": st.sampled_from(["torch", "keras", "jax"]),
        "source_name": st.text(max_size=6),
        "flatten_shape": st.none() | st.lists(st.integers(0, 4), max_size=3),
    }
    entry = {}
    for key, good in valid.items():
        # name and shape: mostly good; the rest mostly left to their defaults
        weights = ["good"] * 8 + ["missing", "hostile"]
        if key not in ("name", "shape"):
            weights = ["missing"] * 6 + ["good"] * 2 + ["hostile"] * 2
        choice = draw(st.sampled_from(weights))
        if choice == "good":
            entry[key] = draw(good)
        elif choice == "hostile":
            entry[key] = draw(json_values)
    return (
        entry if draw(st.sampled_from(["entry"] * 9 + ["other"])) == "entry" else draw(json_values)
    )


@pytest.mark.parametrize(
    "data, match",
    [
        ({"tensors": [{"name": "a/w", "shape": ["3"]}]}, "shape '3' is not an integer"),
        ({"tensors": [{"name": "a/w", "shape": None}]}, "shape None is not a list"),
        ({"tensors": [{"name": "a/w", "shape": [True]}]}, "shape True is not an integer"),
        ({"tensors": [{"name": "a/w", "shape": [2], "offset": 0.0}]}, "offset 0.0"),
        ({"tensors": [{"name": 3, "shape": [2]}]}, "name 3 is not a string"),
        ({"tensors": [{"name": "a/w", "shape": [2], "convention": ["torch"]}]}, "convention"),
        ({"tensors": [{"name": "a/w", "shape": [2, 2], "flatten_shape": 2}]}, "flatten_shape"),
        ({"name": None, "tensors": [{"name": "a/w", "shape": [2]}]}, "name must be a string"),
    ],
)
def test_malformed_fields_are_schema_mismatches(data, match):
    with pytest.raises(SchemaMismatchError, match=match):
        Layout.from_dict(data)


def test_from_dict_fuzz_gives_a_layout_or_schema_mismatch(trials):
    """Random and malformed dicts: a valid Layout that round-trips, or SchemaMismatchError."""
    seen = {"examples": 0, "valid": 0}

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None)
    @given(data=mutated_layout_dicts() | random_layout_dicts())
    def check(data):
        seen["examples"] += 1
        try:
            layout = Layout.from_dict(data)
        except SchemaMismatchError:
            return
        seen["valid"] += 1
        again = Layout.from_dict(json.loads(json.dumps(layout.to_dict())))
        assert again == layout and again.to_dict() == layout.to_dict()
        assert layout.size == sum(t.size for t in layout)
        if layout.size <= 100_000:  # and its vectors round-trip through its tensors
            vector = np.random.default_rng(seen["examples"]).standard_normal(layout.size)
            tensors = layout.unflatten(vector.astype(np.float32))
            assert [tensors[t.name].shape for t in layout] == [t.shape for t in layout]
            assert np.array_equal(layout.flatten(tensors), vector.astype(np.float32))

    check()
    assert seen["valid"] > 10  # the strategy reaches valid layouts, not only errors
    trials.add(
        "hostile input: Layout.from_dict fuzz (hypothesis)",
        seen["examples"],
        f"{seen['valid']} valid layouts round-tripped exactly (dict and flatten/unflatten); "
        "every other input raised "
        "SchemaMismatchError, nothing else",
    )
