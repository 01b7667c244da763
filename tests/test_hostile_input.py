"""Hostile and malformed input for every importer: a clear error naming the file, store unchanged.

One table: every format of :data:`wspace.io.FORMATS` x every fault class that the format can
carry (``FAULTS``). Each case imports a broken source into a local store that already holds the
committed rows of a good source of the same format, and checks that

- the error is a :class:`~wspace.errors.WspaceError` whose message names the offending file
  (and the model or tensor where the fault is in one);
- every file under the store folder is byte-for-byte unchanged (names and bytes);
- a pickle payload never ran (its marker file is absent).

The per-format tests (``tests/test_io_*.py``) check the exact messages of more cases; this table
makes sure no format misses a fault class. Fault classes a format cannot carry (an HDF5 file has
no pickles; a model name that is a file name cannot hold NUL) are listed in ``NOT_APPLICABLE``
with the reason, and a test checks that every format x fault pair is either run or listed.
"""

from __future__ import annotations

import pickle
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

import wspace
from tests.conftest import keras_data_dir
from tests.test_io_cnn_zoo import make_zoo
from tests.test_io_keras_h5 import _edit as edit_keras_file
from tests.test_io_model_zoos import make_trial
from tests.test_io_nws import TINY, csv_row, make_run, write_csv
from tests.test_io_safe_pickle import WritesMarker
from tests.test_io_torch import small_net
from wspace.errors import UnsafePickleError, WspaceError
from wspace.io import FORMATS, export_zoo, import_zoo
from wspace.testing import file_snapshot, tiny_zoo

# -- good sources: one new model each (``tag`` makes its name differ from the store's) ----------


def keras_source(folder: Path, tag: str) -> Path:
    folder.mkdir(parents=True)
    name = "golf_ball_1060" if tag == "good" else "church_649"
    count = 1060 if tag == "good" else 2
    target = folder / f"binary_oneVall_{name.rsplit('_', 1)[0]}_{count}_model.h5"
    shutil.copy(keras_data_dir() / f"binary_oneVall_{name}_model.h5", target)
    target.chmod(0o644)
    return folder


def _pickle_zoo(folder: Path, tag: str, fmt: str) -> list[Path]:
    cls = "tench" if tag == "good" else "church"
    url = f"memory://hostile-{fmt}-{tag}-{uuid.uuid4().hex}"
    tiny_zoo(url, 1, classes=[cls], seed=len(tag))
    return export_zoo(wspace.open(url), folder, fmt, progress=False)


def modelwise_source(folder: Path, tag: str) -> Path:
    [path] = _pickle_zoo(folder, tag, "modelwise-pickle")
    return path


def layerwise_source(folder: Path, tag: str) -> Path:
    path, _sidecar = _pickle_zoo(folder, tag, "layerwise-pickle")
    return path


def nws_source(folder: Path, tag: str) -> Path:
    run = f"runs/{tag}"
    make_run(folder, run, TINY, 20, seed=len(tag))
    write_csv(folder / "nws_main_train.csv", [csv_row(TINY, run, 0)])
    return folder


def cnn_source(folder: Path, tag: str) -> Path:
    make_zoo(folder, n_models=1, gz=False, nan_row=None)
    metrics = pd.read_csv(folder / "metrics.csv")
    metrics["modeldir"] = f"/tmp/mnist/{tag}"
    metrics.to_csv(folder / "metrics.csv", index=False)
    return folder


def model_zoos_source(folder: Path, tag: str) -> Path:
    make_trial(folder / f"trial_{tag}", seed=len(tag), epochs=3, every=2)
    return folder


def state_dict_source(folder: Path, tag: str) -> Path:
    folder.mkdir(parents=True)
    torch.save(small_net(len(tag)).state_dict(), folder / f"net_{tag}.pt")
    return folder


def safetensors_source(folder: Path, tag: str) -> Path:
    folder.mkdir(parents=True)
    state = {k: v.contiguous() for k, v in small_net(len(tag)).state_dict().items()}
    save_file(state, folder / f"net_{tag}.safetensors")
    return folder


