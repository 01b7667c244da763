"""Analyses of zoos: the tables, tests and figures of the reference papers.

- :func:`metrics_table` — per-class min/max/avg metrics (the dataset card's table);
- :func:`classify_weights` — Naive Bayes, random forest, SVM and MLP on weights vs chance;
- :func:`layer_divergence` — per-layer Jensen-Shannon divergence between groups;
- :func:`meta_classifier` — NWS 1-D CNN meta-classifiers on weight slices;
- :func:`write_report` — all of them, with figures, as Markdown and HTML.

Everything streams from the store chunk by chunk. Names are imported on first use, so that
``import wspace.analysis`` does not load scikit-learn, torch or matplotlib.

>>> import wspace.analysis
>>> wspace.analysis.layer_divergence.__name__
'layer_divergence'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wspace.analysis.classify import CLASSIFIERS, ClassificationResult, classify_weights
    from wspace.analysis.divergence import DivergenceResult, layer_divergence
    from wspace.analysis.meta import MetaResult, meta_classifier
    from wspace.analysis.metrics import CARD_METRICS, metrics_table
    from wspace.analysis.report import ReportResult, write_report

__all__ = [
    "CARD_METRICS",
    "CLASSIFIERS",
    "ClassificationResult",
    "DivergenceResult",
    "MetaResult",
    "ReportResult",
    "classify_weights",
    "layer_divergence",
    "meta_classifier",
    "metrics_table",
    "write_report",
]

_HOME = {
    "CARD_METRICS": "metrics",
    "metrics_table": "metrics",
    "CLASSIFIERS": "classify",
    "ClassificationResult": "classify",
    "classify_weights": "classify",
    "DivergenceResult": "divergence",
    "layer_divergence": "divergence",
    "MetaResult": "meta",
    "meta_classifier": "meta",
    "ReportResult": "report",
    "write_report": "report",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"wspace.analysis.{_HOME[name]}"), name)
    raise AttributeError(f"module 'wspace.analysis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
