"""Plumbing shared by the format modules: store setup, whole-model appends, options, names.

:class:`ModelAppender` is how every importer writes: it creates the store (or adds the
architecture groups it lacks), skips models already committed, validates all rows of a model
before appending any, and commits only at model boundaries, so a reader never sees part of a
model. Commits group whole models (``commit_rows`` rows at least) because each commit rewrites
the writer segment's partial chunks and adds one record to the log that every ``open`` reads.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from wspace.errors import (
    DTypeError,
    DuplicateModelError,
    FormatError,
    NonFiniteWeightsError,
    SchemaMismatchError,
    StoreNotFoundError,
    WspaceError,
    listing,
)
from wspace.layout import Layout
from wspace.store.columns import RESERVED, kind_of

if TYPE_CHECKING:
    from wspace.io import ImportReport
    from wspace.store.backend import StoreLike
    from wspace.zoo import Zoo

__all__ = [
    "ESCAPE",
    "ModelAppender",
    "escape_column",
    "first_by_model",
    "full_zoo",
    "model_parts",
    "model_path",
    "no_unknown_options",
    "option_bool",
    "option_int",
    "progress_bar",
    "py_value",
    "unescape_column",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

ESCAPE = "col:"
"""Prefix of a source column whose own name cannot be a metadata column (see
:func:`escape_column`)."""


# -- options (the CLI passes every -O value as a string) ------------------------------------------
def option_bool(value: Any, name: str) -> bool:
    """``value`` of option ``name`` as a bool (``true/false/1/0/yes/no`` strings accepted)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise WspaceError(f"option {name}={value!r}: expected true or false")


