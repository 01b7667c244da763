"""Weight-space learning: permutation symmetries, permutations, views, statistics, splits.

- :func:`analyze` / ``layout.symmetry`` — which axes each hidden-neuron permutation moves;
- :func:`random_perms`, :func:`permute_rows` — apply permutations to flat rows (batched);
- :func:`to_view` — rows as ``nfn``, ``dws``, ``tokens``, ``graph``, ``flat`` or ``state_dict``;
- :func:`compute_stats` — per-tensor and per-layer mean/std in one streaming pass;
- :func:`split_rows` — deterministic, leakage-safe train/val/test splits by group
  (:func:`save_split` / :func:`load_split` store them beside the data);
- :func:`canonicalize` — ``sort`` and ``match`` (weight matching) canonical forms.

Names are imported on first use, so ``import wspace.weightspace`` loads neither torch nor scipy.

>>> import wspace.weightspace as ws
>>> ws.analyze.__name__
'analyze'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wspace.weightspace.canonical import Canonical, canonicalize
    from wspace.weightspace.permute import (
        compose_perms,
        identity_perms,
        invert_perms,
        permute_rows,
        random_perms,
    )
    from wspace.weightspace.permuted import PermutedZoo
    from wspace.weightspace.splits import load_split, save_split, split_rows
    from wspace.weightspace.stats import WeightStats, compute_stats
    from wspace.weightspace.symmetry import AxisRef, NeuronGroup, Symmetry, WeightLayer, analyze
    from wspace.weightspace.views import VIEWS, ViewBatch, to_view

__all__ = [
    "VIEWS",
    "AxisRef",
    "Canonical",
    "NeuronGroup",
    "PermutedZoo",
    "Symmetry",
    "ViewBatch",
    "WeightLayer",
    "WeightStats",
    "analyze",
    "canonicalize",
    "compose_perms",
    "compute_stats",
    "identity_perms",
    "invert_perms",
    "load_split",
    "permute_rows",
    "random_perms",
    "save_split",
    "split_rows",
    "to_view",
]

_HOME = {
    "AxisRef": "symmetry",
    "NeuronGroup": "symmetry",
    "Symmetry": "symmetry",
    "WeightLayer": "symmetry",
    "analyze": "symmetry",
    "compose_perms": "permute",
    "identity_perms": "permute",
    "invert_perms": "permute",
    "permute_rows": "permute",
    "random_perms": "permute",
    "PermutedZoo": "permuted",
    "split_rows": "splits",
    "save_split": "splits",
    "load_split": "splits",
    "WeightStats": "stats",
    "compute_stats": "stats",
    "VIEWS": "views",
    "ViewBatch": "views",
    "to_view": "views",
    "Canonical": "canonical",
    "canonicalize": "canonical",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"wspace.weightspace.{_HOME[name]}"), name)
    raise AttributeError(f"module 'wspace.weightspace' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
