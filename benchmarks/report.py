"""Targets, the printed tables and ``docs/performance.md``, from a run's results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["evaluate_targets", "markdown", "tables"]

SYSTEMS = ("wspace", "hdf5", "layerwise_pickle", "modelwise_pickle", "raw_memmap")
LABELS = {
    "wspace": "wspace",
    "hdf5": "HDF5 folder",
    "layerwise_pickle": "layerwise pickle",
    "modelwise_pickle": "modelwise pickle",
    "raw_memmap": "raw memmap",
}
QUERY_TEXT = {
    "q1": 'Q1 sel(cls="church").layer("dense_1") -> numpy',
    "q2": "Q2 full vectors of 1,000 random models",
    "q3": "Q3 per-layer mean and std over all models",
    "q4": "Q4 one model row",
    "q5": "Q5 open()",
}


def _t(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def _get(ds: dict[str, Any], q: str, cache: str, system: str) -> dict[str, Any] | None:
    return ds.get("queries", {}).get(q, {}).get(cache, {}).get(system)


def evaluate_targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the issue with its measured value and PASS/FAIL."""
    out: list[dict[str, Any]] = []

    def add(
        tid: str, text: str, value: float | None, ok: Callable[[float], bool], unit: str
    ) -> None:
        out.append(
            {
                "id": tid,
                "target": text,
                "value": value,
                "unit": unit,
                "pass": value is not None and bool(ok(value)),
            }
        )

    def speedup(ds: dict[str, Any], q: str, cache: str, base: str) -> float | None:
        w, b = _get(ds, q, cache, "wspace"), _get(ds, q, cache, base)
        return None if w is None or b is None else b["median_s"] / w["median_s"]

    def slowdown(ds: dict[str, Any], q: str, cache: str) -> float | None:
        s = speedup(ds, q, cache, "raw_memmap")
        return None if s is None else 1 / s

    caches = [c for c in ("warm", "cold") if c in res["caches"]]
    main, scale = res["main"], res.get("scale")
    for cache in caches:
        tag = f"[{cache}]"
        add(
            f"Q1 hdf5 {tag}",
            "Q1 >= 50x faster than the HDF5 folder scan",
            speedup(main, "q1", cache, "hdf5"),
            lambda v: v >= 50,
            "x",
        )
        add(
            f"Q1 pickle {tag}",
            "Q1 >= 20x faster than loading the layerwise pickle",
            speedup(main, "q1", cache, "layerwise_pickle"),
            lambda v: v >= 20,
            "x",
        )
        add(
            f"Q1 raw {tag}",
            "Q1 within 3x of the raw memmap (wspace time / raw time)",
            slowdown(main, "q1", cache),
            lambda v: v <= 3,
            "x",
        )
    add(
        "Q2 hdf5 [warm]",
        "Q2 >= 5x faster than the HDF5 folder",
        speedup(main, "q2", "warm", "hdf5"),
        lambda v: v >= 5,
        "x",
    )
    add(
        "Q2 raw [warm]",
        "Q2 within 3x of the raw memmap (wspace time / raw time)",
        slowdown(main, "q2", "warm"),
        lambda v: v <= 3,
        "x",
    )
    for cache in caches:
        tag = f"[{cache}]"
        add(
            f"Q3 hdf5 {tag}",
            "Q3 >= 10x faster than the HDF5 scan",
            speedup(main, "q3", cache, "hdf5"),
            lambda v: v >= 10,
            "x",
        )
        w = _get(main, "q3", cache, "wspace")
        add(
            f"Q3 rss {tag}",
            "Q3 peak RSS < 1 GB (MiB)",
            None if w is None else w["rss_max_mb"],
            lambda v: v * 2**20 < 1e9,
            "MiB",
        )
    w = _get(main, "q4", "warm", "wspace")
    add(
        "Q4 [warm]",
        "Q4 < 10 ms warm",
        None if w is None else w["median_s"] * 1e3,
        lambda v: v < 10,
        "ms",
    )
    for cache in caches:
        w = _get(main, "q5", cache, "wspace")
        add(
            f"Q5 {main['n_models']} rows [{cache}]",
            f"Q5 open() < 100 ms ({main['n_models']:,} rows)",
            None if w is None else w["median_s"] * 1e3,
            lambda v: v < 100,
            "ms",
        )
    q6 = {r["writers"]: r for r in res.get("q6", {}).get("summary", [])}
    if 1 in q6:
        add(
            "Q6 1 writer",
            "Q6 one writer >= 500 models/s",
            q6[1]["models_per_s"],
            lambda v: v >= 500,
            "models/s",
        )
    if 1 in q6 and 4 in q6:
        add(
            "Q6 4 writers",
            "Q6 4 writers lose nothing and reach >= 1.5x one writer",
            q6[4]["models_per_s"] / q6[1]["models_per_s"] if q6[4]["lost_total"] == 0 else 0.0,
            lambda v: v >= 1.5,
            "x",
        )
    q7 = res.get("q7", {})
    if "lossless_ratio" in q7:
        add(
            "Q7 lossless",
            "Q7 lossless <= 0.9x raw bytes",
            q7["lossless_ratio"],
            lambda v: v <= 0.9,
            "x raw",
        )
    if "lossy_ratio" in q7:
        add(
            "Q7 lossy",
            f"Q7 lossy ({q7['lossy_codec']}) <= 0.75x raw bytes, max rel. error "
            f"{q7['lossy_max_rel_error']:.2e}",
            q7["lossy_ratio"],
            lambda v: v <= 0.75,
            "x raw",
        )
    if scale:
        n = scale["n_models"]
        for cache in caches:
            tag = f"[{cache}]"
            w = _get(scale, "q5", cache, "wspace")
            add(
                f"Scale Q5 {tag}",
                f"Scale: open() < 100 ms ({n:,} rows, {scale['layout']})",
                None if w is None else w["median_s"] * 1e3,
                lambda v: v < 100,
                "ms",
            )
            add(
                f"Scale Q1 hdf5 {tag}",
                "Scale: Q1 >= 50x faster than the HDF5 folder scan",
                speedup(scale, "q1", cache, "hdf5"),
                lambda v: v >= 50,
                "x",
            )
            add(
                f"Scale Q1 pickle {tag}",
                "Scale: Q1 >= 20x faster than the layerwise pickle",
                speedup(scale, "q1", cache, "layerwise_pickle"),
                lambda v: v >= 20,
                "x",
            )
            add(
                f"Scale Q1 raw {tag}",
                "Scale: Q1 within 3x of the raw memmap",
                slowdown(scale, "q1", cache),
                lambda v: v <= 3,
                "x",
            )
    return out


