"""Worked example: predict a network's accuracy from its weights (the Small CNN Zoo task).

    python -m wspace.weightspace.example [--url DIR/zoo.zarr] [--per-class 3] [--epochs 4]
        [--classes zero one two three] [--negatives 300] [--nfn-epochs 15] [--out FILE.json]

1. **A zoo with snapshots**: one-vs-all digits LeNet-5s trained by :func:`wspace.train.
   orchestrate.train_zoo` with ``snapshots=True``, so every epoch of every network is a row with
   its validation ``accuracy`` (re-running resumes; an existing store is reused).
2. **A leakage-safe split**: ``zoo.split((0.6, 0.4), by="model")`` puts all snapshots of one
   network on the same side.
3. **Three predictors** of ``accuracy`` from the weights, each trained with and without
   permutation augmentation (``batches(..., augment="permute")``):

   - ``gbm``: per-tensor statistics (mean, std and the 0/25/50/75/100 % quantiles, as
     Unterthiner et al.) + scikit-learn gradient boosting;
   - ``nfn``: an nfn invariant network (``NPLinear`` -> ``NPLinear`` -> ``HNPPool`` -> MLP, the
     real ``nfn`` package) on the ``nfn`` view, inputs standardised per tensor by the training
     rows' statistics (``normalize=``);
   - ``mlp``: an MLP on the ``flat`` view — not invariant, the model augmentation is for.

   Statistics and the nfn network are invariant to hidden-neuron permutations, so augmentation
   changes their inputs (or outputs) only by float rounding; the ``mlp`` sees new inputs.
4. **Kendall's tau** between predicted and true accuracy on the held-out rows.

:func:`run_example` does it all and returns an :class:`ExampleReport`; the CLI prints and
writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

import wspace
from wspace.layout import Layout
from wspace.weightspace.stats import WeightStats

__all__ = [
    "MODELS",
    "ExampleConfig",
    "ExampleReport",
    "predict_gbm",
    "predict_mlp",
    "predict_nfn",
    "run_example",
    "tensor_statistics",
    "train_digits_zoo",
]

MODELS = ("gbm", "nfn", "mlp")
"""The predictors the example compares."""

Augment = Literal["permute"] | None


@dataclass
class ExampleConfig:
    """What the example trains and fits (the defaults are the CI size)."""

    classes: tuple[str, ...] = ("zero", "one", "two", "three")
    """Digit classes of the zoo's one-vs-all networks."""
    per_class: int = 6
    """Networks per class."""
    epochs: int = 4
    """Training epochs; every epoch is a snapshot row."""
    negatives: int | None = 300
    """Random negative images per network (``None``: all; fewer trains faster)."""
    train_lr: float = 3e-4
    """Learning rate of the zoo's networks: low enough that the early snapshots are still near
    the majority rate, so that accuracy varies along the snapshots."""
    workers: int = 2
    """Training worker processes."""
    fractions: tuple[float, float] = (0.6, 0.4)
    """Train and held-out fractions of the networks."""
    seed: int = 0
    models: tuple[str, ...] = MODELS
    nfn_channels: int = 4
    nfn_epochs: int = 15
    mlp_epochs: int = 40
    batch_size: int = 16
    lr: float = 1e-3
    gbm_estimators: int = 200


@dataclass
class ExampleReport:
    """Kendall's tau of every predictor on the held-out rows, with and without augmentation."""

    taus: dict[str, dict[str, float]]
    """Model -> ``{"none": tau, "permute": tau}``."""
    n_train: int
    n_test: int
    networks_train: int
    networks_test: int
    accuracy_range: tuple[float, float]
    """Lowest and highest true accuracy among the held-out rows."""
    seconds: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    def table(self) -> str:
        """The taus as a small text table."""
        lines = [f"{'model':<6} {'no aug':>8} {'permute':>8}"]
        for model, taus in self.taus.items():
            lines.append(f"{model:<6} {taus['none']:>8.3f} {taus['permute']:>8.3f}")
        return "\n".join(lines)


