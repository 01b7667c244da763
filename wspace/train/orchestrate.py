"""Orchestration: run training workers as local processes or as tasks on a Dask cluster.

Each worker appends through its own Writer (its own segment), committing every network as it
finishes. Re-running the same command skips the networks already committed, so a zoo survives
killed workers, Ctrl-C and lost machines: run it again until it reports nothing left to do.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import queue
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tqdm import tqdm

import wspace
from wspace.architectures import lenet5_layout
from wspace.errors import StoreNotFoundError, WspaceError
from wspace.train.devices import resolve_device
from wspace.train.population import default_population
from wspace.train.worker import Job, TrainSettings, committed_models, plan_jobs, run_jobs

__all__ = ["TrainReport", "train_zoo"]

log = logging.getLogger(__name__)


@dataclass
class TrainReport:
    """What a training run did."""

    planned: int
    """Networks in the plan."""
    skipped: int
    """Already committed before this run."""
    trained: list[str] = field(default_factory=list)
    """Committed by this run."""
    failed_workers: int = 0
    """Worker processes or tasks that died or raised."""
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """Whether every planned network is now in the store."""
        return self.skipped + len(self.trained) >= self.planned and not self.failed_workers

    @property
    def nets_per_minute(self) -> float:
        """Networks trained per minute of wall-clock time."""
        return 60 * len(self.trained) / self.seconds if self.seconds else 0.0


def _ensure_store(url: str, storage_options: Mapping[str, Any] | None) -> None:
    layout = lenet5_layout()
    try:
        zoo = wspace.open(url, storage_options=storage_options, arch=layout.name)
    except StoreNotFoundError:
        wspace.create(url, layout, storage_options=storage_options)
        return
    if zoo.layout != layout:
        raise WspaceError(f"store {url!r} holds a different 'lenet5' layout; use a new store")


def _process_worker(
    url: str,
    jobs: Any,
    results: Any,
    settings: TrainSettings,
    storage_options: Mapping[str, Any] | None,
    threads: int,
) -> None:
    import torch

    torch.set_num_threads(threads)

    def pull() -> Iterator[Job]:  # take the next network only when ready for it
        while True:
            try:
                yield jobs.get(timeout=1.0)
            except queue.Empty:
                return

    # one Writer for all of this worker's networks; each network is its own commit
    run_jobs(
        url,
        pull(),
        settings,
        storage_options=storage_options,
        on_done=lambda job, metrics: results.put((job.model, metrics["accuracy"])),
    )


def train_zoo(
    url: str,
    *,
    classes: Sequence[str] | None = None,
    per_class: int = 5,
    settings: TrainSettings | None = None,
    workers: int = 2,
    threads_per_worker: int = 1,
    scheduler: str | None = None,
    dask_local: bool = False,
    seed: int = 0,
    storage_options: Mapping[str, Any] | None = None,
    progress: bool = True,
    population: int | None = None,
) -> TrainReport:
    """Train a one-vs-all LeNet-5 zoo into the store at ``url`` (created if missing).

    Parameters
    ----------
    url
        Store location.
    classes
        Positive classes to train (default: every class of the data set).
    per_class
        Networks per class; model names are ``{cls}_{count}``.
    settings
        Data set, epochs, negatives, snapshots (see :class:`TrainSettings`).
    workers
        Worker processes (or Dask workers with ``dask_local``).
    threads_per_worker
        torch threads per worker.
    scheduler
        Address of a ``dask.distributed`` scheduler: run workers as tasks on that cluster.
    dask_local
        Run the tasks on a local ``dask.distributed`` cluster of ``workers`` processes.
    seed
        Base seed; each network's seed derives from it, its class and its count.
    storage_options
        fsspec options of the store.
    progress
        Show a tqdm bar (networks done, ETA).
    population
        Networks each worker trains at once as one batched computation; by default
        :func:`~wspace.train.population.default_population` (``ceil(todo / (4 * workers))``,
        at most 16 on a CPU, 1024 on an accelerator). ``1``: the single-network loop.
        The device is ``settings.device``.

    Returns
    -------
    TrainReport
    """
    from wspace.train.data import load_dataset

    settings = settings or TrainSettings()
    resolve_device(settings.device)  # an unavailable device fails before any work
    data = load_dataset(settings.dataset, root=settings.root, seed=settings.data_seed)
    unknown = set(classes or ()) - set(data.classes)
    if unknown:
        raise WspaceError(
            f"unknown class(es) {sorted(unknown)}; {data.name} has {', '.join(data.classes)}"
        )
    jobs = plan_jobs(data.classes, per_class, seed=seed, only=classes)
    _ensure_store(url, storage_options)
    done = committed_models(url, storage_options)
    todo = [j for j in jobs if j.model not in done]
    report = TrainReport(planned=len(jobs), skipped=len(jobs) - len(todo))
    if population is None:
        population = default_population(len(todo), workers, settings.device)
    if population < 1:
        raise WspaceError(f"population must be >= 1, not {population}")
    settings = replace(settings, population=population)
    start = time.perf_counter()
    bar = tqdm(
        total=len(jobs),
        initial=report.skipped,
        unit="net",
        disable=not progress or None,
        desc=f"training {data.name} LeNet-5s",
    )
    try:
        if scheduler or dask_local:
            _run_dask(
                url,
                todo,
                settings,
                report,
                bar,
                scheduler=scheduler,
                workers=workers,
                threads=threads_per_worker,
                storage_options=storage_options,
            )
        elif todo:
            _run_processes(
                url,
                todo,
                settings,
                report,
                bar,
                workers=workers,
                threads=threads_per_worker,
                storage_options=storage_options,
            )
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start
    return report


def _run_processes(
    url: str,
    todo: list[Job],
    settings: TrainSettings,
    report: TrainReport,
    bar: tqdm,
    *,
    workers: int,
    threads: int,
    storage_options: Mapping[str, Any] | None,
) -> None:
    ctx = mp.get_context("spawn")
    jobs, results = ctx.Queue(), ctx.Queue()
    for job in todo:
        jobs.put(job)
    n = max(1, min(workers, len(todo)))
    procs = [
        ctx.Process(
            target=_process_worker, args=(url, jobs, results, settings, storage_options, threads)
        )
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs) or not results.empty():
            try:
                model, _ = results.get(timeout=0.2)
            except queue.Empty:
                continue
            report.trained.append(model)
            bar.update(1)
    except KeyboardInterrupt:
        # finished networks are committed; the ones in training are discarded by their writers
        for p in procs:
            p.terminate()
        raise
    finally:
        for p in procs:
            p.join()
    report.failed_workers = sum(1 for p in procs if p.exitcode != 0)


def _run_dask(
    url: str,
    todo: list[Job],
    settings: TrainSettings,
    report: TrainReport,
    bar: tqdm,
    *,
    scheduler: str | None,
    workers: int,
    threads: int,
    storage_options: Mapping[str, Any] | None,
) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = Client(scheduler or cluster)
    try:
        # a few networks per task: each task appends through its own Writer (one segment)
        per_task = max(settings.population, math.ceil(len(todo) / (4 * max(1, workers))))
        batches = [todo[i : i + per_task] for i in range(0, len(todo), per_task)]
        futures = [
            client.submit(_dask_task, url, batch, settings, storage_options, threads, pure=False)
            for batch in batches
        ]
        for future in as_completed(futures):
            try:
                written = future.result()
            except Exception as exc:  # a task that raised or whose worker died
                log.error("training task failed: %s", exc)
                report.failed_workers += 1
                continue
            report.trained.extend(written)
            bar.update(len(written))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _dask_task(
    url: str,
    jobs: list[Job],
    settings: TrainSettings,
    storage_options: Mapping[str, Any] | None,
    threads: int,
) -> list[str]:
    import torch

    torch.set_num_threads(threads)
    return run_jobs(url, jobs, settings, storage_options=storage_options)
