"""Realistic synthetic zoos: a few trained digits LeNet-5s, perturbed per row.

Training 10,610 networks would take hours, and random weights compress and scan unlike trained
ones. So the benchmark trains one one-vs-all LeNet-5 per class on scikit-learn's digits
(:func:`wspace.train.lenet.train_one_vs_all`, a few epochs) and derives every row from its
class's trained network by a small per-row perturbation::

    row = base * (1 + rel_noise * N(0, 1)) + abs_noise * std(tensor) * N(0, 1)

The multiplicative part keeps each weight's sign and magnitude (so the value distribution, and
with it compressibility, stays that of trained weights); the additive part, small relative to
each tensor's spread, makes exact zeros non-zero as training would. Rows are deterministic in
``(seed, row)`` and follow the job order of :func:`wspace.train.worker.plan_jobs` (count-major:
``tench_0, english_springer_0, ..., parachute_0, tench_1, ...``), the order in which
concurrent training workers append a zoo.

A second, smaller layout (``lenet5-small``, 8,937 parameters with the same layer names and a
same-sized ``dense_1``) serves the 100,000-row scale test when the full layout does not fit on
disk; its tensors are cut from the trained LeNet-5s.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wspace.layout import Layout

__all__ = ["CLASSES", "SynthZoo", "model_name", "small_layout", "train_bases"]

CLASSES: tuple[str, ...] = (
    "tench", "english_springer", "cassette_player", "chain_saw", "church",
    "french_horn", "garbage_truck", "gas_pump", "golf_ball", "parachute",
)  # fmt: skip
"""Class names of the synthetic zoo (the published zoo's, ``wspace.train.data``'s
``IMAGENETTE_CLASSES``, repeated here so that writer processes need not import torch)."""

_FULL_SHAPES: dict[str, tuple[int, ...]] = {
    "conv2d/weight": (6, 3, 5, 5),
    "conv2d/bias": (6,),
    "conv2d_1/weight": (16, 6, 5, 5),
    "conv2d_1/bias": (16,),
    "conv2d_2/weight": (120, 16, 5, 5),
    "conv2d_2/bias": (120,),
    "dense/weight": (84, 480),
    "dense/bias": (84,),
    "dense_1/weight": (1, 84),
    "dense_1/bias": (1,),
}
_SMALL_SHAPES: dict[str, tuple[int, ...]] = {
    "conv2d/weight": (6, 3, 5, 5),
    "conv2d/bias": (6,),
    "conv2d_1/weight": (16, 6, 5, 5),
    "conv2d_1/bias": (16,),
    "conv2d_2/weight": (8, 16, 5, 5),
    "conv2d_2/bias": (8,),
    "dense/weight": (84, 32),
    "dense/bias": (84,),
    "dense_1/weight": (1, 84),
    "dense_1/bias": (1,),
}


def model_name(i: int) -> str:
    """Model name of row ``i``: ``{cls}_{count}`` in job order."""
    return f"{CLASSES[i % len(CLASSES)]}_{i // len(CLASSES)}"


def _layout(name: str, shapes: dict[str, tuple[int, ...]], channels: int) -> Layout:
    tensors: list[dict[str, Any]] = []
    for tensor, shape in shapes.items():
        entry: dict[str, Any] = {"name": tensor, "shape": list(shape)}
        entry["source_name"] = tensor.replace("/", ".")
        if tensor == "dense/weight":
            entry["flatten_shape"] = [channels, 2, 2]
        tensors.append(entry)
    arch = "lenet5" if name == "lenet5" else None
    return Layout.from_dict({"name": name, "architecture": arch, "tensors": tensors})


def full_layout() -> Layout:
    """The torch LeNet-5 layout of the published zoo (91,481 parameters).

    Equal to :func:`wspace.architectures.lenet5_layout` (tested), built without torch so that
    benchmark processes need not import it.
    """
    return _layout("lenet5", _FULL_SHAPES, 120)


def small_layout() -> Layout:
    """A 8,937-parameter LeNet-5 variant (``conv2d_2`` 8 channels) for the scale test."""
    return _layout("lenet5-small", _SMALL_SHAPES, 8)


def layout_named(name: str) -> Layout:
    """``lenet5`` or ``lenet5-small``."""
    if name == "lenet5":
        return full_layout()
    if name == "lenet5-small":
        return small_layout()
    raise ValueError(f"unknown benchmark layout {name!r}; use lenet5 or lenet5-small")


def train_bases(
    epochs: int, cache_dir: Path | None = None, *, n_bases: int = 10, negatives: int | None = None
) -> dict[str, Any]:
    """Train ``n_bases`` digits LeNet-5s, base ``k`` on digit ``k``; cached in ``cache_dir``.

    Class ``c`` of the zoo derives from base ``c % n_bases`` (10 bases: one per class; fewer
    for a quick smoke test). ``negatives`` limits the negative images per network (faster).
    Returns ``{"weights": (n_bases, 91481) float32, "metrics": [...], "curves": [...],
    "seconds": float}``.
    """
    cache = None
    if cache_dir is not None:
        tag = f"bases-e{epochs}-n{n_bases}" + (f"-neg{negatives}" if negatives else "")
        cache = Path(cache_dir) / f"{tag}.npz"
        if cache.exists():
            with np.load(cache, allow_pickle=False) as f:
                return {
                    "weights": f["weights"],
                    **json.loads(str(f["info"])),
                }
    import time

    import torch

    from wspace.train.data import load_digits
    from wspace.train.lenet import train_one_vs_all

    torch.set_num_threads(2)
    data = load_digits()
    layout = full_layout()
    weights, metrics, curves = [], [], []
    start = time.perf_counter()
    for k in range(n_bases):
        result = train_one_vs_all(data, k, seed=k, epochs=epochs, negatives=negatives)
        weights.append(layout.flatten(result.model))
        metrics.append(result.metrics)
        curves.append(result.curves)
    info = {"metrics": metrics, "curves": curves, "seconds": time.perf_counter() - start}
    stacked = np.stack(weights).astype(np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, weights=stacked, info=np.array(json.dumps(info)))
    return {"weights": stacked, **info}


def _cut_small(base: np.ndarray) -> np.ndarray:
    """The ``lenet5-small`` vector cut from a full LeNet-5 vector."""
    tensors = full_layout().unflatten(base)
    out = []
    for name, shape in _SMALL_SHAPES.items():
        t = np.asarray(tensors[name])
        out.append(t[tuple(slice(0, s) for s in shape)].ravel())
    return np.concatenate(out).astype(np.float32)


@dataclass
class SynthZoo:
    """A deterministic zoo of ``n_models`` rows derived from trained base networks.

    Parameters
    ----------
    n_models
        Rows (one model each).
    bases
        Output of :func:`train_bases`.
    layout
        ``lenet5`` (default) or ``lenet5-small``.
    seed
        Seed of the per-row perturbations.
    rel_noise, abs_noise
        Multiplicative noise scale, and additive noise in units of each tensor's std.
    """

    n_models: int
    bases: dict[str, Any]
    layout_name: str = "lenet5"
    seed: int = 0
    layout_dict: dict[str, Any] | None = None
    """The layout as ``Layout.to_dict()`` (spares importing torch to build LeNet-5's)."""
    rel_noise: float = 0.05
    abs_noise: float = 0.02
    layout: Layout = field(init=False)
    _base: np.ndarray = field(init=False, repr=False)
    _scale: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.layout = (
            Layout.from_dict(self.layout_dict)
            if self.layout_dict is not None
            else layout_named(self.layout_name)
        )
        full = np.asarray(self.bases["weights"], dtype=np.float32)
        base = full if self.layout_name == "lenet5" else np.stack([_cut_small(b) for b in full])
        self._base = base
        scale = np.empty_like(base)
        for t in self.layout:
            scale[:, t.offset : t.stop] = base[:, t.offset : t.stop].std(axis=1, keepdims=True)
        self._scale = scale * self.abs_noise

    # -- identity of rows --------------------------------------------------------------------
    def target(self, i: int) -> int:
        """Class index of row ``i``."""
        return i % len(CLASSES)

    def base(self, i: int) -> int:
        """Index of the trained network row ``i`` derives from."""
        return self.target(i) % len(self._base)

    def count(self, i: int) -> int:
        """Number of row ``i`` within its class."""
        return i // len(CLASSES)

    def model(self, i: int) -> str:
        """Model name of row ``i``: ``{cls}_{count}``."""
        return model_name(i)

    def models(self) -> list[str]:
        """Every model name, in row order."""
        return [self.model(i) for i in range(self.n_models)]

    def classes(self) -> np.ndarray:
        """Class name of every row."""
        return np.array([CLASSES[self.target(i)] for i in range(self.n_models)], dtype=object)

    def fingerprint(self) -> str:
        """A short hash of everything that determines the rows and metadata."""
        h = hashlib.sha256(self._base.tobytes())
        h.update(
            json.dumps(
                [self.n_models, self.layout_name, self.seed, self.rel_noise, self.abs_noise]
            ).encode()
        )
        return h.hexdigest()[:16]

    # -- data --------------------------------------------------------------------------------
    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as a ``(stop - start, size)`` float32 array."""
        out = np.empty((stop - start, self.layout.size), dtype=np.float32)
        for j, i in enumerate(range(start, stop)):
            rng = np.random.default_rng([self.seed, i])
            k = self.base(i)
            noise = rng.standard_normal((2, self.layout.size), dtype=np.float32)
            row = self._base[k] * (1 + self.rel_noise * noise[0])
            row += self._scale[k] * noise[1]
            out[j] = row
        return out

    def meta(self, i: int) -> dict[str, Any]:
        """Metadata of row ``i``, the columns :func:`wspace.train.worker.run_jobs` writes."""
        k = self.target(i)
        rng = np.random.default_rng([self.seed, i, 1])
        base_metrics = self.bases["metrics"][self.base(i)]
        base_curves = self.bases["curves"][self.base(i)]
        epochs = 20

        def jitter(v: float) -> float:
            v = float(v)
            return v if math.isnan(v) else max(0.0, v + float(rng.normal(0, 0.01)))

        curves = {
            name: [jitter(v) for v in np.interp(np.arange(epochs), [0, epochs - 1], [c[0], c[-1]])]
            for name, c in base_curves.items()
        }
        metrics = {name: jitter(v) for name, v in base_metrics.items()}
        return {
            "cls": CLASSES[k],
            "count": self.count(i),
            "seed": int(np.random.SeedSequence([0, k, self.count(i)]).generate_state(1)[0]),
            "dataset": "digits",
            "epochs": epochs,
            "negatives": None,
            "n_train": 1257,
            "n_positive": 125 + k,
            "majority_rate": 0.9,
            **metrics,
            "loss": curves["val_loss"][-1],
            "train_loss": curves["train_loss"][-1],
            "train_accuracy": curves["train_accuracy"][-1],
            **{f"curve_{name}": values for name, values in curves.items()},
            "train_seconds": float(rng.uniform(30, 60)),
            "step": epochs,
        }