def train_digits_zoo(url: str, config: ExampleConfig) -> wspace.Zoo:
    """The digits zoo with snapshots at ``url``, trained now where it is missing networks."""
    from wspace.train.orchestrate import train_zoo
    from wspace.train.worker import TrainSettings

    settings = TrainSettings(
        epochs=config.epochs, negatives=config.negatives, lr=config.train_lr, snapshots=True
    )
    train_zoo(
        url, classes=list(config.classes), per_class=config.per_class, settings=settings,
        workers=config.workers, seed=config.seed, progress=False,
    )  # fmt: skip
    return wspace.open(url)


def tensor_statistics(layout: Layout, rows: np.ndarray) -> np.ndarray:
    """Per tensor: mean, std and the 0, 25, 50, 75, 100 % quantiles -> ``(B, 7 * tensors)``."""
    out = []
    for spec in layout:
        block = rows[:, spec.offset : spec.stop].astype(np.float64)
        quantiles = np.quantile(block, [0.0, 0.25, 0.5, 0.75, 1.0], axis=1).T
        out += [block.mean(axis=1, keepdims=True), block.std(axis=1, keepdims=True), quantiles]
    return np.concatenate(out, axis=1)


def _targets(zoo: Any) -> np.ndarray:
    return np.asarray(zoo.models["accuracy"], dtype=np.float64)


def _streamed(zoo: Any, view: str, augment: Augment, seed: int, **kw: Any) -> list[Any]:
    return list(zoo.batches(256, view=view, augment=augment, seed=seed, **kw))


def predict_gbm(train: Any, test: Any, augment: Augment, config: ExampleConfig) -> np.ndarray:
    """Gradient boosting on :func:`tensor_statistics`; predictions for ``test``'s rows."""
    from sklearn.ensemble import GradientBoostingRegressor

    layout = train.layout

    def features(zoo: Any, aug: Augment) -> tuple[np.ndarray, np.ndarray]:
        parts = _streamed(zoo, "flat", aug, config.seed)
        x = np.concatenate([tensor_statistics(layout, b.x.numpy()) for b in parts])
        y = np.concatenate([_targets(zoo)[b.positions] for b in parts])
        return x, y

    x, y = features(train, augment)
    model = GradientBoostingRegressor(
        n_estimators=config.gbm_estimators, max_depth=3, learning_rate=0.05, subsample=0.8,
        random_state=config.seed,
    )  # fmt: skip
    model.fit(x, y)
    prediction: np.ndarray = model.predict(features(test, None)[0])
    return prediction


def _fit_torch(
    model: Any,
    train: Any,
    view: str,
    augment: Augment,
    stats: WeightStats,
    epochs: int,
    config: ExampleConfig,
) -> None:
    import torch

    y = _targets(train)
    mean, std = y.mean(), y.std() + 1e-8
    target = torch.from_numpy(((y - mean) / std).astype(np.float32))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    model.train()
    for epoch in range(epochs):
        for batch in train.batches(
            config.batch_size, view=view, augment=augment, normalize=stats, shuffle=True,
            seed=config.seed * 1000 + epoch,
        ):  # fmt: skip
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(batch.x).ravel(), target[batch.positions])
            loss.backward()
            optimizer.step()
    model.eval()


def _predict_torch(model: Any, test: Any, view: str, stats: WeightStats) -> np.ndarray:
    import torch

    out = np.empty(len(test), dtype=np.float64)
    with torch.no_grad():
        for batch in test.batches(64, view=view, normalize=stats):
            out[batch.positions] = model(batch.x).ravel().numpy()
    return out


def predict_nfn(train: Any, test: Any, augment: Augment, config: ExampleConfig) -> np.ndarray:
    """An nfn invariant network on the ``nfn`` view; predictions for ``test``'s rows."""
    import torch
    from nfn.common import network_spec_from_wsfeat
    from nfn.layers import HNPPool, NPLinear, TupleOp

    torch.manual_seed(config.seed)
    stats = train.stats()
    spec = network_spec_from_wsfeat(next(train.batches(1, view="nfn", normalize=stats)).x)
    ch = config.nfn_channels
    model = torch.nn.Sequential(
        NPLinear(spec, 1, ch, io_embed=True), TupleOp(torch.nn.ReLU()),
        NPLinear(spec, ch, ch, io_embed=True), TupleOp(torch.nn.ReLU()),
        HNPPool(spec), torch.nn.Flatten(),
        torch.nn.Linear(ch * HNPPool.get_num_outs(spec), 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 1),
    )  # fmt: skip
    _fit_torch(model, train, "nfn", augment, stats, config.nfn_epochs, config)
    return _predict_torch(model, test, "nfn", stats)


