"""The checks every row passes before it is appended: model name, step, metadata, weights.

One :class:`RowValidator` serves :class:`~wspace.store.writer.Writer` and every importer of
:mod:`wspace.io` (which checks all rows of a model before the store exists or the first row is
appended), so a row is refused with the same message and under the same options whichever way
it comes in.

Examples
--------
>>> import numpy as np
>>> from wspace.architectures import lenet5_layout
>>> rows = RowValidator("memory://doc-rows")
>>> row = rows.check(np.zeros(91481), lenet5_layout(), model="a_1", metadata={"step": 3})
>>> row.key, row.vector.dtype, row.kinds
(('a_1', 3), dtype('float32'), {'model': 'str', 'step': 'int'})
>>> rows.check(np.zeros(91481), lenet5_layout(), model="a/../b", metadata={})
Traceback (most recent call last):
wspace.errors.SchemaMismatchError: store 'memory://doc-rows': model name 'a/../b' must not ...
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from wspace.errors import DTypeError, NonFiniteWeightsError, SchemaMismatchError, listing
from wspace.layout import Layout
from wspace.store.columns import RESERVED, kind_of

__all__ = ["MAX_MODEL_NAME", "NONFINITE_HINT", "CheckedRow", "RowValidator", "fits"]

MAX_MODEL_NAME = 1024
"""Longest model name accepted, in characters."""
NONFINITE_HINT = "pass allow_nonfinite=True (-O allow_nonfinite=true) to store them"
"""How to store non-finite weights anyway, as every refusal of them says."""


@dataclass(frozen=True, slots=True)
class CheckedRow:
    """One row that passed every check of :class:`RowValidator`, ready to append."""

    arch: str
    """Architecture group the row belongs to."""
    key: tuple[str, int | None]
    """``(model, step)``: what identifies the row in its store."""
    vector: np.ndarray
    """The weights as a float32 vector of the layout's size."""
    columns: dict[str, Any]
    """``model`` and every metadata column, as given."""
    kinds: dict[str, str | None]
    """Kind of each value of :attr:`columns` (``None``: missing)."""


