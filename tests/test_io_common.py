"""What every importer and exporter shares: whole-model commits, options, paths, row files."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path

import numpy as np
import pytest

import wspace
from wspace.errors import (
    FormatError,
    NonFiniteWeightsError,
    SchemaMismatchError,
    SourceNotFoundError,
    StoreExistsError,
    StoreNotFoundError,
    UnsafePickleError,
    WspaceError,
)
from wspace.io import FORMATS, export_zoo, import_zoo
from wspace.io.files import model_path, source_files
from wspace.io.options import bind_options, option_bool, option_int
from wspace.io.row_files import write_rows
from wspace.io.session import ImportSession
from wspace.store.handle import open_store
from wspace.store.records import AppendRecord
from wspace.testing import assert_rows_equal, tiny_zoo

LAYOUT = wspace.Layout.from_dict(
    {
        "name": "mlp",
        "tensors": [{"name": "fc/weight", "shape": [2, 3]}, {"name": "fc/bias", "shape": [2]}],
    }
)


def unique(prefix: str) -> str:
    return f"memory://{prefix}-{uuid.uuid4().hex}"


def rows(model: int, n: int) -> list[tuple[np.ndarray, dict[str, int]]]:
    return [(np.full(8, 10 * model + step, np.float32), {"step": step}) for step in range(n)]


def appends(url: str) -> list[int]:
    """Rows per append commit, in commit order."""
    records = open_store(url).state_records
    return [len(r.keys) for r in records if isinstance(r, AppendRecord)]


# -- the import session --------------------------------------------------------------------------
def test_whole_models_are_committed_together_in_groups_of_rows():
    url = unique("session-groups")
    with ImportSession(url, fmt="test", commit_rows="5") as session:
        for model in range(4):
            session.add(f"m{model}", rows(model, 3), layout=LAYOUT, source=f"m{model}.bin")
    # 3 rows per model; a commit once >= 5 rows are pending: after models 2 and 4
    assert appends(url) == [6, 6]
    assert session.report.models == ["m0", "m1", "m2", "m3"] and session.report.rows == 12
    assert_rows_equal(
        wspace.open(url).values, np.concatenate([[r for r, _ in rows(m, 3)] for m in range(4)])
    )


def test_a_failing_model_leaves_the_complete_ones_committed_and_nothing_of_itself():
    url = unique("session-fail")
    bad = rows(2, 3)
    bad[2][0][1] = np.nan  # the last row of the third model
    with (
        pytest.raises(NonFiniteWeightsError, match=r"^m2\.bin: .*model 'm2'"),
        ImportSession(url, fmt="test", commit_rows=100) as session,
    ):
        session.add("m0", rows(0, 3), layout=LAYOUT, source="m0.bin")
        session.add("m1", rows(1, 3), layout=LAYOUT, source="m1.bin")
        session.add("m2", bad, layout=LAYOUT, source="m2.bin")
    assert wspace.open(url).models["model"].unique().tolist() == ["m0", "m1"]
    assert session.report.models == ["m0", "m1"]
    # an error between models (reading the next file) also keeps what is complete
    url = unique("session-between")
    with (
        pytest.raises(OSError, match="disk"),
        ImportSession(url, fmt="test", commit_rows=100) as session,
    ):
        session.add("m0", rows(0, 2), layout=LAYOUT, source="m0.bin")
        raise OSError("disk gone")
    assert len(wspace.open(url)) == 2


def test_a_failing_first_model_creates_no_store():
    url = unique("session-first")
    with (
        pytest.raises(SchemaMismatchError, match=r"^one\.bin: .*has 8 values; got shape \(7,\)"),
        ImportSession(url, fmt="test") as session,
    ):
        session.add("m0", [(np.zeros(7, np.float32), {})], layout=LAYOUT, source="one.bin")
    with pytest.raises(StoreNotFoundError):
        wspace.open(url)


def test_committed_models_are_skipped_and_identical_groups_reused():
    url = unique("session-skip")
    wspace.create(url, wspace.Layout.from_dict({**LAYOUT.to_dict(), "name": "mine"}))
    with ImportSession(url, fmt="test") as session:
        session.add("m0", rows(0, 2), layout=LAYOUT)
    assert session.report.archs == ["mine"]  # same tensors: the group is reused by any name
    again = ImportSession(url, fmt="test")
    with again:
        todo = list(again.todo(["m0", "m1"], key=str, progress=False, desc="test"))
        for model in todo:
            again.add(model, rows(1, 1), layout=LAYOUT)
    assert todo == ["m1"] and again.report.skipped == ["m0"] and again.report.models == ["m1"]
    with (
        pytest.raises(WspaceError, match="'m1' appears twice in the source"),
        ImportSession(unique("session-twice"), fmt="test") as session,
    ):
        session.add("m1", rows(1, 1), layout=LAYOUT)
        session.add("m1", rows(1, 1), layout=LAYOUT)


# -- options -------------------------------------------------------------------------------------
def test_option_parsers():
    assert option_bool("TRUE", "x") is True and option_bool(np.bool_(False), "x") is False
    assert option_int("12", "n") == 12
    for bad in ("maybe", 2):
        with pytest.raises(WspaceError, match="option x="):
            option_bool(bad, "x")
    for bad in ("x", 0, True):
        with pytest.raises(WspaceError, match="option n="):
            option_int(bad, "n")
    export = FORMATS["state-dict"].export
    assert (
        bind_options("f", export, {"batch_size": "3"})
        == {"batch_rows": 3}
        == bind_options("f", export, {"batch_rows": 3})
    )
    with pytest.raises(WspaceError, match="are the same option"):
        bind_options("f", export, {"batch_size": 3, "batch_rows": 3})
    with pytest.raises(WspaceError, match="option commit_every='x'"):
        import_zoo("nws", "missing", unique("opt"), commit_every="x")
    with pytest.raises(WspaceError, match="option commit_rows='0'"):
        ImportSession(unique("opt"), fmt="f", commit_rows="0")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_refuses_unknown_options(fmt, tmp_path):
    with pytest.raises(WspaceError, match=f"format '{fmt}' has no option\\(s\\) 'colour'"):
        import_zoo(fmt, tmp_path / "missing", unique("unknown"), progress=False, colour="red")
    zoo = wspace.open(tiny_zoo(unique("unknown-export"), 1))
    with pytest.raises(WspaceError, match=f"format '{fmt}' has no option\\(s\\) 'colour'"):
        export_zoo(zoo, tmp_path / "out", fmt, progress=False, colour="red")
    assert not (tmp_path / "out").exists()


# -- paths and files -----------------------------------------------------------------------------
def test_model_path_stays_in_its_folder(tmp_path):
    assert model_path(tmp_path, "/tmp/mnist/7", ".pt") == tmp_path / "tmp/mnist/7.pt"
    for bad in ("../x", "a/../../b", "", "."):
        with pytest.raises(FormatError, match="cannot be used as a relative file path"):
            model_path(tmp_path, bad)


def test_source_files(tmp_path):
    (tmp_path / "b.h5").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/a.h5").write_bytes(b"")
    assert source_files(tmp_path, "*.h5", what="h5") == [tmp_path / "b.h5"]
    assert source_files(tmp_path, "*.h5", what="h5", recursive=True) == [
        tmp_path / "b.h5",
        tmp_path / "sub/a.h5",
    ]
    assert source_files(tmp_path / "b.h5", "*.x", what="x") == [tmp_path / "b.h5"]
    with pytest.raises(SourceNotFoundError, match="no .x files under"):
        source_files(tmp_path, "*.x", what=".x files")
    with pytest.raises(SourceNotFoundError, match="gone': no such file or folder"):
        source_files(tmp_path / "gone", "*", what="x")


def test_write_rows_writes_whole_files_and_refuses_clashes(tmp_path):
    zoo = wspace.open(tiny_zoo(unique("rows"), 3, layout=LAYOUT))
    paths = [tmp_path / f"{m}.npy" for m in zoo.models["model"]]

    def write(tmp: Path, i: int, meta: dict, vector: np.ndarray) -> None:
        assert meta["model"] == zoo.models["model"][i]
        np.save(tmp.open("wb"), vector)

    assert write_rows(zoo, paths, write, batch_rows=2, progress=False, desc="t") == paths
    assert_rows_equal(np.stack([np.load(p) for p in paths]), zoo.values)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    with pytest.raises(StoreExistsError, match="overwrite=true"):
        write_rows(zoo, paths, write, batch_rows=2, progress=False, desc="t", overwrite=False)
    with pytest.raises(FormatError, match=r"rows 0 and 2 .* would both be written"):
        write_rows(
            zoo, [paths[0], paths[1], paths[0]], write, batch_rows=2, progress=False, desc="t"
        )

    def fail(tmp: Path, i: int, meta: dict, vector: np.ndarray) -> None:
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        new = [tmp_path / "new" / f"{i}.npy" for i in range(3)]
        write_rows(zoo, new, fail, batch_rows=2, progress=False, desc="t")
    assert list((tmp_path / "new").iterdir()) == []  # no half-written file, no temporary


# -- errors --------------------------------------------------------------------------------------
def test_io_errors_are_exported_and_unsafe_pickles_are_format_errors():
    assert wspace.FormatError is FormatError and wspace.SourceNotFoundError is SourceNotFoundError
    error = UnsafePickleError("x")
    assert isinstance(error, FormatError) and isinstance(error, pickle.UnpicklingError)
    assert isinstance(error, ValueError) and isinstance(SourceNotFoundError("x"), FileNotFoundError)
