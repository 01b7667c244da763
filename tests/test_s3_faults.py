"""Storage faults on S3: failing requests, lost responses, an endpoint that goes away.

The faults are real HTTP faults: a proxy on 127.0.0.1 between s3fs and the moto server
(tests/faultproxy.py) answers 500/503, drops responses of requests the server did apply, or
stops listening; and a moto server process is frozen with SIGSTOP. botocore's own retries are
switched off, so the retries seen are wspace's (bounded, with backoff).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid

import numpy as np
import pytest

import wspace
from tests.conftest import BUCKET, moto_server
from tests.faultproxy import FaultProxy
from tests.workers import SMALL, SOAK, name_of, start, write_rows
from wspace.layout import Layout
from wspace.store.records import AppendRecord
from wspace.testing import assert_rows_equal, tiny_weights

pytestmark = pytest.mark.s3

LAYOUT = Layout.from_dict(SMALL)
FAST_RETRIES = {"WSPACE_IO_ATTEMPTS": "8", "WSPACE_IO_BACKOFF": "0.01"}
FEW_RETRIES = {"WSPACE_IO_ATTEMPTS": "3", "WSPACE_IO_BACKOFF": "0.01"}
NO_BOTO_RETRY = {"retries": {"total_max_attempts": 1}, "connect_timeout": 2, "read_timeout": 5}


@pytest.fixture
def proxy(s3_server):
    proxy = FaultProxy(s3_server.endpoint, seed=7)
    yield proxy
    proxy.stop()


def url_on_s3() -> str:
    return f"s3://{BUCKET}/zoo-{uuid.uuid4().hex[:10]}.zarr"


def check_rows(url: str, options: dict, n: int) -> None:
    """Exactly rows 0..n-1, once each, bit-identical; verify clean."""
    zoo = wspace.open(url, storage_options=options)
    assert sorted(zoo.models["model"]) == [name_of(i) for i in range(n)]
    seeds = zoo.models["seed"].to_numpy()
    assert_rows_equal(zoo.values, np.stack([tiny_weights(int(i), LAYOUT.size) for i in seeds]))
    assert wspace.verify(url, storage_options=options).ok


def append_records(url: str, options: dict) -> list[AppendRecord]:
    handle = wspace.store.open_store(url, storage_options=options)
    return [r for r in handle.state_records if isinstance(r, AppendRecord)]


def test_failing_requests_are_retried_and_each_commit_is_published_once(
    proxy, s3_server, monkeypatch, trials
):
    for key, value in FAST_RETRIES.items():
        monkeypatch.setenv(key, value)
    options = proxy.options(**NO_BOTO_RETRY)
    rounds = 5 if SOAK else 1
    n, every = 60, 5
    for _ in range(rounds):
        url = url_on_s3()
        wspace.create(url, LAYOUT, storage_options=options)
        proxy.error_rate = 0.1  # any request: 500 InternalError or 503 SlowDown
        proxy.lost_rate = 0.5  # commit-record PUTs: applied by the server, answer dropped
        proxy.lost_pattern = re.compile(r"^PUT .*/_log/")
        write_rows(url, range(n), options=options, size=LAYOUT.size, commit_every=every)
        proxy.error_rate = proxy.lost_rate = 0.0
        check_rows(url, s3_server.options, n)
        records = append_records(url, s3_server.options)
        assert len(records) == n // every  # no commit published twice, none lost
        keys = [k[0] for r in records for k in r.keys]
        assert sorted(keys) == [name_of(i) for i in range(n)]
    assert proxy.counts["error"] >= 5 and proxy.counts["lost-commit-record"] >= 2
    trials.add(
        "S3: requests fail (10% 500/503) and commit-record responses are lost (50%)",
        rounds,
        f"{proxy.counts['requests']} requests, {proxy.counts['error']} failed, "
        f"{proxy.counts['lost-commit-record']} commit records published with the answer lost: "
        "all retried; every commit published exactly once, no row lost or doubled",
    )


def test_endpoint_down_fails_clearly_and_writer_resumes(proxy, s3_server, monkeypatch, trials):
    for key, value in FEW_RETRIES.items():
        monkeypatch.setenv(key, value)
    options = proxy.options(**NO_BOTO_RETRY)
    url = url_on_s3()
    wspace.create(url, LAYOUT, storage_options=options)
    w = wspace.writer(url, storage_options=options, commit_every=10**6)
    for i in range(10):
        w.append(tiny_weights(i, LAYOUT.size), model=name_of(i), seed=i)
    w.commit()
    for i in range(10, 20):
        w.append(tiny_weights(i, LAYOUT.size), model=name_of(i), seed=i)
    proxy.stop()  # connection refused from now on
    with pytest.raises(wspace.StorageError, match=re.escape(url)) as info:
        w.commit()
    assert "failed after 3 tries" in str(info.value)
    assert w.uncommitted == 10
    proxy.start()
    check_rows(url, s3_server.options, 10)  # the committed rows, nothing half-written
    assert w.commit() is not None  # the same writer completes once the endpoint is back
    w.close()
    check_rows(url, s3_server.options, 20)
    trials.add(
        "S3: endpoint down (connection refused) during a commit",
        1,
        "StorageError naming the store after 3 tries; committed rows intact; commit() again "
        "once it is back publishes the kept rows",
    )


def test_restarted_job_completes_after_endpoint_went_down(proxy, s3_server, tmp_path, trials):
    options = proxy.options(**NO_BOTO_RETRY)
    url = url_on_s3()
    wspace.create(url, LAYOUT, storage_options=s3_server.options)
    n, every = 100, 5
    error = tmp_path / "error.json"
    job = start(
        write_rows,
        url,
        range(n),
        options=options,
        size=LAYOUT.size,
        commit_every=every,
        env=FEW_RETRIES,
        error_file=str(error),
    )
    wait_for_commits(url, s3_server.options, 3)
    proxy.stop()
    job.join(120)
    assert job.exitcode == 3, "the writer should fail with a wspace error"
    failure = json.loads(error.read_text())
    assert failure["type"] == "StorageError" and url in failure["message"]
    proxy.start()
    done = len(wspace.open(url, storage_options=s3_server.options))
    assert 0 < done < n and done % every == 0
    restart = start(
        write_rows,
        url,
        range(n),
        options=options,
        size=LAYOUT.size,
        commit_every=every,
        env=FEW_RETRIES,
        skip_existing=True,
    )
    restart.join(120)
    assert restart.exitcode == 0
    check_rows(url, s3_server.options, n)
    trials.add(
        "S3: endpoint down in the middle of a writer job; job restarted",
        1,
        f"writer failed with StorageError after {done} committed rows; the restarted job "
        f"completed all {n}, each once, bit-identical",
    )


def test_frozen_s3_server_mid_write_then_restart_completes(tmp_path, trials):
    """SIGSTOP the moto server while a job writes: requests hang, time out, fail clearly."""
    with moto_server() as (server, proc):
        options = {**server.options, "config_kwargs": {**NO_BOTO_RETRY, "read_timeout": 1}}
        options["skip_instance_cache"] = True
        url = url_on_s3()
        wspace.create(url, LAYOUT, storage_options=server.options)
        n, every = 100, 5
        error = tmp_path / "error.json"
        job = start(
            write_rows,
            url,
            range(n),
            options=options,
            size=LAYOUT.size,
            commit_every=every,
            env={"WSPACE_IO_ATTEMPTS": "2", "WSPACE_IO_BACKOFF": "0.01", "WSPACE_IO_TIMEOUT": "3"},
            error_file=str(error),
        )
        wait_for_commits(url, server.options, 3)
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            job.join(120)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        assert job.exitcode == 3
        failure = json.loads(error.read_text())
        assert failure["type"] == "StorageError" and url in failure["message"]
        # requests the frozen server had received are applied now; the store stays whole
        time.sleep(0.5)
        check_prefix(url, server.options, every)
        restart = start(
            write_rows,
            url,
            range(n),
            options=options,
            size=LAYOUT.size,
            commit_every=every,
            skip_existing=True,
        )
        restart.join(120)
        assert restart.exitcode == 0
        check_rows(url, server.options, n)
    trials.add(
        "S3: moto server frozen (SIGSTOP) in the middle of a writer job; job restarted",
        1,
        "writer timed out and failed with StorageError; store consistent after SIGCONT; "
        "the restarted job completed every row once",
    )


def check_prefix(url: str, options: dict, every: int) -> None:
    zoo = wspace.open(url, storage_options=options)
    n = len(zoo)
    assert n % every == 0
    assert zoo.models["model"].tolist() == [name_of(i) for i in range(n)]
    assert wspace.verify(url, storage_options=options).ok


def wait_for_commits(url: str, options: dict, count: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while len(append_records(url, options)) < count:
        assert time.time() < deadline, "the writer did not commit"
        time.sleep(0.05)
