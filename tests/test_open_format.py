"""The open format: stores that xarray, zarr-python, TensorStore and a from-spec reader read.

The acceptance store has two architectures (one with a layer name that needs the naming
fallbacks of docs/format-spec.md §5), metadata columns of kinds str (with a missing value),
int (with missing values), float and JSON, rows from several writers, a compaction, a
replace and later appends. Every reader must agree with ``wspace.open`` bit for bit.
"""

from __future__ import annotations

import json
import math
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

import wspace
from wspace.layout import Layout
from wspace.testing import SMALL_LAYOUT

from . import spec_reader
from .conftest import StoreSpot

MLP = Layout.from_dict(
    {
        "name": "mlp",
        "tensors": [
            {"name": "enc/fc/weight", "shape": [3, 4]},
            {"name": "enc/fc/bias", "shape": [3]},
            {"name": "model/weight", "shape": [2, 3]},  # a layer named like the row dimension
            {"name": "model/bias", "shape": [2]},
        ],
    }
)
SMALL = Layout.from_dict(SMALL_LAYOUT)

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")


def _meta(i: int) -> dict[str, Any]:
    return {
        "cls": None if i == 3 else ["church", "tench"][i % 2],
        "seed": None if i % 3 == 1 else i,
        "accuracy": 0.25 + i / 16,
        "curve": [i, i / 2, {"epoch": i}] if i != 2 else None,
    }


def _vector(layout: Layout, i: int, salt: int = 0) -> np.ndarray:
    rng = np.random.default_rng(1000 * salt + i)
    return rng.standard_normal(layout.size).astype(np.float32)


