"""The result check: every system must return exactly the same rows, or the run fails.

A row query's answer (:class:`Answer`: rows in the zoo's torch row order plus their model
names) is digested as the SHA-256 of the model names and the exact float32 bytes of the rows,
both after a stable sort by model name (systems that list files return rows in file-name order,
the others in zoo order). A permuted, misplaced or changed value changes the digest. Per-layer
statistics (Q3) are sums in float64 in different orders, so they are compared array by array
within a relative tolerance instead (:func:`stats_agree`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Answer", "digest", "load_stats", "save_stats", "stats_agree"]

Stats = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass
class Answer:
    """A query's result in canonical form: rows with their model names, or statistics."""

    rows: np.ndarray | None = None
    """``(n, k)`` float32, each row in the zoo layout's (torch) order."""
    names: list[str] | None = None
    """Model name of each row."""
    stats: Stats | None = None
    """``{layer: (mean, std)}`` per parameter."""


def digest(answer: Answer) -> dict[str, Any]:
    """A JSON-able digest: ``sha256`` of names + row bytes in name order (rows), or sums."""
    if answer.stats is not None:
        return {
            "kind": "stats",
            "layers": sorted(answer.stats),
            "sum": float(sum(np.sum(m, dtype=np.float64) for m, _ in answer.stats.values())),
        }
    assert answer.rows is not None and answer.names is not None
    rows = np.ascontiguousarray(answer.rows, dtype="<f4")
    if rows.shape[0] != len(answer.names):
        raise ValueError(f"{rows.shape[0]} rows but {len(answer.names)} names")
    order = np.argsort(np.asarray(answer.names, dtype=object), kind="stable")
    names = [answer.names[i] for i in order]
    h = hashlib.sha256(json.dumps(names).encode())
    h.update(json.dumps(rows.shape).encode())
    h.update(np.ascontiguousarray(rows[order]).tobytes())
    return {
        "kind": "rows",
        "sha256": h.hexdigest(),
        "shape": list(rows.shape),
        "sum": float(rows.sum(dtype=np.float64)),
    }


def save_stats(path: str | Path, stats: Stats) -> None:
    """Write statistics to an ``.npz`` (``<layer>/mean``, ``<layer>/std``)."""
    arrays = {}
    for layer, (mean, std) in stats.items():
        arrays[f"{layer}/mean"] = np.asarray(mean, dtype=np.float64)
        arrays[f"{layer}/std"] = np.asarray(std, dtype=np.float64)
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]


def load_stats(path: str | Path) -> Stats:
    """Read what :func:`save_stats` wrote."""
    with np.load(path) as f:
        layers = sorted({k.rpartition("/")[0] for k in f.files})
        return {layer: (f[f"{layer}/mean"], f[f"{layer}/std"]) for layer in layers}


def stats_agree(reference: Stats, got: Stats, rtol: float = 1e-4) -> str | None:
    """``None`` when ``got`` matches ``reference``; otherwise what differs."""
    if sorted(reference) != sorted(got):
        return f"layers {sorted(got)} != {sorted(reference)}"
    for layer, pair in reference.items():
        for what, want, have in zip(("mean", "std"), pair, got[layer], strict=True):
            want, have = np.asarray(want), np.asarray(have)
            if want.shape != have.shape:
                return f"{layer} {what}: shape {have.shape} != {want.shape}"
            atol = rtol * float(np.abs(want).max(initial=0.0))
            if not np.allclose(have, want, rtol=rtol, atol=atol):
                worst = float(np.abs(have - want).max())
                return f"{layer} {what}: max difference {worst:.3g}"
    return None
