"""Small CNN Zoo folders (weights.npy + metrics.csv.gz + layout.csv): import, export, bad input."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wspace
from wspace.errors import FormatError, NonFiniteWeightsError, SourceNotFoundError
from wspace.io import export_zoo, import_zoo
from wspace.io.cnn_zoo import read_layout
from wspace.layout import Layout
from wspace.store.records import AppendRecord
from wspace.testing import assert_rows_equal

# the published CNN: 3 conv layers of 16 units (3x3, 1 input channel), GAP, dense to 10
SMALL_CNN = [
    ("sequential/conv2d/bias:0", (16,)),
    ("sequential/conv2d/kernel:0", (3, 3, 1, 16)),
    ("sequential/conv2d_1/bias:0", (16,)),
    ("sequential/conv2d_1/kernel:0", (3, 3, 16, 16)),
    ("sequential/conv2d_2/bias:0", (16,)),
    ("sequential/conv2d_2/kernel:0", (3, 3, 16, 16)),
    ("sequential/dense/bias:0", (10,)),
    ("sequential/dense/kernel:0", (16, 10)),
]
STEPS = (0, 1, 2, 3, 20, 40, 60, 80, 86)


def write_layout(path: Path, tensors: list[tuple[str, tuple[int, ...]]]) -> int:
    rows, offset = [], 0
    for varname, shape in tensors:
        rows.append((varname, offset, offset + math.prod(shape), str(shape)))
        offset += math.prod(shape)
    pd.DataFrame(rows, columns=["varname", "start_idx", "end_idx", "shape"]).to_csv(
        path, index=False
    )
    return offset


def make_zoo(folder: Path, n_models: int = 3, *, gz: bool = True, nan_row: int | None = 5) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    width = write_layout(folder / "layout.csv", SMALL_CNN)
    assert width == 4970
    rng = np.random.default_rng(0)
    weights = (rng.standard_normal((n_models * len(STEPS), width)) * 0.1).astype(np.float32)
    if nan_row is not None:
        weights[nan_row, 100:110] = np.nan  # a diverged run, as in the published matrices
    np.save(folder / "weights.npy", weights)
    records = []
    for m in range(n_models):
        for step in STEPS:
            records.append(
                {
                    "config.activation": ["relu", "tanh"][m % 2],
                    "config.b_init": "zeros",
                    "config.dataset": "mnist",
                    "config.dropout": [0.0, 0.05, 0.5][m % 3],
                    "config.epochs": 86,
                    "config.l2reg": 10.0 ** -(m + 3),
                    "config.learning_rate": 0.001 * (m + 1),
                    "config.num_layers": 3,
                    "config.random_seed": 42,
                    "config.train_fraction": [0.1, 0.25, 1.0][m % 3],
                    "config.w_init": "glorot_normal",
                    "modeldir": f"/tmp/mnist/{1000 + m}",
                    "step": step * 100,
                    "test_accuracy": rng.uniform(),
                    "test_loss": rng.uniform(0, 3),
                    "train_accuracy": rng.uniform(),
                    "train_loss": rng.uniform(0, 3),
                }
            )
    name = "metrics.csv.gz" if gz else "metrics.csv"
    pd.DataFrame(records).to_csv(folder / name, index=False)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    src = tmp_path_factory.mktemp("cnn") / "mnist"
    make_zoo(src)
    url = f"memory://cnn-zoo-{uuid.uuid4().hex}"
    import_zoo("cnn-zoo", src, url, progress=False)
    return src, url


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with pandas' string dtype as object, as wspace returns text columns."""
    return frame.astype(
        {c: object for c in frame.columns if pd.api.types.is_string_dtype(frame[c])}
    )


def log_state(url: str) -> tuple[int, int]:
    handle = wspace.store.open_store(url)
    return len(handle.state_records), sum(a.n_rows for a in handle.state.archs.values())


def test_layout_is_keras_with_tensorflow_names(imported):
    src, url = imported
    zoo = wspace.open(url)
    assert zoo.layout.size == 4970 and zoo.layout.name == "cnn-zoo"
    assert zoo.layout.layers == (
        "sequential/conv2d",
        "sequential/conv2d_1",
        "sequential/conv2d_2",
        "sequential/dense",
    )
    spec = zoo.layout["sequential/conv2d_1/kernel"]
    assert spec.convention == "keras" and spec.shape == (3, 3, 16, 16) and spec.offset == 176
    assert spec.source_name == "sequential/conv2d_1/kernel:0"
    weights = np.load(src / "weights.npy")
    torch_view = zoo.tensor("sequential/conv2d/weight").values  # (out, in, kh, kw)
    np.testing.assert_array_equal(
        torch_view, weights[:, 16:160].reshape(-1, 3, 3, 1, 16).transpose(0, 4, 3, 1, 2)
    )


