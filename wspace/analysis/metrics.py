"""Per-class metrics tables, in the layout of the LeNet-5 zoo's dataset card."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from wspace.errors import CoordinateNotFoundError, listing
from wspace.query import Zoo

__all__ = ["CARD_METRICS", "final_rows", "flat_columns", "metrics_table"]

CARD_METRICS: Mapping[str, str] = {
    "accuracy": "Accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1 Score",
}
"""Metadata column -> heading on the dataset card (and in the zoo's CSV)."""


def final_rows(models: pd.DataFrame) -> pd.DataFrame:
    """One row per model: its last snapshot (largest ``step``) when there are snapshots."""
    if "step" not in models or models["model"].is_unique:
        return models
    order = models.sort_values("step", kind="stable")
    return order.drop_duplicates("model", keep="last").sort_index()


def metrics_table(
    zoo: Zoo,
    *,
    by: str = "cls",
    metrics: Sequence[str] = tuple(CARD_METRICS),
) -> pd.DataFrame:
    """Min, max and average of each metric per group of networks (the card's table).

    Uses each model's final row. Rows: one per group value, sorted, then ``All``; columns:
    ``Count`` and, per metric, ``(<Heading>, Min|Max|Avg)``.

    Examples
    --------
    >>> import wspace
    >>> from wspace.testing import tiny_zoo
    >>> table = metrics_table(wspace.open(tiny_zoo("memory://doc-metrics", 4)),
    ...                       metrics=["accuracy"])
    >>> float(table.loc["church", ("Accuracy", "Max")])
    0.75
    """
    models = final_rows(zoo.models)
    missing = [c for c in (by, *metrics) if c not in models.columns]
    if missing:
        raise CoordinateNotFoundError(
            f"store {zoo.url!r}: no column(s) {listing(missing)} for a metrics table; columns: "
            f"{listing(models.columns)}"
        )
    groups = models.groupby(by, sort=True)
    parts: dict[tuple[str, str], pd.Series] = {("Count", ""): groups.size()}
    for metric in metrics:
        heading = CARD_METRICS.get(metric, metric)
        values = groups[metric]
        parts[(heading, "Min")] = values.min()
        parts[(heading, "Max")] = values.max()
        parts[(heading, "Avg")] = values.mean()
    table = pd.DataFrame(parts)
    overall = {("Count", ""): len(models)}
    for metric in metrics:
        heading = CARD_METRICS.get(metric, metric)
        overall[(heading, "Min")] = models[metric].min()
        overall[(heading, "Max")] = models[metric].max()
        overall[(heading, "Avg")] = models[metric].mean()
    table.loc["All"] = pd.Series(overall)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    table.index.name = "Class"
    table[("Count", "")] = table[("Count", "")].astype(int)
    return table


def flat_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The table with one header row (``Accuracy Min``, ...), as written to CSV."""
    out = table.copy()
    out.columns = [" ".join(p for p in col if p) for col in table.columns]
    return out.reset_index()
