"""Writer and commit log: visibility at commit, validation, duplicates, metadata columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import wspace
from wspace.architectures import lenet5, lenet5_layout
from wspace.layout import Layout
from wspace.testing import assert_rows_equal, tiny_weights, tiny_zoo

SMALL = Layout.from_dict(
    {
        "name": "mlp",
        "tensors": [
            {"name": "fc/weight", "shape": [4, 3]},
            {"name": "fc/bias", "shape": [4]},
            {"name": "out/weight", "shape": [2, 4]},
            {"name": "out/bias", "shape": [2]},
        ],
    }
)


def snapshot(url: str, options: dict | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    zoo = wspace.open(url, storage_options=options)
    return zoo.models, zoo.values


def test_rows_visible_only_after_commit(spot):
    wspace.create(spot.url, SMALL, storage_options=spot.options)
    w = wspace.writer(spot.url, storage_options=spot.options, commit_every=100)
    w.append(np.arange(26, dtype=np.float32), model="a")
    w.append(np.ones(26, dtype=np.float32), model="b")
    assert len(wspace.open(spot.url, storage_options=spot.options)) == 0
    w.commit()
    zoo = wspace.open(spot.url, storage_options=spot.options)
    assert list(zoo.models["model"]) == ["a", "b"]
    assert_rows_equal(zoo.values, np.stack([np.arange(26), np.ones(26)]).astype(np.float32))
    w.append(np.zeros(26, dtype=np.float32), model="c")
    w.close()
    assert len(wspace.open(spot.url, storage_options=spot.options)) == 3


def test_exception_discards_uncommitted_rows(tmp_path):
    url = str(tmp_path / "z.zarr")
    wspace.create(url, SMALL)
    with wspace.writer(url) as w:
        w.append(np.zeros(26, np.float32), model="kept")
    with pytest.raises(RuntimeError, match="boom"), wspace.writer(url) as w:
        w.append(np.ones(26, np.float32), model="lost")
        raise RuntimeError("boom")
    zoo = wspace.open(url)
    assert list(zoo.models["model"]) == ["kept"]
    # a writer can append the discarded name again later
    with wspace.writer(url) as w:
        w.append(np.ones(26, np.float32), model="lost")
    assert sorted(wspace.open(url).models["model"]) == ["kept", "lost"]


def test_weights_forms_module_state_dict_dict_tensor(tmp_path):
    url = str(tmp_path / "z.zarr")
    wspace.create(url, lenet5_layout())
    net = lenet5(seed=3)
    layout = lenet5_layout()
    flat = layout.flatten(net)
    with wspace.writer(url) as w:
        w.append(net, model="module")
        w.append(net.state_dict(), model="state_dict")
        w.append(layout.unflatten(flat), model="dict")
        w.append(torch.from_numpy(flat), model="tensor")
        w.append(flat.astype(np.float64), model="float64")
    zoo = wspace.open(url)
    for i in range(5):
        assert_rows_equal(zoo.row(i), flat, what=zoo.models["model"][i])


def test_metadata_columns_types_and_missing(tmp_path):
    url = str(tmp_path / "z.zarr")
    wspace.create(url, SMALL)
    v = np.zeros(26, np.float32)
    with wspace.writer(url) as w:
        w.append(
            v,
            model="a",
            cls="church",
            seed=7,
            step=20,
            accuracy=0.91,
            ok=True,
            curve=[0.1, 0.2, 0.3],
            hp={"lr": 1e-3},
        )
        w.append(
            v,
            model="b",
            cls="tench",
            seed=8,
            step=20,
            accuracy=0.5,
            ok=False,
            curve=[0.5],
            extra_col="x",
        )
        w.append(v, model="c", seed=9, step=20, accuracy=1)  # int into a float column
    m = wspace.open(url).models
    assert list(m.columns[:1]) == ["model"]
    assert m["seed"].dtype == np.int64 and list(m["seed"]) == [7, 8, 9]
    assert m["step"].dtype == np.int64
    assert m["accuracy"].dtype == np.float64 and list(m["accuracy"]) == [0.91, 0.5, 1.0]
    assert str(m["ok"].dtype) == "boolean" and m["ok"][0] is np.True_ and pd.isna(m["ok"][2])
    assert m["cls"].tolist() == ["church", "tench", None]
    assert m["curve"][0] == [0.1, 0.2, 0.3] and m["curve"][2] is None
    assert m["hp"][0] == {"lr": 1e-3}
    assert m["extra_col"].tolist() == [None, "x", None]


def test_int_column_with_missing_is_nullable(tmp_path):
    url = str(tmp_path / "z.zarr")
    wspace.create(url, SMALL)
    with wspace.writer(url) as w:
        w.append(np.zeros(26, np.float32), model="a", count=1)
        w.append(np.zeros(26, np.float32), model="b")
    m = wspace.open(url).models
    assert str(m["count"].dtype) == "Int64" and m["count"][0] == 1 and pd.isna(m["count"][1])


def _unchanged(url, before):
    models, values = snapshot(url)
    pd.testing.assert_frame_equal(models, before[0])
    assert_rows_equal(values, before[1])


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.zeros(25, np.float32), wspace.SchemaMismatchError, "26 values; got shape"),
        (np.zeros((2, 13), np.float32), wspace.SchemaMismatchError, "26 values"),
        (np.zeros(26, np.int64), wspace.DTypeError, "floating point"),
        (
            {
                "fc/weight": np.zeros((3, 4)),
                "fc/bias": np.zeros(4),
                "out/weight": np.zeros((2, 4)),
                "out/bias": np.zeros(2),
            },
            wspace.SchemaMismatchError,
            "fc/weight",
        ),
        (
            {
                "fc/weight": np.zeros((4, 3)),
                "fc/bias": np.zeros(4),
                "out/weight": np.zeros((2, 4)),
                "out/bias": np.zeros(2),
                "nope/weight": np.zeros(1),
            },
            wspace.SchemaMismatchError,
            "nope",
        ),
        (
            {
                "fc/weight": np.zeros((4, 3), np.int32),
                "fc/bias": np.zeros(4),
                "out/weight": np.zeros((2, 4)),
                "out/bias": np.zeros(2),
            },
            wspace.DTypeError,
            "fc/weight",
        ),
    ],
)
def test_bad_weights_are_refused_and_store_unchanged(tmp_path, bad, error, match):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 2, layout=SMALL)
    before = snapshot(url)
    with wspace.writer(url) as w:
        with pytest.raises(error, match=match) as info:
            w.append(bad, model="bad_one")
        assert "bad_one" in str(info.value)
    _unchanged(url, before)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_refused_by_default_allowed_on_request(tmp_path, value):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 1, layout=SMALL)
    before = snapshot(url)
    v = np.zeros(26, np.float32)
    v[25] = value
    with (
        wspace.writer(url) as w,
        pytest.raises(wspace.NonFiniteWeightsError, match="out/bias.*allow_nonfinite"),
    ):
        w.append(v, model="nan_model")
    _unchanged(url, before)
    with wspace.writer(url, allow_nonfinite=True) as w:
        w.append(v, model="nan_model")
    row = wspace.open(url).sel(model="nan_model").values[0]
    assert_rows_equal(row, v)


def test_duplicate_model_refused_committed_and_pending(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 2, layout=SMALL)
    before = snapshot(url)
    with wspace.writer(url) as w:
        with pytest.raises(wspace.DuplicateModelError, match="church_0.*already committed"):
            w.append(np.zeros(26, np.float32), model="church_0")
        w.append(np.zeros(26, np.float32), model="new", step=1)
        with pytest.raises(wspace.DuplicateModelError, match="uncommitted"):
            w.append(np.zeros(26, np.float32), model="new", step=1)
        w.discard()
    _unchanged(url, before)


def test_duplicate_between_concurrent_writers_is_refused_at_commit(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 1, layout=SMALL)
    a = wspace.writer(url)
    b = wspace.writer(url)
    a.append(np.zeros(26, np.float32), model="same")
    b.append(np.ones(26, np.float32), model="same")
    a.commit()
    with pytest.raises(wspace.DuplicateModelError, match="same.*concurrently"):
        b.commit()
    zoo = wspace.open(url)
    assert zoo.models["model"].tolist().count("same") == 1
    assert_rows_equal(zoo.sel(model="same").values[0], np.zeros(26, np.float32))


def test_replace_publishes_a_new_row_for_the_same_key(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 3, layout=SMALL)
    new = np.full(26, 7, np.float32)
    with wspace.writer(url) as w:
        w.append(new, model="tench_1", cls="tench", replace=True)
    zoo = wspace.open(url)
    assert len(zoo) == 3
    assert zoo.models["model"].tolist().count("tench_1") == 1
    assert_rows_equal(zoo.sel(model="tench_1").values[0], new)
    assert_rows_equal(zoo.sel(model="church_0").values[0], tiny_weights(0, 26))


def test_bad_model_names_and_columns(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 1, layout=SMALL)
    v = np.zeros(26, np.float32)
    with wspace.writer(url) as w:
        for name in ["", "a\x00b", "x" * 10_000, 3]:
            with pytest.raises(wspace.SchemaMismatchError, match="model"):
                w.append(v, model=name)
        with pytest.raises(wspace.SchemaMismatchError, match="'layer' cannot be"):
            w.append(v, model="m", layer="x")
        with pytest.raises(wspace.SchemaMismatchError, match="step must be an integer"):
            w.append(v, model="m", step=1.5)
        with pytest.raises(wspace.SchemaMismatchError, match="type object"):
            w.append(v, model="m", thing=object())
        w.append(v, model="m", acc=0.5)
        with pytest.raises(wspace.SchemaMismatchError, match="column 'acc' holds float"):
            w.append(v, model="m2", acc="high")
    assert len(wspace.open(url)) == 2


def test_create_refuses_existing_store_and_open_refuses_missing(spot):
    wspace.create(spot.url, SMALL, storage_options=spot.options)
    with pytest.raises(wspace.StoreExistsError):
        wspace.create(spot.url, SMALL, storage_options=spot.options)
    missing = spot.url.replace(".zarr", "-missing.zarr")
    with pytest.raises(wspace.StoreNotFoundError, match="no wspace store"):
        wspace.open(missing, storage_options=spot.options)


def test_several_architectures(tmp_path):
    url = str(tmp_path / "z.zarr")
    wspace.create(url, [lenet5_layout(), SMALL])
    with wspace.writer(url) as w:
        w.append(lenet5(seed=1), model="big")
        w.append(np.zeros(26, np.float32), model="small")  # inferred from the length
        with pytest.raises(wspace.ArchitectureNotFoundError, match="no architecture 'x'"):
            w.append(np.zeros(26, np.float32), model="s2", arch="x")
    zoo = wspace.open(url, arch="mlp")
    assert zoo.models["model"].tolist() == ["small"]
    assert zoo.arch("lenet5").models["model"].tolist() == ["big"]
    with pytest.raises(wspace.ArchitectureNotFoundError, match="several architectures"):
        wspace.open(url)
    other = Layout.from_dict({"name": "other", "tensors": [{"name": "a/w", "shape": [5]}]})
    wspace.add_arch(url, other)
    wspace.add_arch(url, other)  # idempotent
    assert wspace.open(url, arch="other").layout == other


def test_read_only_store_refuses_writes(tmp_path):
    from zarr.storage import LocalStore

    url = tiny_zoo(str(tmp_path / "z.zarr"), 1, layout=SMALL)
    store = LocalStore(url, read_only=True)
    assert len(wspace.open(store)) == 1
    with pytest.raises(wspace.ReadOnlyStoreError, match="read-only"):
        wspace.writer(store)


def _log_files(url: str) -> list[str]:
    from pathlib import Path

    return sorted(p.name for p in Path(url, "_log").iterdir())


HOSTILE_NAMES = {
    "empty-component": "church//649",
    "only-slash": "/",
    "dotdot-path": "../../etc/passwd",
    "dot-component": "runs/./7",
    "dotdot": "..",
    "dot": ".",
    "backslash": "a\\b",
    "nul": "a\x00b",
    "control": "tab\there",
    "10kB": "x" * 10_000,
    "surrogate": "bad\ud800name",
}


@pytest.mark.parametrize("name", list(HOSTILE_NAMES))
def test_hostile_model_names_are_refused_and_store_unchanged(tmp_path, name, trials):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 2, layout=SMALL)
    before, records = snapshot(url), _log_files(url)
    with wspace.writer(url) as w:
        with pytest.raises(wspace.SchemaMismatchError, match="model name") as info:
            w.append(np.zeros(26, np.float32), model=HOSTILE_NAMES[name])
        assert url in str(info.value) and len(str(info.value)) < 400  # a 10 kB name is cut
        assert w.uncommitted == 0
    _unchanged(url, before)
    assert _log_files(url) == records
    trials.add(
        "hostile input: model names ('//', '/', '..', '.', '\\', NUL, control, 10 kB, surrogate)",
        1,
        "SchemaMismatchError naming the store; store unchanged",
    )


def test_model_names_may_be_paths(tmp_path):
    """'/' separates folders (a cnn-zoo ``modeldir``, a torch file's relative path)."""
    url = tiny_zoo(str(tmp_path / "z.zarr"), 2, layout=SMALL)
    names = ["church/649", "/tmp/mnist/1000"]
    with wspace.writer(url) as w:
        for name in names:
            w.append(np.zeros(26, np.float32), model=name)
    assert set(names) <= set(wspace.open(url).models["model"])


@pytest.mark.parametrize(
    "bad, error",
    [
        (np.arange(26, dtype=np.int32), wspace.DTypeError),
        (np.ones(26, dtype=bool), wspace.DTypeError),
        (np.ones(26, dtype=np.complex64), wspace.DTypeError),
        (np.array(["1.0"] * 26), wspace.DTypeError),
        (np.array([object()] * 26), wspace.DTypeError),
        (np.arange(26).astype("datetime64[s]"), wspace.DTypeError),
        (torch.arange(26), wspace.DTypeError),
        (np.full(26, 1e300), wspace.NonFiniteWeightsError),  # finite float64, inf in float32
        (np.zeros(27, np.float32), wspace.SchemaMismatchError),
        (np.zeros((26, 1), np.float32), wspace.SchemaMismatchError),
        (np.float32(1.0), wspace.SchemaMismatchError),
        (np.zeros(0, np.float32), wspace.SchemaMismatchError),
        ({"fc/weight": np.zeros((3, 4))}, wspace.SchemaMismatchError),
    ],
)
def test_hostile_weights_are_refused_and_store_unchanged(tmp_path, bad, error, trials):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 2, layout=SMALL)
    before, records = snapshot(url), _log_files(url)
    with wspace.writer(url) as w, pytest.raises(error, match="bad_one"):
        w.append(bad, model="bad_one")
    _unchanged(url, before)
    assert _log_files(url) == records
    trials.add(
        "hostile input: weights (non-float dtypes, non-finite, wrong shapes)",
        1,
        "DTypeError / NonFiniteWeightsError / SchemaMismatchError naming the model; "
        "store unchanged",
    )


