"""One measurement in a fresh process: ``python -m benchmarks.child ...`` (run by the runner).

    python -m benchmarks.child query SYSTEM QUERY MANIFEST OUT
    python -m benchmarks.child writer MANIFEST OUT URL START STOP READY GO

``query`` runs one query of :data:`benchmarks.queries.QUERIES` and writes
``{"seconds": ..., "check": ..., "rss_mb": ...}`` to ``OUT``. ``writer`` generates rows
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


def _query(system: str, query: str, manifest: str, out: str) -> None:
    """Run one query; with a comma in ``query``, several one after the other (``--quick``)."""
    import numpy  # noqa: F401

    from benchmarks.queries import QUERIES, load_manifest, summary

    if system == "wspace":
        import dask.array  # noqa: F401
        import xarray  # noqa: F401

        import wspace  # noqa: F401
    m = load_manifest(manifest)
    got = {}
    for q in filter(None, query.split(",")):
        seconds, result = QUERIES[q][system](m)
        got[q] = {"seconds": seconds, "check": summary(result), "rss_mb": peak_rss_mb()}
    Path(out).write_text(json.dumps(got if "," in query else got[query]))


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
    else:
        raise SystemExit(f"unknown child kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
