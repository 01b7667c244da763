"""Reliability soak: the fault tests run long, and a table of faults, trials and outcomes.

    python -m benchmarks.soak [--mode soak|ci|both] [--out FILE] [-- PYTEST ARGS]

Runs the reliability tests (concurrency, crashes, S3 faults, corruption, disk full,
read-only, hostile input) with ``WSPACE_SOAK=1`` (``--mode soak``: 10 rounds of 8 writers +
2 readers, 100 random SIGKILLs, ...) and/or as CI runs them (``--mode ci``). Each test logs
the trials it ran and their outcome (``$WSPACE_TRIALS_LOG``); this script sums them per fault,
prints the Markdown table that docs/reliability.md carries, and writes everything as JSON.
Failing tests are listed and make the exit status non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

TESTS = [
    "tests/test_concurrency.py",
    "tests/test_crash.py",
    "tests/test_s3_faults.py",
    "tests/test_corruption.py",
    "tests/test_diskfull.py",
    "tests/test_readonly.py",
    "tests/test_writer.py",
    "tests/test_hostile_input.py",
    "tests/test_fuzz.py",
    "tests/test_layout.py",
    "tests/test_guard.py",
]


def run(mode: str, extra: list[str]) -> dict[str, Any]:
    """Run the tests once (``mode`` soak or ci); return trials, failures and timing."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "trials.jsonl"
        junit = Path(tmp) / "junit.xml"
        env = {
            **os.environ,
            "WSPACE_TRIALS_LOG": str(log),
            "WSPACE_SOAK": "1" if mode == "soak" else "0",
        }
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={junit}",
                *TESTS,
                *extra,
            ],
            env=env,
            check=False,
        )
        seconds = time.perf_counter() - started
        entries = (
            [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        )
        failed = []
        if junit.exists():
            for case in ET.parse(junit).getroot().iter("testcase"):
                if case.find("failure") is not None or case.find("error") is not None:
                    failed.append(f"{case.get('classname')}::{case.get('name')}")
    return {
        "mode": mode,
        "exit": done.returncode,
        "seconds": seconds,
        "entries": entries,
        "failed": failed,
    }


def summarise(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per fault: trials summed, distinct outcomes (with how many tests gave each)."""
    faults: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"trials": 0, "outcomes": defaultdict(int)}
    )
    for entry in entries:
        fault = faults[entry["fault"]]
        fault["trials"] += int(entry["trials"])
        fault["outcomes"][entry["outcome"]] += 1
    return {
        name: {"trials": f["trials"], "outcomes": dict(f["outcomes"])} for name, f in faults.items()
    }


def outcome_text(outcomes: dict[str, int]) -> str:
    if len(outcomes) == 1:
        return next(iter(outcomes))
    return "; ".join(f"{n}x: {text}" for text, n in sorted(outcomes.items(), key=lambda kv: -kv[1]))


def table(runs: list[dict[str, Any]]) -> str:
    by_mode = {r["mode"]: summarise(r["entries"]) for r in runs}
    names = list(dict.fromkeys(n for r in runs for n in summarise(r["entries"])))
    modes = [r["mode"] for r in runs]
    head = "| Fault | " + " | ".join(f"trials ({m})" for m in modes) + " | Outcome |"
    rows = [head, "|" + "---|" * (len(modes) + 2)]
    for name in names:
        counts = [str(by_mode[m].get(name, {}).get("trials", "-")) for m in modes]
        last = next(by_mode[m][name] for m in reversed(modes) if name in by_mode[m])
        rows.append(f"| {name} | " + " | ".join(counts) + f" | {outcome_text(last['outcomes'])} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["soak", "ci", "both"], default="soak")
    parser.add_argument("--out", default="benchmarks/results/soak.json")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args()
    modes = ["ci", "soak"] if args.mode == "both" else [args.mode]
    runs = [run(mode, args.pytest_args) for mode in modes]
    text = table(runs)
    print(text)
    for r in runs:
        print(
            f"\n{r['mode']}: pytest exit {r['exit']} in {r['seconds']:.0f} s; "
            f"failed: {r['failed'] or 'none'}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": {
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                },
                "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                "runs": [
                    {k: v for k, v in r.items() if k != "entries"}
                    | {"faults": summarise(r["entries"])}
                    for r in runs
                ],
                "table": text,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    sys.exit(max(r["exit"] for r in runs))


if __name__ == "__main__":
    main()
