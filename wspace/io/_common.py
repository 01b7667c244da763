"""What the format modules of :mod:`wspace.io` share: importing, exporting, options, names.

Every importer writes through an :class:`ImportSession` (whole models, commits between them,
the store created with the first model); every exporter writes its files whole or not at all
(:func:`write_rows`, :func:`write_atomic`). Options come from the command line as strings
(:func:`option_bool`, :func:`option_int`); one a format does not know is refused. Model names
become file paths only through :func:`model_path`, which never leaves the destination folder.

Examples
--------
>>> import numpy as np, wspace
>>> from wspace.architectures import lenet5_layout
>>> with ImportSession("memory://doc-common", fmt="doc") as session:
...     session.add("a_1", [(np.zeros(91481, "float32"), {"cls": "a"})],
...                 layout=lenet5_layout(), source="a.bin")
>>> session.report.models, ImportSession("memory://doc-common", fmt="doc").is_committed("a_1")
(['a_1'], True)
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
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
    SourceNotFoundError,
    StoreExistsError,
    StoreNotFoundError,
    WspaceError,
    listing,
)
from wspace.io import ImportReport
from wspace.layout import Layout
from wspace.store.columns import RESERVED, kind_of
from wspace.store.create import add_arch, create
from wspace.store.handle import open_store
from wspace.store.writer import Writer

if TYPE_CHECKING:
    from wspace.query import Zoo
    from wspace.store.backend import StoreLike

__all__ = [
    "ESCAPE",
    "ImportSession",
    "atomic_file",
    "escape_column",
    "expect_format",
    "export_batch_rows",
    "first_by_model",
    "full_zoo",
    "model_parts",
    "model_path",
    "no_unknown_options",
    "one_row_per_model",
    "option_bool",
    "option_int",
    "pop_option",
    "progress_bar",
    "py_value",
    "read_utf8",
    "refuse_repeats",
    "source_files",
    "timestamp",
    "unescape_column",
    "write_atomic",
    "write_rows",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

ESCAPE = "col:"
"""Prefix of a source column whose own name cannot be a metadata column (:func:`escape_column`)."""


# -- options (the CLI passes every -O value as a string) ------------------------------------------
def option_bool(value: Any, name: str) -> bool:
    """A boolean option given as a bool or as a command-line string (``true``/``false``).

    Examples
    --------
    >>> option_bool("yes", "overwrite"), option_bool(False, "overwrite")
    (True, False)
    """
    if isinstance(value, bool | np.bool_):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise WspaceError(f"option {name}={value!r}: expected true or false")


def option_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """An integer option (at least ``minimum``) given as an int or a command-line string.

    Examples
    --------
    >>> option_int("64", "batch_rows")
    64
    """
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise WspaceError(f"option {name}={value!r}: expected an integer") from None
    if isinstance(value, bool) or number < minimum:
        raise WspaceError(f"option {name}={value!r}: expected an integer >= {minimum}")
    return number


def pop_option(options: dict[str, Any], *names: str, default: Any = None) -> tuple[str, Any]:
    """``(name, value)`` of the option given under one of ``names`` (aliases), removed from
    ``options``; ``(names[0], default)`` when none is given."""
    given = [n for n in names if n in options]
    if len(given) > 1:
        raise WspaceError(f"options {listing(given)} are the same option; give one")
    return (given[0], options.pop(given[0])) if given else (names[0], default)


def no_unknown_options(options: Mapping[str, Any], fmt: str) -> None:
    """Refuse options a format does not know (a typo must not pass silently)."""
    if options:
        raise WspaceError(f"format {fmt!r} has no option(s) {listing(options)}")


def export_batch_rows(fmt: str, options: Mapping[str, Any], default: int = 256) -> int:
    """The export option ``batch_rows`` (alias ``batch_size``: rows read from the store at
    once); any other option left in ``options`` is refused."""
    rest = dict(options)
    name, value = pop_option(rest, "batch_rows", "batch_size", default=default)
    no_unknown_options(rest, fmt)
    return option_int(value, name)


def expect_format(fmt: str, *names: str) -> None:
    """Refuse a format name that the calling module does not implement."""
    if fmt not in names:
        raise WspaceError(f"this module handles format(s) {listing(names)}, not {fmt!r}")


# -- values and names ----------------------------------------------------------------------------
def py_value(value: Any) -> Any:
    """A metadata value as plain Python: numpy scalars unwrapped, NaN/NA/None as ``None``."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def escape_column(name: str, claimed: Collection[str] = ()) -> str:
    """The metadata column for a source column ``name``.

    Names are kept as they are (``"config.w_init"``, ``"test/accuracy"``) except those the
    Writer refuses or the importer uses itself — empty names, reserved names, ``"model"``, the
    ``claimed`` names — and names that already start with :data:`ESCAPE`; these get the prefix
    ``"col:"``. :func:`unescape_column` reverses it.

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

    Examples
    --------
    >>> model_parts("/tmp/mnist/7")
    ('tmp', 'mnist', '7')
    """
    parts = tuple(p for p in PurePosixPath(model.replace("\\", "/")).parts if p != "/")
    if not parts or any(p in ("..", ".") for p in parts):
        raise FormatError(f"model name {model!r} cannot be used as a relative file path")
    return parts


