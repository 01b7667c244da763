"""NWS run folders + split CSVs: layout reconstruction, import, byte-exact export, bad input."""

from __future__ import annotations

import csv
import filecmp
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import wspace
from wspace.cli import app
from wspace.errors import FormatError, NonFiniteWeightsError, SourceNotFoundError
from wspace.io import export_zoo, import_zoo
from wspace.io.nws import CSV_COLUMNS, NWSArchitecture, nws_layout, scan, snapshot_epochs
from wspace.testing import assert_rows_equal

TINY = NWSArchitecture(filter_size=3, depth_conv=3, depth_fc=2, width_conv=1, width_fc=8)
OTHER = NWSArchitecture(
    filter_size=3, depth_conv=4, depth_fc=3, width_conv=1, width_fc=8, batch_norm=False
)


# -- a literal port of the reference writer (gabrieleilertsen/nws model.print_all_vars) --------
def tf_variables(arch: NWSArchitecture, rng: np.random.Generator) -> list[np.ndarray]:
    """Random float32 variables in TensorFlow shapes, in creation order."""
    out = []
    for _, shape, _, _ in arch.tensors():
        if len(shape) == 4:  # torch (out, in, kh, kw) -> tf (kh, kw, in, out)
            shape = (shape[2], shape[3], shape[1], shape[0])
        elif len(shape) == 2:  # torch (out, in) -> tf (in, out)
            shape = (shape[1], shape[0])
        out.append(rng.standard_normal(shape).astype(np.float32))
    return out


def reference_flat(variables: list[np.ndarray]) -> np.ndarray:
    arr = []
    for var in variables:
        if var.ndim > 1:
            for i in range(var.shape[-1]):
                if var.ndim > 2:
                    for j in range(var.shape[-2]):
                        arr.append(np.reshape(var[:, :, j, i], var[:, :, j, i].size))
                else:
                    arr.append(var[:, i])
        else:
            arr.append(np.reshape(var, var.size))
    return np.concatenate(arr).astype(np.float64)


def make_run(root: Path, path: str, arch: NWSArchitecture, epochs: int, seed: int) -> list:
    """A run folder as classifier.py leaves it; returns the TF variables of each snapshot."""
    rng = np.random.default_rng(seed)
    folder = root / path
    (folder / "weights").mkdir(parents=True)
    snapshots = []
    for k in range(len(snapshot_epochs(epochs))):
        variables = tf_variables(arch, rng)
        reference_flat(variables).tofile(folder / "weights" / f"{k + 1:03d}.bin")
        snapshots.append(variables)
    errors = np.zeros((epochs, 5))
    errors[:, 0] = np.arange(epochs) * 421
    errors[:, 1:] = rng.uniform(0, 100, (epochs, 4))
    errors.tofile(folder / "error.bin")
    np.array([epochs, epochs * 421, epochs + 0.0023, 812.5]).tofile(folder / "stat.bin")
    (folder / "meta.csv").write_text(
        "dataset,lrate,batch_size\r\nmnist,0.0012,64\r\n", encoding="utf-8"
    )
    return snapshots


def csv_row(arch: NWSArchitecture, path: str, i: int) -> list:
    conv, fc = arch.weight_counts()
    return [
        ["mnist", "cifar10", "svhn"][i % 3],
        0.0002 + i * 0.00137,
        [32, 64, 128, 256][i % 4],
        arch.batch_norm,
        bool(i % 2),
        i % 3,
        i % 4,
        (i + 1) % 4,
        arch.filter_size,
        arch.depth_conv,
        arch.depth_fc,
        arch.width_conv,
        arch.width_fc,
        conv,
        fc,
        path,
    ]


def write_csv(path: Path, rows: list[list], columns: tuple[str, ...] = CSV_COLUMNS) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)


def make_source(root: Path) -> dict:
    """nws_main_train.csv (2 TINY runs, 1 OTHER) and nws_main_test.csv (1 TINY run)."""
    runs = {}
    specs = [("train", "runs/0001", TINY, 22), ("train", "runs/0002", OTHER, 25)]
    specs += [("train", "runs/0003", TINY, 40), ("test", "runs/0004", TINY, 21)]
    tables: dict[str, list] = {"train": [], "test": []}
    for i, (split, path, arch, epochs) in enumerate(specs):
        runs[path] = make_run(root, path, arch, epochs, seed=i)
        tables[split].append(csv_row(arch, path, i))
    for split, rows in tables.items():
        write_csv(root / f"nws_main_{split}.csv", rows)
    return runs


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """The source, and a local store it was imported into (read-only for the tests)."""
    base = tmp_path_factory.mktemp("nws")
    runs = make_source(base / "src")
    url = str(base / "store.zarr")
    import_zoo("nws", base / "src", url, progress=False)
    return base / "src", runs, url


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    make_source(root)
    return root


