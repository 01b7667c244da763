"""The worker loop: train one-vs-all LeNet-5s and append each, with its snapshots, by a Writer.

Every network is committed on its own as soon as it is trained (its snapshots and final row in
one commit), so an interrupted or killed worker loses at most the network it was training, and
a re-run skips every network already committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import wspace
from wspace.errors import StoreNotFoundError

__all__ = ["Job", "TrainSettings", "committed_models", "plan_jobs", "run_jobs"]

log = logging.getLogger(__name__)


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
    """
    from wspace.train.data import load_dataset
    from wspace.train.lenet import train_one_vs_all

    data = load_dataset(settings.dataset, root=settings.root, seed=settings.data_seed)
    done = committed_models(url, storage_options)
    written: list[str] = []
    with wspace.writer(url, storage_options=storage_options, commit_every=10**9) as w:
        for job in jobs:
            if job.model in done:
                continue
            snapshots: list[tuple[int, np.ndarray, dict[str, float]]] = []

            def keep(
                epoch: int,
                model: Any,
                metrics: dict[str, float],
                into: list[tuple[int, np.ndarray, dict[str, float]]] = snapshots,
            ) -> None:
                if settings.snapshots and epoch < settings.epochs:
                    into.append((epoch, w.layouts["lenet5"].flatten(model), dict(metrics)))

            result = train_one_vs_all(
                data,
                job.target,
                seed=job.seed,
                epochs=settings.epochs,
                batch_size=settings.batch_size,
                lr=settings.lr,
                negatives=settings.negatives,
                init=settings.init,
                on_epoch=keep,
            )
            meta = _row_metadata(
                job, settings, data.name, result.n_train, result.n_positive, result.majority_rate
            )
            for epoch, vector, metrics in snapshots:
                row: dict[str, Any] = {**meta, **metrics}
                w.append(vector, model=job.model, step=epoch, **row)
            final: dict[str, Any] = {
                **meta,
                **result.metrics,
                # the last epoch's losses, as in the snapshot rows
                "loss": result.curves["val_loss"][-1],
                "train_loss": result.curves["train_loss"][-1],
                "train_accuracy": result.curves["train_accuracy"][-1],
                **{f"curve_{k}": v for k, v in result.curves.items()},
                "train_seconds": result.seconds,
            }
            w.append(result.model, model=job.model, step=settings.epochs, **final)
            w.commit()  # this network, with its snapshots, becomes visible at once
            written.append(job.model)
            log.info("trained %s: accuracy %.3f", job.model, result.metrics["accuracy"])
            if on_done is not None:
                on_done(job, result.metrics)
    return written


def settings_dict(settings: TrainSettings) -> dict[str, Any]:
    """Settings as a plain dict (for reports)."""
    return asdict(settings)
