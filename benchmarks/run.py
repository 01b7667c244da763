"""wspace against its peers, the published formats and the hardware, in one run.

    python -m benchmarks.run --models 10610            # the full benchmark (~1-2 h, ~45 GB disk)
    python -m benchmarks.run --quick                   # smoke test (CI): small, one repetition

Builds a zoo of realistic LeNet-5 rows (``benchmarks/synth.py``) as a wspace store, as the
published formats through wspace's own exporters, as the peers (Lance, Zarr by hand with
xarray, a safetensors folder) and as raw ``.npy`` files (row-major and per layer: the physical
limits); times every query in fresh processes, open and query apart ("query" and "e2e"), with
a warm and a cold page cache (median of ``--reps`` runs, peak RSS of each); checks that every
system returned exactly the same rows (:mod:`benchmarks.check`); measures memcpy and disk
bandwidth, every spelling of a row query, append throughput (Q6), bytes per model (Q7), the
codecs and the scaling curve (open, Q1, Q4 at ``--scale-sizes`` rows); prints the tables with
PASS/FAIL per target and writes them as JSON (``--out``) and Markdown (``--docs``, or later
``python -m benchmarks.report``). It exits non-zero only on errors (a failed process, results
that disagree between systems), never on timings.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import benchmarks.peers  # noqa: F401  (registers the peers in QUERIES)
from benchmarks import runner
from benchmarks.check import stats_agree
from benchmarks.limits import measure_limits
from benchmarks.queries import QUERIES
from benchmarks.spellings import measure_spellings
from benchmarks.stages import environment, measure_codecs, measure_q6, measure_q7

log = logging.getLogger("benchmarks")

DATA_KEYS = {
    "wspace": ("store",),
    "hdf5": ("h5",),
    "layerwise_pickle": ("layerwise",),
    "modelwise_pickle": ("modelwise",),
    "raw_rows": ("raw", "raw_classes"),
    "raw_layers": ("raw_layers",),
    "lance": ("lance",),
    "xzarr": ("xzarr",),
    "safetensors": ("safetensors",),
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
        "--scale-sizes",
        default=None,
        help="rows of the scaling curve's zoos, comma-separated (1000,10000,100000)",
    )
    p.add_argument(
        "--scale-layout",
        default="lenet5-small",
        choices=["lenet5", "lenet5-small"],
        help="layout of the scaling curve's zoos (lenet5-small: 100,000 rows in ~4 GB per copy)",
    )
    p.add_argument("--spell-reps", type=int, default=None, help="repeats per spelling (5)")
    p.add_argument("--q6-rows", type=int, default=None, help="rows appended per Q6 measurement")
    p.add_argument("--epochs", type=int, default=None, help="training epochs of the base networks")
    p.add_argument(
        "--queries",
        default="q1,q2,q3,q4,q5,q6,q7,codecs,limits,spellings,scale",
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
    sizes = args.scale_sizes or ("100,300" if quick else "1000,10000,100000")
    args.scale_sizes = [int(n) for n in sizes.split(",")]
    args.spell_reps = args.spell_reps or (2 if quick else 5)
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


def _systems(manifest: dict[str, Any], q: str) -> list[str]:
    return [s for s in QUERIES[q] if all(k in manifest for k in DATA_KEYS[s])]


def measure_queries(
    manifest: dict[str, Any],
    path: str,
    queries: list[str],
    args: argparse.Namespace,
    cache: runner.Cache,
    loads: list[float],
) -> dict[str, Any]:
    """Every query on every system that has data, warm then cold; medians and the check."""
    if args.quick:
        return _measure_batched(manifest, path, queries, cache)
    out: dict[str, Any] = {}
    errors: list[str] = []
    for q in queries:
        systems = _systems(manifest, q)
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
        flat = [(c, s, r) for c, by in runs.items() for s, rs in by.items() for r in rs]
        out[q]["check"], found = check_results(manifest["name"], q, flat)
        errors += found
    return {"queries": out, "errors": errors}


def check_results(
    name: str, q: str, runs: list[tuple[str, str, runner.Run]]
) -> tuple[dict[str, Any], list[str]]:
    """The result check of one query over every run: ``(reference digest, errors)``.

    Rows must have the same digest (names and exact bytes in name order); statistics must
    agree within 1e-4. The reference is the answer most systems gave (wspace's on a tie), so
    the message names the system that is off.
    """
    votes: dict[str, set[str]] = {}
    for _, s, r in runs:
        votes.setdefault(json.dumps(r.check, sort_keys=True), set()).add(s)
    ranked = sorted(votes.items(), key=lambda kv: (-len(kv[1]), "wspace" not in kv[1]))
    stats_runs = [r for _, _, r in runs if r.stats is not None]
    errors: list[str] = []
    if stats_runs:
        ref_run = next((r for _, s, r in runs if s == "wspace"), stats_runs[0])
        for c, s, r in runs:
            problem = "no statistics" if r.stats is None else stats_agree(ref_run.stats, r.stats)
            if problem:
                errors.append(
                    f"{name} {q} [{c}]: {s}'s statistics disagree with wspace's: {problem}"
                )
        return ref_run.check, errors
    reference = json.loads(ranked[0][0])
    for c, s, r in runs:
        if r.check != reference:
            errors.append(
                f"{name} {q} [{c}]: {s} returned different rows: {r.check} != {reference} "
                f"(given by {', '.join(sorted(ranked[0][1]))})"
            )
    return reference, errors


def _measure_batched(
    manifest: dict[str, Any], path: str, queries: list[str], cache: runner.Cache
) -> dict[str, Any]:
    """``--quick``: every query of a system in one process per cache state (a smoke test)."""
    systems = {s for q in queries for s in _systems(manifest, q)}
    caches = ["warm"] + ([] if cache.mode == "none" else ["cold"])
    out: dict[str, Any] = {q: {c: {} for c in caches} for q in queries}
    flat: dict[str, list[tuple[str, str, runner.Run]]] = {q: [] for q in queries}
    for c in caches:
        for s in sorted(systems):
            if c == "cold":
                cache.drop(manifest[k] for k in DATA_KEYS[s])
            mine = [q for q in queries if s in QUERIES[q]]
            log.info("%s %s: %s", s, c, ", ".join(mine))
            for q, r in runner.queries(s, mine, path).items():
                out[q][c][s] = runner.summarise([r])
                flat[q].append((c, s, r))
    errors: list[str] = []
    for q in queries:
        out[q]["check"], found = check_results(manifest["name"], q, flat[q])
        errors += found
    return {"queries": out, "errors": errors}


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
    main_res["q2_models"] = len(manifest["q2"]["positions"])
    got = measure_queries(manifest, path, queries, args, cache, loads)
    main_res["queries"], errors = got["queries"], errors + got["errors"]
    res["main"] = main_res
    stages: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("limits", lambda: measure_limits(manifest["raw"], cache)),
        ("spellings", lambda: measure_spellings(path, args.spell_reps, batched=args.quick)),
        ("q6", lambda: measure_q6(manifest, path, args)),
        ("q7", lambda: measure_q7(manifest)),
        ("codecs", lambda: measure_codecs(manifest, args.codec_rows)),
        ("scale", lambda: measure_scaling(args, cache, loads)),
    ]
    for stage, measure in stages:
        if stage == "scale" and not args.keep:
            shutil.rmtree(manifest["root"], ignore_errors=True)
        if stage in args.selected:
            loads.append(os.getloadavg()[0])
            log.info("stage %s", stage)
            try:  # a failing stage is reported; the others' results are still written
                res[stage] = measure()
            except Exception as exc:
                log.exception("%s failed", stage)
                errors.append(f"{stage}: {type(exc).__name__}: {exc}")
                continue
            errors += res[stage].pop("errors", [])
    if not args.keep:
        shutil.rmtree(manifest["root"], ignore_errors=True)
    loads.append(os.getloadavg()[0])
    res["load_average"] = loads
    res["finished"] = runner.now()
    res["errors"] = errors
    from benchmarks.report import tables, write_docs
    from benchmarks.targets import evaluate_targets

    res["targets"] = evaluate_targets(res)
    text = tables(res)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"\nwrote {out}")
    if args.docs:
        write_docs(res, args.docs)
        print(f"wrote {args.docs}")
    for e in errors:
        print("ERROR:", e, file=sys.stderr)
    return 1 if errors else 0


def measure_scaling(
    args: argparse.Namespace, cache: runner.Cache, loads: list[float]
) -> dict[str, Any]:
    """Open, Q1 and Q4 at every ``--scale-sizes`` (wspace, the raw limits and Lance), warm."""
    points = []
    errors: list[str] = []
    for n in args.scale_sizes:
        manifest, path = _build(
            args,
            f"scale-{n}",
            n_models=n,
            layout=args.scale_layout,
            baselines=(),
            peers=("lance",),
            lossy=None,
            q2_models=1,
        )
        # warm only: the curve is about growth with rows (cold runs are in the main tables)
        got = measure_queries(manifest, path, ["q5", "q1", "q4"], args, runner.Cache("none"), loads)
        point = {k: manifest[k] for k in ("n_models", "layout", "params", "timings")}
        point["queries"] = got["queries"]
        points.append(point)
        errors += got["errors"]
        if not args.keep:
            shutil.rmtree(manifest["root"], ignore_errors=True)
    return {"layout": args.scale_layout, "points": points, "errors": errors}


if __name__ == "__main__":
    t = time.perf_counter()
    code = main()
    log.info("done in %.0f s", time.perf_counter() - t)
    sys.exit(code)
