"""Build the benchmark's data: one zoo written as a wspace store and as every baseline.

Layout of a work directory (``--workdir``, default ``/tmp/wspace-bench``)::

    bases-e{epochs}.npz        trained base networks (cache, reused across runs)
    <name>/manifest.json       paths and query parameters (read by the query processes)
    <name>/store.zarr          wspace store, default settings, written by one writer, compacted
                               and vacuumed
    <name>/h5/                 binary_oneVall_{class}_{count}_model.h5, one per model
    <name>/modelwise.pkl       modelwise pickle (list of per-model dicts of torch tensors)
    <name>/layerwise.pkl       layerwise pickle (per class, per layer, lists of numpy rows)
    <name>/raw.npy             float32 (rows, params), rows in zoo order (+ .classes.npy)
    <name>/raw_layers/         float32 <layer>.npy per layer (+ classes.npy, models.json)
    <name>/lance/              Lance dataset (peer)
    <name>/xzarr.zarr          Zarr written by hand with xarray (peer)
    <name>/safetensors/        <model>.safetensors per model (peer)
    <name>/lossy.zarr          the same zoo with the opt-in lossy codec (Q7)

The published formats are written by wspace's own exporters (``wspace.io.export_zoo``), the
Keras files then given the Adam state the published files carry (see
:mod:`benchmarks.formats`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

import wspace
from benchmarks.formats import (
    EXPORTERS,
    add_optimizer_state,
    h5_file_name,
    write_raw,
    write_raw_layers,
)
from benchmarks.peer_writers import PEER_WRITERS
from benchmarks.synth import SynthZoo, train_bases

__all__ = ["build", "write_store"]

log = logging.getLogger(__name__)


def write_store(
    url: str, zoo: SynthZoo, *, codec: str = "blosc-zstd", block: int = 256
) -> dict[str, float]:
    """Create a store with default settings (but ``codec``), append every row, compact, and
    vacuum the writer segments compaction replaced (a user's ``wspace compact`` then
    ``wspace vacuum``; at 10,610 rows they are 3.4 GB of disk the run needs for its peers)."""
    wspace.create(url, zoo.layout, codec=codec)
    started = time.perf_counter()
    appended = 0.0
    with wspace.writer(url) as w:
        for first in range(0, zoo.n_models, block):
            last = min(first + block, zoo.n_models)
            rows = zoo.rows(first, last)
            t = time.perf_counter()
            for i, row in zip(range(first, last), rows, strict=True):
                w.append(row, model=zoo.model(i), **zoo.meta(i))
            appended += time.perf_counter() - t
    written = time.perf_counter() - started
    t = time.perf_counter()
    wspace.compact(url)
    compacted = time.perf_counter() - t
    wspace.vacuum(url, grace_seconds=0)
    return {
        "write_seconds": written,
        "append_seconds": appended,
        "compact_seconds": compacted,
    }


def build(
    workdir: Path,
    name: str,
    *,
    n_models: int,
    layout: str = "lenet5",
    epochs: int = 2,
    n_bases: int = 10,
    negatives: int | None = None,
    baselines: tuple[str, ...] = ("keras-h5", "modelwise-pickle", "layerwise-pickle"),
    peers: tuple[str, ...] = ("lance", "xzarr", "safetensors"),
    lossy: str | None = "bitround-14",
    q2_models: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the zoo ``name`` under ``workdir`` (replacing it) and return its manifest."""
    root = Path(workdir) / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    bases = train_bases(epochs, Path(workdir), n_bases=n_bases, negatives=negatives)
    synth = SynthZoo(n_models, bases, layout, seed=seed)
    timings: dict[str, Any] = {"train_bases_seconds": bases["seconds"]}
    store = str(root / "store.zarr")
    log.info("%s: writing the wspace store (%d rows)", name, n_models)
    timings["store"] = write_store(store, synth)
    zoo = wspace.open(store)
    paths: dict[str, Any] = {"store": store}
    t = time.perf_counter()
    files = write_raw(zoo, root / "raw.npy")
    timings["raw_seconds"] = time.perf_counter() - t
    paths["raw"], paths["raw_classes"] = str(files[0]), str(files[1])
    t = time.perf_counter()
    write_raw_layers(zoo, root / "raw_layers")
    timings["raw_layers_seconds"] = time.perf_counter() - t
    paths["raw_layers"] = str(root / "raw_layers")
    targets = {
        "keras-h5": ("h5", root / "h5"),
        "modelwise-pickle": ("modelwise", root / "modelwise"),
        "layerwise-pickle": ("layerwise", root / "layerwise"),
    }
    for fmt in baselines:
        key, dst = targets[fmt]
        log.info("%s: writing %s", name, fmt)
        t = time.perf_counter()
        written = EXPORTERS[fmt](zoo, dst)
        timings[f"{key}_seconds"] = time.perf_counter() - t
        if fmt == "keras-h5":
            paths["h5_exported_bytes"] = sum(p.stat().st_size for p in written)
            t = time.perf_counter()
            add_optimizer_state(written)
            timings["h5_optimizer_state_seconds"] = time.perf_counter() - t
            paths[key] = str(dst)
        else:
            paths[key] = str(written[0])
    for peer in peers:
        dst = root / {"lance": "lance", "xzarr": "xzarr.zarr", "safetensors": "safetensors"}[peer]
        log.info("%s: writing %s", name, peer)
        t = time.perf_counter()
        PEER_WRITERS[peer](zoo, dst)
        timings[f"{peer}_seconds"] = time.perf_counter() - t
        paths[peer] = str(dst)
    if lossy:
        log.info("%s: writing the lossy store (%s)", name, lossy)
        paths["lossy"] = str(root / "lossy.zarr")
        paths["lossy_codec"] = lossy
        timings["lossy"] = write_store(paths["lossy"], synth, codec=lossy)
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(n_models, size=min(q2_models, n_models), replace=False))
    models = zoo.models
    q4 = n_models // 2
    manifest = {
        "name": name,
        "n_models": n_models,
        "layout": layout,
        "params": synth.layout.size,
        "layout_dict": synth.layout.to_dict(),
        "epochs": epochs,
        "n_bases": n_bases,
        "negatives": negatives,
        "seed": seed,
        "fingerprint": synth.fingerprint(),
        "cache": str(Path(workdir)),
        "root": str(root),
        **paths,
        "layers": list(synth.layout.layers),
        "layer_slices": {
            layer: [synth.layout.layer_slice(layer).start, synth.layout.layer_slice(layer).stop]
            for layer in synth.layout.layers
        },
        "tensors": [{"name": t.name, "layer": t.layer} for t in synth.layout],
        "q1": {
            "cls": "church",
            "layer": "dense_1",
            "models": [
                synth.model(i) for i in range(n_models) if synth.model(i).startswith("church_")
            ],
        },
        "q2": {
            "positions": positions.tolist(),
            "models": [synth.model(int(i)) for i in positions],
            "files": [
                h5_file_name(str(models["cls"][i]), int(models["count"][i])) for i in positions
            ],
        },
        "q4": {
            "position": q4,
            "model": synth.model(q4),
            "file": h5_file_name(str(models["cls"][q4]), int(models["count"][q4])),
        },
        "timings": timings,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
