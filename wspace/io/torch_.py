"""Framework-native files, one per row: torch ``state_dict`` files and safetensors files.

``state-dict``: a folder of ``*.pt`` (or ``*.pth``) files, each a ``state_dict`` saved with
``torch.save``. They are read with ``torch.load(..., weights_only=True)`` only: a file that
needs anything else is refused (:class:`~wspace.errors.UnsafePickleError`) and none of its
code runs. An export also writes ``metadata.jsonl`` (one JSON line per file: ``file``, ``model``,
``step`` and every metadata column, types kept) and ``layout.json`` (the store's layout), which
an import uses when present.

``safetensors``: a folder of ``*.safetensors`` files. Metadata lives in the header's
``__metadata__`` (strings only): an export writes every column as a string under its own name
(strings as they are, other values as JSON) and lists the columns, their keys and how to read
them in ``wspace.columns``; ``wspace.layout`` holds the layout and ``wspace.row`` the row's
position.
A file from elsewhere gets its ``__metadata__`` entries (but ``format``) as string columns.

File names are ``<model>.<ext>``, or ``<model>@<step>.<ext>`` for rows with a step; a ``/`` in a
model name is a subfolder. Without ``metadata.jsonl`` or header metadata the model and step
come from the file's path relative to the folder. The layout is the first file's
(``Layout.from_torch``: every floating tensor, in the file's order) unless ``layout.json`` or
the header gives it; every file must have the same tensors and shapes (integer buffers such as
``num_batches_tracked`` are ignored).

Examples
--------
>>> import tempfile, torch, wspace
>>> from wspace.io import export_zoo, import_zoo
>>> folder = tempfile.mkdtemp()
>>> net = torch.nn.Linear(3, 2)
>>> torch.save(net.state_dict(), f"{folder}/mlp_1@5.pt")
>>> report = import_zoo("state-dict", folder, "memory://doc-state-dict", progress=False)
>>> zoo = wspace.open("memory://doc-state-dict")
>>> zoo.models[["model", "step"]].values.tolist(), zoo.layout.tensor_names
([['mlp_1', 5]], ('root/weight', 'root/bias'))
>>> [p.name for p in export_zoo(zoo, tempfile.mkdtemp(), "safetensors", progress=False)]
['mlp_1@5.safetensors']
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wspace.errors import (
    FormatError,
    SchemaMismatchError,
    SourceNotFoundError,
    UnsafePickleError,
    listing,
)
from wspace.io.builtin_torch import Safetensors, StateDict
from wspace.io.files import model_path, read_utf8, source_files, write_atomic
from wspace.io.options import expect_format, option_int
from wspace.io.row_files import write_rows
from wspace.io.session import ImportSession
from wspace.io.values import escape_column, py_value
from wspace.layout import Layout

if TYPE_CHECKING:
    import torch

    from wspace.io.format import ImportReport
    from wspace.query import Zoo
    from wspace.store.backend import StoreLike

__all__ = [
    "check_tensors",
    "export_zoo",
    "floating",
    "import_zoo",
    "layout_of",
    "load_state_dict",
    "row_state_dict",
    "split_name",
]


SIDECAR = "metadata.jsonl"
LAYOUT_FILE = "layout.json"
COLUMNS_KEY, LAYOUT_KEY, ROW_KEY = "wspace.columns", "wspace.layout", "wspace.row"
_NAME = re.compile(r"^(?P<model>.+)@(?P<step>-?\d+)$")
_EXTENSIONS = {f.name: f.suffixes for f in (StateDict, Safetensors)}


def split_name(stem: str) -> tuple[str, int | None]:
    """``(model, step)`` of a file name without its extension (``"church_3@20"``).

    Examples
    --------
    >>> split_name("church_3@20"), split_name("runs/a"), split_name("x@y")
    (('church_3', 20), ('runs/a', None), ('x@y', None))
    """
    match = _NAME.match(stem)
    if match is None:
        return stem, None
    return match["model"], int(match["step"])


def file_stem(model: str, step: int | None) -> str:
    """Inverse of :func:`split_name`."""
    return model if step is None else f"{model}@{step}"


def load_state_dict(
    path: str | os.PathLike[str], *, key: str | None = None, mmap: bool = False
) -> dict[str, torch.Tensor]:
    """Load a ``state_dict`` from a torch file with ``weights_only=True``.

    Parameters
    ----------
    path
        The file.
    key
        Take the state_dict stored under this key of a checkpoint dict
        (``"model_state_dict"``).
    mmap
        Memory-map the tensors (zip-format files; others are loaded normally).

    Raises
    ------
    UnsafePickleError
        ``torch.load(weights_only=True)`` refused the file: it needs more than tensors and
        containers to load (or is not a pickle at all); nothing in it was run.
    FormatError
        The file is not a readable torch file, or not a mapping of names to tensors.
    """
    import torch

    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n|$)", str(exc))
        reason = found[1].split(" Please use")[0] if found else str(exc).splitlines()[0]
        if found and "global" not in reason.lower():  # garbage ("Unsupported operand 110")
            raise FormatError(f"{path}: not a readable torch file: {reason}") from None
        raise UnsafePickleError(
            f"{path}: refused by torch.load(weights_only=True), nothing in it was run: {reason}"
        ) from None
    except RuntimeError as exc:
        if mmap and "mmap" in str(exc):
            return load_state_dict(path, key=key)
        raise FormatError(f"{path}: not a readable torch file: {exc}") from None
    except Exception as exc:  # untrusted bytes: IndexError, struct.error, ...
        raise FormatError(f"{path}: not a readable torch file: {exc!r}") from None
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            raise FormatError(f"{path}: no key {key!r} (-O key=...) in the file")
        obj = obj[key]
    if not isinstance(obj, Mapping) or not obj:
        raise FormatError(f"{path}: holds a {type(obj).__name__}, not a state_dict of tensors")
    bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise FormatError(
            f"{path}: not a flat state_dict: {listing(bad)} are not tensors (a checkpoint dict? "
            "pass -O key=NAME of the state_dict in it)"
        )
    return {str(k): v for k, v in obj.items()}


def floating(tensors: Mapping[str, Any]) -> dict[str, Any]:
    """The floating-point tensors of a state_dict (integer buffers such as
    ``num_batches_tracked`` are not weights)."""
    return {k: v for k, v in tensors.items() if v.is_floating_point()}


def layout_of(path: Path, name: str, fmt: str = "state-dict", key: str | None = None) -> Layout:
    """The layout of a file's floating tensors (``Layout.from_torch``, in the file's order)."""
    try:
        return Layout.from_torch(floating(_read_tensors(path, fmt, key)), name=name)
    except SchemaMismatchError as exc:
        raise FormatError(f"{path}: {exc}") from None


def check_tensors(
    path: Path, layout: Layout, first: Path, fmt: str = "state-dict", key: str | None = None
) -> None:
    """Refuse a file whose floating tensors (read from its header) are not ``layout``'s,
    the layout of the file ``first``."""
    shapes = _tensor_shapes(path, fmt, key)
    expected = {t.source_name: t.shape for t in layout}
    missing = [k for k in expected if k not in shapes]
    extra = [k for k in shapes if k not in expected]
    wrong = [
        f"{k} {shapes[k]} (not {s})" for k, s in expected.items() if k in shapes and shapes[k] != s
    ]
    parts = [
        f"{what} {listing(names)}"
        for what, names in (("missing", missing), ("unexpected", extra), ("shapes", wrong))
        if names
    ]
    if parts:
        raise FormatError(
            f"{path}: its tensors do not match the layout of {first}: {'; '.join(parts)}"
        )


def _floating_dtype(dtype: Any) -> bool:
    text = str(dtype).lower()
    return any(t in text for t in ("float", "bfloat", "f16", "f32", "f64", "bf16", "f8"))


def _tensor_shapes(path: Path, fmt: str, key: str | None) -> dict[str, tuple[int, ...]]:
    """Floating tensors of a file and their shapes, without reading their data."""
    if fmt == "safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                out = {}
                for name in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                    part = f.get_slice(name)
                    if _floating_dtype(part.get_dtype()):
                        out[name] = tuple(int(s) for s in part.get_shape())
                return out
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise FormatError(f"{path}: not a readable safetensors file: {exc}") from None
    state = floating(load_state_dict(path, key=key, mmap=True))
    return {k: tuple(v.shape) for k, v in state.items()}


def _read_tensors(path: Path, fmt: str, key: str | None) -> dict[str, Any]:
    if fmt == "safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as exc:
            raise FormatError(f"{path}: not a readable safetensors file: {exc}") from None
    return load_state_dict(path, key=key)


def _header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:
        raise FormatError(f"{path}: not a readable safetensors file: {exc}") from None


def _decode_header(header: Mapping[str, str], path: Path) -> tuple[dict[str, Any], int | None]:
    """Metadata columns of a safetensors header and the row position it records."""
    if COLUMNS_KEY not in header:
        meta = {escape_column(k): v for k, v in header.items() if k != "format"}
        return meta, None
    try:
        columns = json.loads(header[COLUMNS_KEY])
        meta = {
            name: header[key] if kind == "str" else json.loads(header[key])
            for name, (key, kind) in columns.items()
        }
        row = int(header[ROW_KEY]) if ROW_KEY in header else None
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"{path}: unreadable wspace metadata in its header: {exc}") from None
    return meta, row


@dataclass
class _File:
    path: Path
    model: str
    step: int | None
    meta: dict[str, Any]
    row: int | None = None


def _files(src: Path, fmt: str) -> list[_File]:
    if not src.is_dir():
        raise SourceNotFoundError(f"no folder {src} to import {fmt} files from")
    exts = _EXTENSIONS[fmt]
    what = f"{'/'.join(exts)} files"
    paths = source_files(src, [f"*{e}" for e in exts], what=what, recursive=True)
    sidecar: dict[str, tuple[int, dict[str, Any]]] = {}
    if fmt == "state-dict" and (src / SIDECAR).is_file():
        lines = read_utf8(src / SIDECAR).splitlines()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                sidecar[str(record["file"])] = (i, dict(record["row"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise FormatError(f"{src / SIDECAR} line {i + 1}: {exc}") from None
    out = []
    for path in paths:
        rel = path.relative_to(src).as_posix()
        model, step = split_name(rel[: -len(path.suffix)])
        row = None
        meta: dict[str, Any] = {}
        if fmt == "safetensors":
            meta, row = _decode_header(_header(path), path)
        elif rel in sidecar:
            row, meta = sidecar[rel]
        if "model" in meta:
            model = str(meta.pop("model"))
        if "step" in meta:
            step = meta["step"]  # left in place: the column keeps its position
        out.append(_File(path, model, step, meta, row))
    out.sort(key=lambda f: (f.row is None, f.row if f.row is not None else 0))
    return out


def _layout(src: Path, files: list[_File], fmt: str, arch: str | None, key: str | None) -> Layout:
    first = files[0].path
    data: Any = None
    try:
        if fmt == "state-dict" and (src / LAYOUT_FILE).is_file():
            data = json.loads((src / LAYOUT_FILE).read_text(encoding="utf-8"))
        elif fmt == "safetensors" and LAYOUT_KEY in (header := _header(first)):
            data = json.loads(header[LAYOUT_KEY])
    except ValueError as exc:
        raise FormatError(f"unreadable layout ({LAYOUT_FILE}, header of {first}): {exc}") from None
    if data is not None:
        if arch:
            data = {**data, "name": arch}
        try:
            return Layout.from_dict(data)
        except SchemaMismatchError as exc:
            raise FormatError(f"layout of {first}: {exc}") from None
    return layout_of(first, arch or fmt, fmt, key)


def import_zoo(
    src: str | os.PathLike[str],
    url: StoreLike,
    *,
    storage_options: Mapping[str, Any] | None,
    progress: bool,
    format: str,
    arch: str | None,
    key: str | None,
    commit_rows: int | None,
    allow_nonfinite: bool,
    codec: str | None,
) -> ImportReport:
    """Import a folder of state_dict (``format="state-dict"``) or safetensors files.

    Parameters
    ----------
    src
        The folder (searched recursively).
    format
        ``"state-dict"`` or ``"safetensors"``.
    arch
        Architecture-group name (default: the name in ``layout.json``/the header, else the
        format name); an existing group with the same tensors is used whatever its name.
    key
        For state-dict files holding a checkpoint dict: the key of the state_dict in it.
    commit_rows, allow_nonfinite, codec
        The options of :class:`~wspace.io.session.ImportSession`.

    The defaults are those of :class:`wspace.io.builtin.StateDict` and ``Safetensors``,
    which call this.

    Raises
    ------
    FormatError, UnsafePickleError
        A file is unreadable or unsafe, or its tensors differ from the first file's. All files
        are checked (headers only) before anything is written.
    """
    expect_format(format, *_EXTENSIONS)
    session = ImportSession(
        url,
        storage_options=storage_options,
        fmt=format,
        commit_rows=commit_rows,
        allow_nonfinite=allow_nonfinite,
        codec=codec,
    )
    src = Path(src)
    files = _files(src, format)
    layout = _layout(src, files, format, arch, key)
    for f in files:
        check_tensors(f.path, layout, files[0].path, format, key)
    groups: dict[str, list[_File]] = {}
    for f in files:
        groups.setdefault(f.model, []).append(f)
    with session:
        for model, group in session.todo(
            groups.items(),
            key=lambda g: g[0],
            progress=progress,
            desc=f"{format} models",
            total=len(groups),
        ):
            rows = [
                (floating(_read_tensors(f.path, format, key)), _with_step(f.meta, f.step))
                for f in group
            ]
            session.add(model, rows, layout=layout, source=[str(f.path) for f in group])
    return session.report


def _with_step(meta: Mapping[str, Any], step: int | None) -> dict[str, Any]:
    return dict(meta) if step is None else {**meta, "step": step}


def row_state_dict(layout: Layout, vector: np.ndarray) -> dict[str, Any]:
    """Contiguous float32 tensors of one row, keyed by their source names."""
    import torch

    return {
        spec.source_name: torch.from_numpy(np.array(array, dtype=np.float32, copy=True))
        for spec, array in zip(layout, layout.unflatten(vector).values(), strict=True)
    }


def _encode_header(meta: Mapping[str, Any], layout: Layout, row: int) -> dict[str, str]:
    header = {"format": "pt"}
    columns = {}
    for name, value in meta.items():
        value = py_value(value)
        if value is None:
            continue
        key = name
        if name in ("format", COLUMNS_KEY, LAYOUT_KEY, ROW_KEY) or name.startswith("wspace.col."):
            key = f"wspace.col.{name}"  # the header's own keys stay free
        if isinstance(value, str):
            header[key], columns[name] = value, (key, "str")
        else:
            header[key], columns[name] = json.dumps(value, default=_json_default), (key, "json")
    header[COLUMNS_KEY] = json.dumps(columns)
    header[LAYOUT_KEY] = json.dumps(layout.to_dict())
    header[ROW_KEY] = str(row)
    return header


def export_zoo(
    zoo: Zoo,
    dst: str | os.PathLike[str],
    *,
    progress: bool,
    format: str,
    batch_rows: int,
) -> list[Path]:
    """Write each row of ``zoo`` as one file under ``dst`` (see the module docstring).

    Tensors are float32 and keyed by the layout's source names (a torch layout gives a
    ``state_dict`` that ``load_state_dict`` accepts; a Keras-convention layout keeps its
    shapes and names). ``batch_rows``: rows read from the store at once. The defaults are
    those of :class:`wspace.io.builtin.StateDict` and ``Safetensors``, which call this.
    """
    import torch
    from safetensors.torch import save_file

    expect_format(format, *_EXTENSIONS)
    batch = option_int(batch_rows, "batch_rows")
    dst = Path(dst)
    layout = zoo.layout
    ext = _EXTENSIONS[format][0]
    records = zoo.models.to_dict("records")
    steps = [py_value(r.get("step")) for r in records]
    paths = [
        model_path(dst, str(r["model"]), ("" if step is None else f"@{step}") + ext)
        for r, step in zip(records, steps, strict=True)
    ]

    def write(tmp: Path, i: int, meta: dict[str, Any], vector: np.ndarray) -> None:
        tensors = row_state_dict(layout, vector)
        if format == "safetensors":
            save_file(tensors, str(tmp), metadata=_encode_header(meta, layout, i))
        else:
            torch.save(tensors, tmp)

    dst.mkdir(parents=True, exist_ok=True)
    files = write_rows(
        zoo, paths, write, batch_rows=batch, progress=progress, desc=f"{format} rows"
    )
    if format == "state-dict":
        lines = [
            json.dumps(
                {
                    "file": path.relative_to(dst).as_posix(),
                    "row": {k: v for k, v in meta.items() if py_value(v) is not None},
                },
                default=_json_default,
            )
            for path, meta in zip(paths, records, strict=True)
        ]
        files.append(write_atomic(dst / SIDECAR, "".join(line + "\n" for line in lines)))
        files.append(write_atomic(dst / LAYOUT_FILE, json.dumps(layout.to_dict(), indent=1)))
    return files


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")
