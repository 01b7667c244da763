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
    for q in ("q1", "q2", "q3", "q4", "q5"):
        got = res["main"]["queries"][q]
        for cache in ("warm", "cold"):
            assert {"wspace", "hdf5", "raw_memmap"} <= set(got[cache])
            assert all(r["median_s"] > 0 and r["rss_mb"] > 0 for r in got[cache].values())
    assert {"layerwise_pickle"} <= set(res["main"]["queries"]["q1"]["warm"])
    assert {"modelwise_pickle"} <= set(res["main"]["queries"]["q2"]["warm"])
    assert [r["writers"] for r in res["q6"]["summary"]] == [1, 2, 4]
    assert all(r["lost_total"] == 0 and r["duplicated_total"] == 0 for r in res["q6"]["summary"])
    assert 0 < res["q7"]["lossless_ratio"] < 1.2 and 0 < res["q7"]["lossy_ratio"] < 1
    assert res["q7"]["lossy_max_rel_error"] < 2**-13
    assert {"q1", "q5"} <= set(res["scale"]["queries"])
    targets = {t["id"] for t in res["targets"]}
    for wanted in (
        "Q1 hdf5 [warm]",
        "Q2 raw [warm]",
        "Q3 rss [cold]",
        "Q4 [warm]",
        "Q6 4 writers",
        "Q7 lossy",
        "Scale Q1 raw [cold]",
    ):
        assert wanted in targets
    assert all(isinstance(t["pass"], bool) for t in res["targets"])
    text = docs.read_text()
    assert "| Q1" in text and "Targets" in text and "Chosen defaults" in text
    assert "PASS" in proc.stdout or "FAIL" in proc.stdout


def test_benchmark_layouts_match_the_library():
    from benchmarks.synth import full_layout, small_layout
    from wspace.architectures import lenet5_layout

    assert full_layout() == lenet5_layout()  # built without torch for the worker processes
    assert small_layout().layers == lenet5_layout().layers
    assert small_layout().layer_size("dense_1") == lenet5_layout().layer_size("dense_1")
