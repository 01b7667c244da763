"""The storage guard: which failures are retried, how often, and what they become."""

from __future__ import annotations

import asyncio
import errno
import http.client

import aiohttp
import botocore.exceptions
import pytest
from fsspec.exceptions import FSTimeoutError
from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import MemoryStore, WrapperStore

import wspace
from wspace.store.guard import GuardedStore, RetryPolicy, guarded_sync, storage_fault

FAST = RetryPolicy(attempts=3, backoff=0.001, timeout=0.5)
BUF = default_buffer_prototype().buffer.from_bytes(b"abc")


class FailingStore(WrapperStore[Store]):
    """Raises ``error`` on the first ``times`` calls of get/set, then works."""

    def __init__(self, store: Store, error: BaseException, times: int) -> None:
        super().__init__(store)
        self.error = error
        self.times = times
        self.calls = 0

    def _fail(self) -> None:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error

    async def get(self, key, prototype, byte_range=None):
        self._fail()
        return await self._store.get(key, prototype, byte_range)

    async def set(self, key, value):
        self._fail()
        await self._store.set(key, value)


def guarded(error: BaseException, times: int) -> tuple[GuardedStore, FailingStore]:
    failing = FailingStore(MemoryStore(), error, times)
    return GuardedStore(failing, url="memory://guarded", policy=FAST), failing


STORAGE_FAULTS = [
    OSError(errno.EIO, "I/O error"),
    ConnectionResetError(),
    TimeoutError("read timed out"),
    FSTimeoutError("timed out"),
    aiohttp.ServerDisconnectedError(),
    aiohttp.ClientConnectionError("connection lost"),
    aiohttp.ClientPayloadError("response payload is not completed"),
    botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    botocore.exceptions.ClientError({"Error": {"Code": "SlowDown"}}, "PutObject"),
    http.client.IncompleteRead(b"ab", 3),
    asyncio.IncompleteReadError(b"ab", 3),
]
PROGRAMMING_ERRORS = [
    AttributeError("'NoneType' object has no attribute 'key'"),
    IndexError("list index out of range"),
    AssertionError("invariant"),
    TypeError("unsupported operand"),
    KeyError("k"),
    ValueError("bad"),
    RuntimeError("not a storage fault"),
    ZeroDivisionError("division by zero"),
    NotImplementedError("todo"),
]


def _name(error: BaseException) -> str:
    return type(error).__name__


@pytest.mark.parametrize("error", STORAGE_FAULTS, ids=_name)
def test_transient_failures_are_retried(error):
    assert storage_fault(error)
    store, failing = guarded(error, times=2)
    sync(store.set("k", BUF))
    assert failing.calls == 3
    assert sync(store.get("k", default_buffer_prototype())).to_bytes() == b"abc"


@pytest.mark.parametrize("error", STORAGE_FAULTS, ids=_name)
def test_lasting_storage_faults_become_storage_errors(error):
    store, failing = guarded(error, times=10)
    with pytest.raises(wspace.StorageError, match=f"failed after 3 tries: {_name(error)}") as info:
        sync(store.get("k", default_buffer_prototype()))
    assert info.value.__cause__ is error and failing.calls == 3


def test_persistent_failure_becomes_a_storage_error_naming_store_and_key():
    store, failing = guarded(OSError(errno.EIO, "I/O error"), times=10)
    with pytest.raises(wspace.StorageError, match=r"'memory://guarded'.*'k' failed after 3 tries"):
        sync(store.set("k", BUF))
    assert failing.calls == 3


def test_disk_full_is_not_retried():
    store, failing = guarded(OSError(errno.ENOSPC, "No space left"), times=10)
    with pytest.raises(wspace.StorageError, match="no space left writing 'k'") as info:
        sync(store.set("k", BUF))
    assert info.value.errno == errno.ENOSPC and failing.calls == 1


