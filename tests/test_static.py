"""Static checks that CI runs with the tests: ``mypy --strict`` over the package, and ruff."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MYPY_CACHE_DIR": str(tmp_path)},
    )


def test_the_package_is_mypy_strict_clean(tmp_path: Path) -> None:
    done = _run("mypy", "--strict", "wspace", tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_package_ships_its_type_marker() -> None:
    assert (ROOT / "wspace" / "py.typed").is_file()


def test_ruff_finds_nothing(tmp_path: Path) -> None:
    done = _run("ruff", "check", "--no-cache", ".", tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    done = _run("ruff", "format", "--check", "--no-cache", ".", tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
