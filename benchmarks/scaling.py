"""The scaling curve: open, Q1 and Q4 at growing zoo sizes, as a table and a plot.

Each size is its own zoo (``benchmarks.generate.build``, default layout ``lenet5-small`` so
that 100,000 rows fit on a small disk) with the wspace store, the raw limits and Lance. Times
are end to end (open + query, a fresh process each, median of ``reps``). The growth of each
curve is classified from the exponent ``b`` of ``t ~ rows^b`` between the smallest and the
largest size: flat (t grows < 1.5x), logarithmic (b < 0.3), sublinear (b < 0.8) or linear.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["growth", "plot"]

SERIES = (("q5", "open"), ("q1", "Q1 e2e"), ("q4", "Q4 e2e"))


def growth(points: list[tuple[int, float]]) -> dict[str, Any]:
    """``{"exponent": b, "kind": flat|logarithmic|sublinear|linear}`` of ``(rows, seconds)``."""
    (n0, t0), (n1, t1) = min(points), max(points)
    if n1 == n0 or t0 <= 0:
        return {"exponent": None, "kind": "n/a"}
    b = math.log(t1 / t0) / math.log(n1 / n0)
    if t1 / t0 < 1.5:
        kind = "flat"
    elif b < 0.3:
        kind = "logarithmic"
    elif b < 0.8:
        kind = "sublinear"
    else:
        kind = "linear"
    return {"exponent": b, "kind": kind}


def curves(scaling: dict[str, Any], cache: str = "warm") -> dict[str, dict[str, Any]]:
    """``{f"{system} {label}": {"points": [(rows, s)], **growth}}`` from the scaling results."""
    out: dict[str, dict[str, Any]] = {}
    for point in scaling["points"]:
        for q, label in SERIES:
            by_system = point["queries"].get(q, {}).get(cache, {})
            for system, r in by_system.items():
                key = f"{system} {label}"
                seconds = r["open_s"] if q == "q5" else r["e2e_s"]
                out.setdefault(key, {"points": []})["points"].append((point["n_models"], seconds))
    for c in out.values():
        c.update(growth(c["points"]))
    return out


def plot(scaling: dict[str, Any], path: str | Path) -> Path:
    """Write the scaling curve (log-log) as a PNG; wspace solid, the others dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SERIES), figsize=(4 * len(SERIES), 3.6), sharey=True)
    data = curves(scaling)
    for ax, (_, label) in zip(axes, SERIES, strict=True):
        for key, c in sorted(data.items()):
            system, _, what = key.partition(" ")
            if what != label:
                continue
            xs, ys = zip(*sorted(c["points"]), strict=True)
            style = "-o" if system == "wspace" else "--."
            ax.plot(xs, [y * 1e3 for y in ys], style, label=f"{system} ({c['kind']})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(label + " (warm)")
        ax.set_xlabel("rows")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("ms (fresh process, median)")
    fig.suptitle(f"Scaling, layout {scaling['layout']}", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
