"""One measurement in a fresh process: ``python -m benchmarks.child ...`` (run by the runner).

    python -m benchmarks.child query SYSTEM QUERY MANIFEST OUT
    python -m benchmarks.child writer MANIFEST OUT URL START STOP READY GO
    python -m benchmarks.child spelling INDEXES MANIFEST REPS OUT

``query`` opens the system (:data:`benchmarks.queries.OPEN`), runs one query of
:data:`benchmarks.queries.QUERIES` on it and writes ``{"open_s": ..., "query_s": ...,
"check": ..., "stats": ..., "rss_mb": ...}`` to ``OUT``. ``spelling`` times one way of writing
a row query (:mod:`benchmarks.spellings`). ``writer`` generates rows
``[START, STOP)`` of the synthetic zoo, creates the file ``READY``, waits for the file ``GO``,
appends the rows to the store at ``URL`` through one :class:`wspace.Writer` (default
settings) and writes ``{"end": time.time(), "rows": n, "rss_mb": ...}`` to ``OUT``.
``rss_mb`` is the peak resident memory of the process (:func:`peak_rss_mb`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident memory of this process since it started (``VmHWM``), MiB.

    ``ru_maxrss`` of a child would also count the parent's memory: it survives the fork and
    the exec that start the child. ``VmHWM`` belongs to the address space made by the exec.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


IMPORTS = {
    "wspace": ("dask.array", "xarray", "wspace", "wspace.query"),
    "hdf5": ("h5py", "wspace.io.keras_h5"),
    "modelwise_pickle": ("torch",),
    "lance": ("lance", "pyarrow"),
    "xzarr": ("xarray", "zarr", "dask.array"),
    "safetensors": ("safetensors", "safetensors.numpy"),
}
"""Modules each system imports before the clock starts (imports are never timed)."""


def _query(system: str, query: str, manifest: str, out: str) -> None:
    """Run one query; with a comma in ``query``, several one after the other (``--quick``).

    Each query is timed as ``open`` then the query on what it opened (see
    :mod:`benchmarks.queries`); Q3's statistics are written next to ``out`` for the check.
    """
    import importlib
    import time

    import numpy  # noqa: F401

    import benchmarks.peers  # noqa: F401  (registers the peers)
    from benchmarks.check import digest, save_stats
    from benchmarks.queries import CANONICAL, OPEN, QUERIES, load_manifest

    for module in IMPORTS.get(system, ()):
        importlib.import_module(module)
    m = load_manifest(manifest)
    got = {}
    for q in filter(None, query.split(",")):
        t0 = time.perf_counter()
        handle = OPEN[system](m)
        t1 = time.perf_counter()
        result = QUERIES[q][system](handle, m)
        t2 = time.perf_counter()
        rss = peak_rss_mb()
        answer = CANONICAL[system](m, q, result)
        stats = None
        if answer.stats is not None:
            stats = f"{out}.{q}.npz"
            save_stats(stats, answer.stats)
        got[q] = {
            "open_s": t1 - t0,
            "query_s": t2 - t1,
            "check": digest(answer),
            "stats": stats,
            "rss_mb": rss,
        }
        del handle, result, answer
    Path(out).write_text(json.dumps(got if "," in query else got[query]))


def _spelling(which: str, manifest: str, reps: str, out: str) -> None:
    """Time spellings (comma-separated indexes of :data:`~benchmarks.spellings.SPELLINGS`) on
    an opened store: each one's first call, then ``reps`` repeats."""
    import time

    import dask.array  # noqa: F401
    import xarray  # noqa: F401

    import wspace
    from benchmarks.check import digest, save_stats
    from benchmarks.queries import load_manifest
    from benchmarks.spellings import SPELLINGS

    m = load_manifest(manifest)
    zoo = wspace.open(m["store"])
    spellings = list(SPELLINGS.values())
    got = {}
    for index in which.split(","):
        spell = spellings[int(index)]
        times = []
        answer = None
        for _ in range(1 + spell.reps(int(reps))):
            t = time.perf_counter()
            result = spell.run(zoo, m)
            times.append(time.perf_counter() - t)
            answer = answer or spell.answer(m, result)
        assert answer is not None
        stats = None
        if answer.stats is not None:
            stats = f"{out}.{index}.npz"
            save_stats(stats, answer.stats)
        got[index] = {
            "first_s": times[0],
            "repeat_s": times[1:],
            "check": digest(answer),
            "stats": stats,
            "rss_mb": peak_rss_mb(),
        }
    Path(out).write_text(json.dumps(got))


def _writer(manifest: str, out: str, url: str, start: str, stop: str, ready: str, go: str) -> None:
    import wspace
    from benchmarks.queries import load_manifest
    from benchmarks.synth import SynthZoo, train_bases

    m = load_manifest(manifest)
    bases = train_bases(
        m["epochs"], Path(m["cache"]), n_bases=m["n_bases"], negatives=m["negatives"]
    )
    zoo = SynthZoo(m["n_models"], bases, m["layout"], seed=m["seed"], layout_dict=m["layout_dict"])
    first, last = int(start), int(stop)
    rows = zoo.rows(first, last)
    metas = [zoo.meta(i) for i in range(first, last)]
    names = [zoo.model(i) for i in range(first, last)]
    Path(ready).touch()
    while not os.path.exists(go):
        time.sleep(0.001)
    with wspace.writer(url) as w:
        for row, meta, name in zip(rows, metas, names, strict=True):
            w.append(row, model=name, **meta)
    Path(out).write_text(
        json.dumps({"end": time.time(), "rows": last - first, "rss_mb": peak_rss_mb()})
    )


def main(argv: list[str]) -> None:
    kind, *args = argv
    if kind == "query":
        _query(*args)
    elif kind == "writer":
        _writer(*args)
    elif kind == "spelling":
        _spelling(*args)
    else:
        raise SystemExit(f"unknown child kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
