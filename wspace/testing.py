"""Tiny zoos and assertions for users' tests and our own."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wspace.layout import Layout

__all__ = [
    "CLASSES",
    "SMALL_LAYOUT",
    "assert_rows_equal",
    "class_zoo",
    "file_snapshot",
    "tiny_weights",
    "tiny_zoo",
]

CLASSES = ("church", "tench", "golf_ball", "parachute")
"""Class names used by :func:`tiny_zoo` (cycled)."""


def _lenet5_layout() -> Layout:
    from wspace.architectures import lenet5_layout

    return lenet5_layout()


def tiny_weights(index: int, size: int = 91_481, *, seed: int = 0, step: int = 0) -> np.ndarray:
    """Deterministic float32 weights of row ``index`` (and ``step``) of a tiny zoo."""
    rng = np.random.default_rng([seed, index, step])
    return (rng.standard_normal(size) * 0.05).astype(np.float32)


def tiny_zoo(
    url: str,
    n_models: int = 4,
    *,
    classes: Sequence[str] = CLASSES[:2],
    steps: Sequence[int] | None = None,
    writers: int = 1,
    layout: Layout | None = None,
    seed: int = 0,
    storage_options: Mapping[str, Any] | None = None,
    **create_options: Any,
) -> str:
    """Create a store at ``url`` holding ``n_models`` models of random weights; return ``url``.

    Model ``i`` is named ``{cls}_{i}`` with ``cls = classes[i % len(classes)]``, has
    ``seed=i``, ``accuracy=0.5 + i / (2 * n_models)``, and weights
    ``tiny_weights(i, seed=seed, step=step)``; with ``steps`` each model gets one row per
    step. Rows are appended by ``writers`` writers in turn (one segment each).

    Examples
    --------
    >>> import wspace
    >>> len(wspace.open(tiny_zoo("memory://doc-tiny", 3, steps=[1, 2])))
    6
    """
    import wspace

    layout = layout or _lenet5_layout()
    wspace.create(url, layout, storage_options=storage_options, **create_options)
    handles = [wspace.writer(url, storage_options=storage_options) for _ in range(writers)]
    for i in range(n_models):
        cls = classes[i % len(classes)]
        for step in list(steps) if steps else [None]:
            meta: dict[str, Any] = {
                "cls": cls,
                "seed": i,
                "accuracy": 0.5 + i / (2 * max(n_models, 1)),
            }
            if step is not None:
                meta["step"] = step
            handles[i % writers].append(
                tiny_weights(i, layout.size, seed=seed, step=step or 0), model=f"{cls}_{i}", **meta
            )
    for handle in handles:
        handle.close()
    return url


SMALL_LAYOUT: dict[str, Any] = {
    "name": "small",
    "tensors": [
        {"name": "conv/weight", "shape": [4, 2, 3, 3]},
        {"name": "conv/bias", "shape": [4]},
        {"name": "fc/weight", "shape": [8, 40]},
        {"name": "fc/bias", "shape": [8]},
        {"name": "out/weight", "shape": [3, 8]},
        {"name": "out/bias", "shape": [3]},
    ],
}
"""A 431-parameter conv + fc layout (``Layout.from_dict(SMALL_LAYOUT)``) for fast tests."""


def class_zoo(
    url: str,
    *,
    classes: Sequence[str] = ("a", "b", "c"),
    per_class: int = 10,
    shift: float | Mapping[str, float] = 0.0,
    steps: Sequence[int] | None = None,
    layout: Layout | None = None,
    scale: float = 1.0,
    seed: int = 0,
    **create_options: Any,
) -> str:
    """A store of networks whose weight distributions differ by class in a known way.

    Every weight of network ``i`` of class number ``k`` is drawn from
    ``Normal(k * shift[layer], scale)``: ``shift=0`` gives identical distributions in every
    class; a mapping shifts only the layers it names. Networks are named ``{cls}_{i}`` and
    have ``cls``, ``seed`` and, with ``steps``, one row per step (``step``); rows are
    interleaved by class. The layout defaults to :data:`SMALL_LAYOUT`; ``create_options`` go to
    :func:`wspace.create` (e.g. ``segment_rows=7`` for many small chunks).

    Examples
    --------
    >>> import wspace
    >>> zoo = wspace.open(class_zoo("memory://doc-class-zoo", per_class=2, shift={"fc": 1.0}))
    >>> len(zoo), round(float(zoo.sel(cls="c").layer("fc").values.mean()))
    (6, 2)
    """
    import wspace

    layout = layout or Layout.from_dict(SMALL_LAYOUT)
    shifts = {layer: (shift.get(layer, 0.0) if isinstance(shift, Mapping) else shift)
              for layer in layout.layers}  # fmt: skip
    wspace.create(url, layout, **create_options)
    rng = np.random.default_rng(seed)
    with wspace.writer(url) as w:
        for i in range(per_class):
            for k, cls in enumerate(classes):
                for step in list(steps) if steps else [None]:
                    vector = np.empty(layout.size, dtype=np.float32)
                    for layer in layout.layers:
                        part = layout.layer_slice(layer)
                        size = part.stop - part.start
                        vector[part] = rng.normal(k * shifts[layer], scale, size)
                    meta: dict[str, Any] = {"cls": cls, "seed": i}
                    if step is not None:
                        meta["step"] = step
                    w.append(vector, model=f"{cls}_{i}", **meta)
    return url


def assert_rows_equal(actual: np.ndarray, expected: np.ndarray, *, what: str = "rows") -> None:
    """Assert two weight arrays are bit-identical (NaN equal to NaN)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape} != {expected.shape}")
    if not np.array_equal(actual.view(np.uint32), expected.astype(np.float32).view(np.uint32)):
        bad = np.argwhere(actual != expected)
        raise AssertionError(f"{what}: {len(bad)} values differ, first at {bad[:3].tolist()}")


def file_snapshot(folder: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every file under a local ``folder``: relative POSIX path -> bytes.

    Two snapshots compare equal exactly when no file was added, removed or changed, which is
    how the reliability tests check that a refused write left a store byte-for-byte unchanged.

    Examples
    --------
    >>> import tempfile
    >>> folder = tiny_zoo(tempfile.mkdtemp() + "/z.zarr", 1)
    >>> before = file_snapshot(folder)
    >>> "_log" in {name.split("/")[0] for name in before}
    True
    >>> file_snapshot(folder) == before
    True
    """
    root = Path(folder)
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def write_models(
    url: str,
    indices: Sequence[int],
    *,
    storage_options: Mapping[str, Any] | None = None,
    commit_every: int = 7,
    seed: int = 0,
    size: int | None = None,
    classes: Sequence[str] = CLASSES[:2],
) -> None:
    """Append models ``indices`` of a tiny zoo through one writer (for worker processes).

    Model ``i`` gets the name, metadata and weights :func:`tiny_zoo` would give it.
    """
    import wspace

    with wspace.writer(url, storage_options=storage_options, commit_every=commit_every) as w:
        width = size or next(iter(w.layouts.values())).size
        for i in indices:
            cls = classes[i % len(classes)]
            w.append(
                tiny_weights(i, width, seed=seed), model=f"{cls}_{i}", cls=cls, seed=i, accuracy=0.5
            )
