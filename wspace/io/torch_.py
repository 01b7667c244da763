"""Framework-native files, one per row: torch ``state_dict`` files and safetensors files.

``state-dict``: a folder of ``*.pt`` (or ``*.pth``) files, each a ``state_dict`` saved with
``torch.save``. They are read with ``torch.load(..., weights_only=True)`` only: a file that
needs anything else is refused (:class:`~wspace.errors.FormatError`) and none of its code
runs. An export also writes ``metadata.jsonl`` (one JSON line per file: ``file``, ``model``,
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wspace.errors import (
    FormatError,
    SchemaMismatchError,
    SourceNotFoundError,
    WspaceError,
    listing,
)
from wspace.io._util import (
    ModelAppender,
    escape_column,
    model_path,
    no_unknown_options,
    option_bool,
    option_int,
    progress_bar,
    py_value,
)
from wspace.layout import Layout

if TYPE_CHECKING:
    import torch

    from wspace.io import ImportReport
    from wspace.store.backend import StoreLike
    from wspace.zoo import Zoo

__all__ = ["export_zoo", "import_zoo", "load_state_dict", "row_state_dict", "split_name"]


SIDECAR = "metadata.jsonl"
LAYOUT_FILE = "layout.json"
COLUMNS_KEY, LAYOUT_KEY, ROW_KEY = "wspace.columns", "wspace.layout", "wspace.row"
_NAME = re.compile(r"^(?P<model>.+)@(?P<step>-?\d+)$")
_EXTENSIONS = {"state-dict": (".pt", ".pth"), "safetensors": (".safetensors",)}


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
    FormatError
        The file needs more than tensors and containers to load (refused: nothing in it runs),
        is not a torch file, or is not a mapping of names to tensors.
    """
    import torch

    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n|$)", str(exc))
        reason = found[1].split(" Please use")[0] if found else str(exc).splitlines()[0]
        raise FormatError(
            f"{path}: refused by torch.load(weights_only=True), nothing in it was run: {reason}"
        ) from None
    except RuntimeError as exc:
        if mmap and "mmap" in str(exc):
            return load_state_dict(path, key=key)
        raise FormatError(f"{path}: not a readable torch file: {exc}") from None
    except (OSError, EOFError, ValueError) as exc:
        raise FormatError(f"{path}: not a readable torch file: {exc}") from None
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


def _floating(dtype: Any) -> bool:
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
                    if _floating(part.get_dtype()):
                        out[name] = tuple(int(s) for s in part.get_shape())
                return out
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise FormatError(f"{path}: not a readable safetensors file: {exc}") from None
    state = load_state_dict(path, key=key, mmap=True)
    return {k: tuple(v.shape) for k, v in state.items() if v.is_floating_point()}


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
    paths = sorted(
        (p for p in src.rglob("*") if p.suffix in _EXTENSIONS[fmt] and p.is_file()),
        key=lambda p: p.relative_to(src).as_posix(),
    )
    if not paths:
        raise SourceNotFoundError(f"no {'/'.join(_EXTENSIONS[fmt])} files under {src}")
    sidecar: dict[str, tuple[int, dict[str, Any]]] = {}
    if fmt == "state-dict" and (src / SIDECAR).is_file():
        lines = (src / SIDECAR).read_text(encoding="utf-8").splitlines()
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
    import torch

    tensors = _read_tensors(first, fmt, key)
    state = {k: v for k, v in tensors.items() if isinstance(v, torch.Tensor)}
    try:
        return Layout.from_torch(state, name=arch or fmt)
    except SchemaMismatchError as exc:
        raise FormatError(f"{first}: {exc}") from None


def _check(path: Path, shapes: Mapping[str, tuple[int, ...]], layout: Layout, first: Path) -> None:
    expected = {t.source_name: t.shape for t in layout}
    missing = [k for k in expected if k not in shapes]
    extra = [k for k in shapes if k not in expected]
    wrong = [
        f"{k} {shapes[k]} (not {s})" for k, s in expected.items() if k in shapes and shapes[k] != s
    ]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {listing(missing)}")
        if extra:
            parts.append(f"unexpected {listing(extra)}")
        if wrong:
            parts.append(f"shapes {listing(wrong)}")
        raise FormatError(
            f"{path}: its tensors do not match the layout of {first.name}: {'; '.join(parts)}"
        )


