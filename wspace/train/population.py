"""Population training: P one-vs-all LeNet-5s trained at once, as one batched computation.

Each member of the population is the network :func:`~wspace.train.lenet.train_one_vs_all`
would train with the same ``seed`` and ``target``: the same initial weights (``lenet5(init,
seed)``), the same negative subset and batch order (drawn from its own
``numpy.random.default_rng(seed)`` in the same order), the same loss (mean binary
cross-entropy of its batch) and its own Adam state (moments and step count). The P networks
only share the arithmetic: their parameters are stacked along a leading axis, every
convolution is one grouped convolution (``groups=P``) and every dense layer one batched matrix
product. Results agree with single training to float32 rounding, not bit for bit.

Why grouped convolutions rather than ``torch.func.vmap(functional_call)``: vmap's batching rule
turns a convolution over batched weights into the same grouped convolution, with the input in
the contiguous (NCHW) memory format. Measured on this project's 2-core CPU (1 thread, P = 16
and 64, batch 128, forward + backward, CPU time per network and step; the single-network loop
takes 22 ms): vmap 40-51 ms, grouped NCHW 38-41 ms, grouped channels-last 18-21 ms. So the
grouped form with channels-last inputs is used; on CUDA both end in cuDNN's grouped kernels.
On a CPU the gain is small (the single network is already compute-bound); the gain is larger
on an accelerator, where one network cannot fill the device (see docs/training.md).

Networks whose training sets differ in size (``negatives`` with classes of different sizes)
take different numbers of steps per epoch: a network whose epoch has ended sits the
remaining steps out (masked, no Adam step), and a short last batch is masked, so every network
takes exactly its own steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from wspace.architectures import Init, LeNet5, lenet5
from wspace.train.data import DataSplit
from wspace.train.lenet import TrainResult, _binary_metrics, _check

__all__ = [
    "PopulationEpochCallback",
    "PopulationState",
    "default_population",
    "member_counts",
    "train_population",
]

_METRICS = ("accuracy", "precision", "recall", "f1", "auc")
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults, as the single trainer
_NAMES = tuple(name for name, _ in LeNet5(generator=torch.Generator()).named_parameters())


@dataclass
class PopulationState:
    """The population after an epoch: stacked parameters and each network's metrics.

    Examples
    --------
    >>> from wspace.train.data import load_digits
    >>> seen = []
    >>> _ = train_population(load_digits(), [1, 7], [0, 1], epochs=1,
    ...                      on_epoch=lambda e, s: seen.append(s.vectors().shape))
    >>> seen
    [(2, 91481)]
    """

    epoch: int
    """Epochs done (1-based)."""
    params: dict[str, torch.Tensor]
    """``state_dict`` key of :class:`LeNet5` -> ``(P, *shape)`` tensor (on the device)."""
    metrics: list[dict[str, float]]
    """Per network: validation metrics as :func:`~wspace.train.lenet.evaluate` gives them
    (``accuracy``, ``loss`` always; ``precision``, ``recall``, ``f1``, ``auc`` when full
    metrics were asked for this epoch), plus ``train_loss`` and ``train_accuracy``."""

    def vectors(self) -> np.ndarray:
        """``(P, 91481)`` float32: each network's weights flattened in layout order.

        The order is :func:`~wspace.architectures.lenet5_layout`'s (the ``state_dict`` order,
        each tensor C-ordered), so a row can be appended to a LeNet-5 store as it is.
        """
        with torch.no_grad():
            flat = [self.params[k].detach().reshape(len(self), -1) for k in _NAMES]
            return torch.cat(flat, dim=1).float().cpu().numpy()

    def module(self, index: int) -> LeNet5:
        """Network ``index`` as a :class:`LeNet5` on the CPU, in eval mode."""
        net = LeNet5(generator=torch.Generator().manual_seed(0))
        net.load_state_dict({k: v[index].detach().cpu() for k, v in self.params.items()})
        return net.eval()

    def __len__(self) -> int:
        return len(self.metrics)


PopulationEpochCallback = Callable[[int, PopulationState], None]
"""``on_epoch(epoch, state)``: called after each epoch (1-based) with the whole population."""


def default_population(todo: int, workers: int = 1, device: str = "cpu") -> int:
    """The population size used when none is given: the documented rule.

    ``min(cap, ceil(todo / (4 * workers)))``, at least 1, with ``cap`` 16 on a CPU and 1024 on
    an accelerator. Every worker gets at least four populations, so the work is spread over
    the workers and a killed worker loses at most about a quarter of its share; on a CPU the
    activations of a step stay near 400 MB (P = 16 at batch 128), and a larger P gains no
    speed there (docs/training.md); an accelerator needs large P to be busy.

    Examples
    --------
    >>> default_population(500, workers=2), default_population(6, workers=2)
    (16, 1)
    >>> default_population(5000, workers=1, device="cuda")
    1024
    """
    cap = 16 if torch.device(device).type == "cpu" else 1024
    return max(1, min(cap, math.ceil(max(todo, 0) / (4 * max(workers, 1)))))


def member_counts(data: DataSplit, target: int, negatives: int | None) -> tuple[int, int]:
    """``(n_train, n_positive)`` of a one-vs-all network on ``target`` (as the trainer counts).

    Examples
    --------
    >>> from wspace.train.data import load_digits
    >>> member_counts(load_digits(), 7, 300)
    (425, 125)
    """
    n_positive = int((data.train_y == target).sum())
    n_negative = len(data.train_y) - n_positive if negatives is None else negatives
    return n_positive + n_negative, n_positive


def _conv(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, groups: int, pad: int = 0
) -> torch.Tensor:
    """Convolution of stacked weights ``(P, out, in, k, k)``: grouped over the P networks."""
    return F.conv2d(h, weight.flatten(0, 1), bias.flatten(), padding=pad, groups=groups)


def _forward(params: dict[str, torch.Tensor], x: torch.Tensor, shared: bool) -> torch.Tensor:
    """Probabilities ``(P, B)``: images ``(B, P*3, 32, 32)`` (one per network) or, with
    ``shared``, ``(B, 3, 32, 32)`` seen by every network."""
    p = params["conv2d.weight"].shape[0]
    b = x.shape[0]
    h = x.contiguous(memory_format=torch.channels_last)
    h = _conv(h, params["conv2d.weight"], params["conv2d.bias"], 1 if shared else p, pad=2)
    h = F.avg_pool2d(torch.tanh(h), 2)
    h = F.avg_pool2d(torch.tanh(_conv(h, params["conv2d_1.weight"], params["conv2d_1.bias"], p)), 2)
    h = torch.tanh(_conv(h, params["conv2d_2.weight"], params["conv2d_2.bias"], p))
    h = h.reshape(b, p, 480).transpose(0, 1)  # each network's (c, h, w) flatten, as nn.Flatten
    h = torch.tanh(
        torch.baddbmm(params["dense.bias"].unsqueeze(1), h, params["dense.weight"].transpose(1, 2))
    )
    out = torch.baddbmm(
        params["dense_1.bias"].unsqueeze(1), h, params["dense_1.weight"].transpose(1, 2)
    )
    return torch.sigmoid(out).squeeze(-1)


class _Adam:
    """Adam over stacked parameters with a step count per network (torch.optim.Adam's update).

    torch's Adam is elementwise, so one Adam over ``(P, ...)`` tensors is P Adams, except for
    the step count of the bias correction, which is kept per network here so that a network
    that sits a step out is not advanced.
    """

    def __init__(self, params: dict[str, torch.Tensor], lr: float, n: int) -> None:
        self.params = params
        self.lr = lr
        self.m = {k: torch.zeros_like(v) for k, v in params.items()}
        self.v = {k: torch.zeros_like(v) for k, v in params.items()}
        self.steps = np.zeros(n, dtype=np.int64)

    @torch.no_grad()
    def step(self, active: np.ndarray) -> None:
        self.steps += active
        steps = np.maximum(self.steps, 1).astype(np.float64)
        # as torch: python-float bias corrections, applied as float32 scalars
        step_size = self.lr / (1 - _BETA1**steps)
        bc2_sqrt = np.sqrt(1 - _BETA2**steps)
        everyone = bool(active.all())
        for k, param in self.params.items():
            grad = param.grad
            if grad is None:
                continue
            shape = (-1,) + (1,) * (param.dim() - 1)

            def per_net(
                values: np.ndarray, shape: tuple[int, ...] = shape, dev: torch.device = param.device
            ) -> torch.Tensor:
                return torch.from_numpy(values.astype(np.float32)).to(dev).reshape(shape)

            m = self.m[k].lerp(grad, 1 - _BETA1)
            v = self.v[k].mul(_BETA2).addcmul_(grad, grad, value=1 - _BETA2)
            denom = (v.sqrt() / per_net(bc2_sqrt)).add_(_EPS)
            update = m / denom * per_net(step_size)
            if everyone:
                self.m[k], self.v[k] = m, v
                param.sub_(update)
            else:
                keep = per_net(active.astype(np.float32)) > 0
                self.m[k] = torch.where(keep, m, self.m[k])
                self.v[k] = torch.where(keep, v, self.v[k])
                param.sub_(torch.where(keep, update, torch.zeros_like(update)))


def _evaluate(
    params: dict[str, torch.Tensor],
    val_x: torch.Tensor,
    val_y01: torch.Tensor,
    full: bool,
) -> list[dict[str, float]]:
    """Validation metrics of every network, as :func:`~wspace.train.lenet.evaluate`."""
    p = params["conv2d.weight"].shape[0]
    rows = max(8, min(512, 8_000_000 // (p * 6 * 32 * 32)))  # bounds the first activation
    with torch.inference_mode():
        chunks = [_forward(params, val_x[i : i + rows], True) for i in range(0, len(val_x), rows)]
        prob = torch.cat(chunks, dim=1).float().cpu() if chunks else torch.empty(p, 0)
    target = val_y01.cpu().to(torch.float32)  # (P, M)
    out = []
    for i in range(p):
        loss = F.binary_cross_entropy(prob[i].double(), target[i].double())
        if full:
            metrics = _binary_metrics(prob[i].numpy(), target[i].numpy())
        else:
            pred, truth = prob[i] >= 0.5, target[i] >= 0.5
            metrics = {"accuracy": float((pred == truth).double().mean())}
        metrics["loss"] = float(loss)
        out.append(metrics)
    return out


def train_population(
    data: DataSplit,
    targets: Sequence[int],
    seeds: Sequence[int],
    *,
    epochs: int = 20,
    batch_size: int = 128,
    lr: float = 1e-3,
    negatives: int | None = None,
    init: Init | str = "keras",
    device: str | torch.device = "cpu",
    on_epoch: PopulationEpochCallback | None = None,
    full_metrics: Callable[[int], bool] | None = None,
) -> list[TrainResult]:
    """Train one-vs-all LeNet-5s for ``targets`` with ``seeds`` at once (one batched computation).

    Network ``i`` is the one ``train_one_vs_all(data, targets[i], seed=seeds[i], ...)`` trains
    (to float32 rounding: the grouped kernels sum in another order).

    Parameters
    ----------
    data
        Images ``(N, 3, 32, 32)`` and labels, shared by every network.
    targets, seeds
        Positive class and seed of each network (equal lengths, P >= 1).
    epochs, batch_size, lr, negatives, init
        As for :func:`~wspace.train.lenet.train_one_vs_all`, the same for every network.
    device
        Where to train (``"cpu"``, ``"cuda"``, ``"mps"``); the data are moved there once.
    on_epoch
        ``on_epoch(epoch, state)`` after each epoch with a :class:`PopulationState`; copy
        what you keep (``state.vectors()`` copies).
    full_metrics
        ``full_metrics(epoch)``: whether to compute precision, recall, F1 and AUC (scikit-learn,
        per network) after that epoch; by default only after the last. Accuracy and loss are
        computed every epoch (the curves).

    Returns
    -------
    list of TrainResult
        One per network, in input order; ``seconds`` is the wall time of the whole population.

    Examples
    --------
    >>> from wspace.train.data import load_digits
    >>> results = train_population(load_digits(), [7, 7, 3], [0, 1, 2], epochs=1)
    >>> [len(r.curves["val_accuracy"]) for r in results]
    [1, 1, 1]
    """
    started = time.perf_counter()
    if len(targets) != len(seeds) or not targets:
        raise ValueError(
            f"one seed per target, at least one network (got {len(targets)} targets, "
            f"{len(seeds)} seeds)"
        )
    for target in targets:
        _check(data, target, epochs, batch_size, lr)
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be >= 0, not {list(seeds)}")
    if init not in ("torch", "keras"):
        raise ValueError(f"init must be 'torch' or 'keras', not {init!r}")
    n_nets = len(targets)
    dev = torch.device(device)
    # per network, exactly the draws of train_one_vs_all, in the same order
    rngs = [np.random.default_rng(seed) for seed in seeds]
    train_y = data.train_y.numpy()
    members: list[np.ndarray] = []
    for target, rng in zip(targets, rngs, strict=True):
        positive = np.flatnonzero(train_y == target)
        negative = np.flatnonzero(train_y != target)
        if negatives is not None:
            if not 1 <= negatives <= len(negative):
                raise ValueError(
                    f"negatives={negatives}, but class {data.classes[target]!r} of "
                    f"{data.name!r} has {len(negative)} negative training images"
                )
            negative = np.sort(rng.choice(negative, size=negatives, replace=False))
        members.append(np.concatenate([positive, negative]))
    sizes = np.array([len(m) for m in members])
    x = data.train_x.to(dev)
    labels = data.train_y.to(dev)
    target_t = torch.tensor(list(targets), device=dev)
    val_x = data.val_x.to(dev)
    val_y01 = (data.val_y[None, :] == torch.tensor(list(targets))[:, None]).float()

    nets = [lenet5(init=init, seed=seed) for seed in seeds]
    params = {
        k: torch.stack([dict(n.named_parameters())[k].detach() for n in nets])
        .to(dev)
        .requires_grad_()
        for k in _NAMES
    }
    adam = _Adam(params, lr, n_nets)
    acc_dtype = torch.float32 if dev.type == "mps" else torch.float64
    curves: list[dict[str, list[float]]] = [
        {"train_loss": [], "train_accuracy": [], "val_loss": [], "val_accuracy": []}
        for _ in range(n_nets)
    ]
    metrics: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        orders = [m[rng.permutation(len(m))] for m, rng in zip(members, rngs, strict=True)]
        steps = -(-sizes // batch_size)
        index = np.zeros((int(steps.max()), batch_size, n_nets), dtype=np.int64)
        valid = np.zeros(index.shape, dtype=bool)
        for i, order in enumerate(orders):
            padded = np.zeros(steps[i] * batch_size, dtype=np.int64)
            padded[: len(order)] = order
            index[: steps[i], :, i] = padded.reshape(steps[i], batch_size)
            valid[: steps[i], :, i] = (np.arange(steps[i] * batch_size) < len(order)).reshape(
                steps[i], batch_size
            )
        index_t = torch.from_numpy(index).to(dev)
        valid_t = torch.from_numpy(valid).to(dev)
        loss_sum = torch.zeros(n_nets, dtype=acc_dtype, device=dev)
        correct = torch.zeros(n_nets, dtype=torch.int64, device=dev)
        for s in range(index.shape[0]):
            idx, mask = index_t[s], valid_t[s].T  # (B, P), (P, B)
            xb = x[idx].reshape(batch_size, n_nets * 3, *x.shape[2:])
            yb = (labels[idx] == target_t).T.float()  # (P, B)
            prob = _forward(params, xb, False)
            count = mask.sum(1).clamp_min(1)
            per_sample = F.binary_cross_entropy(prob, yb, reduction="none") * mask
            loss = per_sample.sum(1) / count
            for param in params.values():
                param.grad = None
            loss.sum().backward()
            adam.step(s < steps)
            with torch.no_grad():  # running averages over the epoch, as Keras reports them
                loss_sum += loss.detach().to(acc_dtype) * count
                correct += (((prob.detach() >= 0.5) == (yb >= 0.5)) & mask).sum(1)
        full = epoch == epochs or (full_metrics is not None and full_metrics(epoch))
        metrics = _evaluate(params, val_x, val_y01, full)
        train_loss = loss_sum.cpu().double().numpy() / sizes
        train_acc = correct.cpu().numpy() / sizes
        for i, m in enumerate(metrics):
            m["train_loss"] = float(train_loss[i])
            m["train_accuracy"] = float(train_acc[i])
            curves[i]["train_loss"].append(m["train_loss"])
            curves[i]["train_accuracy"].append(m["train_accuracy"])
            curves[i]["val_loss"].append(m["loss"])
            curves[i]["val_accuracy"].append(m["accuracy"])
        if on_epoch is not None:
            on_epoch(epoch, PopulationState(epoch, params, [dict(m) for m in metrics]))
    state = PopulationState(epochs, params, metrics)
    seconds = time.perf_counter() - started
    return [
        TrainResult(
            model=state.module(i),
            metrics={k: metrics[i][k] for k in _METRICS},
            curves=curves[i],
            majority_rate=data.majority_rate(targets[i]),
            seconds=seconds,
            n_train=int(sizes[i]),
            n_positive=int((train_y == targets[i]).sum()),
        )
        for i in range(n_nets)
    ]
