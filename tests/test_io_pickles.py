"""Formats modelwise-pickle and layerwise-pickle: exact structure out, checked structure in."""

from __future__ import annotations

import json
import pickle
import re
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import wspace
from tests.conftest import keras_data_dir
from tests.test_io_keras_h5 import log_snapshot
from wspace.architectures import LENET5_LAYERS, lenet5_keras_layout, lenet5_layout
from wspace.cli import app
from wspace.errors import CorruptDataError, NonFiniteWeightsError, SchemaMismatchError
from wspace.io import export_zoo, import_zoo
from wspace.io.keras_h5 import keras_index
from wspace.io.pickles import (
    h5_paths,
    layerwise_permutation,
    modelwise_permutation,
    read_sidecar,
    sidecar_path,
)
from wspace.testing import assert_rows_equal, tiny_zoo

SIZES = {"conv2d": 456, "conv2d_1": 2_416, "conv2d_2": 48_120, "dense": 40_404, "dense_1": 85}
runner = CliRunner()


def trusted_load(path: Path):
    """Our own exports, read back as the reference code reads them (plain pickle)."""
    with path.open("rb") as f:
        return pickle.load(f)


@pytest.fixture(params=["torch", "keras"])
def zoo(request, tmp_path):
    layout = lenet5_layout() if request.param == "torch" else lenet5_keras_layout()
    return wspace.open(tiny_zoo(str(tmp_path / "z.zarr"), 5, layout=layout))


# -- modelwise ---------------------------------------------------------------------------------
def test_h5_order_is_h5pys_order():
    with h5py.File(keras_data_dir() / "binary_oneVall_church_649_model.h5") as f:
        visited = []
        f["model_weights"].visititems(
            lambda name, obj: visited.append(name) if isinstance(obj, h5py.Dataset) else None
        )
    assert h5_paths() == visited
    assert h5_paths()[:2] == ["conv2d/conv2d/bias:0", "conv2d/conv2d/kernel:0"]


def test_modelwise_structure(zoo, tmp_path):
    [path] = export_zoo(zoo, tmp_path / "out", "modelwise-pickle", progress=False)
    assert re.fullmatch(r"lenet5_onevall_wghts_bymodel_\d{8}_\d{6}\.pkl", path.name)
    data = trusted_load(path)
    assert type(data) is list and len(data) == len(zoo)
    shapes = {t.source_name: t.shape for t in lenet5_keras_layout()}
    perm = modelwise_permutation(zoo.layout)
    for item, name in zip(data, zoo.models["model"], strict=True):
        assert type(item) is dict
        assert list(item) == ["model", "parameters_by_layer", "parameters_flat"]
        assert item["model"] == name
        by_layer, flat = item["parameters_by_layer"], item["parameters_flat"]
        assert list(by_layer) == h5_paths()
        for key, tensor in by_layer.items():
            assert type(tensor) is torch.Tensor and tensor.dtype == torch.float32
            assert tuple(tensor.shape) == shapes[key]
        assert type(flat) is torch.Tensor and flat.dtype == torch.float32
        assert flat.shape == (91_481,)
        row = zoo.sel(model=name).values[0]
        np.testing.assert_array_equal(flat.numpy(), row[perm])
        np.testing.assert_array_equal(
            flat.numpy(), torch.cat([t.reshape(-1) for t in by_layer.values()]).numpy()
        )
        bias = zoo.sel(model=name).tensor("conv2d/bias").values[0]
        np.testing.assert_array_equal(flat[:6].numpy(), bias)  # conv2d's bias comes first
        kernel = zoo.sel(model=name).tensor("conv2d/kernel").values[0]
        np.testing.assert_array_equal(by_layer["conv2d/conv2d/kernel:0"].numpy(), kernel)
    assert sorted(perm) == list(range(91_481))


def test_modelwise_of_real_keras_files_matches_their_datasets(tmp_path):
    url = str(tmp_path / "k.zarr")
    import_zoo("keras-h5", keras_data_dir(), url, progress=False)
    [path] = export_zoo(wspace.open(url), tmp_path, "modelwise-pickle", progress=False)
    for item in trusted_load(path):
        file = keras_data_dir() / f"binary_oneVall_{item['model']}_model.h5"
        with h5py.File(file) as f:
            flat = np.concatenate([f["model_weights"][p][()].ravel() for p in h5_paths()])
            for key, tensor in item["parameters_by_layer"].items():
                np.testing.assert_array_equal(tensor.numpy(), f["model_weights"][key][()])
        np.testing.assert_array_equal(item["parameters_flat"].numpy(), flat)


