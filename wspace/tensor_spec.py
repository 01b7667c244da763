"""TensorSpec: one tensor of a :class:`~wspace.layout.Layout`, where it lies in the flat vector
and where it came from (re-exported by :mod:`wspace.layout`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeAlias, get_args

from wspace.errors import SchemaMismatchError

__all__ = ["Convention", "TensorSpec"]

Convention: TypeAlias = Literal["torch", "keras"]
"""Framework convention of weight shapes: torch ``(out, in, kh, kw)`` or Keras ``(kh, kw, in,
out)``."""

_CONVENTIONS: tuple[str, ...] = get_args(Convention)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One tensor of a layout: where it lies in the flat vector, and where it came from.

    Examples
    --------
    >>> spec = TensorSpec("fc/weight", "fc", (2, 3), 4, 6, "torch", "fc.weight")
    >>> spec.stop, spec.slice()
    (10, slice(4, 10, None))
    """

    name: str
    """wspace name ``"<layer>/<param>"``: ``"dense_1/weight"`` (torch), ``"dense_1/kernel"``."""
    layer: str
    """The layer, ``name`` up to its last ``/`` (``"dense_1"``)."""
    shape: tuple[int, ...]
    """Shape in this tensor's own ``convention``."""
    offset: int
    """Start in the flat vector."""
    size: int
    """Number of values, the product of ``shape``."""
    convention: Convention
    """Framework convention of ``shape``: ``"torch"`` or ``"keras"``."""
    source_name: str
    """Name in the source: a ``state_dict`` key (``"dense_1.weight"``) or an HDF5 path."""
    flatten_shape: tuple[int, ...] | None = None
    """Only for a dense weight that reads a flattened feature map: that map's shape in this
    convention, ``(c, h, w)`` for torch and ``(h, w, c)`` for Keras."""

    def __post_init__(self) -> None:
        # Normalise torch.Size / numpy integers / lists, so that equality and hashing are exact.
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if self.flatten_shape is not None:
            object.__setattr__(self, "flatten_shape", tuple(int(s) for s in self.flatten_shape))
        layer, _, param = self.name.rpartition("/")
        problem = None
        if not layer or not param or layer != self.layer:
            problem = f"its name must be '<layer>/<param>' with layer {self.layer!r}"
        elif any(s < 0 for s in self.shape):
            problem = f"its shape {self.shape} has a negative dimension"
        elif self.size != math.prod(self.shape):
            problem = f"its size {self.size} is not the product of its shape {self.shape}"
        elif self.offset < 0:
            problem = f"its offset {self.offset} is negative"
        elif self.convention not in _CONVENTIONS:
            problem = f"its convention {self.convention!r} is not one of {_CONVENTIONS}"
        elif self.flatten_shape is not None:
            in_axis = 1 if self.convention == "torch" else 0
            if len(self.shape) != 2 or math.prod(self.flatten_shape) != self.shape[in_axis]:
                problem = (
                    f"its flatten_shape {self.flatten_shape} needs a 2-D dense weight with "
                    f"{math.prod(self.flatten_shape)} inputs, not shape {self.shape}"
                )
        if problem:
            raise SchemaMismatchError(f"invalid tensor {self.name!r}: {problem}")

    @property
    def stop(self) -> int:
        """End (exclusive) in the flat vector, ``offset + size``."""
        return self.offset + self.size

    def slice(self) -> slice:
        """The tensor's slice of the flat vector, ``slice(offset, stop)``."""
        return slice(self.offset, self.stop)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, every field (shapes as lists)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