def option_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` of option ``name`` as an int of at least ``minimum``."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise WspaceError(f"option {name}={value!r}: expected an integer") from None
    if number < minimum:
        raise WspaceError(f"option {name}={value!r}: must be >= {minimum}")
    return number


def no_unknown_options(options: Mapping[str, Any], fmt: str) -> None:
    """Refuse options a format does not know (a typo must not pass silently)."""
    if options:
        raise WspaceError(f"format {fmt!r} has no option(s) {listing(options)}")


# -- values and names ----------------------------------------------------------------------------
def py_value(value: Any) -> Any:
    """A metadata value as plain Python: numpy scalars unwrapped, NaN/NA/None as ``None``."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def escape_column(name: str, claimed: Collection[str] = ()) -> str:
    """The metadata column for a source column ``name``.

    Names are kept as they are (``"config.w_init"``, ``"test/accuracy"``: the Writer accepts
    any non-empty name) except those it refuses or the importer uses itself — empty names,
    :data:`~wspace.store.columns.RESERVED` names, ``"model"``, the ``claimed`` names — and
    names that already start with :data:`ESCAPE`; these get the prefix ``"col:"``.
    :func:`unescape_column` reverses it.

    Examples
    --------
    >>> escape_column("test/accuracy"), escape_column("index"), escape_column("col:x")
    ('test/accuracy', 'col:index', 'col:col:x')
    >>> unescape_column(escape_column("col:x"))
    'col:x'
    """
    if not name or name in RESERVED or name == "model" or name in claimed:
        return ESCAPE + name
    return ESCAPE + name if name.startswith(ESCAPE) else name


def unescape_column(name: str) -> str:
    """Inverse of :func:`escape_column`."""
    return name[len(ESCAPE) :] if name.startswith(ESCAPE) else name


def model_parts(model: str) -> tuple[str, ...]:
    """The path components of a model name used as a relative file path.

    A leading ``/`` is dropped; ``..``, ``.`` and empty components are refused, so an export
    never writes outside its destination folder.
    """
    parts = PurePosixPath(model.replace("\\", "/")).parts
    parts = tuple(p for p in parts if p != "/")
    if not parts or any(p in ("..", ".") for p in parts):
        raise FormatError(f"model name {model!r} cannot be used as a relative file path")
    return parts


def model_path(dst: Path, model: str, suffix: str = "") -> Path:
    """``dst / model`` (components of :func:`model_parts`), with ``suffix`` added to the name."""
    parts = model_parts(model)
    return dst.joinpath(*parts[:-1], parts[-1] + suffix)


def progress_bar(
    iterable: Iterable[T],
    *,
    enabled: bool,
    desc: str,
    total: int | None = None,
    unit: str = "model",
) -> Iterator[T]:
    """``iterable`` with a tqdm progress bar when ``enabled``."""
    return iter(tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled))


def full_zoo(zoo: Zoo) -> Zoo:
    """All rows of ``zoo``'s architecture group (the zoo itself when it has no store)."""
    try:
        return zoo.arch(zoo.ds.attrs["arch"])
    except WspaceError:
        return zoo


def first_by_model(frame: pd.DataFrame, column: str) -> dict[str, Any]:
    """The first non-missing value of ``column`` of each model of ``frame`` (one pass)."""
    if column not in frame:
        return {}
    present = frame.loc[[py_value(v) is not None for v in frame[column]], ["model", column]]
    present = present.drop_duplicates("model")
    return dict(zip(present["model"].astype(str), present[column], strict=True))


# -- writing whole models -----------------------------------------------------------------------
class ModelAppender:
    """Appends whole models to a store, committing only at model boundaries.

    Parameters
    ----------
    url, storage_options
        The store; created by :meth:`ensure_archs` when missing.
    commit_rows
        Commit once at least this many rows of complete models are pending.
    allow_nonfinite
        Accept NaN and infinite weights.
    create_options
        Passed to :func:`wspace.create` when the store is created (``codec``, ...).

    Use it as a context manager: on a clean exit everything pending is committed; when an
    exception escapes, complete models pending are committed unless the failure happened while
    a model's rows were being appended, in which case everything uncommitted is discarded.
    """

    def __init__(
        self,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        commit_rows: int = 256,
        allow_nonfinite: bool = False,
        create_options: Mapping[str, Any] | None = None,
    ) -> None:
        from wspace.io import ImportReport

        self.url = url
        self.storage_options = storage_options
        self.commit_rows = commit_rows
        self.allow_nonfinite = allow_nonfinite
        self.create_options = dict(create_options or {})
        self.layouts: dict[str, Layout] = {}
        self.report: ImportReport = ImportReport(url=str(url))
        self._writer: Any = None
        self._committed: set[str] = set()
        self._pending: list[tuple[str, int]] = []
        self._seen: set[str] = set()
        self._partial = False

    # -- store and architectures ---------------------------------------------------------------
    def ensure_archs(self, layouts: Sequence[Layout]) -> list[str]:
        """The architecture group of each layout, created (with the store) when missing.

        A group whose tensors equal the layout's is reused whatever its name; otherwise the
        layout's name is added (a different layout under that name is an error).
        """
        import wspace
        from wspace.store.reader import open_store

        try:
            state = open_store(self.url, storage_options=self.storage_options).state
            existing = {name: a.layout for name, a in state.archs.items()}
        except StoreNotFoundError:
            existing = None
        names = []
        to_add: list[Layout] = []
        for layout in layouts:
            known = {**(existing or {}), **{lay.name: lay for lay in to_add}}
            match = next((n for n, lay in known.items() if lay.tensors == layout.tensors), None)
            if match is None:
                if layout.name in known:
                    raise SchemaMismatchError(
                        f"store {str(self.url)!r} already has an architecture {layout.name!r} "
                        "with a different layout; choose another name (-O arch=NAME)"
                    )
                to_add.append(layout)
                match = layout.name
            names.append(match)
        if existing is None:
            if to_add:
                wspace.create(
                    self.url, to_add, storage_options=self.storage_options, **self.create_options
                )
        else:
            for layout in to_add:
                wspace.add_arch(self.url, layout, storage_options=self.storage_options)
        if self._writer is not None and to_add:
            self._writer.close()  # a fresh writer sees the new groups
            self._writer = None
        for name in names:
            if name not in self.report.archs:
                self.report.archs.append(name)
        return names

    @property
    def writer(self) -> Any:
        """The Writer (opened on first use, after the store exists)."""
        if self._writer is None:
            import wspace

            self._writer = wspace.writer(
                self.url,
                storage_options=self.storage_options,
                commit_every=2**62,  # never mid-model: this class decides when to commit
                allow_nonfinite=self.allow_nonfinite,
            )
            self.layouts = dict(self._writer.layouts)
            self._committed = {m for m, _ in self._writer.committed_keys}
        return self._writer

    def has(self, model: str) -> bool:
        """Whether rows of ``model`` are already committed in the store."""
        _ = self.writer  # loads the committed keys
        return model in self._committed

    def skip(self, model: str) -> None:
        """Record ``model`` as already in the store."""
        self.report.skipped.append(model)

    # -- appending -----------------------------------------------------------------------------
    def add(self, model: str, rows: Sequence[tuple[Any, Mapping[str, Any]]], *, arch: str) -> None:
        """Append all ``rows`` (``(weights, metadata)``) of ``model`` to ``arch``.

        Every row is checked first (shape, dtype, finiteness, metadata types, integer
        ``step``); a problem raises before any row of the model is appended.
        """
        writer = self.writer
        layout = self.layouts[arch]
        if model in self._seen:
            raise DuplicateModelError(
                f"model {model!r} appears twice in the source imported into {str(self.url)!r}"
            )
        checked = [
            (self._vector(weights, layout, model), self._metadata(meta, model))
            for weights, meta in rows
        ]
        self._seen.add(model)
        self._partial = True
        for vector, meta in checked:
            writer.append(vector, model=model, arch=arch, **meta)
        self._partial = False
        self._pending.append((model, len(checked)))
        if writer.uncommitted >= self.commit_rows:
            self.commit()

    def _vector(self, weights: Any, layout: Layout, model: str) -> np.ndarray:
        where = f"store {str(self.url)!r}, model {model!r}"
        if isinstance(weights, Mapping):
            try:
                vector = layout.flatten(weights)
            except (SchemaMismatchError, DTypeError) as exc:
                raise type(exc)(f"{where}: {exc}") from None
        else:
            array = np.asarray(weights)
            if array.dtype.kind != "f":
                raise DTypeError(f"{where}: weights must be floating point, got {array.dtype}")
            if array.shape != (layout.size,):
                raise SchemaMismatchError(
                    f"{where}: architecture {layout.name!r} has {layout.size} values; got "
                    f"shape {array.shape}"
                )
            vector = array.astype(np.float32, copy=False)
        if not self.allow_nonfinite and not np.isfinite(vector).all():
            bad = ~np.isfinite(vector)
            tensors = [t.name for t in layout if bad[t.offset : t.stop].any()]
            raise NonFiniteWeightsError(
                f"{where}: {int(bad.sum())} non-finite weight(s) in {listing(tensors)}; "
                "pass -O allow_nonfinite=true to store them"
            )
        return vector

    def _metadata(self, meta: Mapping[str, Any], model: str) -> dict[str, Any]:
        out = {}
        for key, value in meta.items():
            value = py_value(value)
            if value is None:
                continue
            if key == "step" and (isinstance(value, bool) or not isinstance(value, int)):
                raise SchemaMismatchError(
                    f"model {model!r}: step must be an integer, got {value!r}"
                )
            if not key or key in RESERVED or key == "model":
                raise SchemaMismatchError(f"model {model!r}: {key!r} cannot be a metadata column")
            kind_of(value, column=key, model=model)
            out[key] = value
        return out

    def commit(self) -> None:
        """Commit the pending complete models."""
        if self._writer is None or not self._pending:
            return
        self._writer.commit()
        for model, n in self._pending:
            self.report.models.append(model)
            self.report.rows += n
            self._committed.add(model)
        self._pending = []

    def __enter__(self) -> ModelAppender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer is None:
            return
        if exc_type is None:
            self.commit()
            self._writer.close()
            return
        if self._partial:
            self._writer.discard()
            self._pending = []
        else:
            try:
                self.commit()
            except Exception:
                log.exception("could not commit the complete models before the error")
        self._writer.discard()
        self._writer.closed = True
