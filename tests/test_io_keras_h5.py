"""Format keras-h5: real Keras 2 files in, files with Keras' exact structure out, round trips."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
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
from wspace.architectures import LENET5_LAYERS, lenet5, lenet5_keras_layout, lenet5_layout
from wspace.cli import app
from wspace.errors import (
    CorruptDataError,
    DTypeError,
    ModelNotFoundError,
    NonFiniteWeightsError,
    SchemaMismatchError,
    StoreNotFoundError,
)
from wspace.io import export_zoo, import_zoo
from wspace.io.keras_h5 import (
    LAYER_NAMES,
    keras_index,
    model_config,
    parse_file_name,
    read_file,
    training_config,
)
from wspace.store.backend import resolve
from wspace.testing import assert_rows_equal, tiny_zoo

REAL = ("church_649", "golf_ball_1060", "tench_3")
runner = CliRunner()


def real_file(name: str, kind: str = "model") -> Path:
    return keras_data_dir() / f"binary_oneVall_{name}_{kind}.h5"


def inputs_nchw() -> torch.Tensor:
    return torch.from_numpy(np.load(keras_data_dir() / "inputs_nhwc.npy")).permute(0, 3, 1, 2)


def predictions() -> dict[str, list[float]]:
    text = (keras_data_dir() / "predictions.json").read_text()
    return json.loads(text)["predictions_on_inputs_nhwc"]


def log_snapshot(url: str) -> list[tuple[str, bytes | None]]:
    """The commit log, names and contents (empty when there is no store)."""
    backend = resolve(url)
    names = sorted(backend.list_dir("_log"))
    return [(n, backend.read(f"_log/{n}")) for n in names]


def h5_tree(path: Path) -> dict[str, object]:
    """Every group/dataset under a file with its attributes (name, dtype, shape, value)."""
    out: dict[str, object] = {}

    def attrs(obj: h5py.HLObject) -> dict[str, object]:
        result = {}
        for key in obj.attrs:
            aid = obj.attrs.get_id(key)
            value = obj.attrs[key]
            value = value.tolist() if isinstance(value, np.ndarray) else value
            result[key] = (str(aid.dtype), aid.shape, h5py.check_string_dtype(aid.dtype), value)
        return result

    with h5py.File(path, "r") as f:
        out["/"] = attrs(f)

        def visit(name: str, obj: h5py.HLObject) -> None:
            if name.startswith("optimizer_weights"):
                return
            kind = (obj.shape, str(obj.dtype)) if isinstance(obj, h5py.Dataset) else "group"
            out[name] = (kind, attrs(obj))

        f.visititems(visit)
    return out


# -- import of the real files ------------------------------------------------------------------
def test_real_files_import_with_names_and_predict_in_torch(tmp_path):
    url = str(tmp_path / "k.zarr")
    report = import_zoo("keras-h5", keras_data_dir(), url, progress=False)
    assert report.models == list(REAL) and report.rows == 3 and report.archs == ["lenet5-keras"]
    zoo = wspace.open(url)
    assert zoo.layout == lenet5_keras_layout()
    models = zoo.models
    assert models["model"].tolist() == list(REAL)
    assert models["cls"].tolist() == ["church", "golf_ball", "tench"]
    assert models["count"].tolist() == [649, 1060, 3]
    x, expected = inputs_nchw(), predictions()
    for i, name in enumerate(REAL):
        with torch.no_grad():
            got = zoo.module(i)(x).numpy()[:, 0]
        np.testing.assert_allclose(got, expected[name], atol=1e-5, rtol=0)
        with h5py.File(real_file(name)) as f:  # stored exactly as in the file
            for spec in zoo.layout:
                stored = zoo.tensor(spec.name).values[i]
                np.testing.assert_array_equal(stored, f["model_weights"][spec.source_name][()])


def test_weights_only_file_imports_like_the_full_model_file(tmp_path):
    full, only = str(tmp_path / "full.zarr"), str(tmp_path / "only.zarr")
    import_zoo("keras-h5", real_file("church_649"), full, progress=False)
    report = import_zoo("keras-h5", keras_data_dir(), only, pattern="*_weights.h5", progress=False)
    assert report.models == ["church_649"]
    assert_rows_equal(wspace.open(only).values, wspace.open(full).values)


def test_reimport_skips_committed_models(tmp_path):
    url = str(tmp_path / "k.zarr")
    import_zoo("keras-h5", real_file("tench_3"), url, progress=False)
    before = wspace.open(url).values
    report = import_zoo("keras-h5", keras_data_dir(), url, progress=False)
    assert report.skipped == ["tench_3"] and report.models == ["church_649", "golf_ball_1060"]
    zoo = wspace.open(url)
    assert zoo.models["model"].tolist() == ["tench_3", "church_649", "golf_ball_1060"]
    assert_rows_equal(zoo.values[:1], before)
    again = import_zoo("keras-h5", keras_data_dir(), url, progress=False)
    assert again.rows == 0 and sorted(again.skipped) == sorted(REAL)


def test_torch_convention_import_converts_exactly(tmp_path):
    url = str(tmp_path / "t.zarr")
    import_zoo("keras-h5", keras_data_dir(), url, convention="torch", progress=False)
    zoo = wspace.open(url)
    assert zoo.layout == lenet5_layout()
    x, expected = inputs_nchw(), predictions()
    for i, name in enumerate(REAL):
        with torch.no_grad():
            got = zoo.module(i)(x).numpy()[:, 0]
        np.testing.assert_allclose(got, expected[name], atol=1e-5, rtol=0)
    keras = str(tmp_path / "k.zarr")
    import_zoo("keras-h5", keras_data_dir(), keras, progress=False)
    index = keras_index(lenet5_keras_layout())
    for path, (torch_index, _) in keras_index(zoo.layout).items():
        assert_rows_equal(zoo.values[:, torch_index], wspace.open(keras).values[:, index[path][0]])


def test_keras_zoo_state_dict_loads_into_lenet5():
    url = "memory://keras-state-dict"
    import_zoo("keras-h5", real_file("golf_ball_1060"), url, progress=False)
    zoo = wspace.open(url)
    state = zoo.state_dict(0)
    assert list(state) == [f"{layer}.{p}" for layer in LENET5_LAYERS for p in ("weight", "bias")]
    assert [k for k in LAYER_NAMES if k in LENET5_LAYERS] == list(LENET5_LAYERS)
    net = lenet5()
    assert net.load_state_dict(state) is not None
    with h5py.File(real_file("golf_ball_1060")) as f:
        kernel = f["model_weights/conv2d/conv2d/kernel:0"][()]
    np.testing.assert_array_equal(state["conv2d.weight"].numpy(), kernel.transpose(3, 2, 0, 1))


# -- export ------------------------------------------------------------------------------------
def test_export_reproduces_the_keras_file_structure(tmp_path):
    url = str(tmp_path / "k.zarr")
    import_zoo("keras-h5", keras_data_dir(), url, progress=False)
    files = export_zoo(wspace.open(url), tmp_path / "out", "keras-h5", progress=False)
    assert [f.name for f in files] == [f"binary_oneVall_{n}_model.h5" for n in REAL]
    for name, path in zip(REAL, files, strict=True):
        assert h5_tree(path) == h5_tree(real_file(name))  # every attribute, dtype and shape
        with h5py.File(path) as mine, h5py.File(real_file(name)) as real:
            assert mine.attrs["model_config"] == real.attrs["model_config"]  # byte for byte
            assert json.loads(mine.attrs["training_config"]) == training_config()
            for spec in lenet5_keras_layout():
                key = f"model_weights/{spec.source_name}"
                assert mine[key].dtype == np.float32
                np.testing.assert_array_equal(mine[key][()], real[key][()])
    assert json.loads(json.dumps(model_config())) == model_config()


def test_weights_only_export_matches_save_weights_file(tmp_path):
    url = str(tmp_path / "k.zarr")
    import_zoo("keras-h5", real_file("church_649"), url, progress=False)
    [path] = export_zoo(
        wspace.open(url), tmp_path / "w", "keras-h5", weights_only=True, progress=False
    )
    assert h5_tree(path) == h5_tree(real_file("church_649", "weights"))


def test_torch_zoo_exports_the_converted_function(tmp_path):
    """A torch-convention zoo's files hold Keras kernels computing the torch function."""
    url = tiny_zoo(str(tmp_path / "t.zarr"), 3)
    zoo = wspace.open(url)
    files = export_zoo(zoo, tmp_path / "out", "keras-h5", progress=False)
    assert [f.name for f in files] == [
        "binary_oneVall_church_0_model.h5",
        "binary_oneVall_tench_1_model.h5",
        "binary_oneVall_church_2_model.h5",
    ]
    back = str(tmp_path / "k.zarr")
    import_zoo("keras-h5", tmp_path / "out", back, progress=False)
    keras_zoo = wspace.open(back).sel(model=zoo.models["model"].tolist())
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for i, name in enumerate(zoo.models["model"]):
        row = zoo.row(name)
        with h5py.File(tmp_path / "out" / files[i].name) as f:
            for path, (index, shape) in keras_index(zoo.layout).items():
                np.testing.assert_array_equal(
                    f["model_weights"][path][()], row[index].reshape(shape)
                )
            kernel = f["model_weights/dense/dense/kernel:0"][()]
        torch_weight = row[zoo.layout["dense/weight"].slice()].reshape(84, 120, 2, 2)
        np.testing.assert_array_equal(  # the Flatten reorder: rows in (h, w, c) order
            kernel, torch_weight.transpose(0, 2, 3, 1).reshape(84, 480).T
        )
        with torch.no_grad():
            torch.testing.assert_close(
                keras_zoo.module(name)(x), zoo.module(name)(x), atol=1e-6, rtol=0
            )