SOURCES: dict[str, Callable[[Path, str], Path]] = {
    "keras-h5": keras_source,
    "modelwise-pickle": modelwise_source,
    "layerwise-pickle": layerwise_source,
    "nws": nws_source,
    "cnn-zoo": cnn_source,
    "model-zoos": model_zoos_source,
    "state-dict": state_dict_source,
    "safetensors": safetensors_source,
}


# -- faults -----------------------------------------------------------------------------------
# A fault edits the bad source in place and returns what the message must contain: the path of
# the offending file, then (optionally) the model or tensor.
Fault = Callable[[Path, Path], list[str]]
"""fault(src, marker) -> strings the error message must contain."""

LONG = "x" * 10_000


def truncated(file: Path) -> list[str]:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 3])
    return [str(file)]


def garbage(file: Path) -> list[str]:
    file.write_bytes(np.random.default_rng(0).bytes(max(file.stat().st_size, 1000)))
    return [str(file)]


def _one(src: Path, pattern: str) -> Path:
    if src.is_file():
        return src
    [file] = sorted(src.rglob(pattern))
    return file


# keras-h5: the edits of tests/test_io_keras_h5.py, on the one file of the source
def keras_edit(how: str, *names: str) -> Fault:
    def fault(src: Path, marker: Path) -> list[str]:
        file = _one(src, "*.h5")
        edit_keras_file(file, how)
        return [str(file), *names]

    return fault


# pickles: rewrite the (trusted) list of dicts
def _load(path: Path):  # our own export: safe to load with the plain unpickler
    return pickle.loads(path.read_bytes())


def pickle_edit(edit: Callable[[object], object], *names: str) -> Fault:
    def fault(src: Path, marker: Path) -> list[str]:
        data = _load(src)
        src.write_bytes(pickle.dumps(edit(data)))
        return [str(src), *names]

    return fault


def _mw(key: str, value: object) -> Callable[[object], object]:
    def edit(data):
        layers = data[0]["parameters_by_layer"]
        if value is None:
            del layers[key]
        else:
            layers[key] = value
        return data

    return edit


def _mw_name(name: str) -> Callable[[object], object]:
    def edit(data):
        data[0]["model"] = name
        return data

    return edit


def _mw_nonfinite(data):
    layers = data[0]["parameters_by_layer"]
    layers[LENET_BIAS] = torch.full((6,), float("inf"))
    data[0]["parameters_flat"] = torch.cat([t.reshape(-1) for t in layers.values()])
    return data


def _lw(layer: str, value: object) -> Callable[[object], object]:
    def edit(data):
        if value is None:
            del data[0]["parameters"][layer]
        else:
            data[0]["parameters"][layer] = value
        return data

    return edit


def _nonfinite_row(rows):
    rows = [np.array(r, dtype=np.float32, copy=True) for r in rows]
    rows[0][3] = np.nan
    return rows


def layerwise_name(name: str) -> Fault:
    def fault(src: Path, marker: Path) -> list[str]:
        import json

        side = src.with_name(f"{src.stem}.models.json")
        body = json.loads(side.read_text())
        body["classes"][0]["models"] = [name]
        side.write_text(json.dumps(body))
        return [str(src), repr(name[:40])[1:-1]]

    return fault


def malicious_pickle(src: Path, marker: Path) -> list[str]:
    src.write_bytes(pickle.dumps([{"model": "church_0", "x": WritesMarker(marker)}]))
    return [str(src)]


def unexpected_types(src: Path, marker: Path) -> list[str]:
    src.write_bytes(pickle.dumps({"models": {1, 2, 3}, "when": complex(1, 2)}))
    return [str(src)]


