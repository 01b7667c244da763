"""``wspace demo``: build a small LeNet-5 zoo with concurrent writers and query it.

Until the zoo generator trains networks, the demo stores torch-initialised LeNet-5s (the
architecture of the published hypernetwork zoo), one per (class, count), written by several
processes at once, then shows the queries of the README.
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import wspace
from wspace.architectures import lenet5, lenet5_layout
from wspace.errors import StoreExistsError

__all__ = ["IMAGENETTE_CLASSES", "run_demo"]

IMAGENETTE_CLASSES = (
    "tench",
    "english_springer",
    "cassette_player",
    "chain_saw",
    "church",
    "french_horn",
    "garbage_truck",
    "gas_pump",
    "golf_ball",
    "parachute",
)


def _model(i: int) -> tuple[str, str, int]:
    cls = IMAGENETTE_CLASSES[i % len(IMAGENETTE_CLASSES)]
    count = i // len(IMAGENETTE_CLASSES)
    return f"{cls}_{count}", cls, count


def _write(path: str, indices: list[int], done: Any) -> None:
    with wspace.writer(path, commit_every=8) as w:
        for i in indices:
            name, cls, count = _model(i)
            net = lenet5(seed=i)
            w.append(net, model=name, cls=cls, count=count, seed=i, init="torch")
            with done.get_lock():
                done.value += 1


def run_demo(
    path: str,
    *,
    models: int = 30,
    workers: int = 2,
    overwrite: bool = False,
    echo: Callable[[str], Any] = print,
) -> wspace.Zoo:
    """Build the demo zoo at ``path`` and print what the queries return."""
    target = Path(path)
    if target.exists():
        if not overwrite:
            raise StoreExistsError(f"{path!r} exists; pass --overwrite to replace it")
        shutil.rmtree(target)
    wspace.create(path, lenet5_layout())
    ctx = mp.get_context("spawn")
    done = ctx.Value("i", 0)
    procs = [
        ctx.Process(target=_write, args=(path, list(range(k, models, workers)), done))
        for k in range(workers)
    ]
    start = time.perf_counter()
    for p in procs:
        p.start()
    with tqdm(total=models, desc=f"{workers} writer processes", unit="net", disable=None) as bar:
        while any(p.is_alive() for p in procs):
            bar.update(done.value - bar.n)
            time.sleep(0.1)
        bar.update(done.value - bar.n)
    for p in procs:
        p.join()
        if p.exitcode:
            raise wspace.WspaceError(f"demo writer process exited with code {p.exitcode}")
    echo(f"wrote {models} LeNet-5s with {workers} processes in {time.perf_counter() - start:.1f} s")

    zoo = wspace.open(path)
    echo(f"\n>>> zoo = wspace.open({path!r})\n{zoo}")
    church = zoo.sel(cls="church").layer("dense_1")
    echo(
        f"\n>>> zoo.sel(cls='church').layer('dense_1')   # lazy: {church.shape}, "
        f"{church.data.npartitions} dask chunk(s)"
    )
    values = church.values
    echo(f"computed: shape {values.shape}, mean {values.mean():+.5f}, std {values.std():.5f}")
    kernel = zoo.tensor("dense_1/kernel")
    echo(f"\n>>> zoo.tensor('dense_1/kernel').shape   # Keras orientation\n{kernel.shape}")
    name = str(zoo.models["model"].iloc[0])
    net = zoo.module(0)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    index = int(zoo.models["seed"].iloc[0])
    same = torch.equal(net(x), lenet5(seed=index).eval()(x))
    echo(f"\n>>> zoo.module(0)   # {name}: rebuilt network gives the original outputs: {same}")
    report = wspace.verify(path)
    echo(
        f"\n>>> wspace.verify(...)   {report.chunks_checked} chunks, {len(report.problems)} damaged"
    )
    compacted = wspace.compact(path)
    after = wspace.open(path)
    same_rows = np.array_equal(after.sel(cls="church").layer("dense_1").values, values)
    echo(f">>> wspace.compact(...)  {compacted}; church dense_1 unchanged: {same_rows}")
    return after
