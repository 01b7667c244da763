"""Throughput of the weight-space views: networks/s of ``zoo.batches(view=...)`` against flat.

    python -m benchmarks.views [--rows 2000] [--workdir /tmp/wspace-views] [--batch 256]
                               [--out benchmarks/results/views.json]

Builds (once, cached in ``--workdir``) a LeNet-5 store the way the query benchmark does
(:class:`benchmarks.synth.SynthZoo`: trained digits LeNet-5s perturbed per row, written by one
writer with default settings and compacted; ``--rows 10610`` is the benchmark zoo), then
measures, for every view:

- ``convert``: rows already in memory -> the view (``wspace.weightspace.to_view``);
- ``convert_permuted``: the same after random neuron permutations (``permute_rows``);
- ``batches``: end to end from the store, ``zoo.batches(batch, view=...)`` over every row
  (direct reads, the next batch prefetched), and ``batches_permute`` with
  ``augment="permute"``;
- ``loader``: the plain ``zoo.batches(batch)`` (no view), the baseline.

Each figure is networks per second, the best of ``--repeat`` runs (the machine is shared, and
the best run is the one least disturbed). The ``graph`` view is measured on fewer rows.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import wspace
from benchmarks.generate import write_store
from benchmarks.synth import SynthZoo, train_bases

VIEWS = ("flat", "state_dict", "nfn", "dws", "tokens", "graph")


def build_store(workdir: Path, rows: int) -> str:
    """The LeNet-5 store of ``rows`` rows under ``workdir`` (built once)."""
    url = workdir / f"views-{rows}.zarr"
    done = workdir / f"views-{rows}.done"
    if done.exists():
        return str(url)
    bases = train_bases(2, workdir)
    t = time.perf_counter()
    write_store(str(url), SynthZoo(rows, bases))
    done.write_text(f"{time.perf_counter() - t:.1f} s\n")
    return str(url)


def best_rate(run: Callable[[], int], repeat: int) -> float:
    """Networks/s of the fastest of ``repeat`` calls of ``run`` (which returns networks done)."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        n = run()
        best = max(best, n / (time.perf_counter() - start))
    return best


def measure(url: str, batch: int, repeat: int, graph_rows: int) -> dict[str, Any]:
    """Every view's rates on the store at ``url``."""
    import torch

    from wspace.weightspace import permute_rows, random_perms, to_view

    zoo = wspace.open(url)
    layout = zoo.layout
    sample = zoo.isel(np.arange(min(batch, len(zoo)))).values
    perms = random_perms(layout.symmetry, len(sample), seed=0)
    out: dict[str, Any] = {}
    for view in VIEWS:
        rows = len(zoo) if view != "graph" else min(graph_rows, len(zoo))
        part = zoo if rows == len(zoo) else zoo.isel(np.arange(rows))

        def convert(view: str = view) -> int:
            to_view(layout, sample, view)
            return len(sample)

        def convert_permuted(view: str = view) -> int:
            to_view(layout, permute_rows(layout, sample, perms), view)
            return len(sample)

        def stream(augment: str | None, view: str = view, part: Any = part) -> int:
            n = 0
            for b in part.batches(batch, view=view, augment=augment, seed=0):
                n += len(b.positions)
            return n

        out[view] = {
            "rows": rows,
            "convert": best_rate(convert, repeat),
            "convert_permuted": best_rate(convert_permuted, repeat),
            "batches": best_rate(lambda: stream(None), repeat),
            "batches_permute": best_rate(lambda: stream("permute"), repeat),
        }
        print(view, {k: round(v) for k, v in out[view].items()})

    def loader() -> int:
        return sum(len(b.positions) for b in zoo.batches(batch))

    def values() -> int:
        return len(zoo.isel(np.arange(len(zoo))).values)

    out["loader"] = {"rows": len(zoo), "batches": best_rate(loader, repeat)}
    out["values"] = {"rows": len(zoo), "read": best_rate(values, repeat)}
    print("loader", round(out["loader"]["batches"]), "values", round(out["values"]["read"]))
    out["torch_threads"] = torch.get_num_threads()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="rows of the LeNet-5 store")
    parser.add_argument("--workdir", default="/tmp/wspace-views")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--graph-rows", type=int, default=512)
    parser.add_argument("--out", default="benchmarks/results/views.json")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    url = build_store(workdir, args.rows)
    result = {
        "machine": platform.platform(),
        "cpus": len(__import__("os").sched_getaffinity(0)),
        "store_rows": args.rows,
        "batch": args.batch,
        "unit": "networks/s (best of repeats)",
        "views": measure(url, args.batch, args.repeat, args.graph_rows),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