# -- layerwise ---------------------------------------------------------------------------------
def test_layerwise_structure_and_sidecar(zoo, tmp_path):
    files = export_zoo(zoo, tmp_path / "out", "layerwise-pickle", progress=False)
    path, side = files
    assert re.fullmatch(r"lenet5_onevall_wghts_bylayer_class_\d{8}_\d{6}\.pkl", path.name)
    assert side == sidecar_path(path) and side.name == path.stem + ".models.json"
    data = trusted_load(path)
    assert type(data) is list and [d["class"] for d in data] == ["church", "tench"]
    names, inferred = read_sidecar(side)
    assert not inferred
    assert names == {
        "church": ["church_0", "church_2", "church_4"],
        "tench": ["tench_1", "tench_3"],
    }
    assert json.loads(side.read_text())["pickle"] == path.name
    for item in data:
        assert list(item) == ["class", "parameters"] and list(item["parameters"]) == list(SIZES)
        for layer, rows in item["parameters"].items():
            assert type(rows) is list and len(rows) == len(names[item["class"]])
            for model, array in zip(names[item["class"]], rows, strict=True):
                assert type(array) is np.ndarray and array.dtype == np.float32
                assert array.shape == (SIZES[layer],)
                bias = zoo.sel(model=model).tensor(f"{layer}/bias").values[0]
                kernel = zoo.sel(model=model).tensor(f"{layer}/kernel").values[0]
                np.testing.assert_array_equal(array, np.concatenate([bias, kernel.ravel()]))
                row = zoo.sel(model=model).values[0]
                np.testing.assert_array_equal(array, row[layerwise_permutation(zoo.layout, layer)])


def test_layerwise_without_sidecar_infers_names(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 4)
    path, side = export_zoo(wspace.open(url), tmp_path / "a", "layerwise-pickle", progress=False)
    side.unlink()
    back = str(tmp_path / "b.zarr")
    import_zoo("layerwise-pickle", path, back, progress=False)
    models = wspace.open(back).models
    assert models["model"].tolist() == ["church_0", "church_1", "tench_0", "tench_1"]
    assert models["names_inferred"].tolist() == [True] * 4 and "count" not in models
    # the flag survives a round trip (the sidecar records it)
    again, side2 = export_zoo(wspace.open(back), tmp_path / "c", "layerwise-pickle", progress=False)
    assert read_sidecar(side2)[1] is True
    third = str(tmp_path / "c.zarr")
    import_zoo("layerwise-pickle", again, third, progress=False)
    assert wspace.open(third).models.equals(models)
    assert_rows_equal(wspace.open(third).values, wspace.open(back).values)


# -- round trips -------------------------------------------------------------------------------
model_names = st.lists(
    st.tuples(st.sampled_from(["church", "golf_ball", "tench"]), st.integers(0, 2000)),
    min_size=1,
    max_size=4,
    unique=True,
)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    models=model_names,
    fmt=st.sampled_from(["modelwise-pickle", "layerwise-pickle"]),
    seed=st.integers(0, 2**31),
    torch_layout=st.booleans(),
)
def test_round_trip_import_export_import(tmp_path_factory, models, fmt, seed, torch_layout):
    tmp = tmp_path_factory.mktemp("rt")
    url = str(tmp / "src.zarr")
    wspace.create(url, lenet5_layout() if torch_layout else lenet5_keras_layout())
    rng = np.random.default_rng(seed)
    with wspace.writer(url) as w:
        for cls, count in models:
            w.append(
                rng.standard_normal(91_481, dtype=np.float32),
                model=f"{cls}_{count}",
                cls=cls,
                count=count,
            )
    first = export_zoo(wspace.open(url), tmp / "1", fmt, progress=False)
    a, b = str(tmp / "a.zarr"), str(tmp / "b.zarr")
    import_zoo(fmt, first[0], a, progress=False)
    second = export_zoo(wspace.open(a), tmp / "2", fmt, progress=False)
    import_zoo(fmt, second[0], b, progress=False)
    za, zb = wspace.open(a), wspace.open(b)
    assert za.models.equals(zb.models)
    assert_rows_equal(za.values, zb.values)
    expected = [f"{c}_{n}" for c, n in models]
    if fmt == "layerwise-pickle":  # rows grouped by class, in order of first appearance
        order = list(dict.fromkeys(c for c, _ in models))
        expected = [
            m for cls in order for (c, n), m in zip(models, expected, strict=True) if c == cls
        ]
    assert za.models["model"].tolist() == expected
    assert za.models["cls"].tolist() == [m.rpartition("_")[0] for m in expected]
    source = wspace.open(url)
    index = keras_index(source.layout)
    keras = {t.source_name: t for t in lenet5_keras_layout()}
    for name in expected:
        row, got = source.row(name), za.row(name)
        for path, (i, _) in index.items():
            np.testing.assert_array_equal(got[keras[path].slice()], row[i])
    assert trusted_load(first[0]).__len__() == trusted_load(second[0]).__len__()


