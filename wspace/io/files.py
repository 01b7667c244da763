"""Files of sources and exports: finding them, reading text, writing whole files, paths.

Model names become file paths only through :func:`model_path`, which never leaves the
destination folder; every export file is written whole or not at all (:func:`atomic_file`).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import TypeVar

from tqdm.auto import tqdm

from wspace.errors import FormatError, SourceNotFoundError, StoreExistsError

__all__ = [
    "atomic_file",
    "model_parts",
    "model_path",
    "progress_bar",
    "read_utf8",
    "source_files",
    "timestamp",
    "write_atomic",
]

T = TypeVar("T")


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


def timestamp() -> str:
    """Local time as ``YYYYmmdd_HHMMSS``, for the time-stamped file names of docs/formats.md.

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
