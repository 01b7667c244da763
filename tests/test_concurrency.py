"""Concurrent writer and reader processes on one store (real processes, local disk and S3).

``WSPACE_SOAK=1`` repeats each scenario (10 rounds of 8 writers + 2 readers; the 4 x 50 runs
also with LeNet-5 rows); see docs/reliability.md.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

import wspace
from tests.conftest import BUCKET
from tests.workers import SMALL, SOAK, check_view, name_of, read_loop, start, write_rows
from wspace.architectures import lenet5_layout
from wspace.layout import Layout

LAYOUT = Layout.from_dict(SMALL)
ROUNDS = 10 if SOAK else 1


def where(backend: str, request: pytest.FixtureRequest, tmp_path) -> tuple[str, dict | None]:
    """A fresh store location (a new one each call)."""
    name = f"zoo-{uuid.uuid4().hex[:10]}.zarr"
    if backend == "s3":
        server = request.getfixturevalue("s3_server")
        return f"s3://{BUCKET}/{name}", dict(server.options)
    return str(tmp_path / name), None


def run(
    url: str,
    options: dict | None,
    *,
    writers: int,
    per_writer: int,
    size: int,
    commit_every: int,
    readers: int = 0,
    tmp_path=None,
) -> list[dict]:
    """Run writer (and reader) processes to the end; return the readers' reports."""
    stop = tmp_path / f"stop-{uuid.uuid4().hex[:6]}" if readers else None
    # with readers, writers pause after their first commit until a reader has seen the
    # store part-written, so a mid-write view is certain however fast the machine is
    gate = str(tmp_path / f"gate-{uuid.uuid4().hex[:6]}") if readers else None
    outs = [tmp_path / f"reader-{uuid.uuid4().hex[:6]}.json" for _ in range(readers)]
    shape = {"size": size, "writers": writers, "per_writer": per_writer}
    reading = [
        start(
            read_loop,
            url,
            str(out),
            str(stop),
            options=options,
            commit_every=commit_every,
            gate_file=gate,
            **shape,
        )
        for out in outs
    ]
    writing = [
        start(
            write_rows,
            url,
            range(k * per_writer, (k + 1) * per_writer),
            options=options,
            size=size,
            commit_every=commit_every,
            gate_file=gate,
        )
        for k in range(writers)
    ]
    for p in writing:
        p.join(600)
        assert p.exitcode == 0, f"writer process exited with {p.exitcode}"
    if stop is not None:
        stop.touch()
    for p in reading:
        p.join(600)
        assert p.exitcode == 0, f"reader process exited with {p.exitcode}"
    return [json.loads(out.read_text()) for out in outs]


def check_complete(url: str, options: dict | None, writers: int, per_writer: int, size: int):
    zoo = wspace.open(url, storage_options=options)
    n = writers * per_writer
    assert len(zoo) == n
    assert sorted(zoo.models["model"]) == [name_of(i) for i in range(n)]
    seen = check_view(zoo, size=size, writers=writers, per_writer=per_writer, commit_every=1)
    assert seen == dict.fromkeys(range(writers), per_writer)
    # each writer's rows are in its order: its commits were applied in the order made
    seeds = zoo.models["seed"].to_numpy()
    for k in range(writers):
        mine = seeds[seeds // per_writer == k]
        assert mine.tolist() == list(range(k * per_writer, (k + 1) * per_writer))


@pytest.mark.parametrize("backend", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_eight_writers_two_readers_see_only_whole_commits(backend, tmp_path, request, trials):
    """8 writer processes x 100 rows while 2 reader processes open and check the store."""
    views = partial = 0
    for _ in range(ROUNDS):
        url, options = where(backend, request, tmp_path)
        # locally, small chunks (full chunks are flushed between commits too) and many
        # commits; on S3 fewer, larger commits: the one-process moto server is the bottleneck
        small = {"segment_rows": 8, "meta_rows": 16} if backend == "local" else {}
        every = 10 if backend == "local" else 20
        wspace.create(url, LAYOUT, storage_options=options, **small)
        reports = run(
            url,
            options,
            writers=8,
            per_writer=100,
            size=LAYOUT.size,
            commit_every=every,
            readers=2,
            tmp_path=tmp_path,
        )
        for report in reports:
            assert report["error"] is None, report["error"]
            assert report["last"] == {str(k): 100 for k in range(8)}  # the final view is whole
            views += report["views"]
            partial += report["partial"]
        check_complete(url, options, 8, 100, LAYOUT.size)
        assert wspace.verify(url, storage_options=options).ok
    assert partial >= 1, "the readers never saw the store while writers were committing"
    trials.add(
        f"concurrency: 8 writers x 100 rows + 2 readers ({backend})",
        ROUNDS,
        f"{8 * 100 * ROUNDS} rows exact and bit-identical; {views} reader views checked "
        f"({partial} mid-write), all whole commits",
    )


@pytest.mark.parametrize("backend", ["local", pytest.param("s3", marks=pytest.mark.s3)])
@pytest.mark.parametrize("arch", ["small", "lenet5"] if SOAK else ["small"])
def test_four_writer_processes_lose_nothing(backend, arch, tmp_path, request, trials):
    """4 writer processes x 50 models each into one store -> exactly 200 rows; 3 times."""
    layout = LAYOUT if arch == "small" else lenet5_layout()
    rounds = 10 if SOAK and arch == "small" else 3
    started = time.perf_counter()
    for _ in range(rounds):
        url, options = where(backend, request, tmp_path)
        wspace.create(url, layout, storage_options=options)
        run(url, options, writers=4, per_writer=50, size=layout.size, commit_every=25)
        check_complete(url, options, 4, 50, layout.size)
    trials.add(
        f"concurrency: 4 writers x 50 rows, {arch} ({backend})",
        rounds,
        f"exactly 200 rows each round, bit-identical ({time.perf_counter() - started:.0f} s)",
    )
