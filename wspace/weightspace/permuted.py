"""A zoo selection whose rows are read with neuron permutations applied (lazily)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wspace.errors import ModelNotFoundError, SchemaMismatchError
from wspace.layout import Layout
from wspace.weightspace.permute import _checked, permute_rows, random_perms
from wspace.weightspace.symmetry import Symmetry

if TYPE_CHECKING:
    import torch

    from wspace import Zoo
    from wspace.weightspace.stats import WeightStats

__all__ = ["PermutedZoo"]


class PermutedZoo:
    """The rows of a :class:`~wspace.Zoo` with one permutation set per row, applied on read.

    Made by ``zoo.permute(seed=...)`` or ``zoo.permute(perms)``. Nothing is read until
    :attr:`values`, :meth:`row`, :meth:`rows`, :meth:`module` or a batch asks; then only the
    rows asked for are read, and permuted in memory.

    Examples
    --------
    >>> import wspace
    >>> from wspace.testing import tiny_zoo
    >>> zoo = wspace.open(tiny_zoo("memory://doc-permuted", n_models=3))
    >>> permuted = zoo.permute(seed=0)
    >>> permuted
    <PermutedZoo of 3 rows, 4 neuron groups>
    >>> bool((permuted.row(1) == zoo.row(1)).all()), permuted.perms["dense"].shape
    (False, (3, 84))
    """

    def __init__(self, zoo: Zoo, perms: Mapping[str, np.ndarray]) -> None:
        self._zoo = zoo
        self._symmetry: Symmetry = zoo.layout.symmetry
        self._perms = {k: np.array(v) for k, v in _checked(self._symmetry, perms, len(zoo)).items()}

    @classmethod
    def random(cls, zoo: Zoo, seed: int | np.random.Generator | None = None) -> PermutedZoo:
        """Every row of ``zoo`` with its own uniformly random permutations."""
        return cls(zoo, random_perms(zoo.layout.symmetry, len(zoo), seed))

    def __len__(self) -> int:
        return len(self._zoo)

    def __repr__(self) -> str:
        return f"<PermutedZoo of {len(self)} rows, {len(self._perms)} neuron groups>"

    @property
    def zoo(self) -> Zoo:
        """The zoo whose rows are permuted."""
        return self._zoo

    @property
    def perms(self) -> dict[str, np.ndarray]:
        """Group -> ``(rows, size)`` permutations, ``perm[j]`` the old neuron made neuron ``j``."""
        return {k: v.copy() for k, v in self._perms.items()}

    @property
    def layout(self) -> Layout:
        """The rows' layout (unchanged by permutation)."""
        return self._zoo.layout

    @property
    def models(self) -> pd.DataFrame:
        """Row metadata, as the zoo's."""
        return self._zoo.models

    @property
    def url(self) -> str:
        """The zoo's store."""
        return self._zoo.url

    def isel(self, model: Any = None) -> PermutedZoo:
        """The rows at these positions, with their permutations."""
        if model is None:
            return self
        positions = np.atleast_1d(np.arange(len(self))[model])
        return PermutedZoo(
            self._zoo.isel(positions), {k: v[positions] for k, v in self._perms.items()}
        )

    @property
    def values(self) -> np.ndarray:
        """All rows, permuted, ``(rows, params)`` float32 (reads them)."""
        return permute_rows(self.layout, self._zoo.values, self._perms, symmetry=self._symmetry)

    def _position(self, i: int | str, step: int | None) -> int:
        if isinstance(i, str):
            models = self._zoo.models
            hit = models["model"].to_numpy(dtype=object) == i
            if step is not None and "step" in models:
                hit &= models["step"].to_numpy() == step
            hits = np.flatnonzero(hit)
            if len(hits) != 1:
                raise ModelNotFoundError(
                    f"store {self.url!r}: model {i!r}{'' if step is None else f' step {step}'} "
                    f"matches {len(hits)} rows; one is needed"
                )
            return int(hits[0])
        if not -len(self) <= int(i) < len(self):
            raise ModelNotFoundError(f"store {self.url!r}: row {i} out of range ({len(self)} rows)")
        return int(i) % len(self)

    def row(self, i: int | str, *, step: int | None = None) -> np.ndarray:
        """The permuted flat vector of one row."""
        row: np.ndarray = self.isel(self._position(i, step)).values[0]
        return row

    def rows(self, batch_size: int = 256) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
        """Iterate ``(metadata, permuted flat vector)``, reading ``batch_size`` rows at once."""
        for start in range(0, len(self), batch_size):
            part = self.isel(slice(start, start + batch_size))
            records = part.models.to_dict("records")
            yield from zip(records, part.values, strict=True)

    def state_dict(self, i: int | str, *, step: int | None = None) -> dict[str, torch.Tensor]:
        """The torch ``state_dict`` of one permuted row."""
        return self.layout.to_state_dict(self.row(i, step=step))

    def module(self, i: int | str, *, step: int | None = None) -> torch.nn.Module:
        """A runnable torch network with the permuted row's weights (same function)."""
        from wspace.architectures import build

        if not self.layout.architecture:
            raise SchemaMismatchError(
                f"store {self.url!r}: the layout names no architecture, so wspace cannot build a "
                "module; use state_dict(i) with your own network"
            )
        net = build(self.layout.architecture)
        net.load_state_dict(self.state_dict(i, step=step))
        return net.eval()

    def stats(self, **options: Any) -> Any:
        """The zoo's statistics (a permutation does not change them); see ``Zoo.stats``."""
        return self._zoo.stats(**options)

    def features(
        self, view: str = "flat", *, normalize: bool | WeightStats = False, **options: Any
    ) -> Any:
        """The permuted rows in one view; see :func:`wspace.weightspace.views.features`."""
        from wspace.weightspace.views import features

        return features(self, view, normalize=normalize, **options)
