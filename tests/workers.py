"""Worker processes for the reliability tests: writers, readers, compactors.

They run in real processes forked from a fork server that has imported wspace once
(``multiprocessing`` "forkserver" context with preloaded modules), so starting one costs
milliseconds instead of a fresh interpreter's seconds, and each is killed with a real SIGKILL.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SOAK = os.environ.get("WSPACE_SOAK", "") not in ("", "0")
"""Long runs: ``WSPACE_SOAK=1`` multiplies the trials of the reliability tests."""

SMALL: dict[str, Any] = {
    "name": "small",
    "tensors": [
        {"name": "conv/weight", "shape": [4, 3, 3, 3]},
        {"name": "conv/bias", "shape": [4]},
        {"name": "fc/weight", "shape": [10, 16]},
        {"name": "fc/bias", "shape": [10]},
    ],
}
"""A two-layer layout (282 parameters): rows are cheap, chunks and commits are many."""

_CTX: Any = None


def context() -> Any:
    """The forkserver context, its server preloaded with wspace."""
    global _CTX
    if _CTX is None:
        _CTX = mp.get_context("forkserver")
        _CTX.set_forkserver_preload(["wspace", "wspace.query", "wspace.testing", "tests.workers"])
    return _CTX


def start(target: Any, *args: Any, **kwargs: Any) -> Any:
    """Start ``target(*args, **kwargs)`` in a new process; return the ``Process``."""
    proc = context().Process(target=target, args=args, kwargs=kwargs, daemon=True)
    proc.start()
    return proc


def _setup(env: Mapping[str, str] | None) -> None:
    for key, value in (env or {}).items():
        os.environ[key] = value


def name_of(i: int) -> str:
    """Model name of row ``i`` in these tests."""
    return f"m{i:05d}"


def write_rows(
    url: str,
    indices: Sequence[int],
    *,
    options: dict[str, Any] | None = None,
    size: int,
    commit_every: int = 7,
    env: Mapping[str, str] | None = None,
    skip_existing: bool = False,
    error_file: str | None = None,
    gate_file: str | None = None,
) -> None:
    """Append rows ``indices`` (weights ``tiny_weights(i, size)``) through one writer.

    With ``skip_existing`` rows already committed are left out (a restarted job). A wspace
    error is written to ``error_file`` (type and message) and ends the process with code 3.
    With ``gate_file`` the writer waits after its first commit until that file exists (at
    most 120 s), so a reader is sure to see the store while writers are mid-way.
    """
    _setup(env)
    import wspace
    from wspace.testing import tiny_weights

    try:
        with wspace.writer(url, storage_options=options, commit_every=commit_every) as w:
            done = {k[0] for k in w.committed_keys} if skip_existing else set()
            for count, i in enumerate(indices, start=1):
                if name_of(i) in done:
                    continue
                w.append(tiny_weights(i, size), model=name_of(i), seed=int(i))
                if gate_file is not None and count == commit_every:
                    _wait_for(Path(gate_file), seconds=120.0)
    except wspace.WspaceError as exc:
        if error_file is None:
            raise
        Path(error_file).write_text(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
        os._exit(3)


def _wait_for(path: Path, *, seconds: float) -> None:
    """Wait until ``path`` exists or ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def compact(
    url: str, *, options: dict[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> None:
    """Compact the store."""
    _setup(env)
    import wspace

    wspace.compact(url, storage_options=options)


def check_view(
    zoo: Any, *, size: int, writers: int, per_writer: int, commit_every: int
) -> dict[int, int]:
    """Check one reader's view; return rows visible per writer (raise AssertionError if wrong).

    Every row is bit-identical to what its writer appended (so never NaN fill, never half a
    row), and each writer's visible rows are a prefix of its rows ending at a commit.
    """
    from wspace.testing import assert_rows_equal, tiny_weights

    if not len(zoo):
        return dict.fromkeys(range(writers), 0)
    seeds = zoo.models["seed"].to_numpy().astype(np.int64)
    values = zoo.values
    if np.isnan(values).any():
        raise AssertionError("a reader saw NaN fill")
    expected = np.stack([tiny_weights(int(i), size) for i in seeds]) if len(seeds) else values
    assert_rows_equal(values, expected, what="rows seen by a reader")
    seen: dict[int, int] = {}
    for k in range(writers):
        mine = np.sort(seeds[(seeds >= k * per_writer) & (seeds < (k + 1) * per_writer)])
        n = len(mine)
        if not np.array_equal(mine, np.arange(k * per_writer, k * per_writer + n)):
            raise AssertionError(f"writer {k}: rows seen are not a prefix: {mine.tolist()}")
        if n % commit_every and n != per_writer:
            raise AssertionError(f"writer {k}: {n} rows seen, not a whole number of commits")
        seen[k] = n
    return seen


def read_loop(
    url: str,
    out_file: str,
    stop_file: str,
    *,
    options: dict[str, Any] | None = None,
    size: int,
    writers: int,
    per_writer: int,
    commit_every: int,
    gate_file: str | None = None,
) -> None:
    """Open and check the store until ``stop_file`` exists, then once more; report as JSON.

    The report holds the number of views checked, how many were partial (taken while
    writers were still committing), and the first error, if any. After the first view that
    holds some but not all rows the reader creates ``gate_file`` (writers may wait for it).
    """
    import wspace

    report: dict[str, Any] = {"views": 0, "partial": 0, "error": None, "last": {}}
    last: dict[int, int] = {}
    try:
        while True:
            final = Path(stop_file).exists()
            zoo = wspace.open(url, storage_options=options)
            seen = check_view(
                zoo, size=size, writers=writers, per_writer=per_writer, commit_every=commit_every
            )
            for k, n in seen.items():
                if n < last.get(k, 0):
                    raise AssertionError(f"writer {k}: rows seen went back from {last[k]} to {n}")
            last = seen
            report["views"] += 1
            visible = sum(seen.values())
            report["partial"] += int(visible < writers * per_writer)
            if gate_file is not None and 0 < visible < writers * per_writer:
                Path(gate_file).touch()
            if final:
                break
            time.sleep(0.01 if options is None else 0.2)  # spare the one-process S3 server
    except Exception as exc:
        report["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    report["last"] = last
    Path(out_file).write_text(json.dumps(report))
