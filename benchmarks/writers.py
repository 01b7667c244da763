"""Q6: append throughput of 1, 2 and 4 concurrent writer processes on one store.

Each writer is a fresh process (:mod:`benchmarks.child` ``writer``) that generates its rows
first, then waits for a start signal, appends them through one :class:`wspace.Writer` with the
store's default settings and closes it (the last commit included). Throughput is all rows over
the time from the start signal to the last writer's end. Afterwards the store is opened and
every row is checked to be there exactly once.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import wspace
from benchmarks.runner import reap, spawn
from benchmarks.synth import model_name
from wspace.layout import Layout

__all__ = ["measure_writers"]


def measure_writers(
    manifest: dict[str, Any], manifest_path: str, writers: int, rows: int
) -> dict[str, Any]:
    """Append ``rows`` rows with ``writers`` concurrent processes; return the measurement."""
    root = Path(manifest["root"]) / f"q6-{writers}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    url = str(root / "store.zarr")
    wspace.create(url, Layout.from_dict(manifest["layout_dict"]))
    bounds = [rows * k // writers for k in range(writers + 1)]
    go = root / "go"
    with tempfile.TemporaryDirectory(prefix="wspace-bench-q6-") as tmp:
        procs = []
        for k in range(writers):
            args = [
                "writer",
                manifest_path,
                f"{tmp}/out{k}.json",
                url,
                str(bounds[k]),
                str(bounds[k + 1]),
                f"{tmp}/ready{k}",
                str(go),
            ]
            log = Path(tmp) / f"log{k}.txt"
            procs.append((spawn(args, log), log))
        while not all(Path(f"{tmp}/ready{k}").exists() for k in range(writers)):
            for proc, log in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"writer failed before starting:\n{log.read_text()[-3000:]}")
            time.sleep(0.01)
        start = time.time()
        go.touch()
        for k, (proc, log) in enumerate(procs):
            reap(proc, log, f"writer {k} of {writers}")
        outs = [json.loads(Path(f"{tmp}/out{k}.json").read_text()) for k in range(writers)]
    ends = [o["end"] for o in outs]
    rss = [o["rss_mb"] for o in outs]
    seconds = max(ends) - start
    names = wspace.open(url).models["model"].tolist()
    lost = len({model_name(i) for i in range(rows)} - set(names))
    duplicated = len(names) - len(set(names))
    shutil.rmtree(root)
    return {
        "writers": writers,
        "rows": rows,
        "seconds": seconds,
        "models_per_s": rows / seconds,
        "rows_visible": len(names),
        "lost": lost,
        "duplicated": duplicated,
        "rss_mb": max(rss),
    }
