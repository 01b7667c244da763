"""Analyses of zoos: the tables and figures of the reference papers."""

from __future__ import annotations

from wspace.analysis.metrics import CARD_METRICS, metrics_table

__all__ = ["CARD_METRICS", "metrics_table"]