@pytest.fixture
def copies(imported, tmp_path) -> tuple[Path, str, tuple[list[str], int]]:
    """Copies of the imported source and store, to break and to import into."""
    root, _, url = imported
    shutil.copytree(root, tmp_path / "src")
    shutil.copytree(url, tmp_path / "store.zarr")
    url = str(tmp_path / "store.zarr")
    return tmp_path / "src", url, log_state(url)


def log_state(url: str) -> tuple[list[str], int]:
    log = Path(url) / "_log"
    names = sorted(p.name for p in log.iterdir()) if log.is_dir() else []
    try:
        handle = wspace.store.open_store(url)
        rows = sum(a.n_rows for a in handle.state.archs.values())
    except wspace.StoreNotFoundError:
        rows = 0
    return names, rows


# -- layout --------------------------------------------------------------------------------------
def test_layout_of_the_fixed_architecture():
    lay = nws_layout()  # filter 5, depth [3, 2], width [8, 128]
    assert lay.name == "nws-f5-c3x8-d2x128-bn1"
    assert lay.layers == (
        "conv11",
        "conv11_bn",
        "conv21",
        "conv21_bn",
        "conv31",
        "conv31_bn",
        "fc1",
        "fc1_bn",
        "fc2",
        "fc2_bn",
        "fc_final",
    )
    assert lay["conv21/weight"].shape == (16, 8, 5, 5)
    assert lay["conv31/weight"].shape == (32, 16, 5, 5)
    assert lay["fc1/weight"].shape == (128, 4 * 4 * 32)  # 32x32 input, three 2x2 pools
    assert lay["fc2/weight"].shape == (64, 128)
    assert lay["fc_final/weight"].shape == (20, 64)
    assert [t.name for t in lay.layer_tensors("conv11_bn")] == [
        "conv11_bn/beta",
        "conv11_bn/gamma",
        "conv11_bn/moving_mean",
        "conv11_bn/moving_variance",
    ]
    assert lay["conv11/weight"].source_name == "model/conv11_W:0"
    assert lay["conv11_bn/gamma"].source_name == "model/conv11_bn/gamma:0"
    conv, fc = NWSArchitecture(5, 3, 2, 8, 128).weight_counts()
    assert conv + fc == lay.size
    assert conv == lay.layer_slice("fc1").start


@pytest.mark.parametrize(("depth", "blocks"), [(3, [1, 1, 1]), (4, [1, 1, 2]), (5, [1, 2, 2])])
def test_conv_layers_are_spread_over_blocks_like_deepnn(depth, blocks):
    arch = NWSArchitecture(3, depth, 2, 4, 64)
    assert arch.conv_blocks() == blocks
    convs = [n for n in arch.layout().layers if n.startswith("conv") and "_bn" not in n]
    expected = [f"conv{c + 1}{b + 1}" for c, n in enumerate(blocks) for b in range(n)]
    assert convs == expected


