"""A cached virtual environment with real Keras 2 (``tensorflow-cpu==2.15.1``) for tests.

Keras 2.15 needs numpy < 2, which wspace's own environment does not have, so the Keras side of
the tests runs as a subprocess in its own environment. It is built once, under a file lock (two
pytest processes never build it at the same time), in a scratch folder that is renamed into
place only when ``tensorflow`` imports, so a crashed build is never mistaken for a good one.

Location: ``$WSPACE_KERAS_VENV``, else ``~/.cache/wspace/keras-venv-tf2.15.1``.
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


def _ready(venv: Path) -> bool:
    try:
        marker = json.loads((venv / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("requirement") == REQUIREMENT and _python(venv).exists()


def _run(args: list[str], what: str, timeout: float) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KerasEnvError(f"{what} failed: {exc}") from exc
    if out.returncode != 0:
        tail = (out.stdout + out.stderr)[-3000:]
        raise KerasEnvError(f"{what} failed (exit {out.returncode}):\n{tail}")
    return out.stdout


def keras_python(timeout: float = 540) -> tuple[Path, float]:
    """The environment's python (built if needed) and the seconds spent building it (0 cached).

    Raises
    ------
    KerasEnvError
        The environment could not be built (no network to PyPI, no wheel for this platform);
        the message says what failed and how to point ``WSPACE_KERAS_VENV`` elsewhere.
    """
    venv = venv_dir()
    if _ready(venv):
        return _python(venv), 0.0
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if _ready(venv):  # built by another process while we waited
            return _python(venv), 0.0
        start = time.monotonic()
        scratch = venv.parent / f".{venv.name}.build-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            _run([sys.executable, "-m", "venv", str(scratch)], "python -m venv", 120)
            _run(
                [
                    str(_python(scratch)),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--quiet",
                    REQUIREMENT,
                ],
                f"pip install {REQUIREMENT} into {scratch}",
                timeout,
            )
            versions = _run([str(_python(scratch)), "-c", PROBE], "importing tensorflow", 300)
            (scratch / MARKER).write_text(
                json.dumps({"requirement": REQUIREMENT, "versions": versions.split()})
            )
            shutil.rmtree(venv, ignore_errors=True)  # an incomplete one from an older build
            os.replace(scratch, venv)
        except KerasEnvError as exc:
            raise KerasEnvError(
                f"could not build the Keras test environment at {venv} ({exc}). It needs "
                f"PyPI access for {REQUIREMENT}; or set WSPACE_KERAS_VENV to a virtual "
                f"environment where `{PROBE}` works."
            ) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return _python(venv), time.monotonic() - start
