"""Per-column count, mean, sum of squared deviations, min and max, accumulated block by block.

:class:`ColumnMoments` takes decoded float32 blocks of rows one at a time and keeps, per column,
float64 sums of the values and of their squares, both shifted by the first row it saw (so a
column whose spread is tiny next to its mean loses no precision to cancellation), and the
float32 minimum and maximum. Rows are converted to float64 into one reused buffer that stays
in the CPU cache (wide rows one at a time, narrow ones a group at a time): no temporary the
size of a block is made. Two
accumulators of the same columns merge exactly (Chan et al.'s parallel variance), so threads
each keep their own and merge at the end.

Examples
--------
>>> import numpy as np
>>> rows = np.arange(12, dtype=np.float32).reshape(4, 3)
>>> acc = ColumnMoments(3)
>>> acc.add(rows[:1]); acc.add(rows[1:])
>>> acc.mean().tolist(), acc.std().round(4).tolist(), acc.min.tolist()
([4.5, 5.5, 6.5], [3.3541, 3.3541, 3.3541], [0.0, 1.0, 2.0])
"""

from __future__ import annotations

import numpy as np

__all__ = ["GROUP_BYTES", "WIDE", "ColumnMoments"]

GROUP_BYTES = 1 << 20
"""Float64 bytes of narrow rows converted and summed at once (sized to stay in the CPU cache)."""
WIDE = 4096
"""Columns from which rows are added one at a time (a row's vectors fill the cache)."""


class ColumnMoments:
    """Running per-column moments of rows of ``width`` float32 columns.

    Parameters
    ----------
    width
        Number of columns.
    """

    def __init__(self, width: int) -> None:
        self.width = width
        self.count = 0
        """Rows seen."""
        self.shift: np.ndarray | None = None
        """The first row seen (float64): sums are of ``value - shift``."""
        self.total = np.zeros(width)
        """Per column, the float64 sum of ``value - shift``."""
        self.squares = np.zeros(width)
        """Per column, the float64 sum of ``(value - shift) ** 2``."""
        self.min = np.full(width, np.inf, dtype=np.float32)
        self.max = np.full(width, -np.inf, dtype=np.float32)
        self._buffer: np.ndarray | None = None

    def add(self, block: np.ndarray) -> None:
        """Add the rows of a ``(rows, width)`` float32 block."""
        rows = block.shape[0]
        if rows == 0:
            return
        if self.shift is None:
            self.shift = block[0].astype(np.float64)
        if self.width >= WIDE:
            self._add_rows(block, self.shift)
        else:
            self._add_groups(block, self.shift)
        self.count += rows

    def _add_rows(self, block: np.ndarray, shift: np.ndarray) -> None:
        """Wide rows one at a time: every operation in place on cached vectors."""
        if self._buffer is None:
            self._buffer = np.empty((1, self.width))
        x = self._buffer[0]
        for row in block:
            np.subtract(row, shift, out=x)
            np.add(self.total, x, out=self.total)
            np.multiply(x, x, out=x)
            np.add(self.squares, x, out=self.squares)
            np.minimum(self.min, row, out=self.min)
            np.maximum(self.max, row, out=self.max)

    def _add_groups(self, block: np.ndarray, shift: np.ndarray) -> None:
        """Narrow rows a group at a time (one operation per group, not per row)."""
        group = GROUP_BYTES // (8 * self.width)
        if self._buffer is None:
            self._buffer = np.empty((group, self.width))
        for first in range(0, block.shape[0], group):
            part = block[first : first + group]
            x = self._buffer[: part.shape[0]]
            np.subtract(part, shift, out=x)
            self.total += x.sum(axis=0)
            np.multiply(x, x, out=x)
            self.squares += x.sum(axis=0)
        np.minimum(self.min, block.min(axis=0), out=self.min)
        np.maximum(self.max, block.max(axis=0), out=self.max)

    def mean(self) -> np.ndarray:
        """Per column, the float64 mean (NaN without rows)."""
        if self.shift is None:
            return np.full(self.width, np.nan)
        mean: np.ndarray = self.shift + self.total / self.count
        return mean

    def m2(self) -> np.ndarray:
        """Per column, the float64 sum of squared deviations from the mean."""
        if self.count == 0:
            return np.zeros(self.width)
        m2: np.ndarray = np.maximum(self.squares - self.total * self.total / self.count, 0.0)
        return m2

    def var(self, ddof: int = 0) -> np.ndarray:
        """Per column, the float64 variance (``ddof``: delta degrees of freedom, as numpy)."""
        if self.count <= ddof:
            return np.full(self.width, np.nan)
        var: np.ndarray = self.m2() / (self.count - ddof)
        return var

    def std(self, ddof: int = 0) -> np.ndarray:
        """Per column, the float64 standard deviation."""
        std: np.ndarray = np.sqrt(self.var(ddof))
        return std

    def merge(self, other: ColumnMoments) -> ColumnMoments:
        """Both accumulators' rows as one (shifted by the first one's mean); neither changes."""
        out = ColumnMoments(self.width)
        out.count = self.count + other.count
        out.min = np.minimum(self.min, other.min)
        out.max = np.maximum(self.max, other.max)
        if out.count == 0:
            return out
        if self.count == 0 or other.count == 0:
            one = self if self.count else other
            out.shift = one.mean()
            out.squares = one.m2()
            return out
        delta = other.mean() - self.mean()
        shift = self.mean()
        out.shift = shift
        out.total = delta * other.count  # the sum of (value - mean_a) over both parts
        m2 = self.m2() + other.m2() + delta * delta * (self.count * other.count / out.count)
        # keep total and squares consistent: squares - total**2 / count == m2
        out.squares = m2 + out.total * out.total / out.count
        return out