def test_export_where_selection_and_name_from_model(tmp_path):
    url = str(tmp_path / "m.zarr")
    wspace.create(url, lenet5_layout())
    with wspace.writer(url) as w:  # no cls/count columns: names are parsed
        w.append(np.zeros(91_481, np.float32), model="golf_ball_7")
        w.append(np.ones(91_481, np.float32), model="church_12", cls="church", count=12)
    zoo = wspace.open(url)
    names = [p.name for p in export_zoo(zoo, tmp_path / "a", "keras-h5", progress=False)]
    assert names == ["binary_oneVall_golf_ball_7_model.h5", "binary_oneVall_church_12_model.h5"]
    with wspace.writer(url) as w:
        w.append(np.ones(91_481, np.float32), model="other", cls="church", count=12)
    with pytest.raises(SchemaMismatchError, match="'church_12' and 'other' would both be written"):
        export_zoo(wspace.open(url), tmp_path / "c", "keras-h5", progress=False)
    only = export_zoo(zoo.sel(model="church_12"), tmp_path / "b", "keras-h5", progress=False)
    assert [p.name for p in only] == ["binary_oneVall_church_12_model.h5"]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [only[0].name]


def test_export_refusals(tmp_path):
    url = tiny_zoo(str(tmp_path / "s.zarr"), 2, steps=[1, 2])
    with pytest.raises(SchemaMismatchError, match="several rows .*step"):
        export_zoo(wspace.open(url), tmp_path / "x", "keras-h5", progress=False)
    bad = str(tmp_path / "n.zarr")
    wspace.create(bad, lenet5_layout())
    with wspace.writer(bad) as w:
        w.append(np.zeros(91_481, np.float32), model="mystery")
    with pytest.raises(ModelNotFoundError, match="'mystery'.*no keras-h5 file name"):
        export_zoo(wspace.open(bad), tmp_path / "x", "keras-h5", progress=False)
    # a dense weight without flatten_shape cannot be put in Keras' row order
    layout = lenet5_layout().to_dict()
    for t in layout["tensors"]:
        t["flatten_shape"] = None
    layout["name"] = "noflat"
    plain = tiny_zoo(str(tmp_path / "p.zarr"), 1, layout=wspace.Layout.from_dict(layout))
    with pytest.raises(SchemaMismatchError, match="no flatten_shape"):
        export_zoo(wspace.open(plain), tmp_path / "x", "keras-h5", progress=False)
    small = wspace.Layout.from_dict(
        {"name": "mlp", "tensors": [{"name": "fc/weight", "shape": [2, 3]}]}
    )
    other = tiny_zoo(str(tmp_path / "o.zarr"), 1, layout=small)
    with pytest.raises(SchemaMismatchError, match="not a LeNet-5 layout"):
        export_zoo(wspace.open(other), tmp_path / "x", "keras-h5", progress=False)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


