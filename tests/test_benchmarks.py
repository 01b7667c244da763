"""The benchmark's smoke test: ``python -m benchmarks.run --quick`` runs and reports everything.

It checks that the run succeeds (every system answers, and answers the same) and writes a
well-formed report; it never checks timings (CI machines differ; the full run is for that).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_runs_and_reports_every_query(tmp_path):
    out = tmp_path / "results.json"
    docs = tmp_path / "performance.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--workdir",
            str(tmp_path / "data"),
            "--out",
            str(out),
            "--docs",
            str(docs),
            "--cache",
            "fadvise",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["errors"] == []
    every = {"wspace", "lance", "xzarr", "safetensors", "hdf5", "raw_rows", "raw_layers"}
    for q in ("q1", "q2", "q3", "q4", "q5"):
        got = res["main"]["queries"][q]
        for cache in ("warm", "cold"):
            assert every <= set(got[cache])  # the peers run too: CI installs them (dev extra)
            for r in got[cache].values():
                assert r["median_s"] > 0 and r["rss_mb"] > 0
                assert r["e2e_s"] == pytest.approx(r["open_s"] + r["median_s"])
        if q != "q3":
            assert len(got["check"]["sha256"]) == 64
    assert {"layerwise_pickle"} <= set(res["main"]["queries"]["q1"]["warm"])
    assert {"modelwise_pickle"} <= set(res["main"]["queries"]["q2"]["warm"])
    assert res["limits"]["memcpy_gb_s"] > 0 and res["limits"]["cold_disk_gb_s"] > 0
    assert {r["group"] for r in res["spellings"]["rows"]} == {"one row", "few rows", "layer stats"}
    assert [r["writers"] for r in res["q6"]["summary"]] == [1, 2, 4]
    assert all(r["lost_total"] == 0 and r["duplicated_total"] == 0 for r in res["q6"]["summary"])
    assert 0 < res["q7"]["lossless_ratio"] < 1.2 and 0 < res["q7"]["lossy_ratio"] < 1
    assert res["q7"]["lossy_max_rel_error"] < 2**-13
    per = res["q7"]["bytes_per_model"]
    published = per["HDF5 folder, as published (with Adam state)"]
    assert published > 2.5 * per["HDF5 folder, as wspace.io exports it (no optimizer state)"]
    assert len(res["scale"]["points"]) == 2
    assert all({"q5", "q1", "q4"} <= set(p["queries"]) for p in res["scale"]["points"])
    targets = {t["id"] for t in res["targets"]}
    for wanted in (
        "Q1 vs lance [warm, e2e]",
        "Q1 vs xzarr [cold, query]",
        "Q1 hdf5 [warm, query]",
        "Q1 raw layers [cold, e2e]",
        "Q2 raw [warm, e2e]",
        "Q4 vs lance [warm, query]",
        "Q3 rss [cold]",
        "Q6 4 writers",
        "Q7 vs peers",
        "Spellings one row",
        "Scaling wspace open",
    ):
        assert wanted in targets
    assert all(isinstance(t["pass"], bool) for t in res["targets"])
    text = docs.read_text()
    assert "Lance" in text and "Targets" in text and "Chosen defaults" in text
    assert (docs.parent / "performance-scaling.png").stat().st_size > 0
    assert "PASS" in proc.stdout or "FAIL" in proc.stdout
    # the page regenerates from the JSON alone
    again = tmp_path / "again.md"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.report", str(out), "--docs", str(again)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    assert again.read_text() == text


def test_result_check_fails_on_permuted_or_changed_rows():
    from benchmarks.check import Answer, digest
    from benchmarks.run import check_results
    from benchmarks.runner import Run

    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    names = ["b_0", "a_0", "c_0"]
    same = digest(Answer(rows=rows, names=names))
    # another order of the same rows with their names: the same answer
    assert digest(Answer(rows=rows[[2, 0, 1]], names=[names[i] for i in (2, 0, 1)])) == same
    swapped = digest(Answer(rows=rows[[1, 0, 2]], names=names))  # rows misplaced
    changed = rows.copy()
    changed[2, 3] = np.nextafter(changed[2, 3], np.float32(99))  # one ulp
    runs = [
        ("warm", "wspace", Run(query_s=1, open_s=1, rss_mb=1, check=same)),
        ("warm", "lance", Run(query_s=1, open_s=1, rss_mb=1, check=same)),
        ("warm", "hdf5", Run(query_s=1, open_s=1, rss_mb=1, check=swapped)),
        ("cold", "xzarr", Run(query_s=1, open_s=1, rss_mb=1, check=digest(Answer(changed, names)))),
    ]
    reference, errors = check_results("main", "q2", runs)
    assert reference == same
    assert len(errors) == 2
    assert "q2 [warm]: hdf5 returned different rows" in errors[0]
    assert "q2 [cold]: xzarr returned different rows" in errors[1]


def test_benchmark_layouts_match_the_library():
    from benchmarks.synth import full_layout, small_layout
    from wspace.architectures import lenet5_layout

    assert full_layout() == lenet5_layout()  # built without torch for the worker processes
    assert small_layout().layers == lenet5_layout().layers
    assert small_layout().layer_size("dense_1") == lenet5_layout().layer_size("dense_1")


def test_scaling_growth_is_classified_from_the_exponent():
    from benchmarks.scaling import growth

    assert growth([(1_000, 0.010), (100_000, 0.012)])["kind"] == "flat"
    assert growth([(1_000, 0.010), (100_000, 0.030)])["kind"] == "logarithmic"
    assert growth([(1_000, 0.010), (100_000, 0.300)])["kind"] == "sublinear"
    linear = growth([(1_000, 0.010), (10_000, 0.1), (100_000, 1.0)])
    assert linear["kind"] == "linear" and abs(linear["exponent"] - 1) < 1e-9
