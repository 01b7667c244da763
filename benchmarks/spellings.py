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

Run alone (the table on stdout, the JSON with ``--out``)::

    python -m benchmarks.spellings --models 2000 --workdir /tmp/wspace-spellings

builds only the wspace store of a ``--models``-row LeNet-5 zoo (compacted; bases trained
briefly, cached) and its manifest, or reuses them, or takes a benchmark run's ``--manifest``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import runner
from benchmarks.check import Answer, stats_agree

__all__ = ["SPELLINGS", "measure_spellings", "store_manifest"]

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


def store_manifest(n_models: int, workdir: str) -> str:
    """Build (or reuse) a ``n_models``-row zoo's wspace store alone, and the manifest
    fields the spellings read; return the manifest's path."""
    from benchmarks.generate import write_store
    from benchmarks.synth import SynthZoo, train_bases

    root = Path(workdir) / f"spellings-{n_models}"
    path = root / "manifest.json"
    if path.exists():
        return str(path)
    root.mkdir(parents=True, exist_ok=True)
    bases = train_bases(1, Path(workdir), n_bases=2, negatives=200)
    synth = SynthZoo(n_models, bases, "lenet5")
    store = str(root / "store.zarr")
    write_store(store, synth)
    rng = np.random.default_rng(0)
    positions = np.sort(rng.choice(n_models, size=min(1_000, n_models), replace=False))
    q4 = n_models // 2
    layout = synth.layout
    manifest = {
        "store": store,
        "layer_slices": {
            layer: [layout.layer_slice(layer).start, layout.layer_slice(layer).stop]
            for layer in layout.layers
        },
        "q2": {
            "positions": positions.tolist(),
            "models": [synth.model(int(i)) for i in positions],
        },
        "q4": {"position": q4, "model": synth.model(q4)},
    }
    path.write_text(json.dumps(manifest))
    return str(path)


def main(argv: list[str] | None = None) -> None:
    from benchmarks.report import _spelling_table

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", help="a benchmark run's manifest.json (default: build one)")
    p.add_argument("--models", type=int, default=2_000, help="rows of the zoo built (2,000)")
    p.add_argument("--workdir", default="/tmp/wspace-spellings", help="where it is built")
    p.add_argument("--reps", type=int, default=5, help="repeats per spelling (5)")
    p.add_argument("--out", help="write the JSON here")
    args = p.parse_args(argv)
    manifest = args.manifest or store_manifest(args.models, args.workdir)
    result = measure_spellings(manifest, args.reps)
    print(_spelling_table(result, md=True))
    for error in result["errors"]:
        print("ERROR:", error)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
