"""Built-in formats of framework-native folders: ``state-dict`` and ``safetensors``.

Light: the methods import :mod:`wspace.io.torch_` only when called. Options common to every
importer and exporter: :mod:`wspace.io.builtin`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from wspace.io.format import Format, ImportReport, Source, has_any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from wspace.query import Zoo
    from wspace.store.backend import StoreLike

__all__ = ["Safetensors", "StateDict"]


class _TorchFiles(Format):
    """A folder of tensor files, one per row (``state-dict``, ``safetensors``)."""

    suffixes: tuple[str, ...]

    def can_open(self, src: Path) -> bool:
        return src.is_dir() and has_any(p for s in self.suffixes for p in src.rglob(f"*{s}"))

    def _import(self, src: Source, url: StoreLike, **kwargs: Any) -> ImportReport:
        from wspace.io import torch_

        return torch_.import_zoo(src, url, format=self.name, **kwargs)

    def export(
        self, zoo: Zoo, dst: Source, *, progress: bool = True, batch_rows: int = 256
    ) -> list[Path]:
        from wspace.io import torch_

        return torch_.export_zoo(
            zoo, dst, progress=progress, format=self.name, batch_rows=batch_rows
        )


class StateDict(_TorchFiles):
    """``state-dict``: a folder of torch ``state_dict`` files (``*.pt``, ``*.pth``).

    Import options: ``arch`` (group name; default the name in ``layout.json``, else
    ``state-dict``), ``key`` (the key of the state_dict in files holding a checkpoint dict).
    Export option: ``batch_rows``.
    """

    name = "state-dict"
    summary = "folder of torch state_dict files (*.pt), one per row"
    suffixes = (".pt", ".pth")

    def import_(
        self,
        src: Source,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = True,
        arch: str | None = None,
        key: str | None = None,
        commit_rows: int | None = None,
        allow_nonfinite: bool = False,
        codec: str | None = None,
    ) -> ImportReport:
        return self._import(
            src,
            url,
            storage_options=storage_options,
            progress=progress,
            arch=arch,
            key=key,
            commit_rows=commit_rows,
            allow_nonfinite=allow_nonfinite,
            codec=codec,
        )


class Safetensors(_TorchFiles):
    """``safetensors``: a folder of safetensors files (``*.safetensors``).

    Import option: ``arch`` (group name; default the name in the header, else
    ``safetensors``). Export option: ``batch_rows``.
    """

    name = "safetensors"
    summary = "folder of safetensors files, one per row"
    suffixes = (".safetensors",)

    def import_(
        self,
        src: Source,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = True,
        arch: str | None = None,
        commit_rows: int | None = None,
        allow_nonfinite: bool = False,
        codec: str | None = None,
    ) -> ImportReport:
        return self._import(
            src,
            url,
            storage_options=storage_options,
            progress=progress,
            arch=arch,
            key=None,
            commit_rows=commit_rows,
            allow_nonfinite=allow_nonfinite,
            codec=codec,
        )