def predict_mlp(train: Any, test: Any, augment: Augment, config: ExampleConfig) -> np.ndarray:
    """An MLP on the ``flat`` view (not permutation invariant); predictions for ``test``."""
    import torch

    torch.manual_seed(config.seed)
    stats = train.stats()
    model = torch.nn.Sequential(
        torch.nn.Linear(train.layout.size, 64), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(64, 1),
    )  # fmt: skip
    _fit_torch(model, train, "flat", augment, stats, config.mlp_epochs, config)
    return _predict_torch(model, test, "flat", stats)


_PREDICTORS = {"gbm": predict_gbm, "nfn": predict_nfn, "mlp": predict_mlp}


def kendall_tau(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Kendall's tau-b (``nan`` for constant predictions)."""
    from scipy.stats import kendalltau

    return float(kendalltau(prediction, truth).statistic)


def run_example(
    zoo: Any, config: ExampleConfig | None = None, *, verbose: bool = False
) -> ExampleReport:
    """Split ``zoo`` by model, fit every predictor with and without augmentation, score it.

    ``zoo`` needs an ``accuracy`` column (the trainer's validation accuracy) and, for the
    leakage-safe split, a ``model`` column. ``verbose`` prints every tau as it is computed.
    """
    config = config or ExampleConfig()
    train, test = zoo.split(config.fractions, by="model", seed=config.seed)
    truth = _targets(test)
    taus: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    for name in config.models:
        taus[name] = {}
        for augment in (None, "permute"):
            start = time.perf_counter()
            prediction = _PREDICTORS[name](train, test, augment, config)
            key = augment or "none"
            taus[name][key] = kendall_tau(prediction, truth)
            seconds[f"{name}/{key}"] = time.perf_counter() - start
            if verbose:
                print(f"{name} augment={key}: tau {taus[name][key]:.3f}", flush=True)
    return ExampleReport(
        taus, len(train), len(test),
        int(train.models["model"].nunique()), int(test.models["model"].nunique()),
        (float(truth.min()), float(truth.max())), seconds, asdict(config),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> ExampleReport:
    """The command line (see the module docs)."""
    defaults = ExampleConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="wspace-example-zoo.zarr", help="zoo store (reused)")
    parser.add_argument("--classes", nargs="+", default=list(defaults.classes))
    parser.add_argument("--per-class", type=int, default=defaults.per_class)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--negatives", type=int, default=defaults.negatives, help="0: all")
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--models", nargs="+", default=list(defaults.models), choices=MODELS)
    parser.add_argument("--nfn-epochs", type=int, default=defaults.nfn_epochs)
    parser.add_argument("--nfn-channels", type=int, default=defaults.nfn_channels)
    parser.add_argument("--mlp-epochs", type=int, default=defaults.mlp_epochs)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", help="write the report as JSON here")
    args = parser.parse_args(argv)
    config = ExampleConfig(
        classes=tuple(args.classes), per_class=args.per_class, epochs=args.epochs,
        negatives=args.negatives or None, workers=args.workers, seed=args.seed,
        models=tuple(args.models), nfn_channels=args.nfn_channels, nfn_epochs=args.nfn_epochs,
        mlp_epochs=args.mlp_epochs,
    )  # fmt: skip
    start = time.perf_counter()
    zoo = train_digits_zoo(args.url, config)
    trained = time.perf_counter() - start
    report = run_example(zoo, config, verbose=True)
    report.seconds["zoo"] = trained
    print(
        f"{len(zoo)} rows ({zoo.models['model'].nunique()} networks x snapshots); held out "
        f"{report.n_test} rows of {report.networks_test} networks, accuracy "
        f"{report.accuracy_range[0]:.3f}..{report.accuracy_range[1]:.3f}; Kendall's tau:"
    )
    print(report.table())
    if args.out:
        Path(args.out).write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
