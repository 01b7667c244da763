"""One row validator: the Writer and every importer refuse a bad row with the same message."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

import wspace
from wspace.errors import (
    DTypeError,
    NonFiniteWeightsError,
    SchemaMismatchError,
    WspaceError,
)
from wspace.io.session import ImportSession
from wspace.layout import Layout
from wspace.store.rows import RowValidator
from wspace.testing import assert_rows_equal

LAYOUT = Layout.from_dict(
    {
        "name": "mlp",
        "tensors": [{"name": "fc/weight", "shape": [2, 3]}, {"name": "fc/bias", "shape": [2]}],
    }
)
OTHER = Layout.from_dict({"name": "other", "tensors": [{"name": "a/w", "shape": [5]}]})
GOOD = np.zeros(8, np.float32)


def unique(prefix: str) -> str:
    return f"memory://{prefix}-{uuid.uuid4().hex}"


def nan_bias() -> np.ndarray:
    v = np.zeros(8, np.float32)
    v[7] = np.nan
    return v


BAD_ROWS = {
    "short vector": (np.zeros(7, np.float32), "m", {}, SchemaMismatchError),
    "integer weights": (np.zeros(8, np.int64), "m", {}, DTypeError),
    "missing tensor": ({"fc/weight": np.zeros((2, 3))}, "m", {}, SchemaMismatchError),
    "non-finite": (nan_bias(), "m", {}, NonFiniteWeightsError),
    "model name '..'": (GOOD, "a/../b", {}, SchemaMismatchError),
    "model name NUL": (GOOD, "a\x00b", {}, SchemaMismatchError),
    "float step": (GOOD, "m", {"step": 1.5}, SchemaMismatchError),
    "reserved column": (GOOD, "m", {"layer": "x"}, SchemaMismatchError),
    "object value": (GOOD, "m", {"thing": object()}, SchemaMismatchError),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_writer_and_importer_refuse_a_bad_row_with_the_same_message(case):
    weights, model, meta, error = BAD_ROWS[case]
    url = unique("same-message")
    wspace.create(url, LAYOUT)
    with wspace.writer(url) as writer, pytest.raises(error) as by_writer:
        writer.append(weights, model=model, **meta)
    with (
        pytest.raises(error) as by_importer,
        ImportSession(url, fmt="test") as session,
    ):
        session.add(model, [(weights, meta)], layout=LAYOUT, source="src.bin")
    assert str(by_importer.value) == f"src.bin: {by_writer.value}"
    with pytest.raises(error) as alone:
        RowValidator(url).check(weights, LAYOUT, model=model, metadata=meta)
    assert str(alone.value) == str(by_writer.value)
    assert len(wspace.open(url)) == 0


def test_nonfinite_weights_are_stored_on_request_by_both():
    url = unique("nonfinite")
    wspace.create(url, LAYOUT)
    with wspace.writer(url, allow_nonfinite=True) as writer:
        writer.append(nan_bias(), model="by-writer")
    with ImportSession(url, fmt="test", allow_nonfinite="true") as session:
        session.add("by-importer", [(nan_bias(), {})], layout=LAYOUT)
    assert_rows_equal(wspace.open(url).values, np.stack([nan_bias(), nan_bias()]))
    writer = wspace.writer(url)
    writer.allow_nonfinite = True
    writer.append(nan_bias(), model="switched-on")
    writer.close()
    assert len(wspace.open(url)) == 3


def test_importer_checks_a_model_name_before_creating_the_store():
    url = unique("name-first")
    with (
        pytest.raises(SchemaMismatchError, match=r"^x\.bin: store .*model name 'a/\.\./b'"),
        ImportSession(url, fmt="test") as session,
    ):
        session.add("a/../b", [(GOOD, {})], layout=LAYOUT, source="x.bin")
    with pytest.raises(wspace.StoreNotFoundError):
        wspace.open(url)


def test_validate_row_checks_without_appending():
    url = unique("validate")
    wspace.create(url, [LAYOUT, OTHER])
    writer = wspace.writer(url)
    row = writer.validate_row(np.ones(5), model="m", step=np.int64(3), acc=0.5)
    assert (row.arch, row.key, row.vector.dtype) == ("other", ("m", 3), np.float32)
    assert row.kinds == {"model": "str", "step": "int", "acc": "float"}
    assert writer.uncommitted == 0
    with pytest.raises(wspace.ArchitectureNotFoundError, match=r"\(0 fit\); pass arch="):
        writer.validate_row(np.ones(3), model="m")


def test_writer_finds_a_group_added_after_it_was_opened():
    url = unique("late-group")
    wspace.create(url, LAYOUT)
    writer = wspace.writer(url)
    wspace.add_arch(url, OTHER)
    writer.append(np.ones(5, np.float32), model="late", arch="other")
    with pytest.raises(wspace.ArchitectureNotFoundError, match="no architecture 'nope'"):
        writer.append(GOOD, model="x", arch="nope")
    writer.close()
    assert wspace.open(url, arch="other").models["model"].tolist() == ["late"]


def test_abort_discards_and_closes():
    url = unique("abort")
    wspace.create(url, LAYOUT)
    writer = wspace.writer(url)
    writer.append(GOOD, model="never")
    writer.abort()
    assert writer.closed and writer.uncommitted == 0
    with pytest.raises(WspaceError, match="is closed"):
        writer.append(GOOD, model="after")
    assert len(wspace.open(url)) == 0
