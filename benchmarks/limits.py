"""The machine's limits, measured in the same run as the queries: memcpy and disk bandwidth.

* **memcpy**: ``np.copyto`` of a 256 MiB float32 array into another (best of 5, both
  already touched): the most bytes per second any in-memory reader can deliver.
* **page cache**: reading a data file that is cached, with ``readinto`` in 8 MiB blocks.
* **cold disk**: the same file after its pages were evicted (``posix_fadvise(DONTNEED)`` or
  ``drop_caches``, as for the cold runs): what a cold query can get from the disk.

Dividing a query's bytes by these gives its physical floor.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.runner import Cache

__all__ = ["measure_limits"]

BLOCK = 8 << 20


def _memcpy(nbytes: int = 256 << 20, reps: int = 5) -> float:
    a = np.ones(nbytes // 4, dtype=np.float32)
    b = np.zeros_like(a)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t)
    return nbytes / best


def _read(path: Path, limit: int) -> tuple[int, float]:
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    done = 0
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while done < limit:
            n = f.readinto(view)
            if not n:
                break
            done += n
    return done, time.perf_counter() - t


def measure_limits(data_file: str | os.PathLike[str], cache: Cache) -> dict[str, Any]:
    """``{"memcpy_gb_s", "page_cache_gb_s", "cold_disk_gb_s", "file_bytes"}`` (GB = 1e9)."""
    path = Path(data_file)
    limit = min(path.stat().st_size, 2 << 30)
    out: dict[str, Any] = {"memcpy_gb_s": _memcpy() / 1e9, "file": str(path)}
    _read(path, limit)  # into the page cache
    done, seconds = _read(path, limit)
    out["page_cache_gb_s"] = done / seconds / 1e9
    out["file_bytes"] = done
    if cache.mode != "none":
        cache.drop([path])
        done, seconds = _read(path, limit)
        out["cold_disk_gb_s"] = done / seconds / 1e9
        out["cold_mode"] = cache.mode
    return out
