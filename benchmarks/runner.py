"""Run measurements in fresh processes, with a warm or a cold page cache.

Every timed query runs in its own ``python -m benchmarks.child`` process; the child reports
the query's wall-clock time and its own peak resident memory (``VmHWM``: ``ru_maxrss`` of a
child would include the parent's memory, inherited over fork and kept across exec). Before a
cold run the page cache is emptied: with ``echo 3 > /proc/sys/vm/drop_caches`` when that is
permitted (``drop_caches``), otherwise with ``posix_fadvise(POSIX_FADV_DONTNEED)`` on every
file of the data the query reads (``fadvise``: the files' cached pages go, the directory and
inode caches stay — hence "cold-ish").
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.check import load_stats

__all__ = ["Cache", "Run", "run_child", "summarise"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    """One measurement: a fresh process opened the system, then ran the query."""

    query_s: float
    """The query alone, on the opened store ("query only")."""
    open_s: float
    """Opening the store (``wspace.open``, a glob, ``pickle.load``...)."""
    rss_mb: float
    """Peak resident memory of the child process, MiB."""
    check: Any = None
    """Digest of the result (:func:`benchmarks.check.digest`)."""
    stats: Any = None
    """Q3's statistics (for :func:`benchmarks.check.stats_agree`), else ``None``."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """End to end: open + query (a user's first query from a fresh process)."""
        return self.open_s + self.query_s


class ChildFailed(RuntimeError):
    """A measurement process exited with an error."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def spawn(args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m benchmarks.child *args`` with its output going to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "benchmarks.child", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=_env(),
        )


def reap(proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    """Wait for ``proc``; raise :class:`ChildFailed` if it failed."""
    proc.wait()
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise ChildFailed(f"{what} failed (exit {proc.returncode}):\n{tail}")


def run_child(args: Sequence[str], what: str) -> dict[str, Any]:
    """Run one child to completion; return its JSON output.

    The placeholder argument ``{out}`` is replaced by the path of the child's output file.
    """
    with tempfile.TemporaryDirectory(prefix="wspace-bench-") as tmp:
        out = Path(tmp) / "out.json"
        log = Path(tmp) / "log.txt"
        proc = spawn([str(out) if a == "{out}" else a for a in args], log)
        reap(proc, log, what)
        data = dict(json.loads(out.read_text()))
        for item in [data, *(v for v in data.values() if isinstance(v, dict))]:
            if item.get("stats"):  # load before the folder goes
                item["stats"] = load_stats(item["stats"])
        return data


def _run(d: dict[str, Any]) -> Run:
    return Run(
        query_s=float(d["query_s"]),
        open_s=float(d["open_s"]),
        rss_mb=float(d["rss_mb"]),
        check=d["check"],
        stats=d.get("stats"),
    )


def query(system: str, name: str, manifest: str) -> Run:
    """Run query ``name`` of ``system`` in a fresh process (open, then query)."""
    return _run(run_child(["query", system, name, manifest, "{out}"], f"{name} on {system}"))


def queries(system: str, names: list[str], manifest: str) -> dict[str, Run]:
    """Run several queries of ``system`` one after the other in one fresh process.

    Only for the ``--quick`` smoke test: later queries run in a process that has already
    imported and read, so their times are not comparable with the full run's.
    """
    data = run_child(["query", system, ",".join(names) + ",", manifest, "{out}"], system)
    return {q: _run(d) for q, d in data.items()}


class Cache:
    """Empties the page cache before cold runs.

    Parameters
    ----------
    mode
        ``auto`` (``drop_caches`` if permitted, else ``fadvise``), ``drop_caches``,
        ``fadvise`` or ``none`` (no cold runs).
    """

    def __init__(self, mode: str = "auto") -> None:
        if mode == "auto":
            mode = "drop_caches" if self._can_drop() else "fadvise"
        if mode not in ("drop_caches", "fadvise", "none"):
            raise ValueError(f"unknown cache mode {mode!r}")
        self.mode = mode

    @staticmethod
    def _can_drop() -> bool:
        try:
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("1")
        except OSError:
            return False
        return True

    def drop(self, paths: Iterable[str | Path]) -> None:
        """Evict ``paths`` (files or folders) from the page cache."""
        if self.mode == "drop_caches":
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3")
        elif self.mode == "fadvise":
            for path in paths:
                for file in _files(Path(path)):
                    try:
                        fd = os.open(file, os.O_RDONLY)
                    except OSError:
                        continue
                    try:
                        os.fdatasync(fd)
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    finally:
                        os.close(fd)


def _files(path: Path) -> Iterable[Path]:
    if path.is_file():
        yield path
    elif path.is_dir():
        for folder, _, names in os.walk(path):
            for name in names:
                yield Path(folder) / name


def summarise(runs: Sequence[Run]) -> dict[str, Any]:
    """Medians and spread of repeated runs: query only, open, and end to end (open + query)."""
    query_s = [r.query_s for r in runs]
    e2e = [r.seconds for r in runs]
    rss = [r.rss_mb for r in runs]
    return {
        "median_s": statistics.median(query_s),
        "min_s": min(query_s),
        "max_s": max(query_s),
        "runs_s": query_s,
        "open_s": statistics.median([r.open_s for r in runs]),
        "e2e_s": statistics.median(e2e),
        "e2e_runs_s": e2e,
        "rss_mb": statistics.median(rss),
        "rss_max_mb": max(rss),
        "n": len(runs),
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def now() -> str:
    """UTC time stamp."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
