"""The torch side of :class:`~wspace.query.zoo.Zoo`: tensors, state dicts, runnable modules,
streamed batches and datasets (a mixin that ``Zoo`` inherits; torch is imported on use)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal, cast, overload

import numpy as np

from wspace.errors import SchemaMismatchError

if TYPE_CHECKING:
    import torch

    from wspace.query.loader import Batch, WeightDataset
    from wspace.query.zoo import Zoo
    from wspace.weightspace.stats import WeightStats
    from wspace.weightspace.views import ViewBatch

__all__ = ["ZooTorchMixin"]


class ZooTorchMixin:
    """Methods of :class:`~wspace.query.zoo.Zoo` that hand rows to torch.

    Only ``Zoo`` inherits it; each method works on ``self`` as that zoo.
    """

    def to_torch(self) -> torch.Tensor:
        """All weights as a ``(rows, params)`` float32 torch tensor (reads them)."""
        import torch

        zoo = cast("Zoo", self)
        return torch.from_numpy(np.ascontiguousarray(zoo.values))

    def state_dict(self, i: int | str, *, step: int | None = None) -> dict[str, torch.Tensor]:
        """The torch ``state_dict`` of one row, keyed as the source module's."""
        zoo = cast("Zoo", self)
        return zoo.layout.to_state_dict(zoo.row(i, step=step))

    def module(self, i: int | str, *, step: int | None = None) -> torch.nn.Module:
        """A runnable torch network of the row's architecture with the row's weights."""
        from wspace.architectures import build

        zoo = cast("Zoo", self)
        if not zoo.layout.architecture:
            raise SchemaMismatchError(
                f"{zoo._where()}: the layout names no architecture, so wspace cannot build a "
                "module; use state_dict(i) with your own network"
            )
        net = build(zoo.layout.architecture)
        net.load_state_dict(self.state_dict(i, step=step))
        return net.eval()

    @overload
    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
        prefetch: bool = True,
        view: None = None,
        augment: None = None,
        normalize: Literal[False] = False,
    ) -> Iterator[Batch]: ...

    @overload
    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
        prefetch: bool = True,
        view: str | None = None,
        augment: Literal["permute"] | None = None,
        normalize: bool | WeightStats = False,
    ) -> Iterator[ViewBatch]: ...

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
        prefetch: bool = True,
        view: str | None = None,
        augment: Literal["permute"] | None = None,
        normalize: bool | WeightStats = False,
    ) -> Iterator[Batch] | Iterator[ViewBatch]:
        """Stream rows as torch batches with their metadata, without loading the zoo.

        See :func:`wspace.query.loader.batches`. With ``view`` (``"flat"``, ``"state_dict"``,
        ``"nfn"``, ``"dws"``, ``"tokens"``, ``"graph"``), ``augment="permute"`` or
        ``normalize=True`` the batches are :class:`wspace.weightspace.ViewBatch` es (``.x`` the
        view, ``.meta`` the metadata); see :func:`wspace.weightspace.views.batches`.
        """
        zoo = cast("Zoo", self)
        if view is not None or augment is not None or normalize is not False:
            from wspace.weightspace.views import batches as view_batches

            return view_batches(
                zoo, batch_size, view=view or "flat", augment=augment, normalize=normalize,
                shuffle=shuffle, seed=seed, drop_last=drop_last, prefetch=prefetch,
            )  # fmt: skip
        from wspace.query.loader import batches

        return batches(
            zoo, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, prefetch=prefetch
        )

    def dataset(self, target: str | None = None) -> WeightDataset:
        """A map-style ``torch.utils.data.Dataset`` of rows (and a target column)."""
        from wspace.query.loader import WeightDataset

        return WeightDataset(cast("Zoo", self), target=target)