def model_path(dst: Path, model: str, suffix: str = "") -> Path:
    """``dst / model`` (components of :func:`model_parts`), with ``suffix`` added to the name."""
    parts = model_parts(model)
    return dst.joinpath(*parts[:-1], parts[-1] + suffix)


def refuse_repeats(models: Iterable[str], where: str) -> None:
    """Refuse a source that names a model twice (before anything of it is written)."""
    names = pd.Series(list(models), dtype=object)
    dup = names[names.duplicated()].unique()
    if len(dup):
        raise SchemaMismatchError(f"{where}: model(s) {listing(sorted(dup))} appear twice")


# -- sources and progress ------------------------------------------------------------------------
def source_files(
    src: Path, patterns: str | Sequence[str], *, what: str, recursive: bool = False
) -> list[Path]:
    """``[src]`` for a file; else the files of folder ``src`` matching ``patterns`` (globs),
    sorted by relative path. Nothing found raises :class:`~wspace.errors.SourceNotFoundError`."""
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise SourceNotFoundError(f"{str(src)!r}: no such file or folder")
    found = {
        p
        for pattern in ([patterns] if isinstance(patterns, str) else patterns)
        for p in (src.rglob(pattern) if recursive else src.glob(pattern))
        if p.is_file()
    }
    if not found:
        raise SourceNotFoundError(f"no {what} under {str(src)!r}")
    return sorted(found, key=lambda p: p.relative_to(src).as_posix())


def progress_bar(
    items: Iterable[T], *, enabled: bool, desc: str, total: int | None = None, unit: str = "model"
) -> Iterator[T]:
    """``items`` with a tqdm progress bar on stderr when ``enabled``."""
    return iter(tqdm(items, desc=desc, total=total, unit=unit, disable=not enabled, leave=False))


