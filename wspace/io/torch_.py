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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wspace.errors import FormatError, SchemaMismatchError, SourceNotFoundError
from wspace.io.builtin_torch import Safetensors, StateDict
from wspace.io.files import model_path, read_utf8, source_files, write_atomic
from wspace.io.options import expect_format, option_int
from wspace.io.row_files import write_rows
from wspace.io.session import ImportSession
from wspace.io.torch_meta import COLUMNS_KEY as COLUMNS_KEY
from wspace.io.torch_meta import (
    LAYOUT_FILE,
    LAYOUT_KEY,
    SIDECAR,
    decode_header,
    encode_header,
    json_default,
    read_header,
    split_name,
)
from wspace.io.torch_meta import ROW_KEY as ROW_KEY
from wspace.io.torch_meta import file_stem as file_stem
from wspace.io.torch_tensors import (
    check_tensors,
    floating,
    layout_of,
    load_state_dict,
    read_tensors,
    row_state_dict,
)
from wspace.io.values import py_value
from wspace.layout import Layout

if TYPE_CHECKING:
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


_EXTENSIONS = {f.name: f.suffixes for f in (StateDict, Safetensors)}


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
            meta, row = decode_header(read_header(path), path)
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
        elif fmt == "safetensors" and LAYOUT_KEY in (header := read_header(first)):
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
                (floating(read_tensors(f.path, format, key)), _with_step(f.meta, f.step))
                for f in group
            ]
            session.add(model, rows, layout=layout, source=[str(f.path) for f in group])
    return session.report


def _with_step(meta: Mapping[str, Any], step: int | None) -> dict[str, Any]:
    return dict(meta) if step is None else {**meta, "step": step}


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
            save_file(tensors, str(tmp), metadata=encode_header(meta, layout, i))
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
                default=json_default,
            )
            for path, meta in zip(paths, records, strict=True)
        ]
        files.append(write_atomic(dst / SIDECAR, "".join(line + "\n" for line in lines)))
        files.append(write_atomic(dst / LAYOUT_FILE, json.dumps(layout.to_dict(), indent=1)))
    return files