# -- bad pickles -------------------------------------------------------------------------------
def _modelwise(tmp_path: Path) -> list[dict]:
    url = tiny_zoo(str(tmp_path / "g.zarr"), 2)
    [path] = export_zoo(wspace.open(url), tmp_path / "g", "modelwise-pickle", progress=False)
    return trusted_load(path)


def _layerwise(tmp_path: Path) -> list[dict]:
    url = tiny_zoo(str(tmp_path / "g.zarr"), 2)
    path, _ = export_zoo(wspace.open(url), tmp_path / "g", "layerwise-pickle", progress=False)
    return trusted_load(path)


def _set(data, key, value):
    data[0][key] = value
    return data


def _by_layer(data, key, value):
    data[0]["parameters_by_layer"][key] = value
    return data


def _drop(container, key):
    del container[key]


BAD_MODELWISE = {
    "not a list": (lambda d: {"models": d}, "holds a list of dicts, not a dict"),
    "missing key": (
        lambda d: [dict(model="a_1", parameters_flat=d[0]["parameters_flat"])],
        "item 0 must be a dict with keys",
    ),
    "model name": (lambda d: _set(d, "model", 7), "item 0 has model 7"),
    "missing path": (
        lambda d: [d[0]] if _drop(d[0]["parameters_by_layer"], "dense/dense/bias:0") is None else d,
        "parameters_by_layer must map the h5 paths",
    ),
    "wrong shape": (
        lambda d: _by_layer(d, "dense/dense/kernel:0", torch.zeros(84, 480)),
        r"dense/dense/kernel:0 has shape \(84, 480\), not \(480, 84\)",
    ),
    "float64": (
        lambda d: _by_layer(d, "conv2d/conv2d/bias:0", torch.zeros(6, dtype=torch.float64)),
        "conv2d/conv2d/bias:0 is a torch.float64 tensor",
    ),
    "a list for a tensor": (
        lambda d: _by_layer(d, "conv2d/conv2d/bias:0", [0.0] * 6),
        "conv2d/conv2d/bias:0 is a list",
    ),
    "duplicate model": (lambda d: [d[0], d[0]], "model\\(s\\) 'church_0' appear twice"),
    "flat disagrees": (
        lambda d: _set(d, "parameters_flat", d[0]["parameters_flat"] + 1),
        "parameters_flat is not the concatenation",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELWISE))
def test_bad_modelwise_raises_naming_file_and_commits_nothing(tmp_path, case):
    make, match = BAD_MODELWISE[case]
    data = make(_modelwise(tmp_path))
    path = tmp_path / "lenet5_onevall_wghts_bymodel_20240101_000000.pkl"
    path.write_bytes(pickle.dumps(data))
    url = tiny_zoo(str(tmp_path / "store.zarr"), 1, classes=["parachute"])
    log = log_snapshot(url)
    with pytest.raises(SchemaMismatchError, match=match) as info:
        import_zoo("modelwise-pickle", path, url, progress=False)
    assert str(path) in str(info.value)
    assert log_snapshot(url) == log


def _layer(data, layer, rows):
    data[0]["parameters"][layer] = rows
    return data


BAD_LAYERWISE = {
    "row counts": (
        lambda d: _layer(d, "dense", d[0]["parameters"]["dense"] * 2),
        "one array per model; got row counts",
    ),
    "row length": (
        lambda d: _layer(d, "dense_1", [np.zeros(84, np.float32)]),
        r"row 0 of 'dense_1' has shape \(84,\), not \(85,\)",
    ),
    "repeated class": (lambda d: [d[0], d[0]], "item 1 has class 'church' \\(empty or repeated\\)"),
    "missing layer": (
        lambda d: [d[0]] if _drop(d[0]["parameters"], "conv2d") is None else d,
        "parameters must map the layers",
    ),
    "tuple item": (lambda d: [tuple(d[0].items())], "item 0 must be a dict.*got a tuple"),
}