# nws: the run's .bin files and the split CSV
def nws_bin(edit: str) -> Fault:
    def fault(src: Path, marker: Path) -> list[str]:
        file = sorted(src.rglob("weights/*.bin"))[0]
        values = np.fromfile(file, dtype=np.float64)
        if edit == "short":
            values[:-3].tofile(file)
        elif edit == "long":
            np.concatenate([values, values[:5]]).tofile(file)
        elif edit == "nan":
            values[7] = np.nan
            values.tofile(file)
        elif edit == "garbage":  # random bytes, not a whole number of float64
            file.write_bytes(np.random.default_rng(0).bytes(values.nbytes + 5))
        elif edit == "float32":  # the right bytes for half as many weights
            values.astype(np.float32).tofile(file)
        if edit == "nan":  # found when the values are read: named by run folder and model
            return [str(file.parent.parent), "runs/bad"]
        return [str(file)]

    return fault


def nws_csv(edit: str, value: str = "") -> Fault:
    def fault(src: Path, marker: Path) -> list[str]:
        file = src / "nws_main_train.csv"
        frame = pd.read_csv(file)
        if edit == "drop":
            frame = frame.drop(columns=[value])
        else:
            frame["path"] = value
        frame.to_csv(file, index=False)
        if edit == "drop":
            return [str(file)]
        return [str(file) if len(value) > 200 else str(src / value), repr(value[:40])[1:-1]]

    return fault


# cnn-zoo: weights.npy, layout.csv, metrics.csv
def cnn_weights(edit: str) -> Fault:
    def fault(src: Path, marker: Path) -> list[str]:
        file = src / "weights.npy"
        weights = np.load(file)
        if edit == "nan":
            weights[2, 10] = np.inf
        elif edit == "int":
            weights = weights.astype(np.int32)
        elif edit == "wide":
            weights = np.concatenate([weights, weights[:, :3]], axis=1)
        elif edit == "object":
            weights = np.array([WritesMarker(marker)], dtype=object)
        np.save(file, weights, allow_pickle=True)
        if edit == "wide":
            return [str(src / "layout.csv"), "weights.npy has 4973"]
        return [str(file)] if edit != "nan" else [str(file), "/tmp/mnist/bad"]

    return fault


def cnn_csv(name: str, drop: str) -> Fault:
    def fault(src: Path, marker: Path) -> list[str]:
        file = src / name
        pd.read_csv(file).drop(columns=[drop]).to_csv(file, index=False)
        return [str(file)]

    return fault


def cnn_name(name: str) -> Fault:
    def fault(src: Path, marker: Path) -> list[str]:
        file = src / "metrics.csv"
        metrics = pd.read_csv(file)
        metrics["modeldir"] = name
        metrics.to_csv(file, index=False)
        return [str(src), repr(name[:40])[1:-1]]

    return fault


def cnn_file(how: Callable[[Path], list[str]], name: str) -> Fault:
    return lambda src, marker: how(src / name)


# torch files: the one checkpoint (model-zoos) or state_dict file
def torch_edit(pattern: str, edit: str, *, safetensors: bool = False) -> Fault:
    def fault(src: Path, marker: Path) -> list[str]:
        file = sorted(p for p in src.rglob(pattern) if p.name != "optimizer")[0]
        if edit == "truncated":
            return truncated(file)
        if edit == "garbage":
            return garbage(file)
        if edit == "malicious":
            torch.save({"0.weight": WritesMarker(marker)}, file)
            return [str(file)]
        if edit == "types":  # plain types torch.load admits, but not a state_dict
            torch.save([1, "two", {"three": 3.0}], file)
            return [str(file)]
        state = load_file(file) if safetensors else torch.load(file, weights_only=True)
        key = sorted(k for k, v in state.items() if v.is_floating_point())[0]
        if edit == "nan":
            state[key] = state[key].clone()
            state[key].view(-1)[0] = float("nan")
        elif edit == "shape":
            state[key] = torch.zeros(*state[key].shape, 2)
        elif edit == "int":
            state[key] = state[key].to(torch.int32)
        elif edit == "missing":
            del state[key]
        elif edit == "extra":
            state["extra.weight"] = torch.ones(3)
        if safetensors:
            save_file({k: v.contiguous() for k, v in state.items()}, file)
        else:
            torch.save(state, file)
        return [str(file)] if edit != "nan" else [str(file), key.rsplit(".", 1)[-1]]

    return fault


