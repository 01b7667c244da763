"""Writers and compactions killed with SIGKILL at named and at random points (real processes).

After every kill the store opens, ``verify`` is clean, every committed row is intact and
bit-identical, and a new writer continues; at the end ``vacuum`` reclaims what the dead left.
``WSPACE_SOAK=1`` runs 100 random kills instead of 20.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import wspace
from tests.workers import SMALL, SOAK, compact, start, write_rows
from wspace.cli import app
from wspace.layout import Layout
from wspace.testing import assert_rows_equal, tiny_weights

LAYOUT = Layout.from_dict(SMALL)
EVERY = 3  # rows per commit of the writers killed here
RANDOM_KILLS = 100 if SOAK else 20
SEED = 20261123


class Ledger:
    """What the store must hold: the committed rows, and where the next writer starts."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.rows: set[int] = set()
        self.next = 0

    def check(self, *, new_from: int | None = None) -> int:
        """Check the store after a kill; return the rows the killed writer committed."""
        zoo = wspace.open(self.url)
        seeds = zoo.models["seed"].to_numpy().astype(int) if len(zoo) else np.zeros(0, int)
        assert len(set(seeds)) == len(seeds), "a row is visible twice"
        assert self.rows <= set(seeds.tolist()), "a committed row vanished"
        added = sorted(set(seeds.tolist()) - self.rows)
        if new_from is not None:  # a writer's rows: a prefix of what it appended, whole commits
            assert added == list(range(new_from, new_from + len(added)))
            assert len(added) % EVERY == 0
        else:
            assert added == []
        values = zoo.values
        assert not np.isnan(values).any()
        expected = [tiny_weights(int(i), LAYOUT.size) for i in seeds]
        assert_rows_equal(values, np.stack(expected) if expected else values)
        report = wspace.verify(self.url)
        assert report.ok, report.problems
        self.rows |= set(added)
        if new_from is not None:
            self.next = new_from + len(added)  # names never committed are used again
        return len(added)


def killed_writer(ledger: Ledger, fault: str | None = None, delay: float | None = None) -> int:
    """Run a writer until it dies (at ``fault``) or is killed (after ``delay``); check."""
    env = {"WSPACE_FAULT": fault} if fault else None
    first = ledger.next
    proc = start(
        write_rows,
        ledger.url,
        range(first, first + 100_000),
        size=LAYOUT.size,
        commit_every=EVERY,
        env=env,
    )
    if delay is not None:
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
    proc.join(120)
    assert proc.exitcode == -signal.SIGKILL
    return ledger.check(new_from=first)


def killed_compaction(ledger: Ledger, fault: str | None = None, delay: float | None = None) -> None:
    env = {"WSPACE_FAULT": fault} if fault else None
    proc = start(compact, ledger.url, env=env)
    if delay is not None:
        time.sleep(delay)
        # a small store may be compacted before the delay is over: its process is gone then
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    proc.join(120)
    assert proc.exitcode in (0, -signal.SIGKILL)
    ledger.check()


# (fault point, rows of the dying writer that must be visible)
WRITER_POINTS = [
    ("segment.chunk-written:1", 0),  # first commit: one layer's chunk written, not the other
    ("segment.chunk-written:2", 0),  # first commit: chunks written, record not created
    ("commit.before-publish:2", EVERY),  # second commit: chunks written, no record
    ("log.before-create:2", EVERY),
    ("log.after-create:2", 2 * EVERY),  # record created; the writer dies before it knows
    ("commit.after-publish:2", 2 * EVERY),
]
COMPACT_POINTS = ["compact.copied", "compact.after-publish"]


@pytest.fixture
def store(tmp_path) -> Ledger:
    url = str(tmp_path / "zoo.zarr")
    wspace.create(url, LAYOUT, segment_rows=4, meta_rows=8)
    return Ledger(url)


def test_kills_at_named_points_keep_every_committed_row(store, trials):
    for fault, visible in WRITER_POINTS:
        assert killed_writer(store, fault) == visible, fault
    for fault in COMPACT_POINTS:
        killed_compaction(store, fault)
    info = wspace.info(store.url)["archs"]["small"]
    assert info["live_segments"] == 1  # the compaction that published took over every row
    finish_and_vacuum(store)
    trials.add(
        "crash: SIGKILL at named points (writer chunk/commit/record, compaction)",
        len(WRITER_POINTS) + len(COMPACT_POINTS),
        "exactly the committed rows visible each time, verify clean, next writer continues",
    )


def test_kills_at_random_points_keep_every_committed_row(store, trials):
    rng = random.Random(SEED)
    kinds = {"writer": 0, "compaction": 0}
    committed = []
    for _ in range(RANDOM_KILLS):
        if rng.random() < 0.3 and store.rows:
            kinds["compaction"] += 1
            killed_compaction(store, delay=rng.uniform(0.0, 0.4))
        else:
            kinds["writer"] += 1
            committed.append(killed_writer(store, delay=rng.uniform(0.02, 0.6)))
    assert sum(committed) > 0  # kills landed after commits too, not only at start-up
    finish_and_vacuum(store)
    trials.add(
        f"crash: SIGKILL at random times (seed {SEED})",
        RANDOM_KILLS,
        f"{kinds['writer']} writers ({sum(committed)} rows committed before the kills, "
        f"{committed.count(0)} kills before any commit), {kinds['compaction']} compactions; "
        "every committed row intact, verify clean, next writer continues; vacuum reclaims",
    )


def finish_and_vacuum(store: Ledger) -> None:
    """A last writer completes; vacuum removes the dead writers' leftovers, nothing else."""
    first = store.next
    write_rows(store.url, range(first, first + 5), size=LAYOUT.size, commit_every=EVERY)
    store.rows |= set(range(first, first + 5))
    before = wspace.info(store.url)
    removed = wspace.vacuum(store.url, grace_seconds=0)
    after = wspace.info(store.url)
    # vacuum also removes temporary files of interrupted commits under _log/
    assert after["bytes_total"] == before["bytes_total"] - removed["bytes"]
    # what remains beyond the live segments is group metadata only
    assert after["bytes_stored"] - after["bytes_live"] < 2_000 * (1 + after["version"] // 50)
    assert not list(Path(store.url).rglob("*.partial"))
    assert wspace.vacuum(store.url, grace_seconds=0)["bytes"] == 0
    store.check()
    result = CliRunner().invoke(app, ["verify", store.url])
    assert result.exit_code == 0, result.output
    assert "0 damaged" in result.output