@pytest.mark.parametrize("case", sorted(BAD_LAYERWISE))
def test_bad_layerwise_raises_naming_file_and_commits_nothing(tmp_path, case):
    make, match = BAD_LAYERWISE[case]
    data = make(_layerwise(tmp_path))
    path = tmp_path / "lenet5_onevall_wghts_bylayer_class_20240101_000000.pkl"
    path.write_bytes(pickle.dumps(data))
    url = tiny_zoo(str(tmp_path / "store.zarr"), 1, classes=["parachute"])
    log = log_snapshot(url)
    with pytest.raises(SchemaMismatchError, match=match) as info:
        import_zoo("layerwise-pickle", path, url, progress=False)
    assert str(path) in str(info.value)
    assert log_snapshot(url) == log


def test_sidecar_must_agree_with_the_pickle(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 3)
    path, side = export_zoo(wspace.open(url), tmp_path / "a", "layerwise-pickle", progress=False)
    body = json.loads(side.read_text())
    body["classes"][0]["models"].pop()
    side.write_text(json.dumps(body))
    with pytest.raises(
        SchemaMismatchError, match="'church' has 2 rows but its sidecar has 1 names"
    ):
        import_zoo("layerwise-pickle", path, "memory://never-side", progress=False)
    body["classes"].append({"class": "golf_ball", "models": ["golf_ball_1"]})
    body["classes"][0]["models"].append("church_2")
    side.write_text(json.dumps(body))
    with pytest.raises(SchemaMismatchError, match="sidecar names class\\(es\\) 'golf_ball'"):
        import_zoo("layerwise-pickle", path, "memory://never-side", progress=False)
    side.write_text("{}")
    with pytest.raises(SchemaMismatchError, match="not a layerwise-pickle sidecar"):
        import_zoo("layerwise-pickle", path, "memory://never-side", progress=False)
    other = tmp_path / "names.json"
    body["classes"].pop()
    other.write_text(json.dumps(body))
    report = import_zoo(
        "layerwise-pickle", path, "memory://side-option", sidecar=str(other), progress=False
    )
    assert report.models == ["church_0", "church_2", "tench_1"]


def test_truncated_pickle_and_nonfinite_weights(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 2)
    [path] = export_zoo(wspace.open(url), tmp_path / "a", "modelwise-pickle", progress=False)
    cut = tmp_path / "lenet5_onevall_wghts_bymodel_20240101_000001.pkl"
    cut.write_bytes(path.read_bytes()[:200_000])
    with pytest.raises(CorruptDataError, match=f"{re.escape(str(cut))}.*not a readable pickle"):
        import_zoo("modelwise-pickle", cut, "memory://never-cut", progress=False)
    data = trusted_load(path)
    data[1]["parameters_by_layer"]["dense/dense/bias:0"][3] = float("inf")
    flat = torch.cat([t.reshape(-1) for t in data[1]["parameters_by_layer"].values()])
    data[1]["parameters_flat"] = flat
    bad = tmp_path / "lenet5_onevall_wghts_bymodel_20240101_000002.pkl"
    bad.write_bytes(pickle.dumps(data))
    match = f"{re.escape(str(bad))}': model 'tench_1': 1 non-finite value.* dense/dense/bias:0"
    with pytest.raises(NonFiniteWeightsError, match=match):
        import_zoo("modelwise-pickle", bad, str(tmp_path / "never.zarr"), progress=False)
    assert not (tmp_path / "never.zarr").exists()  # nothing, not even church_0, was written
    report = import_zoo(
        "modelwise-pickle", bad, "memory://inf-ok", allow_nonfinite="true", progress=False
    )
    assert report.models == ["church_0", "tench_1"]
    assert np.isinf(wspace.open("memory://inf-ok").values).sum() == 1


def test_export_refuses_snapshots_and_other_layouts(tmp_path):
    url = tiny_zoo(str(tmp_path / "s.zarr"), 2, steps=[1, 2])
    for fmt in ("modelwise-pickle", "layerwise-pickle"):
        with pytest.raises(SchemaMismatchError, match="several rows .*step"):
            export_zoo(wspace.open(url), tmp_path / "x", fmt, progress=False)
        export_zoo(wspace.open(url).sel(step=2), tmp_path / "y", fmt, progress=False)
    small = wspace.Layout.from_dict(
        {"name": "mlp", "tensors": [{"name": "fc/weight", "shape": [2]}]}
    )
    other = tiny_zoo(str(tmp_path / "o.zarr"), 1, layout=small)
    with pytest.raises(SchemaMismatchError, match="not a LeNet-5 layout"):
        export_zoo(wspace.open(other), tmp_path / "x", "modelwise-pickle", progress=False)
    assert not (tmp_path / "x").exists()