def result_lines(src: Path, marker: Path) -> list[str]:
    [file] = src.rglob("result.json")
    with file.open("a") as f:
        f.write("{truncated\n")
    return [str(file)]


KERAS_TENSOR = "conv2d_1/conv2d_1/kernel:0"
LENET_BIAS = "conv2d/conv2d/bias:0"

FAULTS: dict[str, dict[str, Fault]] = {
    "keras-h5": {
        "truncated": lambda src, m: truncated(_one(src, "*.h5")),
        "garbage": lambda src, m: garbage(_one(src, "*.h5")),
        "missing tensor": keras_edit("missing", "dense_1/dense_1/bias:0"),
        "extra tensor": keras_edit("extra", "dense_1/dense_1/gamma:0"),
        "wrong shape": keras_edit("shape", "dense/dense/kernel:0"),
        "non-finite": keras_edit("nan", KERAS_TENSOR),
        "non-float dtype": keras_edit("float64", LENET_BIAS),
    },
    "modelwise-pickle": {
        "truncated": lambda src, m: truncated(src),
        "garbage": lambda src, m: garbage(src),
        "malicious __reduce__": malicious_pickle,
        "unexpected types": unexpected_types,
        "missing tensor": pickle_edit(_mw(LENET_BIAS, None)),
        "extra tensor": pickle_edit(_mw("dense/dense/gamma:0", torch.zeros(3))),
        "wrong shape": pickle_edit(_mw(LENET_BIAS, torch.zeros(7)), LENET_BIAS),
        "non-finite": pickle_edit(_mw_nonfinite, "church_0", LENET_BIAS),
        "non-float dtype": pickle_edit(
            _mw(LENET_BIAS, torch.zeros(6, dtype=torch.int32)), LENET_BIAS
        ),
        "model name '/..'": pickle_edit(_mw_name("church/../../etc"), "church/../../etc"),
        "model name NUL": pickle_edit(_mw_name("church\x00_0"), "church"),
        "model name 10 kB": pickle_edit(_mw_name(LONG), "xxxxxxxx"),
    },
    "layerwise-pickle": {
        "truncated": lambda src, m: truncated(src),
        "garbage": lambda src, m: garbage(src),
        "malicious __reduce__": malicious_pickle,
        "unexpected types": unexpected_types,
        "missing tensor": pickle_edit(_lw("conv2d", None)),
        "wrong shape": pickle_edit(_lw("dense_1", [np.zeros(84, np.float32)]), "dense_1"),
        "non-finite": pickle_edit(
            lambda d: _lw("dense", _nonfinite_row(d[0]["parameters"]["dense"]))(d)
        ),
        "non-float dtype": pickle_edit(
            lambda d: _lw("dense", [np.zeros(40_404, np.int64)])(d), "dense"
        ),
        "model name '/..'": layerwise_name("church/../x"),
        "model name NUL": layerwise_name("church\x00_0"),
        "model name 10 kB": layerwise_name(LONG),
    },
    "nws": {
        "truncated": nws_bin("short"),
        "garbage": nws_bin("garbage"),
        "wrong length": nws_bin("long"),
        "non-float dtype": nws_bin("float32"),
        "non-finite": nws_bin("nan"),
        "missing columns": nws_csv("drop", "depth_conv"),
        "model name '/..'": nws_csv("path", "runs/../runs/bad"),
        "model name NUL": nws_csv("path", "runs/b\x00ad"),
        "model name 10 kB": nws_csv("path", LONG),
    },
    "cnn-zoo": {
        "truncated": cnn_file(truncated, "weights.npy"),
        "garbage": cnn_file(garbage, "weights.npy"),
        "malicious __reduce__": cnn_weights("object"),
        "wrong length": cnn_weights("wide"),
        "non-finite": cnn_weights("nan"),
        "non-float dtype": cnn_weights("int"),
        "missing columns": cnn_csv("layout.csv", "end_idx"),
        "missing metrics columns": cnn_csv("metrics.csv", "step"),
        "truncated csv": cnn_file(truncated, "layout.csv"),
        "model name '/..'": cnn_name("/tmp/mnist/../etc"),
        "model name NUL": cnn_name("/tmp/mnist/b\x00ad"),
        "model name 10 kB": cnn_name(LONG),
    },
    "model-zoos": {
        "truncated": torch_edit("checkpoint_*/checkpoints", "truncated"),
        "garbage": torch_edit("checkpoint_*/checkpoints", "garbage"),
        "malicious __reduce__": torch_edit("checkpoint_*/checkpoints", "malicious"),
        "unexpected types": torch_edit("checkpoint_*/checkpoints", "types"),
        "missing tensor": torch_edit("checkpoint_*/checkpoints", "missing"),
        "extra tensor": torch_edit("checkpoint_*/checkpoints", "extra"),
        "wrong shape": torch_edit("checkpoint_*/checkpoints", "shape"),
        "non-finite": torch_edit("checkpoint_*/checkpoints", "nan"),
        "non-float dtype": torch_edit("checkpoint_*/checkpoints", "int"),
        "garbage result lines": result_lines,
    },
    "state-dict": {
        "truncated": torch_edit("*.pt", "truncated"),
        "garbage": torch_edit("*.pt", "garbage"),
        "malicious __reduce__": torch_edit("*.pt", "malicious"),
        "unexpected types": torch_edit("*.pt", "types"),
        "non-finite": torch_edit("*.pt", "nan"),
    },
    "safetensors": {
        "truncated": torch_edit("*.safetensors", "truncated", safetensors=True),
        "garbage": torch_edit("*.safetensors", "garbage", safetensors=True),
        "non-finite": torch_edit("*.safetensors", "nan", safetensors=True),
    },
}