# -- round trips -------------------------------------------------------------------------------
names = st.lists(
    st.tuples(st.from_regex(r"[a-z]{1,5}(_[a-z]{1,4})?", fullmatch=True), st.integers(0, 5000)),
    min_size=1,
    max_size=3,
    unique_by=lambda t: f"{t[0]}_{t[1]}",
)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(models=names, seed=st.integers(0, 2**31), keras_first=st.booleans())
def test_round_trip_import_export_import(tmp_path_factory, models, seed, keras_first):
    tmp = tmp_path_factory.mktemp("rt")
    layout = lenet5_keras_layout() if keras_first else lenet5_layout()
    url = str(tmp / "src.zarr")
    wspace.create(url, layout)
    rng = np.random.default_rng(seed)
    with wspace.writer(url) as w:
        for cls, count in models:
            w.append(
                rng.standard_normal(91_481, dtype=np.float32),
                model=f"{cls}_{count}",
                cls=cls,
                count=count,
            )
    first = tmp / "first"
    export_zoo(wspace.open(url), first, "keras-h5", progress=False)
    a, b = str(tmp / "a.zarr"), str(tmp / "b.zarr")
    import_zoo("keras-h5", first, a, progress=False)
    export_zoo(wspace.open(a), tmp / "second", "keras-h5", progress=False)
    import_zoo("keras-h5", tmp / "second", b, progress=False)
    za, zb = wspace.open(a), wspace.open(b)
    assert za.models.equals(zb.models)
    assert sorted(za.models["model"]) == sorted(f"{c}_{n}" for c, n in models)
    file_order = sorted(za.models["model"], key=lambda m: f"binary_oneVall_{m}_model.h5")
    assert za.models["model"].tolist() == file_order  # files are read in name order
    assert_rows_equal(za.values, zb.values)
    source = wspace.open(url)
    keras = {t.source_name: t for t in lenet5_keras_layout()}
    for name in za.models["model"]:  # same numbers as the source, in Keras form
        row, got = source.row(name), za.row(name)
        for path, (index, _) in keras_index(source.layout).items():
            np.testing.assert_array_equal(got[keras[path].slice()], row[index])
    for folder in (first, tmp / "second"):
        shutil.rmtree(folder)


