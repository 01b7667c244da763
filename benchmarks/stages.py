"""The stages of a run besides Q1-Q5: Q6 (writers), Q7 (bytes), the codec study, environment."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["environment", "measure_codecs", "measure_q6", "measure_q7"]

log = logging.getLogger("benchmarks")


def measure_q6(manifest: dict[str, Any], path: str, args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.writers import measure_writers

    rows = min(args.q6_rows, manifest["n_models"])
    runs = []
    for _ in range(args.reps):
        for writers in (1, 2, 4):
            log.info("q6: %d writer(s), %d rows", writers, rows)
            runs.append(measure_writers(manifest, path, writers, rows))
    summary = []
    for writers in (1, 2, 4):
        mine = [r for r in runs if r["writers"] == writers]
        summary.append(
            {
                "writers": writers,
                "models_per_s": float(np.median([r["models_per_s"] for r in mine])),
                "lost_total": sum(r["lost"] for r in mine),
                "duplicated_total": sum(r["duplicated"] for r in mine),
                "rss_mb": max(r["rss_mb"] for r in mine),
            }
        )
    return {"rows": rows, "runs": runs, "summary": summary}


def _size(path: str | Path) -> int:
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def measure_q7(manifest: dict[str, Any]) -> dict[str, Any]:
    import wspace

    n = manifest["n_models"]
    raw = manifest["params"] * 4
    out: dict[str, Any] = {"raw_bytes_per_model": raw}
    per: dict[str, float] = {}
    info = wspace.info(manifest["store"])
    per[f"wspace ({info['codec']}, default, lossless)"] = info["bytes_live"] / n
    out["lossless_ratio"] = info["bytes_live"] / n / raw
    if "lossy" in manifest:
        lossy = wspace.info(manifest["lossy"])
        per[f"wspace ({lossy['codec']}, opt-in lossy)"] = lossy["bytes_live"] / n
        out["lossy_codec"] = lossy["codec"]
        out["lossy_ratio"] = lossy["bytes_live"] / n / raw
        source = np.load(manifest["raw"], mmap_mode="r")
        zoo = wspace.open(manifest["lossy"])
        worst_abs = worst_rel = 0.0
        for first in range(0, n, 512):
            got = zoo.isel(slice(first, first + 512)).values
            want = np.asarray(source[first : first + 512])
            diff = np.abs(got - want)
            worst_abs = max(worst_abs, float(diff.max()))
            nz = want != 0
            worst_rel = max(worst_rel, float((diff[nz] / np.abs(want[nz])).max()))
        out["lossy_max_abs_error"], out["lossy_max_rel_error"] = worst_abs, worst_rel
    if "h5_exported_bytes" in manifest:
        per["HDF5 folder, as wspace.io exports it (no optimizer state)"] = (
            manifest["h5_exported_bytes"] / n
        )
    for key, label in (
        ("h5", "HDF5 folder, as published (with Adam state)"),
        ("modelwise", "modelwise pickle"),
        ("layerwise", "layerwise pickle"),
        ("lance", "Lance"),
        ("xzarr", "Zarr by hand (xarray, zstd)"),
        ("safetensors", "safetensors folder"),
        ("raw", "raw float32 .npy (rows)"),
        ("raw_layers", "raw float32 .npy per layer"),
    ):
        if key in manifest:
            per[label] = _size(manifest[key]) / n
    out["bytes_per_model"] = per
    return out


def measure_codecs(manifest: dict[str, Any], rows: int) -> dict[str, Any]:
    from benchmarks.codec_study import study
    from benchmarks.synth import layout_named
    from wspace.store.config import StoreConfig

    layout = layout_named(manifest["layout"])
    source = np.load(manifest["raw"], mmap_mode="r")
    pick = np.sort(
        np.random.default_rng(0).choice(len(source), min(rows, len(source)), replace=False)
    )
    sample = np.asarray(source[pick])
    config = StoreConfig()
    chunk_rows = {
        layer: config.archive_chunk_rows(layer, layout.layer_size(layer), manifest["n_models"])
        for layer in layout.layers
    }
    inner = getattr(config, "archive_inner_rows", None)
    if inner is not None:
        chunk_rows = {layer: inner(layer, layout.layer_size(layer)) for layer in layout.layers}
    return {
        "rows": len(sample),
        "chunk_rows": chunk_rows,
        "results": study(sample, layout, chunk_rows),
    }


def environment() -> dict[str, Any]:
    from importlib.metadata import version

    import h5py
    import lance
    import safetensors
    import xarray
    import zarr

    return {
        "cpus": os.cpu_count(),
        "memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "zarr": zarr.__version__,
            "numpy": np.__version__,
            "dask": version("dask"),
            "xarray": xarray.__version__,
            "h5py": h5py.__version__,
            "pylance": lance.__version__,
            "safetensors": safetensors.__version__,
        },
        "disk_free_gb": shutil.disk_usage("/").free / 2**30,
    }