@pytest.mark.parametrize(
    "column, value, match",
    [
        ("curve", [1.0, object()], "cannot be stored as JSON"),
        ("note", "bad\ud800", "not valid Unicode"),
        ("note", "a\x00b", "NUL"),
        ("big", 2**60, "beyond"),
    ],
)
def test_hostile_metadata_is_refused_at_append(tmp_path, column, value, match, trials):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 1, layout=SMALL)
    before = snapshot(url)
    with wspace.writer(url) as w:
        with pytest.raises(wspace.SchemaMismatchError, match=match):
            w.append(np.zeros(26, np.float32), model="m", **{column: value})
        w.append(np.zeros(26, np.float32), model="m", note="fine")  # the writer still works
    assert len(wspace.open(url)) == len(before[0]) + 1
    trials.add(
        "hostile input: metadata (unserialisable JSON, surrogates, NUL, huge ints)",
        1,
        "SchemaMismatchError at append, not at flush; the writer goes on",
    )


def test_appending_numpy_rows_does_not_import_torch(tmp_path):
    """Importing torch costs seconds; a writer process given numpy rows never needs it."""
    import subprocess
    import sys

    url = tiny_zoo(str(tmp_path / "z.zarr"), 1, layout=SMALL)
    code = (
        "import sys, numpy as np, wspace\n"
        f"with wspace.writer({url!r}) as w:\n"
        "    w.append(np.zeros(26, np.float32), model='n')\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_retried_publish_of_one_commit_is_published_once(tmp_path):
    """A record already on the log with the commit's txn id is that commit: not doubled."""
    from wspace.store.backend import resolve
    from wspace.store.log import CommitLog

    url = tiny_zoo(str(tmp_path / "z.zarr"), 1, layout=SMALL)
    log = CommitLog(resolve(url))
    log.refresh()
    record = {"op": "add_arch", "arch": "other", "layout": SMALL.to_dict() | {"name": "other"}}
    first = log.publish(record, txn="abc")
    again = CommitLog(resolve(url))  # a retry that does not know the first try succeeded
    again.refresh()
    again.records = again.records[:first]  # as if read before the first try's record existed
    assert again.publish(record, txn="abc") == first
    assert len(_log_files(url)) == first + 1