def test_rows_and_metadata(imported):
    src, url = imported
    zoo = wspace.open(url)
    models = zoo.models
    metrics = pd.read_csv(src / "metrics.csv.gz")
    assert models["model"].tolist() == metrics["modeldir"].tolist()
    assert models["step"].tolist() == metrics["step"].tolist()
    expected = metrics.drop(columns=["modeldir", "step"])
    pd.testing.assert_frame_equal(models[expected.columns.tolist()], plain(expected))
    assert models.columns.tolist()[:3] == ["model", "config.activation", "config.b_init"]
    values = zoo.values
    assert_rows_equal(values, np.load(src / "weights.npy"))
    assert np.isnan(values[5, 100:110]).all()  # kept: the published matrices hold such rows


def test_round_trip_files_and_store(imported, tmp_path):
    src, url = imported
    files = export_zoo(wspace.open(url), tmp_path / "out", "cnn-zoo", progress=False)
    assert [f.name for f in files] == ["weights.npy", "metrics.csv.gz", "layout.csv"]
    assert_rows_equal(np.load(tmp_path / "out/weights.npy"), np.load(src / "weights.npy"))
    assert (tmp_path / "out/layout.csv").read_bytes() == (src / "layout.csv").read_bytes()
    a = pd.read_csv(src / "metrics.csv.gz")
    b = pd.read_csv(tmp_path / "out/metrics.csv.gz", compression="gzip")
    pd.testing.assert_frame_equal(a, b)  # same columns, in the same order
    again = f"memory://cnn-zoo-again-{uuid.uuid4().hex}"
    import_zoo("cnn-zoo", tmp_path / "out", again, progress=False)
    first, second = wspace.open(url), wspace.open(again)
    assert first.layout == second.layout
    assert_rows_equal(second.values, first.values)
    pd.testing.assert_frame_equal(first.models, second.models)


def test_reimport_skips_and_selection_export(imported, tmp_path):
    src, url = imported
    before = log_state(url)
    report = import_zoo("cnn-zoo", src, url, progress=False)
    assert report.rows == 0 and len(report.skipped) == 3 and log_state(url) == before
    final = wspace.open(url).sel(step=8600)
    export_zoo(final, tmp_path / "final", "cnn-zoo", progress=False, compress="false")
    metrics = pd.read_csv(tmp_path / "final/metrics.csv")
    assert metrics["step"].tolist() == [8600] * 3
    assert_rows_equal(np.load(tmp_path / "final/weights.npy"), np.load(src / "weights.npy")[8::9])


def test_rows_of_a_model_are_grouped_and_committed_together(tmp_path):
    src = tmp_path / "mixed"
    make_zoo(src, n_models=2, gz=False, nan_row=None)
    metrics = pd.read_csv(src / "metrics.csv")
    order = np.argsort(np.tile(np.arange(9), 2), kind="stable")  # checkpoints interleaved
    metrics.iloc[order].to_csv(src / "metrics.csv", index=False)
    weights = np.load(src / "weights.npy")
    np.save(src / "weights.npy", weights[order])
    url = f"memory://cnn-zoo-mixed-{uuid.uuid4().hex}"
    report = import_zoo("cnn-zoo", src, url, progress=False, commit_rows=1)
    assert report.models == ["/tmp/mnist/1000", "/tmp/mnist/1001"]
    handle = wspace.store.open_store(url)
    appends = [r for r in handle.state_records if isinstance(r, AppendRecord)]
    assert [len(r.keys) for r in appends] == [9, 9]  # one commit per model
    zoo = wspace.open(url)
    assert_rows_equal(zoo.values, weights)
    assert zoo.models["step"].tolist() == list(np.array(STEPS) * 100) * 2


def test_refusing_nonfinite_weights_commits_no_part_of_the_model(tmp_path):
    src = tmp_path / "nan"
    make_zoo(src, n_models=3, nan_row=13)  # a row of the second model
    url = f"memory://cnn-zoo-nan-{uuid.uuid4().hex}"
    with pytest.raises(NonFiniteWeightsError, match="/tmp/mnist/1001"):
        import_zoo("cnn-zoo", src, url, progress=False, allow_nonfinite="false")
    assert set(wspace.open(url).models["model"]) == {"/tmp/mnist/1000"}


def test_torch_layouts_are_exported_as_keras_kernels(tmp_path):
    lay = Layout.from_dict(
        {
            "name": "mlp",
            "tensors": [
                {"name": "fc/weight", "shape": [3, 4], "source_name": "fc.weight"},
                {"name": "fc/bias", "shape": [3], "source_name": "fc.bias"},
            ],
        }
    )
    url = f"memory://cnn-zoo-torch-{uuid.uuid4().hex}"
    wspace.create(url, lay)
    vector = np.arange(15, dtype=np.float32)
    with wspace.writer(url) as w:
        w.append(vector, model="m", step=1)
    export_zoo(wspace.open(url), tmp_path / "out", "cnn-zoo", progress=False)
    layout = pd.read_csv(tmp_path / "out/layout.csv")
    assert layout.values.tolist() == [
        ["fc/kernel:0", 0, 12, "(4, 3)"],
        ["fc/bias:0", 12, 15, "(3,)"],
    ]
    row = np.load(tmp_path / "out/weights.npy")[0]
    np.testing.assert_array_equal(row[:12].reshape(4, 3), vector[:12].reshape(3, 4).T)
    np.testing.assert_array_equal(row[12:], vector[12:])


