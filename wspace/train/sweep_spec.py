"""Sweep specifications: distributions over architecture, optimisation and data set (TOML).

A spec is a TOML file; every field of a network is drawn from its distribution. Defaults are
the NWS generator's sampling (Eilertsen et al., github.com/gabrieleilertsen/nws), with the
data sets that exist offline::

    name = "sweep"          # the split / CSV name of the networks
    networks = 300          # how many (model names net_00000, net_00001, ...)
    seed = 0                # network i draws from numpy SeedSequence([seed, i])
    snapshots = 20          # weight snapshots per network (rows with step = epoch)

    [dataset]
    dataset = ["digits", "digits-inverted"]
    train_images = 0        # 0: all; else a random subset of that many (seeded per network)

    [architecture]
    filter_size = [3, 5, 7]
    depth_conv = [3, 4, 5]
    depth_fc = [2, 3, 4]
    width_conv = [4, 8, 12]
    width_fc = [64, 128, 192]
    batch_norm = [true, false]
    activation = ["relu", "elu", "sigmoid", "tanh"]
    dropout = 0.5

    [optimisation]
    optimizer = ["adam", "rmsprop", "momentum"]
    lrate = { uniform = [2e-4, 5e-3] }
    lr_decay = 0.96
    batch_size = [32, 64, 128, 256]
    epochs = 20
    augmentation = [true, false]
    initialization = ["constant", "random_normal", "glorot_uniform", "glorot_normal"]

    [fixed]                 # the architecture used with --fixed (NWS's nws_fixed)
    filter_size = 5
    depth_conv = 3
    depth_fc = 2
    width_conv = 8
    width_fc = 128
    batch_norm = true

A distribution is a value (fixed), a list (uniform choice), or a table: ``{ uniform = [a,
b] }``, ``{ log_uniform = [a, b] }``, ``{ int_uniform = [a, b] }`` (both ends included), or
``{ choice = [...], weights = [...] }``.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wspace.errors import FormatError, listing

__all__ = ["DEFAULT_DISTRIBUTIONS", "FIELDS", "FIXED_ARCHITECTURE", "SweepSpec", "load_spec"]

DEFAULT_DISTRIBUTIONS: dict[str, Any] = {
    "dataset": ["digits", "digits-inverted"],
    "train_images": 0,
    "filter_size": [3, 5, 7],
    "depth_conv": [3, 4, 5],
    "depth_fc": [2, 3, 4],
    "width_conv": [4, 8, 12],
    "width_fc": [64, 128, 192],
    "batch_norm": [True, False],
    "activation": ["relu", "elu", "sigmoid", "tanh"],
    "dropout": 0.5,
    "optimizer": ["adam", "rmsprop", "momentum"],
    "lrate": {"uniform": [2e-4, 5e-3]},
    "lr_decay": 0.96,
    "batch_size": [32, 64, 128, 256],
    "epochs": 20,
    "augmentation": [True, False],
    "initialization": ["constant", "random_normal", "glorot_uniform", "glorot_normal"],
}
"""Field -> distribution: the NWS generator's sampling (Eilertsen et al.), offline data sets."""
FIELDS = tuple(DEFAULT_DISTRIBUTIONS)
"""The drawn fields, in drawing order."""
FIXED_ARCHITECTURE: dict[str, Any] = {
    "filter_size": 5,
    "depth_conv": 3,
    "depth_fc": 2,
    "width_conv": 8,
    "width_fc": 128,
    "batch_norm": True,
}
"""NWS's ``nws_fixed`` architecture (``--fixed``)."""
_SECTIONS = ("dataset", "architecture", "optimisation", "optimization")
_KINDS = ("uniform", "log_uniform", "int_uniform", "choice")


def _check_distribution(name: str, dist: Any, where: str) -> None:
    if isinstance(dist, list):
        if not dist:
            raise FormatError(f"{where}: {name} is an empty list of choices")
        return
    if not isinstance(dist, Mapping):
        return
    kinds = [k for k in dist if k in _KINDS]
    extra = [k for k in dist if k not in (*_KINDS, "weights")]
    if len(kinds) != 1 or extra:
        raise FormatError(
            f"{where}: {name} = {dict(dist)!r} is not a distribution; use one of "
            f"{', '.join(f'{{ {k} = [...] }}' for k in _KINDS)}"
        )
    kind, values = kinds[0], dist[kinds[0]]
    if kind != "choice" and (
        not isinstance(values, list)
        or len(values) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        or values[0] > values[1]
        or (kind == "log_uniform" and values[0] <= 0)
    ):
        raise FormatError(f"{where}: {name}: {kind} takes [low, high] numbers, got {values!r}")
    if kind == "choice":
        weights = dist.get("weights")
        if not isinstance(values, list) or not values:
            raise FormatError(f"{where}: {name}: choice takes a non-empty list")
        if weights is not None and (
            not isinstance(weights, list) or len(weights) != len(values) or sum(weights) <= 0
        ):
            raise FormatError(f"{where}: {name}: weights must be one number >= 0 per choice")


