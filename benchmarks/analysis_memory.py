"""Peak memory (RSS) of the analyses on a large LeNet-5 zoo: each analysis in a fresh process.

    python -m benchmarks.analysis_memory [--rows 10000] [--store PATH] [--out FILE]
    python -m benchmarks.analysis_memory --rows 300 --max-bytes 8000000   # CI-sized

Builds (or reuses) a store of ``--rows`` LeNet-5-sized rows (91,481 float32 parameters,
10 classes whose weights differ slightly, card metrics), then runs every analysis in its own
subprocess and reports its wall time and peak resident memory (``ru_maxrss``), next to a
process that only imports the libraries. A zoo of 10,000 rows holds 3.66 GB of weights: the
analyses must stream it, never load it. ``--max-bytes`` lowers the in-memory feature limit
so that a small zoo takes the streamed PCA path of a large one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ANALYSES = (
    "imports",
    "metrics_table",
    "classify_stats",
    "classify_flat_pca",
    "layer_divergence",
    "meta_classifier",
    "write_report_fast",
)
"""What each child process runs (``imports``: the libraries only, the baseline)."""

CLASSES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def build_store(path: str, rows: int, *, seed: int = 0) -> None:
    """Write ``rows`` LeNet-5-sized rows: weights ~ N(0, 0.05) + a small per-class shift."""
    import numpy as np

    import wspace
    from wspace.architectures import lenet5_layout

    layout = lenet5_layout()
    wspace.create(path, layout)
    rng = np.random.default_rng(seed)
    with wspace.writer(path, commit_every=256) as w:
        for i in range(rows):
            k = i % len(CLASSES)
            vector = rng.standard_normal(layout.size, dtype=np.float32) * 0.05
            vector[layout.layer_slice("dense_1")] += 0.01 * k
            w.append(
                vector,
                model=f"{CLASSES[k]}_{i // len(CLASSES)}",
                cls=CLASSES[k],
                accuracy=float(rng.uniform(0.9, 1.0)),
                precision=float(rng.uniform(0.6, 1.0)),
                recall=float(rng.uniform(0.5, 1.0)),
                f1=float(rng.uniform(0.5, 1.0)),
            )


def run_child(name: str, store: str, max_bytes: int, out: str) -> dict[str, Any]:
    """Run one analysis in this process; return its seconds and peak RSS."""
    import wspace
    from wspace.analysis import (
        classify_weights,
        layer_divergence,
        meta_classifier,
        metrics_table,
        write_report,
    )

    start = time.perf_counter()
    zoo = wspace.open(store)
    detail: dict[str, Any] = {}
    if name == "metrics_table":
        detail["rows"] = len(metrics_table(zoo))
    elif name == "classify_stats":
        result = classify_weights(zoo, features="stats", max_bytes=max_bytes)
        detail["accuracy"] = result.table["accuracy"].to_dict()
    elif name == "classify_flat_pca":
        result = classify_weights(
            zoo, models=["naive_bayes", "svm"], features="flat", pca=32, max_bytes=max_bytes
        )
        detail["accuracy"] = result.table["accuracy"].to_dict()
        detail["explained_variance"] = result.explained_variance
    elif name == "layer_divergence":
        detail["mean_js"] = layer_divergence(zoo).summary["mean_js"].to_dict()
    elif name == "meta_classifier":
        meta = meta_classifier(zoo, epochs=1, positions=5)
        detail["accuracy"] = meta.accuracy
    elif name == "write_report_fast":
        write_report(zoo, Path(out) / "report", fast=True, max_bytes=max_bytes)
    elif name != "imports":
        raise SystemExit(f"unknown analysis {name!r}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return {"analysis": name, "seconds": time.perf_counter() - start, "peak_rss_mb": peak} | detail


def measure(store: str, analyses: list[str], max_bytes: int, out: str) -> list[dict[str, Any]]:
    """Each analysis in a fresh interpreter, so that its peak RSS is its own."""
    rows = []
    for name in analyses:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.analysis_memory", "--child", name,
             "--store", store, "--max-bytes", str(max_bytes), "--out", out],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode:
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--store", help="store to use (built there if missing)")
    parser.add_argument("--analyses", default=",".join(ANALYSES))
    parser.add_argument("--max-bytes", type=int, default=1 << 30)
    parser.add_argument("--limit-mb", type=float, default=2048, help="peak RSS allowed")
    parser.add_argument("--out", default="benchmarks/results/analysis_memory.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.store, args.max_bytes, args.out)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or str(Path(tmp) / "zoo.zarr")
        built = None
        if not Path(store).exists():
            start = time.perf_counter()
            build_store(store, args.rows)
            built = time.perf_counter() - start
        rows = measure(store, args.analyses.split(","), args.max_bytes, tmp)
    print(f"{'analysis':<20} {'seconds':>8} {'peak RSS MB':>12}")
    for row in rows:
        print(f"{row['analysis']:<20} {row['seconds']:>8.1f} {row['peak_rss_mb']:>12.0f}")
    worst = max(r["peak_rss_mb"] for r in rows)
    print(f"largest peak RSS {worst:.0f} MB (limit {args.limit_mb:.0f} MB) on {args.rows} rows")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "rows": args.rows,
                "params_per_row": 91_481,
                "weights_gb": args.rows * 91_481 * 4 / 1e9,
                "store_build_seconds": built,
                "max_bytes": args.max_bytes,
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "results": rows,
                "peak_rss_mb": worst,
                "limit_mb": args.limit_mb,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    if worst > args.limit_mb:
        raise SystemExit(f"peak RSS {worst:.0f} MB exceeds {args.limit_mb:.0f} MB")


if __name__ == "__main__":
    main()
