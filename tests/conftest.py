"""Shared fixtures: store URLs on local disk, memory:// and a real moto S3 server."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("wspace.store.backends.conformance")  # plain asserts, explained
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

BUCKET = "wspace-test"


KERAS_DATA = Path(__file__).resolve().parent / "data" / "keras-lenet5"


def keras_data_dir() -> Path:
    """``tests/data/keras-lenet5``: real Keras 2 files and their predictions (see its README)."""
    if not (KERAS_DATA / "predictions.json").is_file():  # no skip: these files are the contract
        raise FileNotFoundError(f"{KERAS_DATA} is incomplete: the checkout lacks the Keras files")
    return KERAS_DATA


@dataclass
class S3Server:
    """A moto S3 server on 127.0.0.1 (real HTTP)."""

    endpoint: str
    options: dict[str, Any] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server() -> Iterator[tuple[S3Server, subprocess.Popen[bytes]]]:
    """Run ``moto_server`` on a free port of 127.0.0.1 with the test bucket; yield it and its
    process (tests that stop the server need their own)."""
    import boto3

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # moto.server with conditional PUTs made atomic, as on AWS (see tests/moto_s3.py)
    launcher = str(Path(__file__).with_name("moto_s3.py"))
    proc = subprocess.Popen(
        [sys.executable, launcher, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    deadline = time.time() + 30
    while True:
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except Exception:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.2)
    options = {
        "endpoint_url": endpoint,
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "us-east-1"},
    }
    try:
        yield S3Server(endpoint=endpoint, options=options), proc
    finally:
        proc.kill()
        proc.wait(10)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """Start ``moto_server`` on a free port of 127.0.0.1 and create the test bucket."""
    with moto_server() as (server, _):
        yield server


@dataclass
class StoreSpot:
    """Where a test's store lives: its URL and the storage options to reach it."""

    kind: str
    url: str
    options: dict[str, Any] | None = None


@pytest.fixture(params=["local", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def spot(request: pytest.FixtureRequest, tmp_path: Any) -> StoreSpot:
    """A fresh store location on local disk, memory:// or S3 (moto)."""
    name = f"zoo-{uuid.uuid4().hex[:10]}.zarr"
    if request.param == "local":
        return StoreSpot("local", str(tmp_path / name))
    if request.param == "memory":
        return StoreSpot("memory", f"memory://{name}")
    server = request.getfixturevalue("s3_server")
    return StoreSpot("s3", f"s3://{BUCKET}/{name}", dict(server.options))


@pytest.fixture
def s3_spot(s3_server: S3Server) -> StoreSpot:
    """A fresh store location on the moto S3 server."""
    return StoreSpot(
        "s3", f"s3://{BUCKET}/zoo-{uuid.uuid4().hex[:10]}.zarr", dict(s3_server.options)
    )


@dataclass
class Trials:
    """What a reliability test ran: fault, number of trials, outcome (for docs/reliability.md).

    Entries are appended, as JSON lines, to the file named by ``$WSPACE_TRIALS_LOG`` (if set)
    when the test passes; ``python -m benchmarks.soak`` collects them into a table.
    """

    test: str
    entries: list[dict[str, Any]] = field(default_factory=list)

    def add(self, fault: str, trials: int, outcome: str) -> None:
        self.entries.append(
            {"fault": fault, "trials": trials, "outcome": outcome, "test": self.test}
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_PASSED] = report.passed
    return report


_PASSED = pytest.StashKey[bool]()


@pytest.fixture
def trials(request: pytest.FixtureRequest) -> Iterator[Trials]:
    """Record the trials a reliability test ran (kept only if it passes)."""
    record = Trials(request.node.nodeid)
    yield record
    path = os.environ.get("WSPACE_TRIALS_LOG")
    if path and record.entries and request.node.stash.get(_PASSED, False):
        with open(path, "a", encoding="utf-8") as f:
            for entry in record.entries:
                f.write(json.dumps(entry) + "\n")