# -- exporting -----------------------------------------------------------------------------------
def timestamp() -> str:
    """Local time as ``YYYYmmdd_HHMMSS``, for the time-stamped file names of FORMATS.md §1.

    Examples
    --------
    >>> len(timestamp()), timestamp()[8]
    (15, '_')
    """
    return time.strftime("%Y%m%d_%H%M%S")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` when the block succeeds.

    The file appears complete or not at all; on an exception the temporary file is removed.
    With ``overwrite=False`` an existing ``path`` raises :class:`~wspace.StoreExistsError`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_file(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    target = Path(path)
    if not overwrite and target.exists():
        raise StoreExistsError(f"{str(target)!r} exists; pass overwrite=true to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def read_utf8(path: Path) -> str:
    """The text of a source file, newlines as stored; :class:`FormatError` naming it when it
    is not UTF-8."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: not UTF-8 text: {exc}") from None


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, newlines as given) to ``path`` via :func:`atomic_file`."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def write_rows(
    zoo: Zoo,
    paths: Sequence[Path],
    write: Callable[[Path, int, dict[str, Any], np.ndarray], None],
    *,
    batch_rows: int,
    progress: bool,
    desc: str,
    overwrite: bool = True,
) -> list[Path]:
    """Write row ``i`` of ``zoo`` to ``paths[i]`` with ``write(tmp, i, metadata, vector)``.

    Rows are read ``batch_rows`` at a time; each file is written to a temporary path and
    moved into place (:func:`atomic_file`). Two rows for one path are refused before anything
    is written. Returns ``paths``.
    """
    first: dict[Path, int] = {}
    for i, path in enumerate(paths):
        j = first.setdefault(path, i)
        if j != i:
            names = zoo.models["model"]
            raise FormatError(
                f"store {zoo.url!r}: rows {j} and {i} (models {names.iloc[j]!r} and "
                f"{names.iloc[i]!r}) would both be written to {str(path)!r}"
            )
    rows = progress_bar(
        zoo.rows(batch_rows), enabled=progress, desc=desc, total=len(zoo), unit="row"
    )
    for i, (path, (meta, vector)) in enumerate(zip(paths, rows, strict=True)):
        with atomic_file(path, overwrite=overwrite) as tmp:
            write(tmp, i, meta, vector)
    return list(paths)


def one_row_per_model(zoo: Zoo, fmt: str) -> None:
    """Refuse a zoo with several rows (snapshots) of a model: ``fmt`` has one entry per model."""
    names = zoo.models["model"]
    if names.duplicated().any():
        dup = pd.unique(names[names.duplicated()])
        raise SchemaMismatchError(
            f"store {zoo.url!r}: model(s) {listing(dup)} have several rows (snapshots); "
            f"select one row per model (e.g. --where step=20) to export {fmt}"
        )


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


# -- importing -----------------------------------------------------------------------------------
Row = tuple[Any, Mapping[str, Any]]  # weights (flat vector or {name: tensor}), metadata


class ImportSession:
    """One import into the store at ``url``: whole models appended, committed in groups.

    Parameters
    ----------
    url, storage_options
        The store; created when the first model is appended.
    fmt
        The format name (for error messages).
    options
        The importer options left over by the format: ``commit_rows`` (alias
        ``commit_every``), ``allow_nonfinite``, ``codec``; any other is refused.
    commit_rows, allow_nonfinite
        The format's defaults (``commit_rows=None``: the store's ``commit_every``, 256).

    Use it as a context manager. A clean exit commits. When an exception escapes, the complete
    models pending are committed and nothing of the failing model is (if the failure came
    while a model's rows were being appended, which only the store can cause, everything not
    yet committed is discarded).
    """

    def __init__(
        self,
        url: StoreLike,
        *,
        storage_options: Mapping[str, Any] | None = None,
        fmt: str,
        options: Mapping[str, Any] | None = None,
        commit_rows: int | None = None,
        allow_nonfinite: bool = False,
    ) -> None:
        rest = dict(options or {})
        name, value = pop_option(rest, "commit_rows", "commit_every", default=commit_rows)
        self.commit_rows = None if value is None else option_int(value, name)
        allowed = rest.pop("allow_nonfinite", allow_nonfinite)
        self.allow_nonfinite = option_bool(allowed, "allow_nonfinite")
        codec = rest.pop("codec", None)
        self.create_options: dict[str, Any] = {} if codec is None else {"codec": str(codec)}
        no_unknown_options(rest, fmt)
        self.url = url
        self.storage_options = storage_options
        self.report = ImportReport(url=str(url))
        try:
            state = open_store(url, storage_options=storage_options).state
            self._before = {m for arch in state.archs.values() for m, _ in arch.keys}
        except StoreNotFoundError:
            self._before = set()
        self._writer: Writer | None = None
        self._groups: list[tuple[Layout, str]] = []
        self._pending: list[tuple[str, int]] = []
        self._seen: set[str] = set()
        self._partial = False

    def is_committed(self, model: str) -> bool:
        """Whether rows of ``model`` were in the store when the session started."""
        return model in self._before

    def todo(
        self,
        items: Iterable[T],
        *,
        key: Callable[[T], str],
        progress: bool,
        desc: str,
        total: int | None = None,
        unit: str = "model",
    ) -> Iterator[T]:
        """The ``items`` whose model (``key(item)``) is not in the store, with a progress bar;
        the others are recorded in ``report.skipped``."""
        for item in progress_bar(items, enabled=progress, desc=desc, total=total, unit=unit):
            model = key(item)
            if model in self._before:
                self.report.skipped.append(model)
            else:
                yield item

    def add(
        self,
        model: str,
        rows: Sequence[Row],
        *,
        layout: Layout,
        source: str | Sequence[str] | None = None,
    ) -> None:
        """Append all ``rows`` of ``model`` to the group of ``layout`` (created when missing).

        Every row is checked first (shape, dtype, finiteness, metadata types, integer
        ``step``); a problem raises before any row of the model is appended, prefixed with
        ``source`` (the source file, or one per row).
        """
        where = [source] * len(rows) if source is None or isinstance(source, str) else source
        at = where[0] if where else None
        try:
            if model in self._seen:
                raise DuplicateModelError(f"model {model!r} appears twice in the source")
            checked = []
            for i, (weights, meta) in enumerate(rows):
                at = where[i]
                checked.append((self._vector(weights, layout, model), self._metadata(meta, model)))
            at = where[0] if where else None
            arch, writer = self._group(layout)
            self._seen.add(model)
            for vector, meta in checked:
                writer.append(vector, model=model, arch=arch, **meta)
                self._partial = True  # rows of the model are in the writer
            self._partial = False
        except WspaceError as exc:
            raise exc if at is None else type(exc)(f"{at}: {exc}") from None
        self._pending.append((model, len(checked)))
        if writer.uncommitted >= (self.commit_rows or writer.config.commit_every):
            self.commit()

    def _group(self, layout: Layout) -> tuple[str, Writer]:
        """The architecture group for ``layout`` (created when the store has none with its
        tensors), and the writer (opened once the store exists)."""
        name = next((n for lay, n in self._groups if lay.tensors == layout.tensors), None)
        if name is None:
            try:
                archs = open_store(self.url, storage_options=self.storage_options).state.archs
            except StoreNotFoundError:
                archs = None
            same = (n for n, a in (archs or {}).items() if a.layout.tensors == layout.tensors)
            name = next(same, None)
            if name is None:
                self._add_group(layout, create_store=archs is None)
                name = layout.name
            self._groups.append((layout, name))
        if self._writer is None:
            self._writer = Writer(
                self.url,
                storage_options=self.storage_options,
                commit_every=2**62,  # never by itself: commits fall between models
                allow_nonfinite=self.allow_nonfinite,
            )
        self._writer.layouts.setdefault(name, layout)  # a group added after it was opened
        if name not in self.report.archs:
            self.report.archs.append(name)
        return name, self._writer

    def _add_group(self, layout: Layout, *, create_store: bool) -> None:
        where = self.storage_options
        if create_store:
            try:
                create(self.url, layout, storage_options=where, **self.create_options)
                return
            except StoreExistsError:  # created meanwhile by another process
                pass
        add_arch(self.url, layout, storage_options=where)

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
        pending, self._pending = self._pending, []
        if self._writer is None or not pending:
            return
        self._writer.commit()
        for model, n in pending:
            self.report.models.append(model)
            self.report.rows += n

    def __enter__(self) -> ImportSession:
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
        if self._partial:  # the writer cannot drop a part of what it holds
            self._pending = []
        else:
            try:
                self.commit()
            except Exception:
                log.exception("could not commit the complete models before the error")
        self._writer.discard()
        self._writer.closed = True