FILE_NAMES = "names come from file or folder names: the file system holds no NUL or 10 kB name"
OWN_LAYOUT = (
    "each file defines its own layout (a new architecture group); a file unlike the first of "
    "its source is test_io_torch.py::test_a_file_that_does_not_match_the_first"
)
FLAT_VECTOR = "one flat vector per row whose length the layout fixes: see 'wrong length'"

NOT_APPLICABLE: dict[str, dict[str, str]] = {
    "keras-h5": {
        "malicious __reduce__": "HDF5 holds no pickles",
        "unexpected types": "h5py reads datasets only",
        "model name": "parsed strictly from the file name (test_io_keras_h5.py); " + FILE_NAMES,
    },
    "layerwise-pickle": {"extra tensor": "parameters are per layer: an extra layer is ignored"},
    "nws": {
        "malicious __reduce__": "raw float64 .bin files and CSVs, no pickles",
        "unexpected types": "raw float64 .bin files and CSVs, no typed objects",
        "missing tensor": FLAT_VECTOR,
        "extra tensor": FLAT_VECTOR,
        "wrong shape": FLAT_VECTOR,
    },
    "cnn-zoo": {
        "unexpected types": "np.load(allow_pickle=False): see 'malicious __reduce__'",
        "missing tensor": "tensors are layout.csv rows: see 'missing columns'",
        "extra tensor": FLAT_VECTOR,
        "wrong shape": FLAT_VECTOR,
    },
    "model-zoos": {"model name": FILE_NAMES},
    "state-dict": {
        "missing tensor": OWN_LAYOUT,
        "extra tensor": OWN_LAYOUT,
        "wrong shape": OWN_LAYOUT,
        "non-float dtype": "integer tensors (num_batches_tracked) are skipped; " + OWN_LAYOUT,
        "model name": FILE_NAMES,
    },
    "safetensors": {
        "malicious __reduce__": "safetensors holds no code",
        "unexpected types": "safetensors holds only tensors",
        "missing tensor": OWN_LAYOUT,
        "extra tensor": OWN_LAYOUT,
        "wrong shape": OWN_LAYOUT,
        "non-float dtype": "integer tensors are skipped; " + OWN_LAYOUT,
        "model name": FILE_NAMES,
    },
}
"""Fault classes a format cannot carry, with the reason."""

