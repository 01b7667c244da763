"""The targets of the performance issues, each with its measured value and PASS/FAIL.

Query targets are evaluated twice, "query" (the query on an opened store) and "e2e" (open +
query from a fresh process), for each page-cache state the run measured, unless the target
says otherwise. A ratio ``peer / wspace`` above 1 means wspace is faster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["MODES", "evaluate_targets", "pick"]

MODES = {"query": "median_s", "e2e": "e2e_s"}
"""Timing mode -> key of the summary (:func:`benchmarks.runner.summarise`)."""


def pick(ds: dict[str, Any], q: str, cache: str, system: str) -> dict[str, Any] | None:
    """The summary of ``system`` on query ``q`` in ``cache``, or ``None``."""
    got = ds.get("queries", {}).get(q, {}).get(cache, {}).get(system)
    return got if isinstance(got, dict) else None


def evaluate_targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target with ``id``, ``target``, ``value``, ``unit`` and ``pass``."""
    out: list[dict[str, Any]] = []

    def add(
        tid: str, text: str, value: float | None, ok: Callable[[float], bool], unit: str
    ) -> None:
        passed = value is not None and bool(ok(value))
        out.append({"id": tid, "target": text, "value": value, "unit": unit, "pass": passed})

    def ratio(ds: dict[str, Any], q: str, cache: str, mode: str, other: str) -> float | None:
        """``other``'s time / wspace's time."""
        w, b = pick(ds, q, cache, "wspace"), pick(ds, q, cache, other)
        if w is None or b is None or w[MODES[mode]] <= 0:
            return None
        return float(b[MODES[mode]] / w[MODES[mode]])

    def inverse(v: float | None) -> float | None:
        return None if v is None or v == 0 else 1 / v

    main = res["main"]
    caches = [c for c in ("warm", "cold") if c in res["caches"]]
    for cache in caches:
        for mode in MODES:
            tag = f"[{cache}, {mode}]"
            for peer, label in (("lance", "Lance"), ("xzarr", "Zarr by hand (xarray)")):
                add(
                    f"Q1 vs {peer} {tag}",
                    f"Q1 faster than {label} (peer time / wspace time)",
                    ratio(main, "q1", cache, mode, peer),
                    lambda v: v > 1,
                    "x",
                )
            add(
                f"Q1 hdf5 {tag}",
                "Q1 >= 30x faster than the HDF5 folder",
                ratio(main, "q1", cache, mode, "hdf5"),
                lambda v: v >= 30,
                "x",
            )
            add(
                f"Q1 raw layers {tag}",
                "Q1 within 2x of the per-layer raw file (wspace / raw)",
                inverse(ratio(main, "q1", cache, mode, "raw_layers")),
                lambda v: v <= 2,
                "x",
            )
            for q in ("q2", "q4"):
                add(
                    f"{q.upper()} vs lance {tag}",
                    f"{q.upper()} no slower than Lance (Lance / wspace)",
                    ratio(main, q, cache, mode, "lance"),
                    lambda v: v >= 1,
                    "x",
                )
            add(
                f"Q3 hdf5 {tag}",
                "Q3 >= 10x faster than the HDF5 scan",
                ratio(main, "q3", cache, mode, "hdf5"),
                lambda v: v >= 10,
                "x",
            )
        w = pick(main, "q3", cache, "wspace")
        add(
            f"Q3 rss [{cache}]",
            "Q3 peak RSS < 1 GB (MiB)",
            None if w is None else w["rss_max_mb"],
            lambda v: v * 2**20 < 1e9,
            "MiB",
        )
        w = pick(main, "q5", cache, "wspace")
        n = main["n_models"]
        add(
            f"open {n} rows [{cache}]",
            f"open() < 20 ms (target at 10,610 rows; {n:,} here)",
            None if w is None else w["open_s"] * 1e3,
            lambda v: v < 20,
            "ms",
        )
    for mode in MODES:
        add(
            f"Q2 raw [warm, {mode}]",
            "Q2 within 3x of the row-major raw file (wspace / raw)",
            inverse(ratio(main, "q2", "warm", mode, "raw_rows")),
            lambda v: v <= 3,
            "x",
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
    _bytes(res.get("q7", {}), add)
    _spellings(res.get("spellings"), add)
    _scaling(res.get("scale"), add)
    return out


def _bytes(q7: dict[str, Any], add: Callable[..., None]) -> None:
    if "lossless_ratio" in q7:
        add(
            "Q7 lossless",
            "Q7 lossless <= 0.9x raw bytes",
            q7["lossless_ratio"],
            lambda v: v <= 0.9,
            "x raw",
        )
        per = q7["bytes_per_model"]
        mine = next(v for k, v in per.items() if k.startswith("wspace") and "lossless" in k)
        peers = {k: v for k, v in per.items() if not k.startswith("wspace")}
        if peers:
            best = min(peers, key=lambda k: peers[k])
            add(
                "Q7 vs peers",
                f"Q7 bytes/model <= every lossless peer (smallest: {best}; "
                "value = wspace / smallest)",
                mine / peers[best],
                lambda v: v <= 1,
                "x",
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


def _spellings(spellings: dict[str, Any] | None, add: Callable[..., None]) -> None:
    if not spellings:
        return
    for group in sorted({r["group"] for r in spellings["rows"]}):
        mine = [r for r in spellings["rows"] if r["group"] == group]
        worst = max(mine, key=lambda r: r["first_ratio"])
        add(
            f"Spellings {group}",
            f"every spelling of {group!r} within 2x of the fastest "
            f"(first call; slowest: {worst['code']})",
            worst["first_ratio"],
            lambda v: v <= 2,
            "x",
        )


def _scaling(scale: dict[str, Any] | None, add: Callable[..., None]) -> None:
    if not scale or not scale.get("points"):
        return
    from benchmarks.scaling import curves

    largest = max(scale["points"], key=lambda p: p["n_models"])
    w = pick(largest, "q5", "warm", "wspace")
    n = largest["n_models"]
    add(
        f"open {n} rows [warm]",
        f"open() < 60 ms (target at 100,000 rows; {n:,} here, {scale['layout']})",
        None if w is None else w["open_s"] * 1e3,
        lambda v: v < 60,
        "ms",
    )
    for key, c in sorted(curves(scale).items()):
        if key.startswith("wspace ") and c["exponent"] is not None:
            add(
                f"Scaling {key}",
                f"{key}: flat or logarithmic growth ({c['kind']}; value = "
                "exponent b of t ~ rows^b)",
                c["exponent"],
                lambda v, k=c["kind"]: k in ("flat", "logarithmic"),
                "",
            )
