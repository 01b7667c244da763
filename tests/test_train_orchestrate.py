"""Zoo generation end to end: worker processes, Dask, resuming after SIGKILL, metrics report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import torch

import wspace
from wspace.train.data import load_digits
from wspace.train.lenet import evaluate, one_vs_all_labels
from wspace.train.orchestrate import train_zoo
from wspace.train.worker import TrainSettings, plan_jobs

CLASSES = ["zero", "three", "seven"]


def test_digits_zoo_trains_with_two_worker_processes(tmp_path):
    url = str(tmp_path / "zoo.zarr")
    settings = TrainSettings(epochs=4)
    report = train_zoo(
        url, classes=CLASSES, per_class=2, settings=settings, workers=2, progress=False
    )
    assert report.complete and len(report.trained) == 6 and report.skipped == 0
    zoo = wspace.open(url)
    models = zoo.models
    assert sorted(models["model"]) == sorted(f"{c}_{i}" for c in CLASSES for i in range(2))
    assert models["model"].is_unique
    assert set(models["step"]) == {4} and set(models["epochs"]) == {4}
    for column in ("accuracy", "precision", "recall", "f1", "auc", "seed", "majority_rate"):
        assert models[column].notna().all(), column
    assert all(len(curve) == 4 for curve in models["curve_val_accuracy"])
    assert all(len(curve) == 4 for curve in models["curve_train_loss"])
    # the networks learned: validation accuracy clearly above the all-negative rate
    assert models["accuracy"].mean() > models["majority_rate"].mean() + 0.05
    assert models["accuracy"].min() > models["majority_rate"].min()
    # 2 writer processes -> 2 segments, each network its own commit
    assert wspace.info(url)["archs"]["lenet5"]["live_segments"] == 2
    # a re-run has nothing left to do
    again = train_zoo(
        url, classes=CLASSES, per_class=2, settings=settings, workers=2, progress=False
    )
    assert again.trained == [] and again.skipped == 6
    assert len(wspace.open(url)) == 6


def test_rebuilt_module_reproduces_the_recorded_accuracy(tmp_path):
    url = str(tmp_path / "zoo.zarr")
    train_zoo(
        url,
        classes=["seven"],
        per_class=2,
        settings=TrainSettings(epochs=3),
        workers=1,
        progress=False,
    )
    zoo = wspace.open(url)
    data = load_digits()
    target = data.classes.index("seven")
    for i in range(len(zoo)):
        net = zoo.module(i)
        with torch.no_grad():
            got = evaluate(net, data.val_x, one_vs_all_labels(data.val_y, target))
        assert got["accuracy"] == zoo.models["accuracy"][i]
        assert got["auc"] == pytest.approx(zoo.models["auc"][i], abs=1e-12)


def test_snapshots_are_rows_with_step(tmp_path):
    url = str(tmp_path / "zoo.zarr")
    train_zoo(
        url,
        classes=["one"],
        per_class=2,
        settings=TrainSettings(epochs=3, snapshots=True),
        workers=1,
        progress=False,
    )
    zoo = wspace.open(url)
    assert len(zoo) == 6
    assert sorted(zoo.sel(model="one_0").models["step"]) == [1, 2, 3]
    first, last = zoo.sel(model="one_1", step=1), zoo.sel(model="one_1", step=3)
    assert not np.array_equal(first.values, last.values)  # weights moved during training
    assert len(zoo.sel(step=3)) == 2


@pytest.mark.slow
def test_dask_local_cluster_runs_the_workers(tmp_path):
    url = str(tmp_path / "zoo.zarr")
    report = train_zoo(
        url,
        classes=["two", "five"],
        per_class=2,
        settings=TrainSettings(epochs=2),
        workers=2,
        dask_local=True,
        progress=False,
    )
    assert report.complete and sorted(report.trained) == ["five_0", "five_1", "two_0", "two_1"]
    assert sorted(wspace.open(url).models["model"]) == sorted(report.trained)


def _train_cmd(url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "wspace",
        "train",
        "lenet5",
        url,
        "--classes",
        "zero,one,two",
        "--per-class",
        "2",
        "--epochs",
        "3",
        "--workers",
        "2",
    ]


def test_sigkilled_worker_then_rerun_completes_without_duplicates(tmp_path):
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
        if committed >= 2 and children:
            victim = children[0]
            os.kill(victim.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    assert victim is not None, "no worker to kill"
    _, err = main.communicate(timeout=300)
    first = wspace.open(url)
    assert first.models["model"].is_unique
    assert len(first) < 6 and main.returncode == 2 and "run the same command again" in err
    out = subprocess.run(_train_cmd(url), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    zoo = wspace.open(url)
    names = sorted(zoo.models["model"])
    expected = sorted(
        j.model for j in plan_jobs(load_digits().classes, 2, only=["zero", "one", "two"])
    )
    assert names == expected  # complete, nothing duplicated
    assert wspace.verify(url).ok


def test_report_metrics_prints_and_writes_the_card_table(tmp_path):
    url = str(tmp_path / "zoo.zarr")
    train_zoo(
        url,
        classes=["zero", "one"],
        per_class=2,
        settings=TrainSettings(epochs=2),
        workers=1,
        progress=False,
    )
    csv = tmp_path / "metrics.csv"
    out = subprocess.run(
        [sys.executable, "-m", "wspace", "report", "metrics", url, "--csv", str(csv)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(csv)
    assert table.columns.tolist() == [
        "Class",
        "Count",
        "Accuracy Min",
        "Accuracy Max",
        "Accuracy Avg",
        "Precision Min",
        "Precision Max",
        "Precision Avg",
        "Recall Min",
        "Recall Max",
        "Recall Avg",
        "F1 Score Min",
        "F1 Score Max",
        "F1 Score Avg",
    ]
    assert table["Class"].tolist() == ["one", "zero", "All"]
    assert table["Count"].tolist() == [2, 2, 4]
    models = wspace.open(url).models
    assert table.loc[2, "Accuracy Avg"] == pytest.approx(models["accuracy"].mean())
    assert "Accuracy Min" in out.stdout


def test_missing_imagenette_folder_is_a_clear_error(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "wspace",
            "train",
            "lenet5",
            str(tmp_path / "z.zarr"),
            "--dataset",
            "imagenette",
            "--root",
            str(tmp_path / "nowhere"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "train" in out.stderr and "val" in out.stderr and "Traceback" not in out.stderr
