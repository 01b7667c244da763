"""The same query code under a dask.distributed cluster, reading from S3 (moto)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import wspace
from wspace.architectures import lenet5_layout
from wspace.testing import assert_rows_equal, tiny_weights, tiny_zoo

LAYOUT = lenet5_layout()


@pytest.mark.s3
@pytest.mark.slow
def test_queries_run_unchanged_on_a_local_cluster_from_s3(s3_spot):
    from dask.distributed import Client, LocalCluster

    tiny_zoo(s3_spot.url, 10, writers=2, storage_options=s3_spot.options, segment_rows=3)
    expected = np.stack([tiny_weights(i, LAYOUT.size) for i in range(10)])
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        zoo = wspace.open(s3_spot.url, storage_options=s3_spot.options)
        church = zoo.sel(cls="church").layer("dense_1")
        seeds = zoo.sel(cls="church").models["seed"].tolist()
        assert_rows_equal(church.values, expected[seeds, LAYOUT.layer_slice("dense_1")])
        means = zoo.layer("conv2d_2").mean("model").values
        np.testing.assert_allclose(
            means, expected[:, LAYOUT.layer_slice("conv2d_2")].mean(0), rtol=1e-5, atol=1e-7
        )
        # explicit futures run on the two worker processes, not in this one
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids
        picked = zoo.isel(model=[3, 7])
        future = client.compute(picked.weights.data)
        seeds = picked.models["seed"].tolist()
        assert_rows_equal(future.result(), expected[seeds])