def test_a_bad_pickle_in_a_folder_keeps_the_models_of_the_pickles_before_it(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 3)
    folder = tmp_path / "a"
    [good] = export_zoo(wspace.open(url), folder, "modelwise-pickle", progress=False)
    data = trusted_load(good)
    for item in data:
        item["model"] = "late_" + item["model"]
    data[2]["parameters_flat"] = data[2]["parameters_flat"] + 1  # the last model is broken
    bad = folder / "lenet5_onevall_wghts_bymodel_99991231_235959.pkl"  # after `good` by name
    bad.write_bytes(pickle.dumps(data))
    back = str(tmp_path / "b.zarr")
    with pytest.raises(SchemaMismatchError, match=f"{re.escape(str(bad))}.*'late_church_2'"):
        import_zoo("modelwise-pickle", folder, back, convention="torch", progress=False)
    assert wspace.open(back).models["model"].tolist() == ["church_0", "tench_1", "church_2"]
    assert_rows_equal(wspace.open(back).values, wspace.open(url).values)


def test_reimport_skips_committed_models(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 3)
    [path] = export_zoo(wspace.open(url), tmp_path / "a", "modelwise-pickle", progress=False)
    back = str(tmp_path / "b.zarr")
    first = import_zoo("modelwise-pickle", path, back, progress=False)
    again = import_zoo("modelwise-pickle", tmp_path / "a", back, progress=False)  # a folder
    assert first.models == ["church_0", "tench_1", "church_2"] and again.rows == 0
    assert again.skipped == first.models and len(wspace.open(back)) == 3


# -- streaming export --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["modelwise-pickle", "layerwise-pickle"])
def test_export_memory_does_not_grow_with_the_zoo(tmp_path, fmt):
    small = wspace.open(tiny_zoo(f"memory://mem-small-{fmt}", 6, segment_rows=2))
    big = wspace.open(tiny_zoo(f"memory://mem-big-{fmt}", 24, segment_rows=2))
    export_zoo(small, tmp_path / "warm", fmt, progress=False, batch_size=2)  # caches, imports
    peaks = []
    for zoo in (small, big):
        tracemalloc.start()
        files = export_zoo(zoo, tmp_path / str(len(zoo)), fmt, progress=False, batch_size=2)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    grown = (len(big) - len(small)) * 91_481 * 4  # 6.6 MB more weights (x2 on disk if modelwise)
    assert files[0].stat().st_size > grown
    assert peaks[1] - peaks[0] < grown / 4, (peaks, grown)


# -- command line ------------------------------------------------------------------------------
def test_cli_pickles(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 4)
    out = runner.invoke(
        app,
        [
            "export",
            url,
            str(tmp_path / "m"),
            "--format",
            "modelwise-pickle",
            "--where",
            "cls=tench",
        ],
    )
    assert out.exit_code == 0, out.output
    [path] = list((tmp_path / "m").iterdir())
    assert [d["model"] for d in trusted_load(path)] == ["tench_1", "tench_3"]
    out = runner.invoke(app, ["import", "modelwise-pickle", str(path), str(tmp_path / "b.zarr")])
    assert out.exit_code == 0 and "imported 2 row(s)" in out.output, out.output
    out = runner.invoke(
        app,
        [
            "export",
            url,
            str(tmp_path / "l" / "zoo.pkl"),
            "--format",
            "layerwise-pickle",
            "-O",
            "batch_size=3",
        ],
    )
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tmp_path / "l").iterdir()) == ["zoo.models.json", "zoo.pkl"]
    out = runner.invoke(
        app,
        [
            "import",
            "layerwise-pickle",
            str(tmp_path / "l" / "zoo.pkl"),
            str(tmp_path / "c.zarr"),
            "-O",
            "convention=torch",
        ],
    )
    assert out.exit_code == 0, out.output
    back = wspace.open(str(tmp_path / "c.zarr"))
    assert back.layout == lenet5_layout()
    source = wspace.open(url)
    for name in back.models["model"]:
        assert_rows_equal(back.row(name), source.row(name), what=name)
    assert set(LENET5_LAYERS) == set(SIZES)
