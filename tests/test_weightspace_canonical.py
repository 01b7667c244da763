"""Canonical forms: same functions, permutation-invariant representatives, stored and queried."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import wspace
from tests.ws_nets import digits, make_zoo, mlp, train_mlp
from wspace.errors import ModelNotFoundError
from wspace.weightspace.canonical import canonicalize, save_canonical
from wspace.weightspace.permute import permute_rows, random_perms


def outputs(net, x):
    with torch.no_grad():
        return net(x).numpy()


@pytest.fixture
def mlp_zoo(tmp_path):
    return wspace.open(make_zoo(str(tmp_path / "m.zarr"), mlp, 4, train=train_mlp))


@pytest.mark.parametrize("method", ["sort", "match"])
def test_canonical_rows_compute_the_same_functions(mlp_zoo, method):
    result = canonicalize(mlp_zoo, method)
    assert result.models == [f"net_{i}" for i in range(4)] and result.version == mlp_zoo.version
    save_canonical(mlp_zoo.url, result)
    canon = wspace.open(mlp_zoo.url).canonical(method)
    x, _ = digits(128)
    for i in range(4):
        np.testing.assert_allclose(
            outputs(canon.module(i), x), outputs(mlp_zoo.module(i), x), atol=1e-5, rtol=0
        )
    # a selection finds its rows' permutations
    np.testing.assert_array_equal(
        wspace.open(mlp_zoo.url).isel([3]).canonical(method).values[0], canon.values[3]
    )


def test_sort_and_match_undo_random_permutations(mlp_zoo):
    rows = mlp_zoo.values
    lay = mlp_zoo.layout
    moved = permute_rows(lay, rows, random_perms(lay.symmetry, 4, seed=7))
    sort_a = permute_rows(lay, rows, canonicalize(mlp_zoo, "sort").perms)
    # sorting a permuted copy gives the same representative: the orbit's canonical row
    from wspace.weightspace.canonical import _sort_perms

    sort_b = permute_rows(lay, moved, _sort_perms(lay, lay.symmetry, moved))
    np.testing.assert_array_equal(sort_a, sort_b)
    norms = np.linalg.norm(sort_a[:, lay["0/weight"].slice()].reshape(4, 32, 64), axis=-1)
    assert (np.diff(norms, axis=1) <= 0).all()
    # match: a permuted copy of the reference is aligned back onto it exactly
    from wspace.weightspace.canonical import _match_one

    back = _match_one(lay, lay.symmetry, moved[0], rows[0], rounds=20, seed=0)
    np.testing.assert_array_equal(permute_rows(lay, moved[0], back), rows[0])


def test_match_brings_networks_closer_to_the_reference(mlp_zoo):
    rows = mlp_zoo.values
    aligned = permute_rows(mlp_zoo.layout, rows, canonicalize(mlp_zoo, "match").perms)
    np.testing.assert_array_equal(aligned[0], rows[0])  # the reference stays
    before = np.linalg.norm(rows[1:] - rows[0], axis=1)
    after = np.linalg.norm(aligned[1:] - rows[0], axis=1)
    assert (after < before).all()


def test_missing_or_stale_canonical_form_names_the_command(tmp_path):
    url = make_zoo(str(tmp_path / "m.zarr"), mlp, 3)
    with pytest.raises(ModelNotFoundError, match=r"no canonical form 'match'.*wspace canonicalize"):
        wspace.open(url).canonical("match")
    cli = [sys.executable, "-m", "wspace", "canonicalize", url, "--method", "match"]
    done = subprocess.run(cli, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "_weightspace/ws-mlp/canonical/match" in done.stdout
    assert len(wspace.open(url).canonical("match")) == 3
    with wspace.writer(url) as w:
        w.append(wspace.open(url).row(0), model="late", cls="a", seed=9)
    with pytest.raises(ModelNotFoundError, match=r"no row \('late', None\), added since"):
        wspace.open(url).canonical("match")