def _draw(dist: Any, rng: np.random.Generator) -> Any:
    if isinstance(dist, list):
        return dist[int(rng.integers(len(dist)))]
    if not isinstance(dist, Mapping):
        return dist
    if "uniform" in dist:
        low, high = dist["uniform"]
        return float(rng.uniform(low, high))
    if "log_uniform" in dist:
        low, high = dist["log_uniform"]
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    if "int_uniform" in dist:
        low, high = dist["int_uniform"]
        return int(rng.integers(int(low), int(high) + 1))
    values, weights = dist["choice"], dist.get("weights")
    p = None if weights is None else np.asarray(weights, float) / float(sum(weights))
    return values[int(rng.choice(len(values), p=p))]


@dataclass
class SweepSpec:
    """A parsed sweep specification (see the module docstring for the file format)."""

    name: str = "sweep"
    """Split name of the networks (the NWS CSV written by an export is ``<name>.csv``)."""
    networks: int = 10
    seed: int = 0
    snapshots: int = 20
    distributions: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_DISTRIBUTIONS))
    fixed: dict[str, Any] = field(default_factory=lambda: dict(FIXED_ARCHITECTURE))

    def draw(self, index: int, *, fixed: bool = False) -> dict[str, Any]:
        """The drawn fields of network ``index`` (reproducible: ``SeedSequence([seed, index])``).

        With ``fixed``, the architecture fields are those of :attr:`fixed`; the others are drawn
        as usual (the same draws as without ``fixed``).

        Examples
        --------
        >>> spec = SweepSpec()
        >>> spec.draw(3) == spec.draw(3), spec.draw(3, fixed=True)["filter_size"]
        (True, 5)
        """
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, index]))
        config = {name: _draw(self.distributions[name], rng) for name in FIELDS}
        if fixed:
            config.update(self.fixed)
        config["seed"] = int(np.random.SeedSequence([self.seed, index, 1]).generate_state(1)[0])
        return config


def load_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """Read a TOML sweep spec; unknown sections or fields are errors naming them.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.toml"
    >>> text = 'networks = 4\\n[optimisation]\\nlrate = { log_uniform = [1e-4, 1e-2] }\\n'
    >>> _ = p.write_text(text)
    >>> spec = load_spec(p)
    >>> spec.networks, spec.distributions["lrate"]
    (4, {'log_uniform': [0.0001, 0.01]})
    """
    where = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise FormatError(f"sweep spec {where}: no such file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FormatError(f"sweep spec {where}: not readable TOML: {exc}") from None
    spec = SweepSpec()
    top = {"name": str, "networks": int, "seed": int, "snapshots": int}
    for key, value in raw.items():
        if key in top:
            if not isinstance(value, top[key]) or isinstance(value, bool):
                raise FormatError(f"sweep spec {where}: {key} must be {top[key].__name__}")
            setattr(spec, key, value)
        elif key in _SECTIONS or key == "fixed":
            if not isinstance(value, Mapping):
                raise FormatError(f"sweep spec {where}: [{key}] must be a table")
            known = set(FIXED_ARCHITECTURE) if key == "fixed" else set(FIELDS)
            unknown = sorted(set(value) - known)
            if unknown:
                raise FormatError(
                    f"sweep spec {where}: unknown field(s) {listing(unknown)} in [{key}]; "
                    f"known: {', '.join(sorted(known))}"
                )
            for name, dist in value.items():
                _check_distribution(name, dist, f"sweep spec {where} [{key}]")
                (spec.fixed if key == "fixed" else spec.distributions)[name] = dist
        else:
            raise FormatError(
                f"sweep spec {where}: unknown key {key!r}; known: {', '.join(top)}, "
                f"[{'], ['.join(_SECTIONS[:3])}], [fixed]"
            )
    if spec.networks < 1 or spec.snapshots < 1:
        raise FormatError(f"sweep spec {where}: networks and snapshots must be >= 1")
    return spec
