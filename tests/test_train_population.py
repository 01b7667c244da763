"""Population training: P LeNet-5s at once equal the networks the single trainer makes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

import wspace
from wspace.architectures import lenet5_layout
from wspace.errors import WspaceError
from wspace.train import load_digits, train_one_vs_all
from wspace.train.data import DataSplit
from wspace.train.orchestrate import train_zoo
from wspace.train.population import default_population, member_counts, train_population
from wspace.train.worker import TrainSettings, plan_jobs

# float32 rounding: the grouped kernels sum in another order than the single network's. Adam
# divides by sqrt(v), so a weight whose gradient is at rounding level can move by a fraction of
# lr (1e-3) differently: a handful of values may differ by more than ATOL, never by LOOSE. (A
# wrong Adam step count, for comparison, moves 99% of the values by more than ATOL.)
ATOL, LOOSE = 1e-5, 2e-4


def _assert_same_networks(pop, single) -> None:
    for a, b in zip(pop, single, strict=True):
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert sa.keys() == sb.keys()
        diff = torch.cat([(sa[k] - sb[k]).abs().reshape(-1) for k in sa])
        assert float(diff.max()) <= LOOSE
        assert float((diff > ATOL).double().mean()) <= 1e-3
        assert a.metrics["accuracy"] == b.metrics["accuracy"]
        for k in ("precision", "recall", "f1", "auc"):
            assert a.metrics[k] == pytest.approx(b.metrics[k], abs=1e-6)
        for k in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
            assert a.curves[k] == pytest.approx(b.curves[k], abs=1e-5)
        assert (a.n_train, a.n_positive, a.majority_rate) == (
            b.n_train,
            b.n_positive,
            b.majority_rate,
        )


def test_population_equals_single_training_after_one_epoch() -> None:
    data = load_digits()
    targets, seeds = [7, 3, 7], [11, 12, 13]  # two networks share a class, not a seed
    pop = train_population(data, targets, seeds, epochs=1)
    single = [
        train_one_vs_all(data, t, seed=s, epochs=1) for t, s in zip(targets, seeds, strict=True)
    ]
    _assert_same_networks(pop, single)
    # different seeds -> different networks (the population does not share weights)
    assert not torch.allclose(pop[0].model.dense.weight, pop[2].model.dense.weight)


def test_members_with_different_step_counts_sit_steps_out() -> None:
    # 300 negatives: "zero" has 124 positives (424 images = 4 batches of 106), "seven" 125
    # (425 = 5 batches, the last of one image): "zero" sits the fifth step of each epoch out.
    data = load_digits()
    assert member_counts(data, 0, 300)[0] == 424 and member_counts(data, 7, 300)[0] == 425
    kwargs = {"epochs": 2, "negatives": 300, "batch_size": 106}
    pop = train_population(data, [0, 7], [5, 6], **kwargs)
    single = [train_one_vs_all(data, t, seed=s, **kwargs) for t, s in ((0, 5), (7, 6))]
    _assert_same_networks(pop, single)


def test_population_state_vectors_follow_the_lenet5_layout() -> None:
    data = load_digits()
    states = []
    train_population(
        data, [1, 2], [0, 1], epochs=2, on_epoch=lambda e, s: states.append((e, s.vectors(), s))
    )
    assert [e for e, _, _ in states] == [1, 2]
    epoch1, epoch2 = states[0][1], states[1][1]
    assert epoch1.shape == (2, lenet5_layout().size) and epoch1.dtype == np.float32
    assert not np.array_equal(epoch1, epoch2)  # a copy per epoch, not a view of live weights
    state = states[1][2]
    for i in range(2):
        np.testing.assert_array_equal(epoch2[i], lenet5_layout().flatten(state.module(i)))


def test_default_population_rule() -> None:
    assert default_population(200, workers=2) == 16  # capped on a CPU
    assert default_population(48, workers=2) == 6  # four populations per worker
    assert default_population(6, workers=2) == 1  # small runs: the single-network loop
    assert default_population(0) == 1
    assert default_population(10_000, workers=1, device="cuda") == 1024
    assert default_population(10_000, workers=1, device="cuda:0") == 1024


def test_bad_arguments_are_refused() -> None:
    data = load_digits()
    with pytest.raises(ValueError, match="one seed per target"):
        train_population(data, [1, 2], [0], epochs=1)
    with pytest.raises(ValueError, match="not a class"):
        train_population(data, [10], [0], epochs=1)
    with pytest.raises(ValueError, match="negatives=5000"):
        train_population(data, [1], [0], epochs=1, negatives=5000)


def test_unavailable_device_is_an_error_before_any_work(tmp_path: Path) -> None:
    url = str(tmp_path / "zoo.zarr")
    with pytest.raises(WspaceError, match="training device 'nope'"):
        train_zoo(url, settings=TrainSettings(device="nope"), progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(WspaceError, match="not available"):
            train_zoo(url, settings=TrainSettings(device="cuda"), progress=False)
    assert not Path(url).exists()


def test_population_zoo_resumes_and_matches_single_worker_zoo(tmp_path: Path) -> None:
    classes = ["zero", "seven"]
    settings = TrainSettings(epochs=2, snapshots=True)
    pop_url, single_url = str(tmp_path / "pop.zarr"), str(tmp_path / "single.zarr")
    train_zoo(pop_url, classes=["zero"], per_class=2, settings=settings, workers=1,
              population=4, progress=False)  # fmt: skip
    report = train_zoo(pop_url, classes=classes, per_class=2, settings=settings, workers=1,
                       population=4, progress=False)  # fmt: skip
    assert report.skipped == 2 and sorted(report.trained) == ["seven_0", "seven_1"]
    train_zoo(single_url, classes=classes, per_class=2, settings=settings, workers=1,
              population=1, progress=False)  # fmt: skip
    pop, single = wspace.open(pop_url), wspace.open(single_url)
    assert len(pop) == len(single) == 8  # 4 networks x 2 steps
    key = ["model", "step"]
    a = pop.models.sort_values(key).reset_index()
    b = single.models.sort_values(key).reset_index()
    assert a[key].equals(b[key])
    for column in ("seed", "n_train", "n_positive", "accuracy", "majority_rate"):
        assert a[column].tolist() == b[column].tolist(), column
    diff = np.abs(pop.values[a["index"]] - single.values[b["index"]])
    assert diff.max() <= LOOSE and (diff > ATOL).mean() <= 1e-3


def _train_cmd(url: str) -> list[str]:
    return [
        sys.executable, "-m", "wspace", "train", "lenet5", url, "--classes", "zero,one,two",
        "--per-class", "2", "--epochs", "3", "--workers", "1", "--population", "2",
    ]  # fmt: skip


def test_sigkill_during_a_population_then_rerun_completes_without_duplicates(
    tmp_path: Path,
) -> None:
    url = str(tmp_path / "zoo.zarr")
    main = subprocess.Popen(
        _train_cmd(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 240
    victim = None
    while time.time() < deadline and main.poll() is None:
        committed = 0
        if Path(url, "_log").exists():
            try:
                committed = len(wspace.open(url))
            except wspace.WspaceError:
                committed = 0
        children = [
            c
            for c in psutil.Process(main.pid).children(recursive=True)
            if "spawn_main" in " ".join(c.cmdline())
        ]
        if committed >= 2 and children:  # the first population is in; the second in training
            victim = children[0]
            os.kill(victim.pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    assert victim is not None, "no worker to kill"
    _, err = main.communicate(timeout=300)
    first = wspace.open(url)
    assert first.models["model"].is_unique
    assert len(first) in (2, 4) and len(first) % 2 == 0  # whole populations only
    assert main.returncode == 2 and "run the same command again" in err
    out = subprocess.run(_train_cmd(url), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    zoo = wspace.open(url)
    expected = sorted(
        j.model for j in plan_jobs(load_digits().classes, 2, only=["zero", "one", "two"])
    )
    assert sorted(zoo.models["model"]) == expected  # complete, nothing duplicated
    assert wspace.verify(url).ok


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_population_on_cuda_equals_cpu() -> None:
    data: DataSplit = load_digits()
    cpu = train_population(data, [7, 3], [0, 1], epochs=1)
    gpu = train_population(data, [7, 3], [0, 1], epochs=1, device="cuda")
    for a, b in zip(cpu, gpu, strict=True):
        for key, value in a.model.state_dict().items():
            torch.testing.assert_close(value, b.model.state_dict()[key], atol=1e-4, rtol=0)
        assert abs(a.metrics["accuracy"] - b.metrics["accuracy"]) <= 2 / len(data.val_y)


@pytest.mark.slow
def test_throughput_benchmark_smoke_run_reports_every_configuration(tmp_path: Path) -> None:
    out = tmp_path / "train_throughput.json"
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.train_throughput", "--quick", "--out", str(out)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {row["config"]: row for row in report["rows"]}
    assert list(rows) == ["single", "population 2", "2 workers"]
    assert [rows[c]["nets"] for c in rows] == [2, 2, 2]
    assert rows["population 2"]["population"] == 2 and rows["2 workers"]["workers"] == 2
    assert all(row["nets_per_minute"] > 0 for row in rows.values())
    assert all(row["cpu_seconds"] > 0 and row["nets_per_cpu_minute"] > 0 for row in rows.values())
    assert rows["single"]["cpu_speedup_vs_single"] == 1.0
    assert rows["single"]["speedup_vs_single"] == 1.0
