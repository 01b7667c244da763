"""Model Zoos (Schürholt et al., "Model Zoos: A Dataset of Diverse Populations of Neural
Network Models", docs/formats.md): Ray Tune trial folders.

One folder per trained model (a Ray Tune trial), anywhere under the data set folder::

    <trial>/result.json                       one JSON object per line, one line per epoch:
                                              train/test loss and accuracy, Ray's fields
                                              (training_iteration, ...), and the trial's config
    <trial>/checkpoint_000000/checkpoints     torch.save(model.state_dict()), keys
    <trial>/checkpoint_000001/checkpoints     module_list.{i}.weight / .bias
    ...                                       (an ``optimizer`` file beside it is not read)

The authors' Trainables (``NN_tune_trainable``: ``save_checkpoint`` writes
``<dir>/checkpoints``) start at ``_iteration = -1``, so ``checkpoint_00000N`` holds the weights
after epoch ``N`` (0 = initialisation) and the line with ``training_iteration == N`` has its
metrics. wspace pairs checkpoints and lines that way (by line number, first line = epoch 0,
when the lines have no ``training_iteration``).

Rows: ``model`` = the trial folder's path relative to the data set folder, ``step`` = the
epoch, every key of the epoch's line under its own name (``test_acc``, ``training_iteration``,
...; a key the Writer refuses or that starts with ``config.`` gets the prefix ``col:``),
``config.<key>`` for every config entry (lists and dicts as JSON), and ``result_line`` (the
line's number). Lines of epochs without a checkpoint are kept, on the trial's first row, in
``result_extra``. State dicts are read with ``torch.load(..., weights_only=True)`` only.

Examples
--------
>>> import json, tempfile, torch, wspace
>>> from pathlib import Path
>>> from wspace.io import import_zoo
>>> trial = Path(tempfile.mkdtemp()) / "NN_tune_trainable_0"
>>> for epoch in (0, 1):
...     (trial / f"checkpoint_{epoch:06d}").mkdir(parents=True)
...     torch.save({"module_list.0.weight": torch.zeros(2, 3),
...                 "module_list.0.bias": torch.zeros(2)},
...                trial / f"checkpoint_{epoch:06d}" / "checkpoints")
>>> lines = [{"test_acc": 0.1 * e, "training_iteration": e, "config": {"seed": 1}}
...          for e in (0, 1)]
>>> _ = (trial / "result.json").write_text("".join(json.dumps(r) + "\\n" for r in lines))
>>> report = import_zoo("model-zoos", trial.parent, "memory://doc-model-zoos", progress=False)
>>> wspace.open("memory://doc-model-zoos").models[["model", "step", "test_acc",
...                                                 "config.seed"]].values.tolist()
[['NN_tune_trainable_0', 0, 0.0, 1], ['NN_tune_trainable_0', 1, 0.1, 1]]
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wspace.errors import FormatError, SourceNotFoundError
from wspace.io.files import model_parts, read_utf8, source_files, write_atomic
from wspace.io.options import option_int
from wspace.io.row_files import full_zoo, write_rows
from wspace.io.session import ImportSession
from wspace.io.torch_ import (
    check_tensors,
    floating,
    layout_of,
    load_state_dict,
    row_state_dict,
)
from wspace.io.values import ESCAPE, escape_column, first_by_model, py_value, unescape_column

if TYPE_CHECKING:
    from wspace.io.format import ImportReport
    from wspace.query import Zoo
    from wspace.store.backend import StoreLike

__all__ = ["CHECKPOINT_FILE", "export_zoo", "import_zoo"]

CHECKPOINT = re.compile(r"checkpoint_(\d+)")
CHECKPOINT_FILE = "checkpoints"
"""Name of the state_dict file inside a ``checkpoint_NNNNNN`` folder."""
RESULT_FILE = "result.json"
CONFIG = "config."
CLAIMED = ("step", "result_line", "result_extra")


def _result_column(key: str) -> str:
    return ESCAPE + key if key.startswith(CONFIG) else escape_column(key, CLAIMED)


@dataclass
class _Trial:
    folder: Path
    model: str
    lines: list[dict[str, Any]]
    checkpoints: list[tuple[int, Path]]

    def line_of(self) -> dict[int, int]:
        """Epoch -> line number."""
        if all("training_iteration" in line for line in self.lines):
            out: dict[int, int] = {}
            for i, line in enumerate(self.lines):
                it = line["training_iteration"]
                if isinstance(it, int) and not isinstance(it, bool):
                    out.setdefault(it, i)
            return out
        return {i: i for i in range(len(self.lines))}

    def rows(self) -> list[tuple[Path, dict[str, Any]]]:
        """``(checkpoint file, metadata)`` per checkpoint, in epoch order."""
        line_of = self.line_of()
        used = set()
        rows = []
        for epoch, path in self.checkpoints:
            meta: dict[str, Any] = {}
            i = line_of.get(epoch)
            if i is not None:
                used.add(i)
                for key, value in self.lines[i].items():
                    if key == "config" and isinstance(value, Mapping):
                        meta.update((CONFIG + str(k), v) for k, v in value.items())
                    else:
                        meta[_result_column(str(key))] = value
                meta["result_line"] = i
            meta["step"] = epoch
            rows.append((path, meta))
        extra = [[i, line] for i, line in enumerate(self.lines) if i not in used]
        if extra and rows:
            rows[0][1]["result_extra"] = extra
        return rows


def _read_results(path: Path) -> list[dict[str, Any]]:
    lines = []
    for i, text in enumerate(read_utf8(path).splitlines()):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise FormatError(f"{path} line {i + 1}: not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise FormatError(f"{path} line {i + 1}: not a JSON object")
        lines.append(value)
    return lines


def _trials(src: Path) -> list[_Trial]:
    if not src.is_dir():
        raise SourceNotFoundError(f"no folder {src} of Ray Tune trials")
    what = f"trial folder (with {RESULT_FILE})"
    results = source_files(src, RESULT_FILE, what=what, recursive=True)
    trials = []
    for result in results:
        folder = result.parent
        rel = folder.relative_to(src).as_posix()
        model = src.resolve().name if rel == "." else rel
        checkpoints = []
        for sub in folder.iterdir():
            match = CHECKPOINT.fullmatch(sub.name)
            if match and sub.is_dir():
                if not (sub / CHECKPOINT_FILE).is_file():
                    raise SourceNotFoundError(f"{sub}: no {CHECKPOINT_FILE!r} state_dict file")
                checkpoints.append((int(match[1]), sub / CHECKPOINT_FILE))
        if not checkpoints:
            raise SourceNotFoundError(f"{folder}: no checkpoint_NNNNNN/{CHECKPOINT_FILE}")
        checkpoints.sort()
        trials.append(_Trial(folder, model, _read_results(result), checkpoints))
    return trials


def import_zoo(
    src: str | os.PathLike[str],
    url: StoreLike,
    *,
    storage_options: Mapping[str, Any] | None,
    progress: bool,
    arch: str,
    commit_rows: int | None,
    allow_nonfinite: bool,
    codec: str | None,
) -> ImportReport:
    """Import the Ray Tune trials under ``src`` (one model each) into the store at ``url``.

    Parameters
    ----------
    src
        A folder holding trial folders (at any depth), or one trial folder.
    arch
        Architecture-group name for the layout of the first checkpoint (an existing group
        with the same tensors is used whatever its name).
    commit_rows, allow_nonfinite, codec
        The options of :class:`~wspace.io.session.ImportSession`.

    The defaults are those of :class:`wspace.io.builtin.ModelZoos`, which calls this.

    Raises
    ------
    FormatError, SourceNotFoundError
        A trial without checkpoints, a ``result.json`` line that is not JSON, a checkpoint
        whose tensors differ from the first one's. All are checked before anything is written.
    UnsafePickleError
        A checkpoint that ``torch.load(weights_only=True)`` refuses (nothing in it runs).
    """
    session = ImportSession(
        url,
        storage_options=storage_options,
        fmt="model-zoos",
        commit_rows=commit_rows,
        allow_nonfinite=allow_nonfinite,
        codec=codec,
    )
    src = Path(src)
    trials = _trials(src)
    first = trials[0].checkpoints[0][1]
    layout = layout_of(first, arch)
    for trial in trials:
        for _, path in trial.checkpoints:
            check_tensors(path, layout, first)
    with session:
        for trial in session.todo(
            trials, key=lambda t: t.model, progress=progress, desc="model-zoos trials"
        ):
            pairs = trial.rows()
            rows = [(floating(load_state_dict(path)), meta) for path, meta in pairs]
            session.add(trial.model, rows, layout=layout, source=[str(p) for p, _ in pairs])
    return session.report


def _result(meta: Mapping[str, Any]) -> tuple[int | None, dict[str, Any]]:
    """The ``result.json`` line of a row, and its line number."""
    line: dict[str, Any] = {}
    config: dict[str, Any] = {}
    for key, value in meta.items():
        value = py_value(value)
        if value is None or key in ("model", *CLAIMED):
            continue
        if key.startswith(CONFIG):
            config[key[len(CONFIG) :]] = value
        else:
            line[unescape_column(key)] = value
    if config:
        line["config"] = config
    number = py_value(meta.get("result_line"))
    return (None if number is None else int(number)), line


def export_zoo(
    zoo: Zoo,
    dst: str | os.PathLike[str],
    *,
    progress: bool,
    batch_rows: int,
) -> list[Path]:
    """Write the rows of ``zoo`` as Ray Tune trial folders under ``dst`` (one per model).

    Each row is ``<model>/checkpoint_<step:06d>/checkpoints`` (a float32 ``state_dict`` keyed by
    the layout's source names); each model gets ``result.json`` (its rows' lines and the kept
    ``result_extra`` lines, in line order) and ``params.json`` (the config). ``batch_rows``:
    rows read from the store at once. The defaults are those of
    :class:`wspace.io.builtin.ModelZoos`, which calls this.
    """
    import torch

    batch = option_int(batch_rows, "batch_rows")
    dst = Path(dst)
    models = zoo.models
    if len(zoo) and ("step" not in models or models["step"].isna().any()):
        raise FormatError(f"cannot export {zoo.url!r} to model-zoos: every row needs a step")
    lines: dict[str, list[tuple[float, int, dict[str, Any]]]] = {}
    paths = []
    for meta in models.to_dict("records"):
        model, step = str(meta["model"]), int(meta["step"])
        paths.append(dst.joinpath(*model_parts(model), f"checkpoint_{step:06d}", CHECKPOINT_FILE))
        number, line = _result(meta)
        lines.setdefault(model, []).append((float("inf") if number is None else number, step, line))
    dst.mkdir(parents=True, exist_ok=True)
    files = write_rows(
        zoo,
        paths,
        lambda tmp, _i, _meta, vector: torch.save(row_state_dict(zoo.layout, vector), tmp),
        batch_rows=batch,
        progress=progress,
        desc="model-zoos rows",
    )
    # kept lines live on a trial's first row, which a selection may have left out
    kept = first_by_model(models, "result_extra")
    if len(zoo) and len(kept) < len(lines):
        kept = {**first_by_model(full_zoo(zoo).models, "result_extra"), **kept}
    for model, entries in lines.items():
        trial = dst.joinpath(*model_parts(model))
        for number, line in kept.get(model) or []:
            entries.append((int(number), -1, line))
        entries.sort(key=lambda e: (e[0], e[1]))
        text = "".join(json.dumps(line) + "\n" for _, _, line in entries)
        files.append(write_atomic(trial / RESULT_FILE, text))
        config = next((line["config"] for _, _, line in entries if "config" in line), None)
        if config is not None:
            files.append(write_atomic(trial / "params.json", json.dumps(config)))
    return files