def build_store(url: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The acceptance store; returns the rows of each archive as of its compaction."""
    wspace.create(url, [SMALL, MLP], storage_options=options, meta_rows=4)
    with wspace.writer(url, storage_options=options) as w1:
        for i in range(4):
            w1.append(_vector(SMALL, i), model=f"s{i}", arch="small", **_meta(i))
    with (
        wspace.writer(url, storage_options=options) as w2,
        wspace.writer(url, storage_options=options) as w3,
    ):
        for i in range(4, 7):
            w2.append(_vector(SMALL, i), model=f"s{i}", arch="small", **_meta(i))
            w3.append(_vector(MLP, i), model=f"m{i}", arch="mlp", **_meta(i))
    assert wspace.compact(url, storage_options=options) == {"small": 7, "mlp": 3}
    compacted = {
        arch: wspace.open(url, arch=arch, storage_options=options) for arch in ("small", "mlp")
    }
    with wspace.writer(url, storage_options=options) as w4:
        w4.append(_vector(SMALL, 1, salt=1), model="s1", arch="small", replace=True, **_meta(8))
        for i in range(7, 9):
            w4.append(_vector(SMALL, i), model=f"s{i}", arch="small", **_meta(i))
        w4.append(_vector(MLP, 9), model="m9", arch="mlp", **_meta(9))
    return compacted


def _store(spot: StoreSpot, path: str = "") -> Any:
    url = spot.url.rstrip("/") + (f"/{path}" if path else "")
    if spot.kind == "local":
        return zarr.storage.LocalStore(url, read_only=True)
    return zarr.storage.FsspecStore.from_url(url, storage_options=spot.options, read_only=True)


def _xr_open(spot: StoreSpot, path: str = "") -> xr.Dataset:
    url = spot.url.rstrip("/") + (f"/{path}" if path else "")
    return xr.open_zarr(url, storage_options=spot.options if spot.kind == "s3" else None)


def _archive_paths(spot: StoreSpot) -> dict[str, str]:
    records = []
    store = _store(spot)
    v = 0
    while (rec := spec_reader._record(store, v)) is not None:
        records.append(rec)
        v += 1
    return {
        r["arch"]: f"archs/{r['arch']}/seg/{r['segment']}" for r in records if r["op"] == "compact"
    }


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _same_value(a: Any, b: Any) -> bool:
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    if isinstance(a, (np.generic,)):
        a = a.item()
    if isinstance(b, (np.generic,)):
        b = b.item()
    return bool(a == b)


def assert_dataset_is_zoo(ds: xr.Dataset, zoo: wspace.Zoo) -> None:
    """``ds`` (xarray.open_zarr of an archive or snapshot) shows exactly ``zoo``'s rows."""
    arrays = zoo.layout.layers
    names = {"small": {"conv": "conv", "fc": "fc", "out": "out"}}.get(zoo.layout.name) or {
        "enc/fc": "enc.fc",
        "model": "layer_001",
    }
    assert ds.sizes["model"] == len(zoo)
    values = zoo.values
    weights = zoo.weights
    for layer in arrays:
        var = ds[names[layer]]
        assert var.dims == ("model", f"{names[layer]}_param") and var.dtype == np.float32
        cols = zoo.layout.layer_slice(layer)
        np.testing.assert_array_equal(var.values, values[:, cols], strict=True)
        tensors = ds[f"{names[layer]}_tensor"]
        index = ds[f"{names[layer]}_index"]
        assert f"{names[layer]}_tensor" in ds.coords and f"{names[layer]}_index" in ds.coords
        assert list(tensors.values) == list(weights["tensor"].values[cols])
        assert list(index.values) == list(weights["index"].values[cols])
    frame = zoo.models
    assert list(ds["model"].values) == list(frame["model"])
    assert ds.indexes["model"].name == "model"
    for column in frame.columns:
        assert column in ds.variables, column
        stored = ds[column].values.tolist()
        kind = ds[column].attrs["wspace"]["kind"]
        if kind == "json":
            assert column not in ds.coords  # lists index nothing: a data variable
            got = [None if v == spec_reader.MISSING else json.loads(v) for v in stored]
        else:
            assert column in ds.coords
            got = [None if v == spec_reader.MISSING else v for v in stored]
        want = frame[column].tolist()
        assert all(_same_value(g, w) for g, w in zip(got, want, strict=True)), (column, got, want)
        if column != "model" and kind != "json":  # the zoo's own coordinate, value for value
            coord = zoo.ds[column].values.tolist()
            assert all(_same_value(g, c) for g, c in zip(got, coord, strict=True)), column


def assert_spec_reader_is_zoo(arch: spec_reader.Arch, zoo: wspace.Zoo) -> None:
    np.testing.assert_array_equal(arch.weights, zoo.values, strict=True)
    frame = zoo.models
    assert list(arch.columns) == list(frame.columns)
    for column in frame.columns:
        want = frame[column].tolist()
        got = arch.columns[column]
        assert all(_same_value(g, w) for g, w in zip(got, want, strict=True)), column


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def built(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[StoreSpot, dict[str, Any]]:
    name = f"open-{uuid.uuid4().hex[:10]}.zarr"
    if request.param == "local":
        spot = StoreSpot("local", str(tmp_path / name))
    else:
        server = request.getfixturevalue("s3_server")
        spot = StoreSpot("s3", f"s3://wspace-test/{name}", dict(server.options))
    return spot, build_store(spot.url, spot.options)


def test_xarray_opens_each_archive_with_the_rows_wspace_showed(built: Any) -> None:
    spot, compacted = built
    for arch, path in _archive_paths(spot).items():
        ds = _xr_open(spot, path)
        assert ds.attrs["wspace"]["schema"] == "wspace-archive/2"
        assert ds.attrs["wspace"]["rows"] == len(compacted[arch])
        assert_dataset_is_zoo(ds, compacted[arch])


def test_an_export_opens_in_xarray_and_in_wspace_with_the_same_rows(
    built: Any, tmp_path: Path
) -> None:
    spot, _ = built
    for arch in ("small", "mlp"):
        zoo = wspace.open(spot.url, arch=arch, storage_options=spot.options)
        dst = StoreSpot(spot.kind, f"{spot.url}-export-{arch}", spot.options)
        url = zoo.to_zarr(dst.url, storage_options=dst.options)
        assert_dataset_is_zoo(_xr_open(dst), zoo)
        again = wspace.open(url, storage_options=dst.options)
        np.testing.assert_array_equal(again.values, zoo.values, strict=True)
        pd.testing.assert_frame_equal(again.models, zoo.models)
        assert_spec_reader_is_zoo(spec_reader.read_store(_store(dst))[arch], zoo)


def test_the_spec_reader_replays_the_log_to_wspace_s_rows(built: Any) -> None:
    spot, _ = built
    read = spec_reader.read_store(_store(spot))
    for arch in ("small", "mlp"):
        zoo = wspace.open(spot.url, arch=arch, storage_options=spot.options)
        assert len(zoo) == {"small": 9, "mlp": 4}[arch]
        assert_spec_reader_is_zoo(read[arch], zoo)


def test_zarr_python_reads_every_array_of_an_archive_and_an_export(built: Any) -> None:
    spot, compacted = built
    export = StoreSpot(spot.kind, f"{spot.url}-zarr-export", spot.options)
    compacted["small"].to_zarr(export.url, storage_options=export.options)
    groups = [(arch, _store(spot, path)) for arch, path in _archive_paths(spot).items()]
    for arch, store in [*groups, ("small", _store(export))]:
        group = zarr.open_group(store, mode="r")
        assert group.metadata.consolidated_metadata is not None  # one read lists it all
        arrays = dict(group.arrays())
        layout = compacted[arch].layout
        assert len(arrays) == 3 * len(layout.layers) + len(compacted[arch].models.columns)
        for name, array in arrays.items():
            data = array[...]
            assert array.metadata.dimension_names is not None, name
            assert data.shape == array.shape and array.shape[0] > 0, name
            assert array.metadata.dimension_names[0] in ("model", f"{name.rsplit('_', 1)[0]}_param")


def test_tensorstore_reads_the_layer_arrays_of_an_archive(built: Any) -> None:
    ts = pytest.importorskip("tensorstore", reason="the dev extra installs tensorstore")
    spot, compacted = built
    for arch, path in _archive_paths(spot).items():
        zoo = compacted[arch]
        values = zoo.values
        group = zarr.open_group(_store(spot, path), mode="r")
        for layer in zoo.layout.layers:
            name = group.attrs["wspace"]["layers"][layer]["array"]
            if spot.kind == "local":
                kvstore: dict[str, Any] = {"driver": "file", "path": f"{spot.url}/{path}/{name}/"}
            else:
                bucket, _, prefix = spot.url.removeprefix("s3://").partition("/")
                kvstore = {
                    "driver": "s3",
                    "bucket": bucket,
                    "path": f"{prefix}/{path}/{name}/",
                    "endpoint": spot.options["endpoint_url"],
                    "aws_region": "us-east-1",
                }
            array = ts.open({"driver": "zarr3", "kvstore": kvstore}, read=True).result()
            assert tuple(array.domain.labels) == ("model", f"{name}_param")
            got = array.read().result()
            np.testing.assert_array_equal(got, values[:, zoo.layout.layer_slice(layer)])


def test_xarray_open_datatree_gives_one_dataset_per_architecture(tmp_path: Path) -> None:
    url = str(tmp_path / "tree.zarr")
    compacted = build_store(url, None)
    wspace.compact(url)  # the later appends too, then drop every superseded segment
    wspace.vacuum(url, grace_seconds=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = xr.open_datatree(url, engine="zarr")
    leaves = {node.path: node for node in tree.subtree if node.has_data}
    assert len(leaves) == 2 and compacted
    for arch in ("small", "mlp"):
        (path,) = [p for p in leaves if p.startswith(f"/archs/{arch}/seg/")]
        assert_dataset_is_zoo(leaves[path].to_dataset(), wspace.open(url, arch=arch))


def test_cli_export_with_where_writes_a_snapshot_xarray_reads(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from wspace.cli import app

    url = str(tmp_path / "cli.zarr")
    build_store(url, None)
    dst = tmp_path / "church.zarr"
    result = CliRunner().invoke(
        app, ["export", url, str(dst), "--format", "zarr", "--arch", "small", "-w", "cls=church"]
    )
    assert result.exit_code == 0, result.output
    zoo = wspace.open(url, arch="small").sel(cls="church")
    assert_dataset_is_zoo(xr.open_zarr(dst), zoo)
    assert list(wspace.open(str(dst)).models["model"]) == list(zoo.models["model"])
    args = ["export", url, str(dst), "--format", "zarr", "--arch", "small"]
    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0 and "already holds" in again.output


def test_the_spec_reader_reads_a_format_1_store_as_wspace_does(tmp_path: Path) -> None:
    import shutil

    src = Path(__file__).parent / "data" / "stores" / "v1-main.zarr"
    shutil.copytree(src, tmp_path / "v1.zarr")
    url = str(tmp_path / "v1.zarr")
    read = spec_reader.read_store(zarr.storage.LocalStore(url, read_only=True))
    for arch in ("small", "mlp"):
        assert_spec_reader_is_zoo(read[arch], wspace.open(url, arch=arch))


def test_an_unknown_op_makes_the_spec_reader_and_wspace_refuse(tmp_path: Path) -> None:
    url = str(tmp_path / "future.zarr")
    wspace.create(url, SMALL)
    Path(url, "_log", f"{1:020d}.json").write_text(
        json.dumps({"op": "vacuum2", "txn": "t", "version": 1, "time": "2030-01-01T00:00:00Z"})
    )
    with pytest.raises(ValueError, match="unknown op"):
        spec_reader.read_store(zarr.storage.LocalStore(url, read_only=True))
    with pytest.raises(wspace.errors.CorruptDataError, match="unknown op 'vacuum2'"):
        wspace.open(url)


def test_a_format_1_store_stays_format_1_when_this_wspace_writes_and_compacts(
    tmp_path: Path,
) -> None:
    import shutil

    url = str(tmp_path / "v1.zarr")
    shutil.copytree(Path(__file__).parent / "data" / "stores" / "v1-main.zarr", url)
    with wspace.writer(url) as w:
        w.append(_vector(SMALL, 50), model="new", arch="small", step=1, cls="church")
    wspace.compact(url)
    seg = _archive_paths(StoreSpot("local", url))["small"]
    names = sorted(p.name for p in Path(url, seg).iterdir() if p.is_dir())
    assert names[:3] == ["m000", "m001", "m002"] and names[-3:] == ["w000", "w001", "w002"]
    assert "new" in list(wspace.open(url, arch="small").models["model"])


def test_the_spec_reader_imports_only_json_and_zarr() -> None:
    import ast

    tree = ast.parse((Path(__file__).parent / "spec_reader.py").read_text())
    modules = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    # json and zarr, plus the standard library's typing helpers and numpy (what zarr returns)
    assert modules == {"__future__", "json", "re", "dataclasses", "typing", "numpy", "zarr"}
