"""The cached test-environment builder: one build under concurrency, atomic, then cached."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.keras_env import MARKER, KerasEnvError, build_venv, keras_python

CODE = """
import json, sys
from pathlib import Path
from tests.keras_env import build_venv
python, seconds = build_venv(Path(sys.argv[1]), "six==1.17.0", "import six; print(six.__version__)")
print(json.dumps([str(python), seconds]))
"""


def test_two_processes_build_one_environment(tmp_path):
    venv = tmp_path / "env"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CODE, str(venv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    if any(p.returncode != 0 for p in procs):  # e.g. no package index: say so, do not skip
        pytest.fail(f"building a venv with six==1.17.0 failed (it needs PyPI): {outputs}")
    results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    assert [r[0] for r in results] == [str(venv / "bin" / "python")] * 2
    assert sorted(r[1] > 0 for r in results) == [False, True]  # one built, one waited
    assert json.loads((venv / MARKER).read_text())["probe"] == ["1.17.0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env.lock", "env"]  # no scratch left
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import six"], capture_output=True, timeout=60
    )
    assert out.returncode == 0
    assert build_venv(venv, "six==1.17.0", "import six")[1] == 0.0  # cached
    assert Path(results[0][0]).exists()


def test_an_environment_that_cannot_be_built_fails_saying_why_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("WSPACE_KERAS_VENV", str(tmp_path / "keras"))
    for name in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_INDEX_URL"):  # no index answers
        monkeypatch.setenv(name, "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_HTTP_TIMEOUT", "5")
    with pytest.raises(KerasEnvError) as info:
        keras_python(timeout=120)
    message = str(info.value)
    assert f"could not be built at {tmp_path / 'keras'}" in message
    assert "tensorflow-cpu==2.15.1" in message and "127.0.0.1:9" in message  # what failed
    assert "WSPACE_KERAS_VENV" in message and "--deselect" in message  # how to run anyway
    assert sorted(p.name for p in tmp_path.iterdir()) == [".keras.lock"]  # nothing half-built
