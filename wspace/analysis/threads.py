"""Thread limits for the compute libraries (BLAS, OpenMP, torch) during an analysis.

On a machine whose cores are busy, BLAS and torch threads spin-wait for each other: measured
on a shared 2-core machine, a scikit-learn MLP on LeNet-5 weights ran 2.4x faster and a
torch training step of a small 1-D CNN up to 75x faster with one thread than with two. The
analyses therefore default to one compute thread; pass ``threads=None`` to keep the
libraries' own settings (a dedicated many-core machine).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["limit_threads"]


@contextmanager
def limit_threads(threads: int | None) -> Iterator[None]:
    """Limit BLAS/OpenMP (threadpoolctl) and torch intra-op threads inside the block.

    ``None`` changes nothing. The previous settings are restored on exit.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with limit_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)
