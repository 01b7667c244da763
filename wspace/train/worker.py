"""The worker loop: train one-vs-all LeNet-5s and append each, with its snapshots, by a Writer.

Every network is committed on its own as soon as it is trained (its snapshots and final row in
one commit), so an interrupted or killed worker loses at most the network it was training, and
a re-run skips every network already committed.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

import wspace
from wspace.errors import StoreNotFoundError

if TYPE_CHECKING:
    from wspace.train.data import DataSplit
    from wspace.train.lenet import TrainResult

__all__ = ["Job", "TrainSettings", "committed_models", "plan_jobs", "run_jobs"]

log = logging.getLogger(__name__)

Metrics = dict[str, float]


@dataclass(frozen=True, slots=True)
class Job:
    """One network to train."""

    target: int
    """Index of the positive class."""
    cls: str
    """Name of the positive class."""
    count: int
    """Number of this network within its class (0-based)."""
    seed: int
    """Seed of everything random about this network (init, batches, negatives)."""

    @property
    def model(self) -> str:
        """The row name, ``{cls}_{count}`` as in the published zoo."""
        return f"{self.cls}_{self.count}"


@dataclass(frozen=True, slots=True)
class TrainSettings:
    """What every network of a zoo is trained with (picklable, sent to workers)."""

    dataset: str = "digits"
    """``digits`` (scikit-learn, offline) or ``imagenette`` (a local ImageFolder)."""
    root: str | None = None
    """Folder of the Imagenette data set."""
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    negatives: int | None = None
    """Random negatives per network (``None``: all other classes' images)."""
    snapshots: bool = False
    """Also store every epoch's weights as rows with ``step``."""
    init: str = "keras"
    """Initialisation of the networks (Keras 2's Glorot-uniform, as the reference)."""
    data_seed: int = 0
    """Seed of the train/validation split."""
    population: int = 1
    """Networks trained at once in one batched computation (:mod:`wspace.train.population`)."""
    device: str = "cpu"
    """Where to train: ``cpu``, ``cuda`` (``cuda:1``), ``mps``."""


def plan_jobs(
    classes: Sequence[str], per_class: int, *, seed: int = 0, only: Iterable[str] | None = None
) -> list[Job]:
    """The networks of a zoo: ``per_class`` per class, each with its own derived seed.

    Seeds come from ``numpy.random.SeedSequence([seed, class index, count])``: a network's seed
    does not depend on how many others are planned, so zoos can be grown.
    """
    wanted = set(only) if only is not None else None
    jobs = []
    for count in range(per_class):
        for target, cls in enumerate(classes):
            if wanted is not None and cls not in wanted:
                continue
            state = np.random.SeedSequence([seed, target, count]).generate_state(1)[0]
            jobs.append(Job(target=target, cls=cls, count=count, seed=int(state)))
    return jobs


def committed_models(url: str, storage_options: Mapping[str, Any] | None = None) -> set[str]:
    """Names of the models already committed to the store (empty if there is no store)."""
    try:
        zoo = wspace.open(url, storage_options=storage_options)
    except StoreNotFoundError:
        return set()
    return set(zoo.models["model"].tolist())


def _row_metadata(
    job: Job, settings: TrainSettings, dataset: str, n_train: int, n_positive: int, majority: float
) -> dict[str, Any]:
    return {
        "cls": job.cls,
        "count": job.count,
        "seed": job.seed,
        "dataset": dataset,
        "epochs": settings.epochs,
        "negatives": settings.negatives,
        "n_train": n_train,
        "n_positive": n_positive,
        "majority_rate": majority,
    }


def _final_row(meta: dict[str, Any], result: TrainResult) -> dict[str, Any]:
    return {
        **meta,
        **result.metrics,
        # the last epoch's losses, as in the snapshot rows
        "loss": result.curves["val_loss"][-1],
        "train_loss": result.curves["train_loss"][-1],
        "train_accuracy": result.curves["train_accuracy"][-1],
        **{f"curve_{k}": v for k, v in result.curves.items()},
        "train_seconds": result.seconds,
    }


def _train_single(w: wspace.Writer, data: DataSplit, job: Job, settings: TrainSettings) -> Metrics:
    """Train one network; append its snapshots (kept in memory until done) and final row."""
    from wspace.train.lenet import train_one_vs_all

    snapshots: list[tuple[int, np.ndarray, dict[str, float]]] = []

    def keep(epoch: int, model: Any, metrics: dict[str, float]) -> None:
        if settings.snapshots and epoch < settings.epochs:
            snapshots.append((epoch, w.layouts["lenet5"].flatten(model), dict(metrics)))

    result = train_one_vs_all(
        data,
        job.target,
        seed=job.seed,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        negatives=settings.negatives,
        init=settings.init,
        device=settings.device,
        on_epoch=keep,
    )
    meta = _row_metadata(
        job, settings, data.name, result.n_train, result.n_positive, result.majority_rate
    )
    for epoch, vector, metrics in snapshots:
        w.append(vector, model=job.model, arch="lenet5", step=epoch, **{**meta, **metrics})
    w.append(result.model, model=job.model, arch="lenet5", step=settings.epochs,
             **_final_row(meta, result))  # fmt: skip
    return result.metrics


def _train_population(
    w: wspace.Writer, data: DataSplit, jobs: list[Job], settings: TrainSettings
) -> list[Metrics]:
    """Train ``jobs`` as one population; snapshots are appended (uncommitted) as they come."""
    from wspace.train.population import PopulationState, member_counts, train_population

    metas = []
    for job in jobs:
        n_train, n_positive = member_counts(data, job.target, settings.negatives)
        metas.append(
            _row_metadata(
                job, settings, data.name, n_train, n_positive, data.majority_rate(job.target)
            )
        )

    def keep(epoch: int, state: PopulationState) -> None:
        if settings.snapshots and epoch < settings.epochs:
            for job, meta, vector, metrics in zip(
                jobs, metas, state.vectors(), state.metrics, strict=True
            ):
                w.append(vector, model=job.model, arch="lenet5", step=epoch, **{**meta, **metrics})

    results = train_population(
        data,
        [job.target for job in jobs],
        [job.seed for job in jobs],
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        negatives=settings.negatives,
        init=settings.init,
        device=settings.device,
        on_epoch=keep,
        full_metrics=lambda epoch: settings.snapshots,
    )
    for job, meta, result in zip(jobs, metas, results, strict=True):
        w.append(result.model, model=job.model, arch="lenet5", step=settings.epochs,
                 **_final_row(meta, result))  # fmt: skip
    return [result.metrics for result in results]


def run_jobs(
    url: str,
    jobs: Iterable[Job],
    settings: TrainSettings,
    *,
    storage_options: Mapping[str, Any] | None = None,
    on_done: Callable[[Job, dict[str, float]], None] | None = None,
) -> list[str]:
    """Train ``jobs`` one after another, committing each network to the store at ``url``.

    Returns the names of the models committed. Networks already in the store are skipped.
    With ``settings.population`` P > 1, P networks at a time are trained as one population
    (:func:`~wspace.train.population.train_population`) and committed together.
    """
    from wspace.train.data import load_dataset

    data = load_dataset(settings.dataset, root=settings.root, seed=settings.data_seed)
    done = committed_models(url, storage_options)
    pending = (job for job in jobs if job.model not in done)
    written: list[str] = []
    # commit_every: one commit per network (or population), never a network without its last row
    with wspace.writer(url, storage_options=storage_options, commit_every=10**9) as w:
        size = max(1, settings.population)
        while batch := list(itertools.islice(pending, size)):
            if size == 1:
                finals = [_train_single(w, data, batch[0], settings)]
            else:
                finals = _train_population(w, data, batch, settings)
            w.commit()  # these networks, with their snapshots, become visible at once
            for job, metrics in zip(batch, finals, strict=True):
                written.append(job.model)
                log.info("trained %s: accuracy %.3f", job.model, metrics["accuracy"])
                if on_done is not None:
                    on_done(job, metrics)
    return written


def settings_dict(settings: TrainSettings) -> dict[str, Any]:
    """Settings as a plain dict (for reports)."""
    return asdict(settings)
