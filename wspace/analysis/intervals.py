"""Confidence intervals for accuracies measured on a test split."""

from __future__ import annotations

import math

__all__ = ["wilson_interval"]


def wilson_interval(correct: int, total: int, *, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion ``correct / total`` (95 % with the default ``z``).

    Unlike the normal approximation it stays inside [0, 1] and is sensible for small test
    splits and accuracies near 0 or 1.

    Examples
    --------
    >>> low, high = wilson_interval(45, 50)
    >>> round(low, 3), round(high, 3)
    (0.786, 0.957)
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    denominator = 1 + z * z / total
    center = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, center - half), min(1.0, center + half)