def _group(files: list[_File]) -> Iterator[tuple[str, list[_File]]]:
    groups: dict[str, list[_File]] = {}
    for f in files:
        groups.setdefault(f.model, []).append(f)
    yield from groups.items()


def import_zoo(
    src: str | os.PathLike[str],
    url: StoreLike,
    *,
    storage_options: Mapping[str, Any] | None = None,
    progress: bool = True,
    format: str = "state-dict",
    arch: str | None = None,
    key: str | None = None,
    commit_rows: Any = 256,
    allow_nonfinite: Any = False,
    codec: str | None = None,
    **options: Any,
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
        As for the other importers.

    Raises
    ------
    FormatError
        A file is unreadable or unsafe, or its tensors differ from the first file's. All files
        are checked (headers only) before anything is written.
    """
    no_unknown_options(options, format)
    if format not in _EXTENSIONS:
        raise WspaceError(f"wspace.io.torch_ handles {listing(_EXTENSIONS)}, not {format!r}")
    src = Path(src)
    files = _files(src, format)
    layout = _layout(src, files, format, arch, key)
    for f in files:
        _check(f.path, _tensor_shapes(f.path, format, key), layout, files[0].path)
    with ModelAppender(
        url,
        storage_options=storage_options,
        commit_rows=option_int(commit_rows, "commit_rows"),
        allow_nonfinite=option_bool(allow_nonfinite, "allow_nonfinite"),
        create_options={"codec": codec} if codec else None,
    ) as appender:
        (name,) = appender.ensure_archs([layout])
        groups = list(_group(files))
        for model, group in progress_bar(
            groups, enabled=progress, desc=f"{format} models", total=len(groups)
        ):
            if appender.has(model):
                appender.skip(model)
                continue
            rows = []
            for f in group:
                tensors = _read_tensors(f.path, format, key)
                meta = dict(f.meta)
                if f.step is not None:
                    meta["step"] = f.step
                rows.append(({k: v for k, v in tensors.items() if v.is_floating_point()}, meta))
            appender.add(model, rows, arch=name)
    return appender.report


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
    progress: bool = True,
    format: str = "state-dict",
    batch_rows: Any = 256,
    **options: Any,
) -> list[Path]:
    """Write each row of ``zoo`` as one file under ``dst`` (see the module docstring).

    Tensors are float32 and keyed by the layout's source names (a torch layout gives a
    ``state_dict`` that ``load_state_dict`` accepts; a Keras-convention layout keeps its
    shapes and names).
    """
    import torch

    no_unknown_options(options, format)
    if format not in _EXTENSIONS:
        raise WspaceError(f"wspace.io.torch_ handles {listing(_EXTENSIONS)}, not {format!r}")
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    layout = zoo.layout
    ext = _EXTENSIONS[format][0]
    files: list[Path] = []
    sidecar: list[str] = []
    seen: set[Path] = set()
    rows = zoo.rows(option_int(batch_rows, "batch_rows"))
    for i, (meta, vector) in enumerate(
        progress_bar(rows, enabled=progress, desc=f"{format} rows", total=len(zoo), unit="row")
    ):
        model, step = meta["model"], py_value(meta.get("step"))
        path = model_path(dst, model, ("" if step is None else f"@{step}") + ext)
        if path in seen:
            raise FormatError(f"two rows of {zoo.url!r} would both be written to {path}")
        seen.add(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = row_state_dict(layout, vector)
        if format == "safetensors":
            from safetensors.torch import save_file

            save_file(tensors, str(path), metadata=_encode_header(meta, layout, i))
        else:
            torch.save(tensors, path)
            row = {k: v for k, v in meta.items() if py_value(v) is not None}
            record = {"file": path.relative_to(dst).as_posix(), "row": row}
            sidecar.append(json.dumps(record, default=_json_default))
        files.append(path)
    if format == "state-dict":
        (dst / SIDECAR).write_text("".join(line + "\n" for line in sidecar), encoding="utf-8")
        (dst / LAYOUT_FILE).write_text(json.dumps(layout.to_dict(), indent=1), encoding="utf-8")
        files += [dst / SIDECAR, dst / LAYOUT_FILE]
    return files


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")
