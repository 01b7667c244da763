"""A cached virtual environment with real Keras 2 (``tensorflow-cpu==2.15.1``) for tests.

Keras 2.15 needs numpy < 2, which wspace's own environment does not have, so the Keras side of
the tests runs as a subprocess in its own environment. It is built once, under a file lock (two
pytest processes never build it at the same time), in a scratch folder that is renamed into
place only when ``tensorflow`` imports, so a crashed build is never mistaken for a good one.

Location: ``$WSPACE_KERAS_VENV``, else ``~/.cache/wspace/keras-venv-tf2.15.1``. It is built
with ``uv`` (a dev dependency: ~20 s from an empty cache) or, without it, with ``venv`` and pip
(several times slower). It needs PyPI and a Python with TensorFlow 2.15.1 wheels (3.9-3.11):
this interpreter when it is one, else a Python 3.11 that ``uv`` finds or installs. When it
cannot be built, :func:`keras_python` raises :class:`KerasEnvError` saying why and how to run
the tests anyway; the tests then fail with that message (they never skip).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REQUIREMENT = "tensorflow-cpu==2.15.1"
TF_PYTHONS = ((3, 9), (3, 10), (3, 11))
"""Python versions that ``tensorflow-cpu==2.15.1`` has wheels for."""
MARKER = "wspace-keras-venv.json"
PROBE = "import tensorflow as tf, keras; print(tf.__version__, keras.__version__)"


class KerasEnvError(RuntimeError):
    """The Keras environment could not be made."""


def venv_dir() -> Path:
    """Where the environment lives."""
    default = Path.home() / ".cache" / "wspace" / "keras-venv-tf2.15.1"
    return Path(os.environ.get("WSPACE_KERAS_VENV", default)).expanduser()


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _ready(venv: Path, requirement: str) -> bool:
    try:
        marker = json.loads((venv / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("requirement") == requirement and _python(venv).exists()


def _run(args: list[str], what: str, timeout: float) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KerasEnvError(f"{what} failed: {exc}") from exc
    if out.returncode != 0:
        tail = (out.stdout + out.stderr)[-3000:]
        raise KerasEnvError(f"{what} failed (exit {out.returncode}):\n{tail}")
    return out.stdout


def _uv() -> str | None:
    try:
        import uv

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        return None


def _build_commands(scratch: Path, requirement: str, python: str) -> list[tuple[list[str], str]]:
    uv_bin = _uv()
    if uv_bin:
        return [
            ([uv_bin, "venv", "--quiet", "--python", python, str(scratch)], "uv venv"),
            (
                [
                    uv_bin,
                    "pip",
                    "install",
                    "--quiet",
                    "--python",
                    str(_python(scratch)),
                    requirement,
                ],
                f"uv pip install {requirement} into {scratch}",
            ),
        ]
    pip = [str(_python(scratch)), "-m", "pip", "install", "--disable-pip-version-check"]
    return [
        ([python, "-m", "venv", str(scratch)], "python -m venv"),
        (
            [*pip, "--no-input", "--quiet", "--no-compile", requirement],
            f"pip install {requirement}",
        ),
    ]


def keras_base_python() -> str:
    """The Python to build the Keras environment with: this one if TensorFlow 2.15.1 has
    wheels for it, else ``"3.11"`` for ``uv`` to find or install.

    Raises
    ------
    KerasEnvError
        This Python has no TensorFlow 2.15.1 wheels and ``uv`` is not installed.
    """
    if sys.version_info[:2] in TF_PYTHONS:
        return sys.executable
    if _uv() is None:
        version = ".".join(map(str, sys.version_info[:2]))
        raise KerasEnvError(
            f"{REQUIREMENT} has wheels for Python 3.9-3.11 only, this is Python {version}, "
            "and uv (which can fetch a Python 3.11) is not installed"
        )
    return "3.11"


def keras_python(timeout: float = 540) -> tuple[Path, float]:
    """The Keras environment's python (built if needed) and the seconds its build took (0: cached).

    Raises
    ------
    KerasEnvError
        The environment could not be built (no network to PyPI, no wheel for this platform or
        Python); the message says what failed and how to run the tests anyway.
    """
    try:
        return build_venv(
            venv_dir(), REQUIREMENT, PROBE, python=keras_base_python(), timeout=timeout
        )
    except KerasEnvError as exc:
        raise KerasEnvError(
            f"the Keras test environment could not be built at {venv_dir()}: {exc}\n"
            f"It needs access to PyPI (or a package index configured for uv/pip) and "
            f"{REQUIREMENT}, which has wheels for Python 3.9-3.11 only. To run these tests, "
            f"give this machine that access and run them again (the environment is built once "
            f"and cached), or set WSPACE_KERAS_VENV to a virtual environment where "
            f"`python -c '{PROBE}'` prints 2.15.1 2.15.0. To leave them out knowingly: "
            f"pytest --deselect tests/test_keras_real.py."
        ) from None


def build_venv(
    venv: Path,
    requirement: str,
    probe: str,
    *,
    python: str = sys.executable,
    timeout: float = 540,
) -> tuple[Path, float]:
    """Build (once, under a lock, atomically) a venv with ``requirement`` where ``probe`` runs.

    ``python`` is the interpreter (a path, or a version for ``uv``) the venv is made from.
    Returns the venv's python and the seconds this call spent building (0 when it was there).
    """
    if _ready(venv, requirement):
        return _python(venv), 0.0
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if _ready(venv, requirement):  # built by another process while we waited
            return _python(venv), 0.0
        start = time.monotonic()
        scratch = venv.parent / f".{venv.name}.build-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            for args, what in _build_commands(scratch, requirement, python):
                _run(args, what, timeout)
            out = _run([str(_python(scratch)), "-c", probe], f"running {probe!r}", 300)
            (scratch / MARKER).write_text(
                json.dumps({"requirement": requirement, "probe": out.split()})
            )
            shutil.rmtree(venv, ignore_errors=True)  # an incomplete one from an older build
            os.replace(scratch, venv)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return _python(venv), time.monotonic() - start
