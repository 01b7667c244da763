"""NWS-style sweeps: networks of randomly drawn architecture, optimisation and data set.

Every network is drawn from a :class:`~wspace.train.sweep_spec.SweepSpec`, trained
(:func:`train_sweep_net`) and appended with its snapshots to the store, one commit per network;
networks of different architectures go to different architecture groups (one per layout, named
like ``nws-f5-c3x8-d2x128-bn1``), created as needed. Rows follow the NWS importer's schema
(:mod:`wspace.io.nws`): the split CSV's columns, ``split``, ``step`` (the epoch of the
snapshot), ``snapshot`` (1..S), ``epochs``, the error columns of that epoch, and on the first
snapshot row ``error_curve`` and ``stat``; so ``wspace export --format nws`` writes NWS run
folders and a split CSV ``<name>.csv``.

Snapshots are taken after epochs ``round(linspace(1, epochs, S))`` as in NWS (so a run needs
``epochs >= S``). Errors are percentages: ``train_error`` over the epoch's batches (as the
network trained), ``valid_error`` on the even-numbered validation images, ``test_error`` on the
odd-numbered ones, ``valid_error_smoothed`` the mean valid error of the last three epochs
(wspace's definition; the reference's smoothing is not documented).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import wspace
from wspace.architectures import register
from wspace.errors import FormatError, StoreNotFoundError, WspaceError
from wspace.io.nws_arch import OUTPUTS, NWSArchitecture, snapshot_epochs
from wspace.layout import Layout
from wspace.train.data import DataSplit, load_dataset
from wspace.train.devices import resolve_device
from wspace.train.nets import NWSNet, nws_net_layout
from wspace.train.sweep_spec import SweepSpec

__all__ = ["SweepReport", "SweepRun", "run_sweep", "train_sweep_net"]

log = logging.getLogger(__name__)
SHIFT_PIXELS = 2
"""Augmentation: random translation of up to this many pixels each way, per image and batch."""


@dataclass
class SweepRun:
    """One trained sweep network: its snapshots and its error table."""

    snapshots: list[tuple[int, int, np.ndarray]]
    """``(snapshot number, epoch, flat float32 weights)``."""
    errors: list[list[float]]
    """Per epoch: ``iteration, train_error, valid_error, test_error, valid_error_smoothed``."""
    seconds: float


@dataclass
class SweepReport:
    """What a sweep run did."""

    planned: int
    skipped: int
    trained: list[str] = field(default_factory=list)
    archs: list[str] = field(default_factory=list)
    """Architecture groups of the sweep's networks."""
    seconds: float = 0.0


def _optimizer(name: str, params: Any, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "rmsprop":  # TensorFlow's defaults: decay 0.9, epsilon 1e-10
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-10)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.95)
    raise FormatError(f"unknown optimizer {name!r}; known: adam, rmsprop, momentum")


