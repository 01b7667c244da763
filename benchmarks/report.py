"""The printed tables and ``docs/performance.md``, from a run's results (its JSON).

    python -m benchmarks.report RESULTS.json [--docs docs/performance.md] [--title TEXT]
        [--previous OLD_PAGE.md]

``--previous`` keeps the "Results" section of an earlier page below the new one (labelled as
such), e.g. the last full-size run when this one is smaller.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.targets import pick

__all__ = ["markdown", "tables", "write_docs"]

SYSTEMS = (
    "wspace",
    "lance",
    "xzarr",
    "safetensors",
    "hdf5",
    "layerwise_pickle",
    "modelwise_pickle",
    "raw_layers",
    "raw_rows",
)
LABELS = {
    "wspace": "wspace",
    "lance": "Lance",
    "xzarr": "Zarr by hand (xarray)",
    "safetensors": "safetensors folder",
    "hdf5": "HDF5 folder (published)",
    "layerwise_pickle": "layerwise pickle",
    "modelwise_pickle": "modelwise pickle",
    "raw_layers": "raw .npy per layer (limit)",
    "raw_rows": "raw .npy rows (limit)",
}
QUERY_TEXT = {
    "q1": 'Q1 sel(cls="church").layer("dense_1") -> numpy',
    "q2": "Q2 full vectors of {q2} random models",
    "q3": "Q3 per-layer mean and std over all models",
    "q4": "Q4 one model row by name",
    "q5": "Q5 open()",
}
PLOT = "performance-scaling.png"


def _t(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


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


def query_tables(ds: dict[str, Any], caches: list[str], md: bool, q2: int) -> list[str]:
    """One table per query: systems x (query only, end to end) per cache, open, RSS."""
    parts = []
    head = ["system"]
    for c in caches:
        head += [f"{c} query", f"{c} e2e", f"{c} e2e vs wspace"]
    head += ["open (warm)", "peak RSS MiB"]
    for q in ds.get("queries", {}):
        rows = []
        for s in SYSTEMS:
            if all(pick(ds, q, c, s) is None for c in caches):
                continue
            cells = [LABELS.get(s, s)]
            for c in caches:
                r, w = pick(ds, q, c, s), pick(ds, q, c, "wspace")
                if r is None:
                    cells += ["-", "-", "-"]
                    continue
                vs = "-" if w is None or s == "wspace" else f"{r['e2e_s'] / w['e2e_s']:.3g}x"
                cells += [_t(r["median_s"]), _t(r["e2e_s"]), vs]
            warm = pick(ds, q, caches[0], s)
            cells += [_t(warm["open_s"]) if warm else "-"]
            measured = [r for r in (pick(ds, q, c, s) for c in caches) if r is not None]
            cells += [f"{max(r['rss_max_mb'] for r in measured):.0f}"]
            rows.append(cells)
        parts.append(QUERY_TEXT.get(q, q).format(q2=f"{q2:,}"))
        parts.append(_render(head, rows, md))
    return parts


def _limits(res: dict[str, Any]) -> str:
    lim = res.get("limits")
    if not lim:
        return "Machine limits: not measured"
    cold = f"{lim['cold_disk_gb_s']:.2f} GB/s" if "cold_disk_gb_s" in lim else "not measured"
    return (
        f"Machine limits (measured in this run): memcpy {lim['memcpy_gb_s']:.2f} GB/s, "
        f"page-cache read {lim['page_cache_gb_s']:.2f} GB/s, cold-disk read {cold} "
        f"({lim['file_bytes'] / 1e6:.0f} MB of the row-major raw file)"
    )


def _spelling_table(sp: dict[str, Any], md: bool) -> str:
    rows = [
        [
            r["group"],
            f"`{r['code']}`" if md else r["code"],
            _t(r["first_s"]),
            f"{r['first_ratio']:.2f}x",
            _t(r["repeat_s"]),
            f"{r['repeat_ratio']:.2f}x",
            "SLOW (> 2x)" if r["first_ratio"] > 2 or r["repeat_ratio"] > 2 else "ok",
        ]
        for r in sp["rows"]
    ]
    head = ["group", "spelling", "first call", "vs fastest", "repeat (median)", "vs fastest", ""]
    return _render(head, rows, md)


def _scaling_table(scale: dict[str, Any], md: bool) -> str:
    from benchmarks.scaling import SERIES, curves

    systems = [s for s in SYSTEMS if any(pick(p, "q5", "warm", s) for p in scale["points"])]
    head = ["rows"] + [f"{LABELS[s]} {label}" for s in systems for _, label in SERIES]
    rows = []
    for p in scale["points"]:
        cells = [f"{p['n_models']:,}"]
        for s in systems:
            for q, _ in SERIES:
                r = pick(p, q, "warm", s)
                cells.append("-" if r is None else _t(r["open_s" if q == "q5" else "e2e_s"]))
        rows.append(cells)
    growth = [
        [key, c["kind"], "-" if c["exponent"] is None else f"{c['exponent']:.2f}"]
        for key, c in sorted(curves(scale).items())
    ]
    return "\n\n".join(
        [_render(head, rows, md), _render(["curve (warm)", "growth", "exponent b"], growth, md)]
    )


def tables(res: dict[str, Any], md: bool = False) -> str:
    """The results as text tables (or Markdown with ``md``)."""
    caches = [c for c in ("warm", "cold") if c in res["caches"]]
    main = res["main"]
    parts = [_limits(res)]
    parts.append(
        f"Zoo: {main['n_models']:,} rows of {main['layout']} ({main['params']:,} params); median "
        f"of {res['reps']} fresh processes each; query = on the opened store, e2e = open + query "
        "(imports excluded); e2e vs wspace = system / wspace"
    )
    parts += query_tables(main, caches, md, main.get("q2_models", 1000))
    sp = res.get("spellings")
    if sp:
        parts.append("Spellings of the same rows (wspace, fresh process, store opened, warm)")
        parts.append(_spelling_table(sp, md))
    scale = res.get("scale")
    if scale and scale.get("points"):
        parts.append(f"Scaling ({scale['layout']}, end to end, warm, median of {res['reps']})")
        parts.append(_scaling_table(scale, md))
    q6 = res.get("q6", {}).get("summary", [])
    if q6:
        parts.append(f"Q6 append throughput ({res['q6']['rows']} rows per measurement)")
        base = q6[0]["models_per_s"]
        parts.append(
            _render(
                ["writers", "models/s", "vs 1 writer", "rows lost", "duplicated", "peak RSS MiB"],
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
        raw = q7["raw_bytes_per_model"]
        parts.append(
            _render(
                ["format", "bytes/model", "x raw float32"],
                [[k, f"{v:,.0f}", f"{v / raw:.3f}"] for k, v in q7["bytes_per_model"].items()],
                md,
            )
        )
        if "lossy_codec" in q7:
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
    parts.append("Targets")
    parts.append(
        _render(
            ["target", "measured", "result"],
            [
                [
                    t["id"] + ": " + t["target"],
                    "not measured"
                    if t["value"] is None
                    else f"{t['value']:.3g} {t['unit']}".strip(),
                    "-" if t["value"] is None else "PASS" if t["pass"] else "FAIL",
                ]
                for t in res.get("targets", [])
            ],
            md,
        )
    )
    return "\n\n".join(parts)


def markdown(
    res: dict[str, Any],
    defaults_text: str,
    *,
    title: str = "This run",
    previous: str = "",
    plot: str | None = None,
) -> str:
    """``docs/performance.md``: how it was run, the tables, and the chosen defaults."""
    env = res["environment"]
    load = res["load_average"]
    cache_note = {
        "drop_caches": "(`echo 3 > /proc/sys/vm/drop_caches` before each cold run)",
        "fadvise": "(`posix_fadvise(DONTNEED)` on every file of the data a query reads)",
        "none": "(no cold runs)",
    }[res["cache_mode"]]
    lines = [
        "# Performance",
        "",
        "<!-- Generated by `python -m benchmarks.report` from a run's JSON; do not edit. -->",
        "",
        "How fast wspace answers the queries researchers run on a model zoo, side by side in one",
        "run with the stores a user would pick instead (Lance, Zarr written by hand with xarray, a",
        "safetensors folder), the published formats as wspace's own exporters write them (Keras",
        "HDF5 files with the published Adam state, both pickles), and the physical limits (raw",
        "float32 `.npy` files, row-major and per layer, memory-mapped).",
        "",
        f"## {title}",
        "",
        f"- Command: `{res['command']}`",
        f"- Date: {res['started']} to {res['finished']}",
        f"- Machine: {env['cpus']} CPUs, {env['memory_gb']:.0f} GiB RAM, {env['platform']}, "
        f"Python {env['python']}; versions {json.dumps(env['versions'])}",
        f"- Load average (1 min) during the run: min {min(load):.1f}, max {max(load):.1f}",
        f"- Page cache for cold runs: `{res['cache_mode']}` {cache_note}",
        f"- Zoo: {res['main']['n_models']:,} LeNet-5 rows derived from {res['main']['n_bases']} "
        f"digits networks trained {res['main']['epochs']} epoch(s), perturbed per row "
        "(`benchmarks/synth.py`)",
        "",
        tables(res, md=True),
    ]
    if plot:
        lines += ["", f"![Scaling curve: open, Q1 and Q4 end to end against rows]({plot})"]
    lines += [
        "",
        "## What is timed",
        "",
        "- Every measurement is a fresh `python` process (`benchmarks/child.py`); imports are",
        "  never timed. The process opens the system (`wspace.open`, `lance.dataset`,",
        "  `xr.open_zarr`, a listing of the HDF5/safetensors folder, `pickle.load`,",
        "  `np.load(mmap_mode='r')`), then runs the query: *query* is the query alone, *e2e*",
        "  (end to end) is open + query, what a user's first query from a fresh process pays.",
        "- Warm: after one untimed run. Cold: the page cache emptied before each run.",
        "- Peak RSS is the child's own peak resident memory, `VmHWM` from `/proc/self/status`",
        "  read after the query (interpreter and imports included; not `ru_maxrss`, which in a",
        "  child also counts memory inherited from the parent over fork and exec).",
        "- Result check: each answer's rows (in the zoo's row order, after a stable sort by model",
        "  name) are hashed with their names (SHA-256 of the exact float32 bytes); every system",
        "  must give the same hash, Q3's statistics must agree to 1e-4, or the run fails.",
        "",
    ]
    if previous:
        lines += [previous.strip(), ""]
    lines += [defaults_text.strip(), ""]
    return "\n".join(lines)


def previous_results(page: str, title: str = "Previous run (kept from the earlier page)") -> str:
    """The "## This run" + "## Results" sections of an older page, under ``title``."""
    start = page.find("## This run")
    end = page.find("## What is timed")
    if start < 0 or end < 0:
        return ""
    body = page[start:end].replace("## This run", f"## {title}")
    return body.replace("## Results", "### Its results")


def write_docs(
    res: dict[str, Any], path: str | Path, *, title: str = "This run", previous: str = ""
) -> Path:
    """Write the page (and the scaling plot next to it, when the run has one)."""
    out = Path(path)
    plot = None
    if res.get("scale", {}).get("points"):
        from benchmarks.scaling import plot as draw

        draw(res["scale"], out.parent / PLOT)
        plot = PLOT
    defaults = (Path(__file__).parent / "defaults.md").read_text()
    out.write_text(markdown(res, defaults, title=title, previous=previous, plot=plot))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__)
    p.add_argument("results", help="a run's JSON (--out of benchmarks.run)")
    p.add_argument("--docs", default=None, help="write the Markdown page here")
    p.add_argument("--title", default="This run", help="heading of this run's section")
    p.add_argument("--previous", default=None, help="keep this page's results below")
    p.add_argument(
        "--previous-title",
        default="Previous run (kept from the earlier page)",
        help="heading of the kept results",
    )
    args = p.parse_args(argv)
    res = json.loads(Path(args.results).read_text())
    print(tables(res))
    if args.docs:
        previous = ""
        if args.previous:
            previous = previous_results(Path(args.previous).read_text(), args.previous_title)
        write_docs(res, args.docs, title=args.title, previous=previous)
        print(f"wrote {args.docs}")


if __name__ == "__main__":
    main()
