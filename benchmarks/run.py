"""wspace against the published formats and the hardware: Q1-Q7 and the scale test, one run.

    python -m benchmarks.run --models 10610            # the full benchmark (~1 h, ~30 GB disk)
    python -m benchmarks.run --quick                   # smoke test (CI): small, one repetition

Builds a zoo of realistic LeNet-5 rows (``benchmarks/synth.py``) as a wspace store and as the
baselines (``benchmarks/formats.py``), times every query in fresh processes with a warm and a
cold page cache (median of ``--reps`` runs, peak RSS of each), measures append throughput
(Q6) and bytes per model (Q7), runs the 100,000-row scale test, prints the tables with
PASS/FAIL per target, and writes them as JSON (``--out``) and Markdown (``--docs``). It exits
non-zero only on errors (a failed process, results that disagree between systems), never on
timings.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import runner
from benchmarks.queries import QUERIES, same

log = logging.getLogger("benchmarks")

DATA_KEYS = {
    "wspace": ("store",),
    "hdf5": ("h5",),
    "layerwise_pickle": ("layerwise",),
    "modelwise_pickle": ("modelwise",),
    "raw_memmap": ("raw", "raw_classes"),
}
"""System -> manifest keys of the data it reads (evicted before its cold runs)."""


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.splitlines()[0]
    )
    p.add_argument("--models", type=int, default=10_610, help="rows of the zoo (default 10,610)")
    p.add_argument("--quick", action="store_true", help="small smoke-test sizes, one repetition")
    p.add_argument("--reps", type=int, default=None, help="timed runs per query and cache (5)")
    p.add_argument("--workdir", default="/tmp/wspace-bench", help="where the data is written")
    p.add_argument(
        "--cache",
        default="auto",
        choices=["auto", "drop_caches", "fadvise", "none"],
        help="how to empty the page cache for cold runs",
    )
    p.add_argument(
        "--scale-models", type=int, default=None, help="rows of the scale test (100,000)"
    )
    p.add_argument(
        "--scale-layout",
        default="auto",
        choices=["auto", "lenet5", "lenet5-small"],
        help="layout of the scale test (auto: lenet5-small unless the disk is large)",
    )
    p.add_argument("--q6-rows", type=int, default=None, help="rows appended per Q6 measurement")
    p.add_argument("--epochs", type=int, default=None, help="training epochs of the base networks")
    p.add_argument(
        "--queries",
        default="q1,q2,q3,q4,q5,q6,q7,codecs,scale",
        help="comma-separated subset to run",
    )
    p.add_argument("--reuse", action="store_true", help="reuse data built by an earlier run")
    p.add_argument("--keep", action="store_true", help="keep the data when done")
    p.add_argument("--out", default="benchmarks/results/latest.json", help="JSON results")
    p.add_argument(
        "--docs", default=None, help="write the Markdown page here (docs/performance.md)"
    )
    args = p.parse_args(argv)
    quick = args.quick
    if quick and args.workdir == "/tmp/wspace-bench":
        args.workdir = "/tmp/wspace-bench/quick"
    args.reps = args.reps or (1 if quick else 5)
    args.warmup = not quick  # a smoke test needs no untimed warm-up run
    args.models = 200 if quick and args.models == 10_610 else args.models
    args.scale_models = args.scale_models or (400 if quick else 100_000)
    if quick and args.scale_layout == "auto":
        args.scale_layout = "lenet5-small"
    args.q6_rows = args.q6_rows or (32 if quick else 2_048)
    args.epochs = args.epochs or (1 if quick else 2)
    args.n_bases = 2 if quick else 10
    args.negatives = 200 if quick else None
    args.q2_models = 50 if quick else 1_000
    args.codec_rows = 16 if quick else 512
    args.selected = set(args.queries.split(","))
    return args


def _build(args: argparse.Namespace, name: str, **kwargs: Any) -> tuple[dict[str, Any], str]:
    from benchmarks.generate import build

    path = Path(args.workdir) / name / "manifest.json"
    want = {
        "n_models": kwargs["n_models"],
        "layout": kwargs.get("layout", "lenet5"),
        "epochs": args.epochs,
        "n_bases": args.n_bases,
        "negatives": args.negatives,
    }
    if args.reuse and path.exists():
        manifest = json.loads(path.read_text())
        if all(manifest.get(k) == v for k, v in want.items()):
            log.info("reusing %s", path)
            return manifest, str(path)
    manifest = build(
        Path(args.workdir),
        name,
        epochs=args.epochs,
        n_bases=args.n_bases,
        negatives=args.negatives,
        **kwargs,
    )
    return manifest, str(path)


def measure_queries(
    manifest: dict[str, Any],
    path: str,
    queries: list[str],
    args: argparse.Namespace,
    cache: runner.Cache,
    loads: list[float],
) -> dict[str, Any]:
    """Every query on every system that has data, warm then cold; medians and checks."""
    if args.quick:
        return _measure_batched(manifest, path, queries, cache)
    out: dict[str, Any] = {}
    errors: list[str] = []
    for q in queries:
        systems = [s for s in QUERIES[q] if all(k in manifest for k in DATA_KEYS[s])]
        runs: dict[str, dict[str, list[runner.Run]]] = {"warm": {s: [] for s in systems}}
        loads.append(os.getloadavg()[0])
        log.info("%s warm: %s", q, ", ".join(systems))
        # one system after the other: the pickle baselines take 8 GB of memory, which would
        # evict the others' files from the page cache between their "warm" runs
        for s in systems:
            if args.warmup:
                runner.query(s, q, path)  # fills the page cache; not timed
            for _ in range(args.reps):
                runs["warm"][s].append(runner.query(s, q, path))
        if cache.mode != "none":
            runs["cold"] = {s: [] for s in systems}
            log.info("%s cold (%s)", q, cache.mode)
            for s in systems:
                for _ in range(args.reps):
                    cache.drop(manifest[k] for k in DATA_KEYS[s])
                    runs["cold"][s].append(runner.query(s, q, path))
        out[q] = {c: {s: runner.summarise(r) for s, r in by.items()} for c, by in runs.items()}
        reference = runs["warm"]["wspace"][0].check
        for c, by in runs.items():
            for s, rs in by.items():
                for r in rs:
                    if not same(reference, r.check, rtol=1e-3 if q == "q3" else 1e-6):
                        errors.append(
                            f"{manifest['name']} {q} {c}: {s} disagrees with wspace: "
                            f"{r.check} != {reference}"
                        )
        out[q]["check"] = reference
    return {"queries": out, "errors": errors}


def _measure_batched(
    manifest: dict[str, Any], path: str, queries: list[str], cache: runner.Cache
) -> dict[str, Any]:
    """``--quick``: every query of a system in one process per cache state (a smoke test)."""
    systems = {s for q in queries for s in QUERIES[q] if all(k in manifest for k in DATA_KEYS[s])}
    caches = ["warm"] + ([] if cache.mode == "none" else ["cold"])
    out: dict[str, Any] = {q: {c: {} for c in caches} for q in queries}
    errors: list[str] = []
    for c in caches:
        for s in sorted(systems):
            if c == "cold":
                cache.drop(manifest[k] for k in DATA_KEYS[s])
            mine = [q for q in queries if s in QUERIES[q]]
            log.info("%s %s: %s", s, c, ", ".join(mine))
            for q, r in runner.queries(s, mine, path).items():
                out[q][c][s] = runner.summarise([r])
                out[q].setdefault("_checks", {})[(c, s)] = r.check
    for q in queries:
        checks = out[q].pop("_checks")
        reference = checks[("warm", "wspace")]
        for (c, s), check in checks.items():
            if not same(reference, check, rtol=1e-3 if q == "q3" else 1e-6):
                errors.append(f"{manifest['name']} {q} {c}: {s} disagrees with wspace")
        out[q]["check"] = reference
    return {"queries": out, "errors": errors}


def measure_q6(manifest: dict[str, Any], path: str, args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.writers import measure_writers

    rows = min(args.q6_rows, manifest["n_models"])
    runs = []
    for _ in range(args.reps):
        for writers in (1, 2, 4):
            log.info("q6: %d writer(s), %d rows", writers, rows)
            runs.append(measure_writers(manifest, path, writers, rows))
    summary = []
    for writers in (1, 2, 4):
        mine = [r for r in runs if r["writers"] == writers]
        summary.append(
            {
                "writers": writers,
                "models_per_s": float(np.median([r["models_per_s"] for r in mine])),
                "lost_total": sum(r["lost"] for r in mine),
                "duplicated_total": sum(r["duplicated"] for r in mine),
                "rss_mb": max(r["rss_mb"] for r in mine),
            }
        )
    return {"rows": rows, "runs": runs, "summary": summary}


def _size(path: str | Path) -> int:
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def measure_q7(manifest: dict[str, Any]) -> dict[str, Any]:
    import wspace

    n = manifest["n_models"]
    raw = manifest["params"] * 4
    out: dict[str, Any] = {"raw_bytes_per_model": raw}
    per: dict[str, float] = {}
    info = wspace.info(manifest["store"])
    per[f"wspace ({info['codec']}, default, lossless)"] = info["bytes_live"] / n
    out["lossless_ratio"] = info["bytes_live"] / n / raw
    if "lossy" in manifest:
        lossy = wspace.info(manifest["lossy"])
        per[f"wspace ({lossy['codec']}, opt-in lossy)"] = lossy["bytes_live"] / n
        out["lossy_codec"] = lossy["codec"]
        out["lossy_ratio"] = lossy["bytes_live"] / n / raw
        source = np.load(manifest["raw"], mmap_mode="r")
        zoo = wspace.open(manifest["lossy"])
        worst_abs = worst_rel = 0.0
        for first in range(0, n, 512):
            got = zoo.isel(slice(first, first + 512)).values
            want = np.asarray(source[first : first + 512])
            diff = np.abs(got - want)
            worst_abs = max(worst_abs, float(diff.max()))
            nz = want != 0
            worst_rel = max(worst_rel, float((diff[nz] / np.abs(want[nz])).max()))
        out["lossy_max_abs_error"], out["lossy_max_rel_error"] = worst_abs, worst_rel
    for key, label in (
        ("h5", "HDF5 folder"),
        ("modelwise", "modelwise pickle"),
        ("layerwise", "layerwise pickle"),
        ("raw", "raw float32 .npy"),
    ):
        if key in manifest:
            per[label] = _size(manifest[key]) / n
    out["bytes_per_model"] = per
    return out


def measure_codecs(manifest: dict[str, Any], rows: int) -> dict[str, Any]:
    from benchmarks.codec_study import study
    from benchmarks.synth import layout_named
    from wspace.store.config import StoreConfig

    layout = layout_named(manifest["layout"])
    source = np.load(manifest["raw"], mmap_mode="r")
    pick = np.sort(
        np.random.default_rng(0).choice(len(source), min(rows, len(source)), replace=False)
    )
    sample = np.asarray(source[pick])
    config = StoreConfig()
    chunk_rows = {
        layer: config.archive_chunk_rows(layer, layout.layer_size(layer), manifest["n_models"])
        for layer in layout.layers
    }
    inner = getattr(config, "archive_inner_rows", None)
    if inner is not None:
        chunk_rows = {layer: inner(layer, layout.layer_size(layer)) for layer in layout.layers}
    return {
        "rows": len(sample),
        "chunk_rows": chunk_rows,
        "results": study(sample, layout, chunk_rows),
    }


def environment() -> dict[str, Any]:
    import dask
    import h5py
    import xarray
    import zarr

    return {
        "cpus": os.cpu_count(),
        "memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "zarr": zarr.__version__,
            "numpy": np.__version__,
            "dask": dask.__version__,
            "xarray": xarray.__version__,
            "h5py": h5py.__version__,
        },
        "disk_free_gb": shutil.disk_usage("/").free / 2**30,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cache = runner.Cache(args.cache)
    loads: list[float] = [os.getloadavg()[0]]
    res: dict[str, Any] = {
        "command": "python -m benchmarks.run "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "started": runner.now(),
        "environment": environment(),
        "cache_mode": cache.mode,
        "caches": ["warm"] + ([] if cache.mode == "none" else ["cold"]),
        "reps": args.reps,
    }
    errors: list[str] = []
    queries = [q for q in ("q1", "q2", "q3", "q4", "q5") if q in args.selected]
    manifest, path = _build(args, "main", n_models=args.models, q2_models=args.q2_models)
    main_res = {
        k: manifest[k] for k in ("n_models", "layout", "params", "epochs", "n_bases", "timings")
    }
    got = measure_queries(manifest, path, queries, args, cache, loads)
    main_res["queries"], errors = got["queries"], errors + got["errors"]
    res["main"] = main_res
    stages = [
        ("q6", lambda: measure_q6(manifest, path, args)),
        ("q7", lambda: measure_q7(manifest)),
        ("codecs", lambda: measure_codecs(manifest, args.codec_rows)),
    ]
    for stage, measure in stages:
        if stage in args.selected:
            loads.append(os.getloadavg()[0])
            try:  # a failing stage is reported; the others' results are still written
                res[stage] = measure()
            except Exception as exc:
                log.exception("%s failed", stage)
                errors.append(f"{stage}: {type(exc).__name__}: {exc}")
    if not args.keep:
        shutil.rmtree(manifest["root"], ignore_errors=True)
    if "scale" in args.selected:
        try:  # like the stages above: a failure is reported, the main results still written
            res["scale"], scale_errors = _measure_scale(args, workdir, cache, loads)
            errors += scale_errors
        except Exception as exc:
            log.exception("scale failed")
            errors.append(f"scale: {type(exc).__name__}: {exc}")
    loads.append(os.getloadavg()[0])
    res["load_average"] = loads
    res["finished"] = runner.now()
    res["errors"] = errors
    from benchmarks.report import evaluate_targets, markdown, tables

    res["targets"] = evaluate_targets(res)
    text = tables(res)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"\nwrote {out}")
    if args.docs:
        defaults = (Path(__file__).parent / "defaults.md").read_text()
        Path(args.docs).write_text(markdown(res, defaults))
        print(f"wrote {args.docs}")
    for e in errors:
        print("ERROR:", e, file=sys.stderr)
    return 1 if errors else 0


def _measure_scale(
    args: argparse.Namespace, workdir: Path, cache: runner.Cache, loads: list[float]
) -> tuple[dict[str, Any], list[str]]:
    """The scale test: a store of ``args.scale_models`` rows opens (Q5) and answers Q1."""
    layout = args.scale_layout
    if layout == "auto":  # the full layout needs ~4 copies of 366 KB per row
        need = args.scale_models * 91_481 * 4 * 4.2
        layout = "lenet5" if shutil.disk_usage(workdir).free > 1.5 * need else "lenet5-small"
    manifest, path = _build(
        args,
        "scale",
        n_models=args.scale_models,
        layout=layout,
        baselines=("keras-h5", "layerwise-pickle"),
        lossy=None,
        q2_models=1,
    )
    got = measure_queries(manifest, path, ["q5", "q1"], args, cache, loads)
    scale = {k: manifest[k] for k in ("n_models", "layout", "params", "timings")}
    scale["queries"] = got["queries"]
    if not args.keep:
        shutil.rmtree(manifest["root"], ignore_errors=True)
    return scale, got["errors"]


if __name__ == "__main__":
    t = time.perf_counter()
    code = main()
    log.info("done in %.0f s", time.perf_counter() - t)
    sys.exit(code)