# -- bad files ---------------------------------------------------------------------------------
def _edit(path: Path, how: str) -> None:
    with h5py.File(path, "a") as f:
        root = f["model_weights"]
        if how == "missing":
            del root["dense_1/dense_1/bias:0"]
        elif how == "extra":
            root["dense_1/dense_1"].create_dataset("gamma:0", data=np.ones(1, np.float32))
        elif how == "shape":
            del root["dense/dense/kernel:0"]
            root["dense/dense"].create_dataset("kernel:0", data=np.ones((84, 480), np.float32))
        elif how == "nan":
            data = root["conv2d_1/conv2d_1/kernel:0"]
            values = data[()]
            values[0, 0, 0, 0] = np.nan
            data[...] = values
        elif how == "float64":
            values = root["conv2d/conv2d/bias:0"][()]
            del root["conv2d/conv2d/bias:0"]
            root["conv2d/conv2d"].create_dataset("bias:0", data=values.astype(np.float64))
        elif how == "weight_names":
            root["dense"].attrs["weight_names"] = [b"dense/kernel:0"]


BAD = {
    "truncated": (CorruptDataError, "not a readable Keras HDF5 file"),
    "garbage": (CorruptDataError, "not a readable Keras HDF5 file"),
    "missing": (SchemaMismatchError, "missing weight.*'dense_1/dense_1/bias:0'"),
    "extra": (SchemaMismatchError, "unexpected dataset.*'dense_1/dense_1/gamma:0'"),
    "shape": (SchemaMismatchError, r"dense/dense/kernel:0 has shape \(84, 480\).*\(480, 84\)"),
    "nan": (NonFiniteWeightsError, "1 non-finite value.*conv2d_1/conv2d_1/kernel:0"),
    "float64": (DTypeError, "conv2d/conv2d/bias:0 is float64"),
    "weight_names": (SchemaMismatchError, "layer 'dense' lists weight_names"),
}