def test_permission_denied_on_write_is_read_only():
    store, failing = guarded(PermissionError(errno.EACCES, "denied"), times=10)
    with pytest.raises(wspace.ReadOnlyStoreError, match="refuses writing 'k'"):
        sync(store.set("k", BUF))
    with pytest.raises(wspace.StorageError, match="permission denied reading 'k'"):
        sync(store.get("k", default_buffer_prototype()))
    assert failing.calls == 2


@pytest.mark.parametrize("error", [FileNotFoundError("k"), *PROGRAMMING_ERRORS], ids=_name)
def test_answers_and_programming_errors_pass_unchanged_at_once(error):
    assert isinstance(error, FileNotFoundError) or not storage_fault(error)
    for call in (
        lambda store: store.get("k", default_buffer_prototype()),
        lambda store: store.set("k", BUF),
    ):
        store, failing = guarded(error, times=10)
        with pytest.raises(type(error)) as info:
            sync(call(store))
        assert info.value is error  # not wrapped, not retried
        assert failing.calls == 1
        # its traceback still reaches the line that raised it
        assert "_fail" in [entry.name for entry in info.traceback]


@pytest.mark.parametrize("error", PROGRAMMING_ERRORS, ids=_name)
def test_programming_errors_in_local_file_calls_pass_unchanged_at_once(error, tmp_path):
    calls = []

    def call() -> None:
        calls.append(1)
        raise error

    policy = RetryPolicy(attempts=3, backoff=0.001)
    with pytest.raises(type(error)) as info:
        guarded_sync(call, url=str(tmp_path), what="reading", key="k", policy=policy)
    assert info.value is error and calls == [1]


def test_a_call_without_answer_times_out():
    class Hanging(WrapperStore[Store]):
        async def get(self, key, prototype, byte_range=None):
            await asyncio.sleep(3600)

    store = GuardedStore(Hanging(MemoryStore()), url="memory://hang", policy=FAST)
    with pytest.raises(wspace.StorageError, match="no answer within 0.5 s"):
        sync(store.get("k", default_buffer_prototype()))


def test_policy_from_environment(monkeypatch):
    monkeypatch.setenv("WSPACE_IO_ATTEMPTS", "7")
    monkeypatch.setenv("WSPACE_IO_BACKOFF", "0.5")
    monkeypatch.setenv("WSPACE_IO_TIMEOUT", "9")
    policy = RetryPolicy.from_env()
    assert (policy.attempts, policy.backoff, policy.timeout) == (7, 0.5, 9.0)
    delays = list(policy.delays())
    assert len(delays) == 6 and all(0 < d <= policy.max_delay for d in delays)
    assert delays[0] <= 0.75 and delays[3] >= 2.0  # exponential, jittered +-50%


def test_local_reads_answer_like_zarr_and_fail_as_storage_errors(tmp_path, monkeypatch):
    # a local store reads small objects (commit records, metadata chunks) with plain file
    # calls instead of zarr's event loop; answers and failures must be the same
    from zarr.storage import LocalStore

    from wspace.store.backend import resolve

    (tmp_path / "a").write_bytes(b"abc")
    (tmp_path / "d").mkdir()
    backend = resolve(str(tmp_path))
    assert backend.local_root() == tmp_path
    keys = ["a", "missing", "d", "a/below-a-file"]
    zarr_store = LocalStore(tmp_path, read_only=True)
    expected = [sync(zarr_store.get(k, default_buffer_prototype())) for k in keys]
    assert backend.read_many(keys) == [None if b is None else b.to_bytes() for b in expected]
    assert backend.read_many(keys) == [b"abc", None, None, None]
    monkeypatch.setenv("WSPACE_IO_ATTEMPTS", "2")
    monkeypatch.setenv("WSPACE_IO_BACKOFF", "0.001")
    backend = resolve(str(tmp_path))
    with pytest.raises(wspace.StorageError, match=r"store .*: reading 'x{300}' failed after 2"):
        backend.read_many(["x" * 300])  # ENAMETOOLONG: an OSError, retried, then reported