# -- bad input -----------------------------------------------------------------------------------
@pytest.fixture
def broken(tmp_path) -> tuple[Path, str, tuple[int, int]]:
    src = tmp_path / "src"
    make_zoo(src, n_models=2)
    url = f"memory://cnn-zoo-bad-{uuid.uuid4().hex}"
    wspace.create(url, read_layout(src / "layout.csv"))
    return src, url, log_state(url)


def test_layout_with_a_gap(broken):
    src, url, before = broken
    frame = pd.read_csv(src / "layout.csv")
    frame.loc[3, "start_idx"] += 1
    frame.to_csv(src / "layout.csv", index=False)
    with pytest.raises(FormatError, match=r"layout\.csv row 5 .*conv2d_1/kernel.*starts at 177"):
        import_zoo("cnn-zoo", src, url, progress=False)
    assert log_state(url) == before


def test_layout_not_covering_the_columns(broken):
    src, url, before = broken
    write_layout(src / "layout.csv", SMALL_CNN[:-1])
    with pytest.raises(FormatError, match=r"layout\.csv: its ranges cover 4810 columns"):
        import_zoo("cnn-zoo", src, url, progress=False)
    assert log_state(url) == before


def test_metrics_of_another_length(broken):
    src, url, before = broken
    metrics = pd.read_csv(src / "metrics.csv.gz")
    metrics.iloc[:-1].to_csv(src / "metrics.csv.gz", index=False)
    with pytest.raises(
        FormatError, match=r"metrics\.csv\.gz has 17 rows but .*weights\.npy has 18"
    ):
        import_zoo("cnn-zoo", src, url, progress=False)
    assert log_state(url) == before


def test_metrics_without_modeldir_or_with_repeated_steps(broken):
    src, url, before = broken
    metrics = pd.read_csv(src / "metrics.csv.gz")
    metrics.drop(columns=["modeldir"]).to_csv(src / "metrics.csv.gz", index=False)
    with pytest.raises(FormatError, match=r"metrics\.csv\.gz: no 'modeldir' column"):
        import_zoo("cnn-zoo", src, url, progress=False)
    metrics.loc[1, "step"] = 0
    metrics.to_csv(src / "metrics.csv.gz", index=False)
    with pytest.raises(FormatError, match=r"model '/tmp/mnist/1000' has two rows at step 0"):
        import_zoo("cnn-zoo", src, url, progress=False)
    (src / "weights.npy").unlink()
    with pytest.raises(SourceNotFoundError, match="no weights.npy"):
        import_zoo("cnn-zoo", src, url, progress=False)
    assert log_state(url) == before


# -- property: any layout and metrics columns round-trip ----------------------------------------
names = st.text(alphabet="abcdefgh_/.:", min_size=1, max_size=8).filter(
    lambda n: n not in ("modeldir", "step") and not n.startswith("Unnamed")
)
values = st.one_of(
    st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from(["a", "b c"])
)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    shapes=st.lists(st.lists(st.integers(1, 3), min_size=1, max_size=4), min_size=1, max_size=3),
    columns=st.lists(st.tuples(names, values), min_size=1, max_size=4, unique_by=lambda c: c[0]),
    steps=st.lists(st.integers(0, 500), min_size=1, max_size=3, unique=True),
    n_models=st.integers(1, 3),
    extra=st.sampled_from(["index", "model", "col:x", "test/accuracy"]),
)
def test_any_zoo_round_trips(tmp_path_factory, shapes, columns, steps, n_models, extra):
    src = tmp_path_factory.mktemp("cnn")
    tensors = [(f"layer{i}/kernel:0", tuple(s)) for i, s in enumerate(shapes)]
    width = write_layout(src / "layout.csv", tensors)
    rng = np.random.default_rng(len(shapes))
    rows = n_models * len(steps)
    weights = rng.standard_normal((rows, width)).astype(np.float32)
    np.save(src / "weights.npy", weights)
    frame = pd.DataFrame(
        {
            "modeldir": [f"m{i}" for i in range(n_models) for _ in steps],
            "step": steps * n_models,
            **{name: [value] * rows for name, value in columns},
            extra: np.arange(rows) * 0.5,
        }
    )
    frame.to_csv(src / "metrics.csv.gz", index=False)
    url = f"memory://cnn-zoo-any-{uuid.uuid4().hex}"
    import_zoo("cnn-zoo", src, url, progress=False)
    zoo = wspace.open(url)
    out = tmp_path_factory.mktemp("out")
    export_zoo(zoo, out, "cnn-zoo", progress=False)
    assert_rows_equal(np.load(out / "weights.npy"), weights)
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "metrics.csv.gz")[frame.columns], pd.read_csv(src / "metrics.csv.gz")
    )
    again = f"memory://cnn-zoo-any2-{uuid.uuid4().hex}"
    import_zoo("cnn-zoo", out, again, progress=False)
    pd.testing.assert_frame_equal(wspace.open(again).models, zoo.models)
    assert wspace.open(again).layout == zoo.layout
