"""The cached test-environment builder: one build under concurrency, atomic, then cached."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.keras_env import MARKER, build_venv

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
        subprocess.Popen([sys.executable, "-c", CODE, str(venv)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
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
