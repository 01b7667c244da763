"""No slow spellings: every natural way to ask wspace for the same rows, timed side by side.

Three groups, each spelling in its own fresh process on an opened store (``wspace.open`` is not
timed), warm page cache: its first call (what a user's first query pays) and the median of
``reps`` repeats on the same handle. All spellings of a group must return the same rows (the
result check of :mod:`benchmarks.check`; statistics agree to 1e-4); the table marks those more
than 2x the fastest.

* **one row** — the full vector of one model (Q4's model);
* **few rows** — one layer (``dense``) of ten models;
* **layer stats** — Q3, the per-parameter mean and std of every layer over all rows: the fused
  pass (``zoo.param_stats``) and the xarray reductions through Dask (at most
  :data:`STATS_REPS` repeats: a scan of the whole zoo each).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks import runner
from benchmarks.check import Answer, stats_agree

__all__ = ["SPELLINGS", "measure_spellings"]

FEW_LAYER = "dense"
FEW_ROWS = 10
STATS_REPS = 2
"""Repeats of a "layer stats" spelling at most."""


def few(m: dict[str, Any]) -> tuple[list[int], list[str]]:
    """Positions and names of the "few rows" group: ten rows spread over the zoo."""
    positions = m["q2"]["positions"][:: max(1, len(m["q2"]["positions"]) // FEW_ROWS)][:FEW_ROWS]
    return positions, [m["q2"]["models"][m["q2"]["positions"].index(p)] for p in positions]


@dataclass(frozen=True)
class Spelling:
    group: str
    code: str
    """What a user writes (shown in the table)."""
    run: Callable[[Any, dict[str, Any]], Any]

    def reps(self, reps: int) -> int:
        """Repeats of this spelling when ``reps`` are asked for."""
        return min(reps, STATS_REPS) if self.group == "layer stats" else reps

    def answer(self, m: dict[str, Any], result: Any) -> Answer:
        if self.group == "layer stats":
            return Answer(stats={k: (np.asarray(a), np.asarray(b)) for k, (a, b) in result.items()})
        rows = np.asarray(result, dtype=np.float32)
        if self.group == "one row":
            return Answer(rows=rows.reshape(1, -1), names=[m["q4"]["model"]])
        return Answer(rows=rows.reshape(FEW_ROWS, -1), names=few(m)[1])


def _one(m: dict[str, Any]) -> tuple[int, str]:
    return m["q4"]["position"], m["q4"]["model"]


ONE = [
    ("zoo.row(m)", lambda z, m: z.row(_one(m)[1])),
    ("zoo.sel(model=m).weights.values", lambda z, m: z.sel(model=_one(m)[1]).weights.values),
    ("zoo.weights.sel(model=m).values", lambda z, m: z.weights.sel(model=_one(m)[1]).values),
    ("zoo.sel(model=m).values", lambda z, m: z.sel(model=_one(m)[1]).values),
    ("zoo.isel(model=i).values", lambda z, m: z.isel(model=_one(m)[0]).values),
    ("zoo.weights[i].values", lambda z, m: z.weights[_one(m)[0]].values),
    (
        "zoo.where(lambda d: d.model == m).values",
        lambda z, m: z.where(lambda d: d.model == _one(m)[1]).values,
    ),
]
FEW = [
    (
        f"np.asarray(zoo.layer({FEW_LAYER!r})[rows])",
        lambda z, m: np.asarray(z.layer(FEW_LAYER)[few(m)[0]]),
    ),
    (
        f"zoo.isel(model=rows).layer({FEW_LAYER!r}).values",
        lambda z, m: z.isel(model=few(m)[0]).layer(FEW_LAYER).values,
    ),
    (
        f"zoo.sel(model=names).layer({FEW_LAYER!r}).values",
        lambda z, m: z.sel(model=few(m)[1]).layer(FEW_LAYER).values,
    ),
    (
        f"zoo.layer({FEW_LAYER!r}).sel(model=names).values",
        lambda z, m: z.layer(FEW_LAYER).sel(model=few(m)[1]).values,
    ),
    (
        f"zoo.where(lambda d: d.model.isin(names)).layer({FEW_LAYER!r}).values",
        lambda z, m: z.where(lambda d: d.model.isin(few(m)[1])).layer(FEW_LAYER).values,
    ),
    (
        f"np.stack([zoo.row(n) for n in names])[:, {FEW_LAYER} columns]",
        lambda z, m: np.stack([z.row(n) for n in few(m)[1]])[
            :, slice(*m["layer_slices"][FEW_LAYER])
        ],
    ),
]


def _param_stats(z: Any, m: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {
        layer: (s["mean"].values, s["std"].values)
        for layer in z.layout.layers
        for s in [z.param_stats(layer)]
    }


def _xarray_compute(z: Any, m: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    from dask.base import compute

    lazy = {
        layer: (z.layer(layer).mean("model").data, z.layer(layer).std("model").data)
        for layer in z.layout.layers
    }
    (stats,) = compute(lazy)
    return dict(stats)


STATS = [
    ('{l: zoo.param_stats(l)[["mean", "std"]] for l in layers}', _param_stats),
    (
        'dask.compute({l: (zoo.layer(l).mean("model"), zoo.layer(l).std("model")) ...})',
        _xarray_compute,
    ),
    (
        '{l: (zoo.layer(l).mean("model").values, zoo.layer(l).std("model").values) ...}',
        lambda z, m: {
            layer: (z.layer(layer).mean("model").values, z.layer(layer).std("model").values)
            for layer in z.layout.layers
        },
    ),
]

SPELLINGS: dict[str, Spelling] = {
    code: Spelling(group, code, fn)
    for group, items in (("one row", ONE), ("few rows", FEW), ("layer stats", STATS))
    for code, fn in items
}
"""Spelling (its code) -> :class:`Spelling`."""


def measure_spellings(manifest_path: str, reps: int, batched: bool = False) -> dict[str, Any]:
    """Time every spelling, each in a fresh process (all in one with ``batched``, for
    ``--quick``); ``{"rows": [...], "errors": [...]}``."""
    indexes = [str(i) for i in range(len(SPELLINGS))]
    groups = [indexes] if batched else [[i] for i in indexes]
    measured: dict[str, Any] = {}
    for group in groups:
        args = ["spelling", ",".join(group), manifest_path, str(reps), "{out}"]
        measured.update(runner.run_child(args, f"spellings {','.join(group)}"))
    rows = []
    errors: list[str] = []
    reference: dict[str, Any] = {}
    for index, (code, spell) in zip(indexes, SPELLINGS.items(), strict=True):
        d = measured[index]
        first = float(d["first_s"])
        repeat = statistics.median(d["repeat_s"]) if d["repeat_s"] else first
        if d.get("stats") is not None:  # statistics: sums in other orders, within 1e-4
            ref_stats = reference.setdefault(spell.group, d["stats"])
            problem = stats_agree(ref_stats, d["stats"])
            if problem:
                errors.append(
                    f"spelling {code!r} returned other statistics than the first of "
                    f"{spell.group!r}: {problem}"
                )
        else:
            ref = reference.setdefault(spell.group, d["check"])
            if d["check"] != ref:
                errors.append(
                    f"spelling {code!r} returned different rows than the first of "
                    f"{spell.group!r}: {d['check']} != {ref}"
                )
        rows.append(
            {
                "group": spell.group,
                "code": code,
                "first_s": first,
                "repeat_s": repeat,
                "rss_mb": d["rss_mb"],
            }
        )
    for group in {r["group"] for r in rows}:
        mine = [r for r in rows if r["group"] == group]
        for key in ("first_s", "repeat_s"):
            best = min(r[key] for r in mine)
            for r in mine:
                r[key.replace("_s", "_ratio")] = r[key] / best
    return {"rows": rows, "errors": errors, "batched": batched}
