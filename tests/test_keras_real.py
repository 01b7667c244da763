"""Real Keras 2.15 (in its own environment, tests/keras_env.py) against wspace's keras-h5 files.

One Keras subprocess does all the Keras work of this module: it loads the files wspace exported
with ``load_weights`` (into the reference LeNet-5 built in Keras) and ``load_model``, predicts,
and writes fresh ``model.save(..., save_format="h5")`` files for wspace to import. The checks are
then made here, against ``zoo.module(i)`` in torch on the same inputs. No skip: when the
environment cannot be built the tests fail, saying why.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import wspace
from tests.conftest import keras_data_dir
from tests.keras_env import KerasEnvError, keras_python
from wspace.architectures import lenet5, lenet5_keras_layout, lenet5_layout
from wspace.io import export_zoo, import_zoo

log = logging.getLogger(__name__)
SAVED = [["church", 5], ["golf_ball", 17], ["tench", 1060]]


@dataclass
class KerasRun:
    """What the Keras subprocess was given and made."""

    tmp: Path
    x_nhwc: np.ndarray
    torch_zoo: wspace.Zoo
    keras_zoo: wspace.Zoo
    exported: dict[str, Path]
    """Label -> folder of exported files that Keras loaded."""
    saved: Path
    """Folder of files written by Keras' model.save."""
    versions: dict[str, str]


def _predict_torch(zoo: wspace.Zoo, name: str, x_nhwc: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2)
    with torch.no_grad():
        return zoo.module(name)(x).numpy()[:, 0]


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory: pytest.TempPathFactory) -> KerasRun:
    try:
        python, build_seconds = keras_python()
    except KerasEnvError as exc:
        pytest.fail(str(exc))
    if build_seconds:
        log.warning("built the Keras test environment in %.0f s", build_seconds)
    tmp = tmp_path_factory.mktemp("keras")
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [np.load(keras_data_dir() / "inputs_nhwc.npy"), rng.random((8, 32, 32, 3), np.float32)]
    )
    np.save(tmp / "x.npy", x)
    # a torch-convention zoo of torch-initialised LeNet-5s (non-zero biases, spread outputs)
    torch_url = str(tmp / "torch.zarr")
    wspace.create(torch_url, lenet5_layout())
    with wspace.writer(torch_url) as w:
        for i, cls in enumerate(["church", "parachute", "golf_ball"]):
            w.append(lenet5(seed=i), model=f"{cls}_{i}", cls=cls, count=i)
    keras_url = str(tmp / "keras.zarr")
    import_zoo("keras-h5", keras_data_dir(), keras_url, progress=False)
    torch_zoo, keras_zoo = wspace.open(torch_url), wspace.open(keras_url)
    exported = {
        "torch": tmp / "from-torch",
        "keras": tmp / "from-keras",
        "weights-only": tmp / "weights-only",
    }
    export_zoo(torch_zoo, exported["torch"], "keras-h5", progress=False)
    export_zoo(keras_zoo, exported["keras"], "keras-h5", progress=False)
    export_zoo(torch_zoo, exported["weights-only"], "keras-h5", weights_only=True, progress=False)
    predict = [
        {"file": str(f), "out": str(f.with_suffix(".npz")), "load_model": label != "weights-only"}
        for label, folder in exported.items()
        for f in sorted(folder.glob("*.h5"))
    ]
    job = {
        "inputs": str(tmp / "x.npy"),
        "predict": predict,
        "save": {"dir": str(tmp / "saved"), "models": SAVED, "seed": 1},
    }
    (tmp / "job.json").write_text(json.dumps(job))
    script = Path(__file__).with_name("keras_side.py")
    out = subprocess.run(
        [str(python), str(script), str(tmp / "job.json")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        pytest.fail(f"the Keras side failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    versions = json.loads(out.stdout.strip().splitlines()[-1])
    return KerasRun(tmp, x, torch_zoo, keras_zoo, exported, tmp / "saved", versions)


def test_keras_version(keras_run):
    assert keras_run.versions == {"tensorflow": "2.15.1", "keras": "2.15.0"}


@pytest.mark.parametrize("label", ["torch", "keras", "weights-only"])
def test_exported_files_compute_the_zoo_function_in_keras(keras_run, label):
    zoo = keras_run.keras_zoo if label == "keras" else keras_run.torch_zoo
    files = sorted(keras_run.exported[label].glob("*.h5"))
    assert len(files) == len(zoo)
    for path in files:
        name = path.name.removeprefix("binary_oneVall_").removesuffix("_model.h5")
        expected = _predict_torch(zoo, name, keras_run.x_nhwc)
        assert np.ptp(expected) > 1e-3  # the inputs tell models (and wrong weights) apart
        got = np.load(path.with_suffix(".npz"))
        np.testing.assert_allclose(got["load_weights"], expected, atol=1e-5, rtol=0)
        if label != "weights-only":
            np.testing.assert_allclose(got["load_model"], expected, atol=1e-5, rtol=0)
    if label == "keras":  # and the published numbers of the real files
        reference = json.loads((keras_data_dir() / "predictions.json").read_text())
        for name, values in reference["predictions_on_inputs_nhwc"].items():
            got = np.load(keras_run.exported[label] / f"binary_oneVall_{name}_model.npz")
            np.testing.assert_allclose(got["load_model"][:8], values, atol=1e-5, rtol=0)


def test_files_saved_by_keras_import_exactly(keras_run, tmp_path):
    url = str(tmp_path / "saved.zarr")
    report = import_zoo("keras-h5", keras_run.saved, url, progress=False)
    assert sorted(report.models) == sorted(f"{c}_{n}" for c, n in SAVED)
    zoo = wspace.open(url)
    layout = lenet5_keras_layout()
    for cls, count in SAVED:
        name = f"{cls}_{count}"
        meta = zoo.models.set_index("model").loc[name]
        assert (meta["cls"], meta["count"]) == (cls, count)
        saved = np.load(keras_run.saved / f"binary_oneVall_{name}.npz")
        row = zoo.row(name)
        for i, spec in enumerate(layout):  # get_weights order = the layout's order
            np.testing.assert_array_equal(row[spec.slice()].reshape(spec.shape), saved[f"w{i}"])
        np.testing.assert_allclose(
            _predict_torch(zoo, name, keras_run.x_nhwc), saved["predictions"], atol=1e-5, rtol=0
        )