def _shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by a random (dx, dy) of up to SHIFT_PIXELS (zero padding)."""
    n, _, h, w = x.shape
    offsets = torch.rand(n, 2, generator=generator) * 2 - 1
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = offsets[:, 0] * 2 * SHIFT_PIXELS / w
    theta[:, 1, 2] = offsets[:, 1] * 2 * SHIFT_PIXELS / h
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _error(net: NWSNet, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.inference_mode():
        wrong = sum(
            int((net(x[i : i + 512]).argmax(1) != y[i : i + 512]).sum())
            for i in range(0, len(x), 512)
        )
    net.train()
    return 100.0 * wrong / max(len(x), 1)


def train_sweep_net(
    data: DataSplit,
    config: Mapping[str, Any],
    *,
    snapshots: int = 20,
    device: str | torch.device = "cpu",
) -> SweepRun:
    """Train one sweep network drawn as ``config`` (:meth:`SweepSpec.draw`); keep snapshots.

    Everything random (initial weights, training subset, batch order, augmentation, dropout)
    comes from ``config["seed"]``; torch's global random state is restored afterwards.
    """
    started = time.perf_counter()
    arch = NWSArchitecture.from_mapping(config, "sweep network")
    epochs = int(config["epochs"])
    at = snapshot_epochs(epochs, snapshots)
    if len(set(at)) != len(at):
        raise FormatError(f"{snapshots} snapshots need epochs >= {snapshots} (got {epochs})")
    number = {epoch: k + 1 for k, epoch in enumerate(at)}
    if len(data.classes) > OUTPUTS:
        raise FormatError(
            f"data set {data.name!r} has {len(data.classes)} classes; the sweep's networks have "
            f"{OUTPUTS} outputs (NWS's fc_final)"
        )
    dev = resolve_device(device)
    seed = int(config["seed"])
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    index = np.arange(len(data.train_y))
    if int(config.get("train_images") or 0) > 0:
        size = min(int(config["train_images"]), len(index))
        index = np.sort(rng.choice(index, size=size, replace=False))
    x = data.train_x[torch.from_numpy(index)].to(dev)
    y = data.train_y[torch.from_numpy(index)].to(dev)
    val_x, val_y = data.val_x.to(dev), data.val_y.to(dev)
    net = NWSNet(
        arch,
        activation=str(config["activation"]),
        dropout=float(config["dropout"]),
        init=str(config["initialization"]),
        generator=generator,
    ).to(dev)
    layout = nws_net_layout(net)
    optimizer = _optimizer(str(config["optimizer"]), net.parameters(), float(config["lrate"]))
    batch = int(config["batch_size"])
    kept: list[tuple[int, int, np.ndarray]] = []
    errors: list[list[float]] = []
    iteration = 0
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)  # dropout draws from the global generator: seeded, restored
        net.train()
        for epoch in range(1, epochs + 1):
            for group in optimizer.param_groups:
                group["lr"] = float(config["lrate"]) * float(config["lr_decay"]) ** (epoch - 1)
            order = torch.from_numpy(rng.permutation(len(index))).to(dev)
            wrong = 0
            for start in range(0, len(order), batch):
                rows = order[start : start + batch]
                xb, yb = x[rows], y[rows]
                if config["augmentation"]:
                    xb = _shift(xb, generator)
                logits = net(xb)
                loss = F.cross_entropy(logits, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                iteration += 1
                wrong += int((logits.detach().argmax(1) != yb).sum())
            valid = _error(net, val_x[0::2], val_y[0::2])
            recent = [row[2] for row in errors[-2:]] + [valid]
            errors.append(
                [
                    float(iteration),
                    100.0 * wrong / len(index),
                    valid,
                    _error(net, val_x[1::2], val_y[1::2]),
                    float(np.mean(recent)),
                ]
            )
            if epoch in number:
                kept.append((number[epoch], epoch, layout.flatten(net.cpu())))
                net.to(dev)
    return SweepRun(snapshots=kept, errors=errors, seconds=time.perf_counter() - started)


def _committed(url: str, storage_options: Mapping[str, Any] | None) -> set[str]:
    try:
        archs = wspace.info(url, storage_options=storage_options)["archs"]
    except StoreNotFoundError:
        return set()
    done: set[str] = set()
    for arch in archs:
        zoo = wspace.open(url, storage_options=storage_options, arch=arch)
        done.update(zoo.models["model"].tolist())
    return done


def _ensure_groups(
    url: str, layouts: list[Layout], storage_options: Mapping[str, Any] | None
) -> None:
    try:
        wspace.info(url, storage_options=storage_options)
    except StoreNotFoundError:
        wspace.create(url, layouts, storage_options=storage_options)
        return
    for layout in layouts:  # identical groups are kept; a different layout is an error
        wspace.add_arch(url, layout, storage_options=storage_options)


def _rows(
    model: str, spec: SweepSpec, config: Mapping[str, Any], arch: NWSArchitecture, run: SweepRun
) -> list[tuple[np.ndarray, dict[str, Any]]]:
    conv, fc = arch.weight_counts()
    epochs = int(config["epochs"])
    hyper = {
        "split": spec.name,
        **{k: v for k, v in config.items() if k != "epochs"},
        "weightn_conv": conv,
        "weightn_fc": fc,
        "epochs": epochs,
    }
    names = ("iteration", "train_error", "valid_error", "test_error", "valid_error_smoothed")
    rows = []
    for k, epoch, vector in run.snapshots:
        meta = {**hyper, "step": epoch, "snapshot": k}
        meta.update(zip(names, run.errors[epoch - 1], strict=True))
        if k == 1:
            meta["error_curve"] = run.errors
            meta["stat"] = [float(epochs), run.errors[-1][0], float(epochs), run.seconds]
        rows.append((vector, meta))
    return rows


def run_sweep(
    spec: SweepSpec,
    url: str,
    *,
    fixed: bool = False,
    networks: int | None = None,
    snapshots: int | None = None,
    device: str = "cpu",
    storage_options: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> SweepReport:
    """Train the networks of ``spec`` into the store at ``url`` (created if missing).

    Parameters
    ----------
    spec
        Distributions, seed, number of networks (:func:`~wspace.train.sweep_spec.load_spec`).
    url
        Store; each architecture is its own group (added when missing).
    fixed
        Use the spec's fixed architecture (NWS's ``nws_fixed``) for every network.
    networks, snapshots
        Override the spec's numbers.
    device
        Where to train.
    storage_options, progress
        fsspec options; a tqdm bar.

    Returns
    -------
    SweepReport
        Networks planned, skipped (already in the store: a re-run resumes), trained.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    resolve_device(device)
    count = spec.networks if networks is None else networks
    shots = spec.snapshots if snapshots is None else snapshots
    configs = {f"net_{i:05d}": spec.draw(i, fixed=fixed) for i in range(count)}
    archs: dict[NWSArchitecture, Layout] = {}
    for model, config in configs.items():
        arch = NWSArchitecture.from_mapping(config, f"sweep network {model}")
        if len(set(snapshot_epochs(int(config["epochs"]), shots))) != shots:
            raise WspaceError(
                f"sweep network {model}: {shots} snapshots need epochs >= {shots} "
                f"(drew {config['epochs']})"
            )
        if arch not in archs:
            archs[arch] = nws_net_layout(NWSNet(arch, generator=torch.Generator()))
            register(arch.name, functools.partial(NWSNet, arch))  # zoo.module(), this process
    _ensure_groups(url, list(archs.values()), storage_options)
    done = _committed(url, storage_options)
    todo = [m for m in configs if m not in done]
    report = SweepReport(
        planned=count, skipped=count - len(todo), archs=sorted(a.name for a in archs)
    )
    data_cache: dict[str, DataSplit] = {}
    bar = tqdm(total=count, initial=report.skipped, unit="net", disable=not progress or None)
    try:
        with wspace.writer(
            url, storage_options=storage_options, commit_every=10**9, allow_nonfinite=True
        ) as w:
            for model in todo:
                config = configs[model]
                name = str(config["dataset"])
                if name not in data_cache:
                    data_cache[name] = load_dataset(name)
                arch = NWSArchitecture.from_mapping(config, model)
                run = train_sweep_net(data_cache[name], config, snapshots=shots, device=device)
                for vector, meta in _rows(model, spec, config, arch, run):
                    w.append(vector, model=model, arch=arch.name, **meta)
                w.commit()  # the network with all its snapshots, at once
                report.trained.append(model)
                log.info("trained %s (%s): valid error %.1f%%", model, arch.name, run.errors[-1][2])
                bar.update(1)
    finally:
        bar.close()
        report.seconds = time.perf_counter() - started
    return report
