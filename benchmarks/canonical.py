"""Canonical forms on a digits zoo: within-class distances and weight classification, raw vs
canonical (``sort`` and ``match``).

    python -m benchmarks.canonical --url ZOO [--out benchmarks/results/canonical.json]

``ZOO`` is a digits LeNet-5 zoo (e.g. the one ``python -m wspace.weightspace.example`` trains);
each network's final row is used. For the raw rows and for each canonical form
(``wspace.weightspace.canonical.canonicalize``, applied in memory — the functions are the
same, only the neuron order changes):

- the mean pairwise L2 distance between the flat vectors of two networks of the same class
  (averaged over the pairs of every class), and between networks of different classes;
- ``wspace.analysis.classify_weights(target="cls", features="flat")``: accuracy of every
  classifier on the networks' 70/30 split (the same split for every form; the canonical rows
  are written to an in-memory store with the same metadata).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.distance import pdist, squareform

import wspace
from wspace.analysis import classify_weights
from wspace.weightspace.canonical import canonicalize
from wspace.weightspace.permute import permute_rows


def final_rows(zoo: Any) -> Any:
    """Each network's last row (``step`` == its largest ``step``)."""
    models = zoo.models
    if "step" not in models:
        return zoo
    last = models.groupby("model")["step"].transform("max")
    return zoo.isel(np.flatnonzero((models["step"] == last).to_numpy()))


def distances(rows: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """Mean pairwise L2 distance within a class and across classes."""
    d = squareform(pdist(rows.astype(np.float64)))
    same = classes[:, None] == classes[None, :]
    off = ~np.eye(len(rows), dtype=bool)
    return {
        "within_class": float(d[same & off].mean()),
        "across_classes": float(d[~same].mean()),
    }


def as_zoo(source: Any, rows: np.ndarray, url: str) -> Any:
    """``rows`` with ``source``'s metadata, as a zoo in a new store at ``url``."""
    wspace.create(url, source.layout)
    with wspace.writer(url) as w:
        for meta, row in zip(source.models.to_dict("records"), rows, strict=True):
            clean = {k: v for k, v in meta.items() if not (isinstance(v, float) and v != v)}
            w.append(row, **clean)
    return wspace.open(url)


def measure(url: str, seed: int = 0) -> dict[str, Any]:
    """Distances and classification accuracies, raw and canonical (see the module docs)."""
    zoo = final_rows(wspace.open(url))
    raw = np.asarray(zoo.values)
    classes = zoo.models["cls"].to_numpy(dtype=object)
    forms: dict[str, np.ndarray] = {"raw": raw}
    seconds: dict[str, float] = {}
    for method in ("sort", "match"):
        t = time.perf_counter()
        result = canonicalize(zoo, method)
        seconds[method] = time.perf_counter() - t
        forms[method] = permute_rows(zoo.layout, raw, result.perms)
    out: dict[str, Any] = {"networks": len(zoo), "classes": sorted(set(classes)), "forms": {}}
    for name, rows in forms.items():
        form_zoo = as_zoo(zoo, rows, f"memory://canonical-study-{name}-{time.time_ns()}")
        table = classify_weights(form_zoo, "cls", features="flat", seed=seed).table
        out["forms"][name] = {
            **distances(rows, classes),
            "accuracy": {k: float(v) for k, v in table["accuracy"].items()},
            "n_test": int(table["n_test"].iloc[0]),
        }
        print(name, json.dumps(out["forms"][name]))
    out["canonicalize_seconds"] = seconds
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a digits LeNet-5 zoo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/canonical.json")
    args = parser.parse_args()
    result = {"url": args.url, **measure(args.url, args.seed)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