@pytest.mark.parametrize("how", sorted(BAD))
def test_bad_file_raises_naming_it_and_commits_nothing(tmp_path, how):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(real_file("tench_3"), folder / "binary_oneVall_church_1_model.h5")  # good first
    bad = folder / "binary_oneVall_church_2_model.h5"
    if how == "truncated":
        data = real_file("church_649").read_bytes()
        bad.write_bytes(data[: len(data) // 3])
    elif how == "garbage":
        bad.write_bytes(np.random.default_rng(0).bytes(50_000))
    else:
        shutil.copy(real_file("church_649"), bad)
        bad.chmod(0o644)
        _edit(bad, how)
    error, match = BAD[how]
    # a store that exists: its log and rows are unchanged
    url = str(tmp_path / "k.zarr")
    import_zoo("keras-h5", real_file("golf_ball_1060"), url, progress=False)
    log, rows = log_snapshot(url), wspace.open(url).values
    with pytest.raises(error, match=match) as info:
        import_zoo("keras-h5", folder, url, progress=False)
    assert str(bad) in str(info.value)
    if how == "nan":  # found only when the values are read: the complete model before it stays
        zoo = wspace.open(url)
        assert zoo.models["model"].tolist() == ["golf_ball_1060", "church_1"]
        assert_rows_equal(zoo.values[:1], rows)
    else:  # found by the check of every file before anything is written
        assert log_snapshot(url) == log
        assert_rows_equal(wspace.open(url).values, rows)
    # no store: none is created
    fresh = str(tmp_path / "fresh.zarr")
    with pytest.raises(error):
        import_zoo("keras-h5", bad, fresh, progress=False)
    with pytest.raises(StoreNotFoundError):
        wspace.open(fresh)
    if how == "nan":  # asked for, non-finite weights are imported
        report = import_zoo("keras-h5", bad, fresh, allow_nonfinite="true", progress=False)
        assert report.models == ["church_2"]
        assert np.isnan(wspace.open(fresh).values).sum() == 1


def test_read_file_and_names():
    tensors = read_file(real_file("tench_3"))
    assert list(tensors) == [t.source_name for t in lenet5_keras_layout()]
    assert parse_file_name("binary_oneVall_golf_ball_1060_model.h5") == (
        "golf_ball_1060",
        "golf_ball",
        1060,
    )
    assert parse_file_name("/x/binary_oneVall_a_b_c_0_weights.h5") == ("a_b_c_0", "a_b_c", 0)
    with pytest.raises(SchemaMismatchError, match="not a LeNet-5 zoo file name"):
        parse_file_name("church_3.h5")


def test_import_refuses_unparsable_names_and_empty_folders(tmp_path):
    shutil.copy(real_file("tench_3"), tmp_path / "tench.h5")
    with pytest.raises(SchemaMismatchError, match="'tench.h5': not a LeNet-5 zoo file name"):
        import_zoo("keras-h5", tmp_path / "tench.h5", "memory://never", progress=False)
    with pytest.raises(FileNotFoundError, match="no file matches"):
        import_zoo("keras-h5", tmp_path, "memory://never", progress=False)


def test_import_into_s3(spot):
    report = import_zoo(
        "keras-h5", real_file("tench_3"), spot.url, storage_options=spot.options, progress=False
    )
    assert report.models == ["tench_3"]
    zoo = wspace.open(spot.url, storage_options=spot.options)
    with torch.no_grad():
        got = zoo.module("tench_3")(inputs_nchw()).numpy()[:, 0]
    np.testing.assert_allclose(got, predictions()["tench_3"], atol=1e-5, rtol=0)


# -- command line ------------------------------------------------------------------------------
def test_cli_import_and_export_church_3(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(real_file("tench_3"), folder / "binary_oneVall_church_3_model.h5")
    shutil.copy(real_file("church_649"), folder / "binary_oneVall_tench_649_model.h5")
    url = str(tmp_path / "k.zarr")

    out = subprocess.run(  # the real command, as a user runs it
        [sys.executable, "-m", "wspace", "import", "keras-h5", str(folder), url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "imported 2 row(s) of 2 model(s)" in out.stdout
    models = wspace.open(url).models
    church = models[models["model"] == "church_3"].iloc[0]
    assert (church["cls"], church["count"]) == ("church", 3)
    dst = str(tmp_path / "out")
    result = runner.invoke(
        app, ["export", url, dst, "--format", "keras-h5", "--where", "cls=church"]
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["binary_oneVall_church_3_model.h5"]
    assert h5_tree(tmp_path / "out" / "binary_oneVall_church_3_model.h5") == h5_tree(
        real_file("tench_3")
    )
    result = runner.invoke(app, ["import", "keras-h5", str(folder), url, "-O", "commit_every=x"])
    assert result.exit_code == 2 and "commit_every" in result.output
    help_text = runner.invoke(app, ["import", "--help"]).output
    assert "keras-h5" in help_text and "modelwise-pickle" in help_text
