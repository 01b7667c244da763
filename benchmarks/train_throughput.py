"""Networks per minute of zoo generation: single loop, populations, 2 worker processes.

    python -m benchmarks.train_throughput [--nets 16] [--epochs 20] [--populations 1,16,64,256]
                                          [--threads 1] [--pair-population 16]
                                          [--device cpu] [--quick] [--out FILE]

Trains digits LeNet-5s (same plan, same seeds) into a fresh store once per configuration, in
one run on one machine:

- ``single``: one worker process, one network at a time (``--population 1``), 1 torch thread
  (the loop the issue's 5.8 networks/min was measured with);
- ``population P``: one worker process training P networks at once as one batched computation,
  ``--threads`` torch threads (default 1: on a shared machine a second OpenMP thread mostly
  waits for a core and doubles the CPU time per network, see docs/training.md);
- ``2 workers``: two worker processes, one network at a time each, 1 thread each.
- ``2 workers x population P``: two worker processes, each training populations of
  ``--pair-population`` networks with 1 thread (every core busy with batched work).

Each configuration trains ``--nets`` networks, a population configuration at least P per worker,
all through ``train_zoo`` into a store: process start, data loading, evaluation, metrics and
commits are included. Reports networks/minute and the speed-up over ``single``, and the CPU
time (user + system of this process and its worker processes): networks per CPU-minute and its
speed-up over ``single`` measure the work per network whatever else runs on the machine. ``--quick``
is a smoke run (2 networks, 1 epoch, P = 2). Absolute numbers depend on the machine
and on what else runs on it; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from wspace.train.data import load_digits
from wspace.train.orchestrate import train_zoo
from wspace.train.worker import TrainSettings


def measure(
    label: str,
    *,
    nets: int,
    epochs: int,
    root: Path,
    workers: int,
    population: int,
    threads: int,
    device: str,
) -> dict[str, Any]:
    """Train ``nets`` digits networks into a fresh store; return the timing row."""
    classes = list(load_digits().classes)
    per_class = -(-nets // len(classes))
    chosen = classes[: -(-nets // per_class)]
    url = str(root / f"zoo-{label.replace(' ', '-')}.zarr")
    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    report = train_zoo(
        url,
        classes=chosen,
        per_class=per_class,
        settings=TrainSettings(epochs=epochs, device=device),
        workers=workers,
        threads_per_worker=threads,
        population=population,
        progress=False,
    )
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_start
    if not report.complete:
        raise RuntimeError(f"{label}: {report.failed_workers} worker(s) failed")
    return {
        "config": label,
        "workers": workers,
        "population": population,
        "threads_per_worker": threads,
        "nets": len(report.trained),
        "seconds": seconds,
        "nets_per_minute": 60 * len(report.trained) / seconds,
        "cpu_seconds": cpu,
        "nets_per_cpu_minute": 60 * len(report.trained) / cpu,
    }


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished worker processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def main(argv: list[str] | None = None) -> None:
    """Run the measurement and write the JSON report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nets", type=int, default=16, help="networks per configuration")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--populations", default="1,16,64,256", help="comma-separated P")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, population rows")
    parser.add_argument("--pair-population", type=int, default=16, help="P of 2 workers x P")
    parser.add_argument("--device", default="cpu", help="device of the population runs")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 nets, 1 epoch, P=2")
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.nets, args.epochs, args.populations, args.pair_population = 2, 1, "2", 1
    populations = [int(p) for p in args.populations.split(",")]
    plan = [("single", 1, 1, 1, "cpu")]
    plan += [(f"population {p}", 1, p, args.threads, args.device) for p in populations]
    plan += [("2 workers", 2, 1, 1, "cpu")]
    if args.pair_population > 1:
        pair = args.pair_population
        plan += [(f"2 workers x population {pair}", 2, pair, 1, args.device)]
    rows: list[dict[str, Any]] = []
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        for label, workers, population, threads, device in plan:
            rows.append(
                measure(
                    label,
                    nets=max(args.nets, population * workers),
                    epochs=args.epochs,
                    root=Path(tmp),
                    workers=workers,
                    population=population,
                    threads=threads,
                    device=device,
                )
            )
            print(f"{label}: {rows[-1]['nets_per_minute']:.1f} networks/min", flush=True)
            write_report(out, args, rows)  # after every configuration: a long run keeps its rows
    print(
        f"{'config':>28} {'nets':>5} {'seconds':>8} {'nets/min':>9} {'speed-up':>8} "
        f"{'CPU-s':>8} {'nets/CPU-min':>12} {'per-core':>8}"
    )
    for row in rows:
        print(
            f"{row['config']:>28} {row['nets']:>5} {row['seconds']:>8.1f} "
            f"{row['nets_per_minute']:>9.1f} {row['speedup_vs_single']:>7.2f}x "
            f"{row['cpu_seconds']:>8.1f} {row['nets_per_cpu_minute']:>12.2f} "
            f"{row['cpu_speedup_vs_single']:>7.2f}x"
        )
    print(f"wrote {out}")


def write_report(out: Path, args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """Write the rows measured so far (speed-ups against the first, ``single``) as JSON."""
    base, base_cpu = rows[0]["nets_per_minute"], rows[0]["nets_per_cpu_minute"]
    for row in rows:
        row["speedup_vs_single"] = row["nets_per_minute"] / base
        row["cpu_speedup_vs_single"] = row["nets_per_cpu_minute"] / base_cpu
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "epochs": args.epochs,
        "nets": args.nets,
        "dataset": "digits",
        "device": args.device,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "rows": rows,
    }
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