def _query_rows(ds: dict[str, Any], caches: list[str]) -> list[list[str]]:
    rows = []
    for q, by_cache in ds.get("queries", {}).items():
        for cache in caches:
            got = by_cache.get(cache)
            if not got:
                continue
            w = got["wspace"]["median_s"]
            cells = [QUERY_TEXT.get(q, q), cache]
            for system in SYSTEMS:
                r = got.get(system)
                if r is None:
                    cells.append("-")
                elif system == "wspace":
                    cells.append(_t(r["median_s"]))
                else:
                    cells.append(f"{_t(r['median_s'])} ({r['median_s'] / w:.3g}x)")
            rows.append(cells)
    return rows


def _rss_rows(ds: dict[str, Any], caches: list[str]) -> list[list[str]]:
    rows = []
    for q, by_cache in ds.get("queries", {}).items():
        for cache in caches:
            got = by_cache.get(cache)
            if got:
                cells = [q.upper(), cache]
                cells += [f"{got[s]['rss_max_mb']:.0f}" if s in got else "-" for s in SYSTEMS]
                rows.append(cells)
    return rows


def _render(header: list[str], rows: list[list[str]], md: bool) -> str:
    if md:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        + [fmt.format(*r) for r in rows]
    )


def tables(res: dict[str, Any], md: bool = False) -> str:
    """The results as text tables (or Markdown with ``md``)."""
    caches = [c for c in ("warm", "cold") if c in res["caches"]]
    parts = []
    head = ["query", "cache", *[LABELS[s] for s in SYSTEMS]]
    for key, title in (("main", "Zoo"), ("scale", "Scale test")):
        ds = res.get(key)
        if not ds:
            continue
        parts.append(
            f"{title}: {ds['n_models']:,} rows of {ds['layout']} ({ds['params']:,} params); "
            f"median of {res['reps']} fresh processes; (Nx) = baseline time / wspace time"
        )
        parts.append(_render(head, _query_rows(ds, caches), md))
        parts.append(f"{title}: peak RSS of each process (MiB, max over runs)")
        parts.append(
            _render(["query", "cache", *[LABELS[s] for s in SYSTEMS]], _rss_rows(ds, caches), md)
        )
    q6 = res.get("q6", {}).get("summary", [])
    if q6:
        parts.append(
            f"Q6 append throughput ({res['q6']['rows']} rows per measurement, "
            f"median of {res['reps']})"
        )
        base = q6[0]["models_per_s"]
        parts.append(
            _render(
                [
                    "writers",
                    "models/s",
                    "vs 1 writer",
                    "rows lost (all runs)",
                    "duplicated",
                    "peak RSS MiB",
                ],
                [
                    [
                        str(r["writers"]),
                        f"{r['models_per_s']:.0f}",
                        f"{r['models_per_s'] / base:.2f}x",
                        str(r["lost_total"]),
                        str(r["duplicated_total"]),
                        f"{r['rss_mb']:.0f}",
                    ]
                    for r in q6
                ],
                md,
            )
        )
    q7 = res.get("q7", {})
    if q7:
        parts.append("Q7 bytes on disk per model")
        parts.append(
            _render(
                ["format", "bytes/model", "x raw float32"],
                [
                    [k, f"{v:,.0f}", f"{v / q7['raw_bytes_per_model']:.3f}"]
                    for k, v in q7["bytes_per_model"].items()
                ],
                md,
            )
        )
        parts.append(
            f"lossy {q7['lossy_codec']}: max abs error {q7['lossy_max_abs_error']:.3g}, "
            f"max relative error {q7['lossy_max_rel_error']:.3g}"
        )
    codecs = res.get("codecs")
    if codecs:
        parts.append(f"Codec study ({codecs['rows']} rows, archive inner chunks, one thread)")
        parts.append(
            _render(
                ["codec", "x raw bytes", "encode MB/s", "decode MB/s", "max abs error"],
                [
                    [
                        c["codec"],
                        f"{c['ratio']:.3f}",
                        f"{c['encode_mb_s']:.0f}",
                        f"{c['decode_mb_s']:.0f}",
                        f"{c['max_abs_error']:.2g}",
                    ]
                    for c in codecs["results"]
                    if c.get("available")
                ],
                md,
            )
        )
    targets = res.get("targets", [])
    parts.append("Targets")
    parts.append(
        _render(
            ["target", "measured", "result"],
            [
                [
                    t["id"] + ": " + t["target"],
                    "not measured" if t["value"] is None else f"{t['value']:.3g} {t['unit']}",
                    "-" if t["value"] is None else "PASS" if t["pass"] else "FAIL",
                ]
                for t in targets
            ],
            md,
        )
    )
    return "\n\n".join(parts)


