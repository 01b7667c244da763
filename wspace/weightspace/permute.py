"""Apply hidden-neuron permutations to flat weight rows, vectorised over a batch.

A *permutation set* maps each neuron group of a :class:`~wspace.weightspace.symmetry.Symmetry`
(named by its layer) to an integer array: ``(size,)`` for one permutation applied to every row,
or ``(n, size)`` for one per row. ``perm[j]`` is the old neuron that becomes neuron ``j``: the
permuted layer's output ``j`` is the original output ``perm[j]``.

Examples
--------
>>> import numpy as np
>>> from wspace.layout import Layout
>>> lay = Layout.from_dict({"tensors": [
...     {"name": "a/weight", "shape": [3, 1]}, {"name": "a/bias", "shape": [3]},
...     {"name": "b/weight", "shape": [1, 3]}]})
>>> row = np.arange(9, dtype="float32")
>>> permute_rows(lay, row, {"a": np.array([2, 0, 1])})
array([2., 0., 1., 5., 3., 4., 8., 6., 7.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from wspace.errors import SchemaMismatchError, listing
from wspace.layout import Layout
from wspace.weightspace.symmetry import AxisRef, Symmetry, analyze

__all__ = [
    "compose_perms",
    "identity_perms",
    "invert_perms",
    "permute_rows",
    "random_perms",
]

Perms = Mapping[str, np.ndarray]
"""Group (layer) name -> permutation ``(size,)`` or per-row permutations ``(n, size)``."""


def random_perms(
    symmetry: Symmetry, n: int, seed: int | np.random.Generator | None = None
) -> dict[str, np.ndarray]:
    """``n`` uniformly random permutations per group, ``(n, size)`` int64 arrays.

    Examples
    --------
    >>> from wspace.architectures import lenet5_layout
    >>> perms = random_perms(lenet5_layout().symmetry, 4, seed=0)
    >>> perms["dense"].shape, bool((np.sort(perms["dense"], axis=1) == np.arange(84)).all())
    ((4, 84), True)
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return {g.layer: np.argsort(rng.random((n, g.size)), axis=1) for g in symmetry.groups}


def identity_perms(symmetry: Symmetry, n: int) -> dict[str, np.ndarray]:
    """The identity permutation of every group, ``(n, size)``."""
    return {g.layer: np.tile(np.arange(g.size), (n, 1)) for g in symmetry.groups}


def invert_perms(perms: Perms) -> dict[str, np.ndarray]:
    """The inverse permutations: applying ``perms`` then these gives the rows back."""
    out = {}
    for name, perm in perms.items():
        p = np.asarray(perm)
        inverse = np.empty_like(p)
        np.put_along_axis(inverse, p, np.broadcast_to(np.arange(p.shape[-1]), p.shape), axis=-1)
        out[name] = inverse
    return out


def compose_perms(first: Perms, then: Perms) -> dict[str, np.ndarray]:
    """Permutations equal to applying ``first`` and then ``then`` (per group, per row)."""
    out = {}
    for name in first.keys() | then.keys():
        if name not in first or name not in then:
            out[name] = np.asarray(first.get(name, then.get(name)))
            continue
        a, b = np.asarray(first[name]), np.asarray(then[name])
        a, b = np.broadcast_arrays(a, b)
        out[name] = np.take_along_axis(a, b, axis=-1)
    return out


def axis_index(ref: AxisRef, perm: np.ndarray) -> np.ndarray:
    """Gather index ``(..., size * repeat)`` along ``ref``'s axis for permutations ``perm``."""
    size = perm.shape[-1]
    lead = perm.shape[:-1]
    if ref.repeat == 1:
        return perm
    inner = np.arange(ref.repeat)
    if ref.order == "major":  # neuron j owns entries j*repeat .. j*repeat + repeat - 1
        index = perm[..., :, None] * ref.repeat + inner
    else:  # neuron j owns entries r*size + j
        index = inner[:, None] * size + perm[..., None, :]
    return index.reshape(*lead, size * ref.repeat)


def _checked(symmetry: Symmetry, perms: Perms, n: int) -> dict[str, np.ndarray]:
    sizes = symmetry.sizes
    unknown = [name for name in perms if name not in sizes]
    if unknown:
        raise SchemaMismatchError(
            f"layout {symmetry.layout!r}: no neuron group(s) {listing(unknown)}; groups: "
            f"{listing(sizes)}"
        )
    out = {}
    for name, perm in perms.items():
        p = np.asarray(perm)
        if p.dtype.kind not in "iu" or p.ndim not in (1, 2) or p.shape[-1] != sizes[name]:
            raise SchemaMismatchError(
                f"layout {symmetry.layout!r}: permutation of group {name!r} must be integers of "
                f"shape ({sizes[name]},) or (rows, {sizes[name]}); got {p.dtype} {p.shape}"
            )
        if p.ndim == 2 and p.shape[0] != n:
            raise SchemaMismatchError(
                f"layout {symmetry.layout!r}: group {name!r} has permutations for {p.shape[0]} "
                f"rows, the batch has {n}"
            )
        if not (np.sort(p, axis=-1) == np.arange(sizes[name])).all():
            raise SchemaMismatchError(
                f"layout {symmetry.layout!r}: group {name!r} is given an array that is not a "
                "permutation (a value repeats or is out of range)"
            )
        out[name] = np.broadcast_to(p, (n, sizes[name]))
    return out


def permute_rows(
    layout: Layout, rows: Any, perms: Perms, *, symmetry: Symmetry | None = None
) -> np.ndarray:
    """Rows ``(n, size)`` (or one row ``(size,)``) with the neuron permutations applied.

    Parameters
    ----------
    layout
        The rows' layout.
    rows
        Flat weight vectors; not modified.
    perms
        Group -> permutation(s); groups not named stay as they are.
    symmetry
        The layout's spec (default ``layout.symmetry``).

    Returns
    -------
    numpy.ndarray
        A new array of ``rows``' shape and dtype.
    """
    symmetry = symmetry or analyze(layout)
    array = np.asarray(rows)
    single = array.ndim == 1
    batch = array[None] if single else array
    if batch.ndim != 2 or batch.shape[1] != layout.size:
        raise SchemaMismatchError(
            f"layout {layout.name!r}: permute_rows() needs rows (n, {layout.size}); got "
            f"{array.shape}"
        )
    n = batch.shape[0]
    checked = _checked(symmetry, perms, n)
    out = np.array(batch, copy=True)
    members = [
        (group.layer, ref, layout[ref.tensor])
        for group in symmetry.groups
        if group.layer in checked
        for ref in group.members
    ]
    for b in range(n):  # row by row: contiguous takes beat a batched fancy gather (~2x)
        row = out[b]
        for name, ref, spec in members:
            block = row[spec.offset : spec.stop].reshape(spec.shape)
            index = axis_index(ref, checked[name][b])
            row[spec.offset : spec.stop] = np.take(block, index, axis=ref.axis).reshape(-1)
    return out[0] if single else out
