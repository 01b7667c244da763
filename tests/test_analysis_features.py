"""Feature matrices read chunk by chunk: flat, layers, per-tensor statistics, streamed PCA."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

import wspace
from wspace.analysis.features import (
    STATS,
    extract,
    feature_names,
    feature_width,
    iter_blocks,
    reduce_streamed,
    resolve_layers,
)
from wspace.errors import LayerNotFoundError, SchemaMismatchError
from wspace.testing import class_zoo


@pytest.fixture(scope="module")
def zoo() -> wspace.Zoo:
    # chunks of 7 rows: every read spans several chunks
    url = class_zoo(
        f"memory://features-{uuid.uuid4().hex}", per_class=8, shift={"fc": 0.5}, segment_rows=7
    )
    return wspace.open(url)


def test_flat_and_layer_features_are_the_stored_values(zoo):
    values = zoo.values
    assert np.array_equal(extract(zoo, "flat"), values)
    layout = zoo.layout
    both = np.concatenate(
        [values[:, layout.layer_slice("conv")], values[:, layout.layer_slice("out")]], axis=1
    )
    assert np.array_equal(extract(zoo, ["out", "conv"]), both)  # layout order
    assert feature_width(layout, ["out", "conv"]) == both.shape[1]
    assert len(feature_names(layout, "flat")) == layout.size


def test_stats_features_match_numpy_per_tensor(zoo):
    stats = extract(zoo, "stats")
    layout = zoo.layout
    assert stats.shape == (len(zoo), len(layout.tensors) * len(STATS))
    names = feature_names(layout, "stats")
    values = zoo.values.astype(np.float64)
    for spec in layout.tensors:
        x = values[:, spec.slice()]
        expected = {
            "mean": x.mean(1),
            "std": x.std(1),
            "min": x.min(1),
            "q05": np.quantile(x, 0.05, axis=1),
            "median": np.median(x, axis=1),
            "max": x.max(1),
            "mean_abs": np.abs(x).mean(1),
            "l2": np.linalg.norm(x, axis=1),
        }
        for stat, want in expected.items():
            column = names.index(f"{spec.name}:{stat}")
            np.testing.assert_allclose(stats[:, column], want, rtol=1e-5, atol=1e-6)


def test_unknown_layers_and_oversized_matrices_are_refused(zoo):
    with pytest.raises(LayerNotFoundError, match="'nope'"):
        resolve_layers(zoo.layout, ["nope"])
    with pytest.raises(SchemaMismatchError, match="pca=N"):
        extract(zoo, "flat", max_bytes=1000)


def test_blocks_cover_the_rows_once_and_are_never_smaller_than_asked(zoo):
    positions = np.arange(len(zoo))
    blocks = list(iter_blocks(zoo, "fc", positions, block_rows=5, minimum=4))
    assert [len(b) for b in blocks] == [5, 5, 5, 5, 4]
    assert np.array_equal(np.concatenate(blocks), extract(zoo, "fc"))


def test_streamed_pca_agrees_with_in_memory_pca(zoo):
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    train = np.arange(0, len(zoo), 2)
    streamed, explained = reduce_streamed(
        zoo, "flat", train, n_components=3, block_bytes=8 * 4 * zoo.layout.size
    )  # blocks of 8 rows
    assert streamed.shape == (len(zoo), 3) and 0 < explained <= 1
    values = zoo.values
    scaler = StandardScaler().fit(values[train])
    reference = PCA(n_components=3).fit(scaler.transform(values[train]))
    expected = reference.transform(scaler.transform(values))
    # the leading component (the class shift) is the same direction, up to sign
    corr = np.corrcoef(streamed[:, 0], expected[:, 0])[0, 1]
    assert abs(corr) > 0.99
