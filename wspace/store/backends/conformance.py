"""The tests every storage backend must pass, shipped for reuse (like ``zarr.testing``).

Mix :class:`BackendConformance` into a pytest test class and provide the fixture
``open_backend``: a callable ``open_backend(read_only=False) -> Backend`` that opens the
*same* fresh store every time it is called. For the race of processes it must be picklable
(``functools.partial(resolve, url, storage_options=...)``, or a module-level function), as
the children open the store themselves. A store that lives in one process (zarr's
``MemoryStore``, ``memory://``) sets ``race = "threads"``: its race runs in threads, since
no other process can reach it.

Examples
--------
>>> import functools, pytest
>>> from wspace.store.backends import resolve
>>> class TestMyStore(BackendConformance):
...     @pytest.fixture
...     def open_backend(self, tmp_path):
...         return functools.partial(resolve, str(tmp_path / "store"))
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import time
import traceback
import uuid
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import pytest
import zarr
from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest

from wspace.errors import ReadOnlyStoreError
from wspace.store.backends.base import Backend

__all__ = ["BackendConformance", "BackendOpener"]


class BackendOpener(Protocol):
    """Opens the store under test anew (a new client: a new zarr store and fsspec calls)."""

    def __call__(self, *, read_only: bool = False) -> Backend: ...


def payload(racer: int, round_: int, size: int = 1 << 16) -> bytes:
    """Distinct bytes for each racer and round, big enough that a write is not instant."""
    head = f"racer {racer} round {round_};".encode()
    return (head * (size // len(head) + 1))[:size]


LEAD = 0.03
"""Seconds between the racers' meeting at the barrier and the start of a round's race."""


class _StartTime:
    """A shared start time, for threads (processes share an ``mp.Value``)."""

    value = 0.0


def race_worker(
    open_backend: BackendOpener,
    prefix: str,
    racer: int,
    rounds: int,
    barrier: Any,
    start: Any,
    results: Any,
) -> None:
    """One racer: open the store, then in each round meet the others, wait for the round's
    start time and create the round's key; report ``(round, racer, won)`` (or ``(-1, racer,
    traceback)``). A barrier wakes its waiters one after another, slower than a create takes;
    a start time (slept to, then spun to) lets the creates overlap."""
    try:
        backend = open_backend()
        for r in range(rounds):
            if racer == 0:
                start.value = time.time() + LEAD
            barrier.wait(timeout=300)
            go = start.value
            time.sleep(max(0.0, go - time.time() - 0.005))
            while time.time() < go:
                pass
            results.put((r, racer, backend.create_if_absent(f"{prefix}/{r}", payload(racer, r))))
    except BaseException:
        results.put((-1, racer, traceback.format_exc()))
        barrier.abort()


def create_one(open_backend: BackendOpener, key: str, data: bytes) -> None:
    """Create ``key`` through a backend of its own (another client of the store)."""
    if not open_backend().create_if_absent(key, data):
        raise AssertionError(f"{key!r} existed already")


def _context() -> Any:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["wspace.store.backends.conformance"])
    return ctx


class BackendConformance:
    """Conformance tests of the :class:`~wspace.store.backends.Backend` contract."""

    race: ClassVar[Literal["processes", "threads"]] = "processes"
    """How racers run: real processes, or threads for a store that lives in one process."""
    racers: ClassVar[int] = 4
    rounds: ClassVar[int] = 50

    @pytest.fixture
    def open_backend(self) -> BackendOpener:
        """Override: open the same fresh store on each call (see the module docstring)."""
        raise NotImplementedError(f"{type(self).__name__} must provide open_backend")

    @pytest.fixture
    def backend(self, open_backend: BackendOpener) -> Backend:
        return open_backend()

    def in_other_client(self, open_backend: BackendOpener, key: str, data: bytes) -> None:
        """Create ``key`` from another client: another process, or (threads) another backend."""
        if self.race == "threads":
            create_one(open_backend, key, data)
            return
        proc = _context().Process(target=create_one, args=(open_backend, key, data))
        proc.start()
        proc.join(300)
        assert proc.exitcode == 0, f"the process creating {key!r} ended with {proc.exitcode}"

    # -- reads -------------------------------------------------------------------------------
    def test_reading_a_missing_object_gives_none(self, backend: Backend) -> None:
        assert backend.read("no/such/key") is None
        assert backend.read_many(["no/such/key"]) == [None]
        assert backend.read_ranges("no/such/key", [RangeByteRequest(0, 4)]) is None
        assert not backend.exists("no/such/key")

    def test_written_objects_read_back_whole(self, backend: Backend) -> None:
        backend.write("a/b/c.json", b'{"x": 1}')
        assert backend.read("a/b/c.json") == b'{"x": 1}'
        assert backend.exists("a/b/c.json")
        backend.write("a/b/c.json", b"replaced")
        assert backend.read("a/b/c.json") == b"replaced"
        backend.write("empty", b"")
        assert backend.read("empty") == b""

    def test_read_many_answers_in_the_order_asked(self, backend: Backend) -> None:
        for i in range(8):
            backend.write(f"many/{i}", bytes([i]) * (i + 1))
        keys = ["many/5", "many/0", "missing", "many/7", "many/5", "many/2"]
        expected = [bytes([5]) * 6, b"\0", None, bytes([7]) * 8, bytes([5]) * 6, bytes([2]) * 3]
        assert backend.read_many(keys) == expected
        assert backend.read_many([]) == []

    def test_read_ranges_cuts_the_asked_bytes(self, backend: Backend) -> None:
        data = bytes(range(256)) * 5  # 1280 bytes
        backend.write("ranges/obj", data)
        ranges: list[ByteRequest | None] = [
            RangeByteRequest(0, 10),
            RangeByteRequest(100, 300),
            OffsetByteRequest(1200),
            SuffixByteRequest(24),
            None,
            RangeByteRequest(1270, 2000),  # past the end: cut short
        ]
        expected = [data[:10], data[100:300], data[1200:], data[-24:], data, data[1270:]]
        assert backend.read_ranges("ranges/obj", ranges) == expected
        assert backend.read_ranges("ranges/obj", []) == []

    def test_listings_are_never_cached(self, backend: Backend, open_backend: BackendOpener) -> None:
        backend.write("d/a", b"1")
        backend.write("d/sub/x", b"2")
        backend.write("dx", b"3")
        assert backend.list_dir("d") == ["a", "sub"]
        assert backend.list_prefix("d/") == ["d/a", "d/sub/x"]
        self.in_other_client(open_backend, "d/b", b"4")  # listed above: now cached, if ever
        self.in_other_client(open_backend, "d/sub/y", b"5")
        assert backend.list_dir("d") == ["a", "b", "sub"]
        assert backend.list_prefix("d/") == ["d/a", "d/b", "d/sub/x", "d/sub/y"]
        assert backend.read("d/b") == b"4"

    def test_local_root_holds_the_objects_or_is_none(self, backend: Backend) -> None:
        backend.write("r/obj", b"here")
        root = backend.local_root()
        if root is not None:
            assert (root / "r" / "obj").read_bytes() == b"here"

    # -- create-if-absent --------------------------------------------------------------------
    def test_create_if_absent_succeeds_once(self, backend: Backend) -> None:
        assert backend.create_if_absent("_log/00000000.json", b"first")
        assert not backend.create_if_absent("_log/00000000.json", b"second")
        assert backend.read("_log/00000000.json") == b"first"
        assert backend.exists("_log/00000000.json")
        assert backend.create_if_absent("_log/00000001.json", b"")
        assert backend.read("_log/00000001.json") == b""
        assert backend.list_dir("_log") == ["00000000.json", "00000001.json"]
        assert backend.temp_files(older_than=time.time() + 3600) == {}

    def test_concurrent_creates_have_exactly_one_winner(
        self, backend: Backend, open_backend: BackendOpener
    ) -> None:
        prefix = f"race-{uuid.uuid4().hex[:8]}"
        if self.race == "threads":
            got = self._race_threads(open_backend, prefix)
        else:
            got = self._race_processes(open_backend, prefix)
        for r in range(self.rounds):
            winners = [racer for racer in range(self.racers) if got[r, racer]]
            assert len(winners) == 1, f"round {r}: winners {winners} ({self.race})"
            assert backend.read(f"{prefix}/{r}") == payload(winners[0], r)
        assert backend.list_dir(prefix) == sorted(str(r) for r in range(self.rounds))

    def _collect(self, results: Any, procs: list[Any]) -> dict[tuple[int, int], bool]:
        got: dict[tuple[int, int], bool] = {}
        deadline = time.monotonic() + 600
        while len(got) < self.racers * self.rounds:
            try:
                r, racer, won = results.get(timeout=1)
            except queue.Empty:
                dead = [p for p in procs if getattr(p, "exitcode", None) not in (None, 0)]
                assert not dead, f"racers died: {[p.exitcode for p in dead]}"
                assert time.monotonic() < deadline, f"race stuck: {len(got)} results"
                continue
            assert r >= 0, f"racer {racer} failed:\n{won}"
            got[r, racer] = won
        return got

    def _race_processes(self, open_backend: BackendOpener, prefix: str) -> dict[Any, bool]:
        ctx = _context()
        barrier, start, results = ctx.Barrier(self.racers), ctx.Value("d", 0.0), ctx.Queue()
        procs = [
            ctx.Process(
                target=race_worker,
                args=(open_backend, prefix, i, self.rounds, barrier, start, results),
                daemon=True,
            )
            for i in range(self.racers)
        ]
        for p in procs:
            p.start()
        try:
            return self._collect(results, procs)
        finally:
            for p in procs:
                p.join(60)
                if p.exitcode is None:
                    p.kill()

    def _race_threads(self, open_backend: BackendOpener, prefix: str) -> dict[Any, bool]:
        barrier, start = threading.Barrier(self.racers), _StartTime()
        results: queue.Queue[tuple[int, int, Any]] = queue.Queue()
        threads = [
            threading.Thread(
                target=race_worker,
                args=(open_backend, prefix, i, self.rounds, barrier, start, results),
                daemon=True,
            )
            for i in range(self.racers)
        ]
        for t in threads:
            t.start()
        try:
            return self._collect(results, [])
        finally:
            for t in threads:
                t.join(60)

    # -- deletes, sizes, read-only -----------------------------------------------------------
    def test_delete_dir_removes_everything_under_it(self, backend: Backend) -> None:
        for key in ["x/1", "x/2/3", "x/2/4", "xy", "y"]:
            backend.write(key, b"data")
        backend.delete_dir("x")
        assert backend.list_prefix("") == ["xy", "y"]
        assert backend.read("x/2/3") is None
        backend.delete("xy")
        backend.delete("never-there")
        assert backend.list_prefix("") == ["y"]

    def test_size_under_counts_the_bytes_below_a_prefix(self, backend: Backend) -> None:
        backend.write("s/a", b"0" * 10)
        backend.write("s/b/c", b"0" * 20)
        backend.write("sx", b"0" * 7)  # a sibling with the same first letters: not counted
        assert backend.size_under("s") == 30
        assert backend.size_under("s/b") == 20
        assert backend.size_under("nothing/here") == 0
        assert backend.size_under("") == 37

    def test_read_only_refuses_every_write(
        self, backend: Backend, open_backend: BackendOpener
    ) -> None:
        backend.write("kept", b"as it was")
        zarr.create_array(backend.store, name="arr", shape=(2,), dtype="i4")
        before = backend.list_prefix("")
        read_only = open_backend(read_only=True)
        assert read_only.read_only
        writes = [
            lambda: read_only.write("kept", b"changed"),
            lambda: read_only.write("new", b"x"),
            lambda: read_only.create_if_absent("new", b"x"),
            lambda: read_only.delete("kept"),
            lambda: read_only.delete_dir(""),
            lambda: read_only.delete_temp("kept"),
            read_only.check_writable,
        ]
        for write in writes:
            with pytest.raises(ReadOnlyStoreError, match="read-only"):
                write()
        with pytest.raises(ReadOnlyStoreError):
            read_only.open_array("arr")[:] = 1
        assert read_only.read("kept") == b"as it was"
        assert read_only.list_prefix("") == before

    def test_arrays_open_through_the_backend(self, backend: Backend) -> None:
        zarr.create_array(backend.store, name="arr", shape=(6,), chunks=(2,), dtype="i4")[:] = (
            np.arange(6)
        )
        array = backend.open_array("arr")
        np.testing.assert_array_equal(array[:], np.arange(6))
        array[:2] = -1
        assert backend.size_under("arr") > 0
        assert "zarr.json" in backend.list_dir("arr")