def markdown(res: dict[str, Any], defaults_text: str) -> str:
    """``docs/performance.md``: how it was run, the tables, and the chosen defaults."""
    env = res["environment"]
    lines = [
        "# Performance",
        "",
        "<!-- Generated by `python -m benchmarks.run`; do not edit by hand. -->",
        "",
        "How fast wspace answers the queries researchers run on a model zoo, against the published",
        "formats (one Keras HDF5 file per model, the layerwise and modelwise pickles) and against",
        "the hardware (one raw float32 `.npy` read through a memory map), measured in one run on",
        "the same zoo. Regenerate this page with the command below.",
        "",
        "## This run",
        "",
        f"- Command: `{res['command']}`",
        f"- Date: {res['started']} to {res['finished']}",
        f"- Machine: {env['cpus']} CPUs, {env['memory_gb']:.0f} GiB RAM, {env['platform']}, "
        f"Python {env['python']}",
        f"- Load average (1 min) during the run: min {min(res['load_average']):.1f}, "
        f"max {max(res['load_average']):.1f} (other work was "
        + ("running" if max(res["load_average"]) > 1.5 else "not running")
        + " on the machine)",
        f"- Page cache for cold runs: `{res['cache_mode']}` "
        + {
            "drop_caches": "(`echo 3 > /proc/sys/vm/drop_caches` before each cold run)",
            "fadvise": "(`posix_fadvise(DONTNEED)` on every file of the data a query reads)",
            "none": "(no cold runs)",
        }[res["cache_mode"]],
        f"- Zoo: {res['main']['n_models']:,} LeNet-5 rows derived from {res['main']['n_bases']} "
        f"digits networks trained {res['main']['epochs']} epoch(s), perturbed per row "
        "(`benchmarks/synth.py`); metadata columns as `wspace.train` writes them",
        "",
        "## Results",
        "",
        tables(res, md=True),
        "",
        "## What is timed",
        "",
        "- Every measurement is a fresh `python` process (`benchmarks/child.py`); imports are not",
        "  timed, the query is. For wspace the store is opened before the clock starts (opening is",
        "  Q5); the HDF5 baseline globs and opens the files it needs, the pickle baselines",
        "  `pickle.load` the whole file, the raw reference `np.load(mmap_mode='r')`s the `.npy`.",
        "- Warm: after one untimed run. Cold: the page cache emptied before each run.",
        "- Peak RSS is the child's own peak resident memory, `VmHWM` from `/proc/self/status` read",
        "  after the query (interpreter and imports included; not `ru_maxrss`, which in a child",
        "  also counts memory inherited from the parent over fork and exec).",
        "- The results of every system are checksummed and must agree, or the run fails.",
        "",
        defaults_text.strip(),
        "",
    ]
    return "\n".join(lines)