@dataclass(frozen=True, slots=True)
class RowValidator:
    """Checks rows for the store at ``url`` (named in every message).

    Parameters
    ----------
    url
        The store the rows are for.
    allow_nonfinite
        Accept NaN and infinite weights (refused by default).
    """

    url: str
    """The store, as messages name it."""
    allow_nonfinite: bool = False
    """Whether NaN and infinite weights are accepted."""

    def check(
        self,
        weights: Any,
        layout: Layout,
        *,
        model: Any,
        metadata: Mapping[str, Any],
        arch: str | None = None,
    ) -> CheckedRow:
        """Check one row of architecture ``layout`` (group ``arch``, default its name).

        Parameters
        ----------
        weights
            A flat vector (numpy array, torch tensor, list), a ``{tensor name: array}``
            mapping, a torch ``state_dict`` or an ``nn.Module``.
        layout
            The row's layout.
        model
            The model name (:meth:`check_model`).
        metadata
            Metadata columns; ``step``, when given, must be an integer.
        arch
            Group name recorded in the result.

        Raises
        ------
        SchemaMismatchError
            A bad model name, step or column name, a value of no storable kind, weights of
            another shape or with other tensors.
        DTypeError
            Weights that are not floating point.
        NonFiniteWeightsError
            NaN or infinite weights, unless :attr:`allow_nonfinite`.
        """
        self.check_model(model)
        vector = self.vector(weights, layout, model)
        step = metadata.get("step")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int | np.integer)):
            raise SchemaMismatchError(f"model {model!r}: step must be an integer, got {step!r}")
        for column in metadata:
            if not column or column in RESERVED or column == "model":
                raise SchemaMismatchError(
                    f"model {model!r}: {column!r} cannot be a metadata column "
                    f"(reserved: {', '.join(sorted(RESERVED))})"
                )
        columns = {"model": model, **metadata}
        kinds = {k: kind_of(v, column=k, model=model) for k, v in columns.items()}
        key = (model, None if step is None else int(step))
        return CheckedRow(arch or layout.name, key, vector, columns, kinds)

    def check_model(self, model: Any) -> None:
        """Refuse a model name that is not a non-empty string usable as a relative file path.

        Raises
        ------
        SchemaMismatchError
            Naming the store and the name (cut to 60 characters).
        """
        if not isinstance(model, str) or not model:
            raise SchemaMismatchError(
                f"store {self.url!r}: model must be a non-empty string, got {model!r}"
            )
        problem = None
        if len(model) > MAX_MODEL_NAME:
            problem = f"is {len(model)} characters long; the limit is {MAX_MODEL_NAME}"
        elif "\\" in model or any(p in (".", "..") for p in model.split("/")):
            problem = (
                "must not contain '\\' nor a '.' or '..' path component (exports use it as a "
                "relative file path; '/' separates folders)"
            )
        elif "//" in model.strip("/") or model.strip("/") == "":
            problem = "must not have an empty path component ('//' or only '/')"
        elif any(ord(c) < 32 or ord(c) == 127 for c in model):
            problem = "must not contain NUL or other control characters"
        elif not _encodable(model):
            problem = "is not valid Unicode (lone surrogates cannot be stored as UTF-8)"
        if problem:
            shown = model if len(model) <= 60 else f"{model[:60]}..."
            raise SchemaMismatchError(f"store {self.url!r}: model name {shown!r} {problem}")

    def vector(self, weights: Any, layout: Layout, model: str) -> np.ndarray:
        """``weights`` as the float32 vector of ``layout``, checked (see :meth:`check`)."""
        where = f"store {self.url!r}, model {model!r}"
        if isinstance(weights, Mapping) or _is_module(weights):
            try:
                vector = layout.flatten(weights)
            except (SchemaMismatchError, DTypeError) as exc:
                raise type(exc)(f"{where}: {exc}") from None
        else:
            array = _as_array(weights)
            if not np.issubdtype(array.dtype, np.floating):
                raise DTypeError(f"{where}: weights must be floating point, got {array.dtype}")
            if array.ndim != 1 or array.shape[0] != layout.size:
                raise SchemaMismatchError(
                    f"{where}: a flat vector of architecture {layout.name!r} has "
                    f"{layout.size} values; got shape {array.shape}"
                )
            with np.errstate(over="ignore"):  # values beyond float32 become inf: refused below
                vector = array.astype(np.float32, copy=False)
        if not self.allow_nonfinite:
            bad = ~np.isfinite(vector)
            if bad.any():
                tensors = [t.name for t in layout if bad[t.offset : t.stop].any()]
                raise NonFiniteWeightsError(
                    f"{where}: {int(bad.sum())} non-finite weight(s) in {listing(tensors)}; "
                    + NONFINITE_HINT
                )
        return vector


def fits(weights: Any, layout: Layout) -> bool:
    """Whether ``weights`` (any form :meth:`RowValidator.check` takes) have ``layout``'s shape."""
    if isinstance(weights, Mapping) or _is_module(weights):
        try:
            layout.flatten(weights)
        except (SchemaMismatchError, DTypeError):
            return False
        return True
    return _as_array(weights).shape == (layout.size,)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_module(obj: Any) -> bool:
    # only if torch is imported: a value cannot be a torch module otherwise, and importing
    # torch here cost every writer of numpy rows seconds and 400 MB on its first append
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _as_array(weights: Any) -> np.ndarray:
    if hasattr(weights, "detach"):  # torch tensor
        weights = weights.detach().cpu()
        if str(weights.dtype) == "torch.bfloat16":
            weights = weights.float()
        return np.asarray(weights.numpy())
    return np.asarray(weights)