REQUIRED = (
    "truncated",
    "garbage",
    "malicious __reduce__",
    "unexpected types",
    "missing tensor",
    "extra tensor",
    "wrong shape",
    "non-finite",
    "non-float dtype",
    "model name",
)
"""The fault classes of the issue; every format runs each one or says why it cannot."""


def category(fault: str) -> str:
    """The row of docs/reliability.md a fault class is counted in."""
    if fault.startswith("model name"):
        return "model names from the source ('/..', NUL, 10 kB)"
    if fault.startswith(("truncated", "garbage")):
        return "truncated or garbage files (HDF5, pickle, torch, npy, .bin, CSV, JSON lines)"
    if fault in ("malicious __reduce__", "unexpected types"):
        return "pickles with a malicious __reduce__ or unexpected types"
    if fault in ("non-finite", "non-float dtype"):
        return "non-finite weights, non-float dtypes"
    return "missing/extra datasets or columns, wrong shapes or lengths"


OPTIONS: dict[tuple[str, str], dict[str, str]] = {
    # the published CNN zoo matrices hold NaN rows of diverged runs: cnn-zoo stores them unless
    # told otherwise
    ("cnn-zoo", "non-finite"): {"allow_nonfinite": "false"},
}

CASES = [(fmt, fault) for fmt in FAULTS for fault in FAULTS[fmt]]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A store per format holding one committed good model (built once, copied per case)."""
    made: dict[str, Path] = {}

    def get(fmt: str) -> Path:
        if fmt not in made:
            base = tmp_path_factory.mktemp(fmt)
            src = SOURCES[fmt](base / "good", "good")
            report = import_zoo(fmt, src, base / "store.zarr", progress=False)
            assert report.rows > 0
            made[fmt] = base / "store.zarr"
        return made[fmt]

    return get


def test_every_registered_format_has_hostile_cases():
    assert set(FAULTS) == set(FORMATS) == set(SOURCES)
    for fmt, faults in FAULTS.items():
        for required in REQUIRED:
            ran = any(fault.startswith(required) for fault in faults)
            excused = required in NOT_APPLICABLE.get(fmt, {})
            assert ran != excused, (fmt, required, "neither run nor excused" if not ran else "both")


@pytest.mark.parametrize(("fmt", "fault"), CASES, ids=[f"{f}-{c}" for f, c in CASES])
def test_hostile_source_is_refused_naming_the_file_and_store_is_unchanged(
    fmt, fault, stores, tmp_path, trials
):
    store = tmp_path / "store.zarr"
    shutil.copytree(stores(fmt), store)
    src = SOURCES[fmt](tmp_path / "bad", "bad")
    marker = tmp_path / "payload-ran"
    expected = FAULTS[fmt][fault](src, marker)
    before = file_snapshot(store)
    with pytest.raises(WspaceError) as info:
        import_zoo(fmt, src, store, progress=False, **OPTIONS.get((fmt, fault), {}))
    message = str(info.value)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert len(message) < 2_000  # a 10 kB name is cut
    assert not marker.exists(), "the payload ran"
    # a payload is refused as unsafe; damaged bytes are not mistaken for one
    unsafe = isinstance(info.value, UnsafePickleError)
    if fault == "malicious __reduce__" and fmt != "cnn-zoo":  # np.load(allow_pickle=False)
        assert unsafe, type(info.value)
    if fault.startswith(("truncated", "garbage")):
        assert not unsafe, message
    assert file_snapshot(store) == before
    trials.add(
        f"hostile input, every importer: {category(fault)}",
        1,
        "WspaceError naming the file (and model/tensor); store byte-unchanged; no payload ran",
    )