@settings(max_examples=25, deadline=None)
@given(
    filter_size=st.sampled_from([1, 3, 5]),
    depth_conv=st.integers(1, 6),
    depth_fc=st.integers(1, 4),
    width_conv=st.integers(1, 3),
    width_fc=st.sampled_from([8, 16, 24]),
    batch_norm=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_flat_vector_is_the_reference_slice_order(
    filter_size, depth_conv, depth_fc, width_conv, width_fc, batch_norm, seed
):
    arch = NWSArchitecture(filter_size, depth_conv, depth_fc, width_conv, width_fc, batch_norm)
    lay = arch.layout()
    variables = tf_variables(arch, np.random.default_rng(seed))
    flat = reference_flat(variables)
    assert flat.size == lay.size
    for (name, _, _, _), tf_value in zip(arch.tensors(), variables, strict=True):
        spec, index, shape = lay.view(name.replace("/weight", "/kernel"))
        assert shape == tf_value.shape
        np.testing.assert_array_equal(flat[spec.offset + index].reshape(shape), tf_value)


# -- import --------------------------------------------------------------------------------------
def test_import_rows_steps_and_metadata(imported):
    root, runs, url = imported
    zoo = wspace.open(url, arch=TINY.name)
    assert set(wspace.open(url, arch=OTHER.name).models["model"]) == {"runs/0002"}
    assert len(zoo) == 60
    assert list(dict.fromkeys(zoo.models["model"])) == ["runs/0004", "runs/0001", "runs/0003"]
    run = zoo.sel(model="runs/0003")
    models = run.models
    epochs = [round(e) for e in np.linspace(1, 40, 20)]
    assert models["step"].tolist() == snapshot_epochs(40) == epochs
    assert models["snapshot"].tolist() == list(range(1, 21))
    assert set(models["split"]) == {"nws_main_train"}
    errors = np.fromfile(root / "runs/0003/error.bin").reshape(-1, 5)
    np.testing.assert_array_equal(models["test_error"], errors[np.array(epochs) - 1, 3])
    np.testing.assert_array_equal(models["iteration"], errors[np.array(epochs) - 1, 0])
    first = models.iloc[0]
    assert first["dataset"] == "svhn" and first["batch_size"] == 128
    assert bool(first["batch_norm"]) is True and first["augmentation"] == False  # noqa: E712
    assert first["lrate"] == 0.0002 + 2 * 0.00137 and first["epochs"] == 40
    assert np.array_equal(np.asarray(first["error_curve"]), errors)
    assert first["stat"] == [40.0, 40 * 421.0, 40.0023, 812.5]
    assert first["meta_csv"] == "dataset,lrate,batch_size\r\nmnist,0.0012,64\r\n"
    assert models["error_curve"].iloc[1:].isna().all()
    # every tensor is the TensorFlow variable of the snapshot, seen through the torch layout
    values = run.values
    for k in (0, 19):
        for (name, *_), tf_value in zip(TINY.tensors(), runs["runs/0003"][k], strict=True):
            spec, index, shape = zoo.layout.view(name.replace("/weight", "/kernel"))
            np.testing.assert_array_equal(values[k, spec.offset + index].reshape(shape), tf_value)
    assert run.tensor("conv11/weight").shape == (20, 1, 3, 3, 3)


def test_reimport_adds_nothing(imported):
    root, _, url = imported
    before = log_state(url)
    report = import_zoo("nws", root, url, progress=False)
    assert report.rows == 0 and len(report.skipped) == 4
    assert log_state(url) == before


def test_round_trip_is_byte_exact(imported, tmp_path):
    root, _, url = imported
    out = tmp_path / "out"
    first = wspace.open(url, arch=TINY.name)
    files = export_zoo(first, out, "nws", progress=False)
    export_zoo(first.arch(OTHER.name), out, "nws", progress=False)
    assert out / "nws_main_train.csv" in files and out / "nws_main_test.csv" in files
    compared = 0
    for original in sorted(root.rglob("*")):
        if original.is_file() and (original.suffix == ".bin" or original.name == "meta.csv"):
            copy = out / original.relative_to(root)
            assert filecmp.cmp(original, copy, shallow=False), original
            compared += 1
    assert compared == 4 * 20 + 4 * 3
    for name in ("nws_main_train.csv", "nws_main_test.csv"):
        a = pd.read_csv(root / name, dtype={"path": str}).sort_values("path", ignore_index=True)
        b = pd.read_csv(out / name, dtype={"path": str}).sort_values("path", ignore_index=True)
        pd.testing.assert_frame_equal(a, b)
    again = f"memory://nws-again-{uuid.uuid4().hex}"
    import_zoo("nws", out, again, progress=False)
    for arch in (TINY.name, OTHER.name):
        a, b = wspace.open(url, arch=arch), wspace.open(again, arch=arch)
        assert a.layout == b.layout
        assert_rows_equal(b.values, a.values)
        pd.testing.assert_frame_equal(a.models, b.models)


def test_export_of_a_selection_keeps_the_run_files(imported, tmp_path):
    root, _, url = imported
    zoo = wspace.open(url, arch=TINY.name).where(lambda m: m.step >= 30)
    export_zoo(zoo, tmp_path / "late", "nws", progress=False)
    weights = sorted(p.name for p in (tmp_path / "late/runs/0003/weights").iterdir())
    assert weights == [f"{k:03d}.bin" for k in range(15, 21)]
    # error.bin comes from the curve kept on the (not exported) first snapshot's row
    assert filecmp.cmp(root / "runs/0003/error.bin", tmp_path / "late/runs/0003/error.bin")
    assert not (tmp_path / "late/runs/0001").exists()


def test_export_of_a_zoo_made_elsewhere(tmp_path):
    lay = TINY.layout()
    url = f"memory://nws-made-{uuid.uuid4().hex}"
    wspace.create(url, lay)
    fields = {"filter_size": 3, "depth_conv": 3, "depth_fc": 2, "width_conv": 1, "width_fc": 8}
    with wspace.writer(url) as w:
        for step in (5, 10):
            vector = np.full(lay.size, step / 4, np.float32)
            w.append(vector, model="mine", step=step, batch_norm=True, test_error=1.0, **fields)
    export_zoo(wspace.open(url), tmp_path / "out", "nws", progress=False)
    errors = np.fromfile(tmp_path / "out/mine/error.bin").reshape(-1, 5)
    assert errors.shape == (10, 5) and errors[4, 3] == 1.0 and np.isnan(errors[0]).all()
    assert np.fromfile(tmp_path / "out/mine/weights/002.bin").tolist() == [2.5] * lay.size
    frame = pd.read_csv(tmp_path / "out/nws.csv")
    assert frame["weightn_conv"].tolist() == [TINY.weight_counts()[0]]
    meta = pd.read_csv(tmp_path / "out/mine/meta.csv")
    assert meta.columns.tolist()[:3] == ["dataset", "lrate", "batch_size"]


def test_export_refuses_a_zoo_without_nws_fields(tmp_path):
    lay = TINY.layout()
    url = f"memory://nws-not-{uuid.uuid4().hex}"
    wspace.create(url, lay)
    with wspace.writer(url) as w:
        w.append(np.zeros(lay.size, np.float32), model="m", depth_conv=3)
    with pytest.raises(FormatError, match="filter_size"):
        export_zoo(wspace.open(url), tmp_path / "x", "nws", progress=False)
    with wspace.writer(url) as w:
        w.append(np.zeros(lay.size, np.float32), model="m2", depth_conv=4, filter_size=3)
    zoo = wspace.open(url).where(lambda m: m.model == "m2")
    with pytest.raises(FormatError, match="filter_size|depth_fc"):
        export_zoo(zoo, tmp_path / "x", "nws", progress=False)


# -- bad input: clear errors naming the file, store unchanged ------------------------------------
def test_csv_naming_a_missing_run(copies):
    root, url, before = copies
    with (root / "nws_main_train.csv").open("a", newline="") as f:
        csv.writer(f).writerow(csv_row(TINY, "runs/gone", 9))
    with pytest.raises(SourceNotFoundError, match=r"nws_main_train\.csv line 5.*runs/gone"):
        import_zoo("nws", root, url, progress=False)
    assert log_state(url) == before


def test_short_bin_file(copies):
    root, url, before = copies
    make_run(root, "runs/0005", TINY, 30, seed=5)
    with (root / "nws_main_train.csv").open("a", newline="") as f:
        csv.writer(f).writerow(csv_row(TINY, "runs/0005", 5))
    path = root / "runs/0005/weights/007.bin"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(FormatError, match=r"runs/0005/weights/007\.bin: \d+ bytes"):
        import_zoo("nws", root, url, progress=False)
    assert log_state(url) == before


def test_missing_snapshot_file(copies):
    root, url, before = copies
    make_run(root, "runs/0005", OTHER, 30, seed=5)
    write_csv(root / "nws_extra.csv", [csv_row(OTHER, "runs/0005", 5)])
    (root / "runs/0005/weights/004.bin").unlink()
    with pytest.raises(SourceNotFoundError, match=r"runs/0005/weights/004\.bin is missing"):
        import_zoo("nws", root, url, progress=False)
    assert log_state(url) == before


def test_csv_missing_columns(copies):
    root, url, before = copies
    frame = pd.read_csv(root / "nws_main_train.csv", dtype={"path": str})
    frame.drop(columns=["depth_fc", "width_fc"]).to_csv(root / "nws_main_train.csv", index=False)
    with pytest.raises(FormatError, match=r"nws_main_train\.csv: missing.*'depth_fc', 'width_fc'"):
        import_zoo("nws", root, url, progress=False)
    assert log_state(url) == before


def test_csv_weight_count_disagreeing_with_architecture(copies):
    root, url, before = copies
    frame = pd.read_csv(root / "nws_main_train.csv", dtype={"path": str})
    frame.loc[0, "weightn_fc"] += 1
    frame.to_csv(root / "nws_main_train.csv", index=False)
    with pytest.raises(FormatError, match=r"line 2: weightn_conv \+ weightn_fc"):
        import_zoo("nws", root, url, progress=False)
    assert log_state(url) == before


def test_no_store_is_created_for_bad_input(source, tmp_path):
    shutil.rmtree(source / "runs/0001")
    url = tmp_path / "never.zarr"
    with pytest.raises(SourceNotFoundError, match="runs/0001"):
        import_zoo("nws", source, str(url), progress=False)
    assert not url.exists()


def test_a_failing_run_is_never_partly_committed(source):
    path = source / "runs/0002/weights/020.bin"  # the last snapshot of the second run
    values = np.fromfile(path)
    values[3] = np.nan
    values.tofile(path)
    url = f"memory://nws-fail-{uuid.uuid4().hex}"
    train = source / "nws_main_train.csv"
    with pytest.raises(NonFiniteWeightsError, match="runs/0002"):
        import_zoo("nws", train, url, progress=False)
    # the complete run before it is committed, nothing of runs/0002 (not even its group)
    assert set(wspace.open(url, arch=TINY.name).models["model"]) == {"runs/0001"}
    assert OTHER.name not in wspace.store.open_store(url).archs
    report = import_zoo("nws", train, url, progress=False, allow_nonfinite="true")
    assert report.skipped == ["runs/0001"] and report.models == ["runs/0002", "runs/0003"]
    assert np.isnan(wspace.open(url, arch=OTHER.name).values[-1, 3])


# -- command line --------------------------------------------------------------------------------
def test_cli_import_and_export(source, tmp_path):
    url = str(tmp_path / "cli.zarr")
    runner = CliRunner()
    test_csv = str(source / "nws_main_test.csv")
    out = runner.invoke(app, ["import", "nws", test_csv, url, "-O", "commit_rows=20"])
    assert out.exit_code == 0, out.output
    assert "imported 20 row(s) of 1 model(s)" in out.output
    out = runner.invoke(
        app, ["export", url, str(tmp_path / "e"), "--format", "nws", "--where", "step>=10"]
    )
    assert out.exit_code == 0, out.output
    assert (tmp_path / "e/nws_main_test.csv").is_file()
    assert len(list((tmp_path / "e/runs/0004/weights").iterdir())) == 11
    out = runner.invoke(app, ["import", "nws", str(source / "nope.csv"), url])
    assert out.exit_code == 2 and "nope.csv" in out.output
    out = runner.invoke(app, ["import", "nws", test_csv, url, "-O", "colour=red"])
    assert out.exit_code == 2 and "colour" in out.output


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(epochs=st.integers(20, 80), snapshots=st.integers(1, 20))
def test_steps_follow_linspace_for_any_length(tmp_path_factory, epochs, snapshots):
    root = tmp_path_factory.mktemp("nws")
    make_run(root, "r", TINY, epochs, seed=epochs)
    for k in range(snapshots + 1, 21):
        (root / "r/weights" / f"{k:03d}.bin").unlink()
    write_csv(root / "s.csv", [csv_row(TINY, "r", 0)])
    (run,) = scan(root)
    expected = [round(e) for e in np.linspace(1, epochs, 20)][:snapshots]  # half to even
    assert [epoch for _, epoch, _ in run.snapshots] == expected
    assert [number for number, _, _ in run.snapshots] == list(range(1, snapshots + 1))


def test_runs_shorter_than_20_epochs_are_refused(tmp_path):
    make_run(tmp_path, "r", TINY, 20, seed=0)
    np.zeros((12, 5)).tofile(tmp_path / "r/error.bin")
    np.array([12.0, 0, 0, 0]).tofile(tmp_path / "r/stat.bin")
    write_csv(tmp_path / "s.csv", [csv_row(TINY, "r", 0)])
    with pytest.raises(FormatError, match="12 epochs give repeated snapshot epochs"):
        scan(tmp_path)
