"""Concurrent writer processes and crashed writers (real subprocesses, real SIGKILL)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import wspace
from wspace.architectures import lenet5_layout
from wspace.testing import assert_rows_equal, tiny_weights, write_models

LAYOUT = lenet5_layout()


def run_writers(url: str, options: dict | None, writers: int, per_writer: int) -> None:
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(
            target=write_models,
            args=(url, range(k * per_writer, (k + 1) * per_writer)),
            kwargs={"storage_options": options, "commit_every": 7},
        )
        for k in range(writers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0, f"writer process exited with {p.exitcode}"


def check_complete(url: str, options: dict | None, n: int) -> None:
    zoo = wspace.open(url, storage_options=options)
    assert len(zoo) == n
    names = zoo.models["model"].tolist()
    assert len(set(names)) == n
    seeds = zoo.models["seed"].to_numpy()
    assert sorted(seeds) == list(range(n))
    values = zoo.values
    for row, i in zip(values, seeds, strict=True):
        assert_rows_equal(row, tiny_weights(int(i), LAYOUT.size), what=f"model {i}")


@pytest.mark.parametrize("backend", ["local", pytest.param("s3", marks=pytest.mark.s3)])
@pytest.mark.parametrize("repeat", range(3))
def test_four_writer_processes_lose_nothing(backend, repeat, tmp_path, request):
    if backend == "s3":
        spot = request.getfixturevalue("s3_spot")
        url, options = spot.url, spot.options
    else:
        url, options = str(tmp_path / "zoo.zarr"), None
    wspace.create(url, LAYOUT, storage_options=options)
    run_writers(url, options, writers=4, per_writer=50)
    check_complete(url, options, 200)


CRASHER = textwrap.dedent("""
    import sys, numpy as np, wspace
    from wspace.testing import tiny_weights
    url = sys.argv[1]
    w = wspace.writer(url, commit_every=10**9)
    for i in range(25):
        w.append(tiny_weights(i, 91481), model=f"m{i}", seed=i)
        if i in (9, 19):
            w.commit()
    # 5 rows appended and flushed to chunks of the segment, but never committed
    w.segments["lenet5"].prepare_commit()
    print("READY", flush=True)
    import time
    time.sleep(600)
""")


def test_sigkilled_writer_leaves_only_committed_rows(tmp_path):
    url = str(tmp_path / "zoo.zarr")
    wspace.create(url, LAYOUT)
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    zoo = wspace.open(url)
    assert zoo.models["model"].tolist() == [f"m{i}" for i in range(20)]
    for i in range(20):
        assert_rows_equal(zoo.row(i), tiny_weights(i, LAYOUT.size))
    assert wspace.verify(url).ok
    # a new writer continues, even with the names whose rows were never committed
    with wspace.writer(url) as w:
        for i in range(20, 30):
            w.append(tiny_weights(i, LAYOUT.size), model=f"m{i}", seed=i)
    zoo = wspace.open(url)
    assert zoo.models["model"].tolist() == [f"m{i}" for i in range(30)]
    assert_rows_equal(
        zoo.values[20:], np.stack([tiny_weights(i, LAYOUT.size) for i in range(20, 30)])
    )


KILL_ANYWHERE = textwrap.dedent("""
    import sys, wspace
    from wspace.testing import tiny_weights
    url, start = sys.argv[1], int(sys.argv[2])
    with wspace.writer(url, commit_every=3) as w:
        for i in range(start, start + 1000):
            w.append(tiny_weights(i, 91481), model=f"k{i}", seed=i)
            if i % 3 == 2:
                print(i, flush=True)
""")


@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0])
def test_kill_at_a_random_point_keeps_every_committed_row(tmp_path, delay):
    url = str(tmp_path / "zoo.zarr")
    wspace.create(url, LAYOUT)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_ANYWHERE, url, "0"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # it has started appending
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    zoo = wspace.open(url)
    n = len(zoo)
    assert n % 3 == 0  # whole commits only
    assert zoo.models["model"].tolist() == [f"k{i}" for i in range(n)]
    for i in range(0, n, max(1, n // 10)):
        assert_rows_equal(zoo.row(i), tiny_weights(i, LAYOUT.size))
    assert wspace.verify(url).ok
    records = sorted(Path(url, "_log").glob("*.json"))
    assert all(json.loads(r.read_text())["op"] for r in records)
