"""A writer's background flush: one thread that encodes and writes full chunks in order.

The caller (a :class:`~wspace.store.segment.SegmentWriter`) hands a chunk over with
:meth:`ChunkFlusher.submit` and goes on buffering rows while the thread writes it; zarr's
codecs (Blosc, crc32c) and file writes release the GIL, so on two or more cores the encode
and write overlap with the caller's validation and copying. Memory stays bounded: the chunks
handed over but not yet written hold at most ``budget`` bytes (or one chunk, whatever its
size), and ``submit`` blocks until there is room.

A failure in the thread is kept and raised, as it was raised there (a
:class:`~wspace.errors.StorageError` naming the store and the chunk's key), by the caller's
next :meth:`~ChunkFlusher.submit` or :meth:`~ChunkFlusher.check`. The failed chunk and every
chunk queued after it are kept, in order, and written again from the caller's next call after
that; :meth:`~ChunkFlusher.wait` (a commit) writes them again at once and raises only if that
fails too. So a writer resumes once the storage works, as it does when the write fails in the
caller's own thread. :meth:`~ChunkFlusher.wait` returns only when every
chunk handed over is written, so a commit record published after it never names a chunk that
is not on storage.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_BUDGET", "IDLE_S", "ChunkFlusher", "FlushTask"]

DEFAULT_BUDGET = 2**26
"""Bytes of chunks a writer's background flush holds at most (64 MiB), besides its buffers."""
IDLE_S = 1.0
"""Seconds the thread waits for work before it ends (so a writer never closed leaks none)."""


@dataclass
class FlushTask:
    """One chunk to write: ``run`` writes it; ``nbytes`` counts against the budget."""

    run: Callable[[], None]
    nbytes: int
    what: str
    """The chunk, for the note added to an error (``layer 'conv2d' rows 0:2299 of ...``)."""


class ChunkFlusher:
    """One background thread writing the chunks handed to it, in order, within a byte budget.

    Parameters
    ----------
    budget
        Bytes of chunks handed over and not yet written, at most (one chunk is always let
        through, however large).
    name
        The thread's name (for debugging).
    """

    def __init__(self, budget: int = DEFAULT_BUDGET, *, name: str = "wspace-flush") -> None:
        self.budget = int(budget)
        self.name = name
        self._cond = threading.Condition()
        self._queue: deque[FlushTask] = deque()
        self._held = 0  # bytes queued or being written
        self._busy = False
        self._error: BaseException | None = None
        self._retry: list[FlushTask] = []  # the failed task and those queued after it
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- the caller's side ------------------------------------------------------------------
    def submit(self, task: FlushTask) -> None:
        """Queue ``task``; block while the budget is used. Raises a kept failure first
        (``task`` is then not queued)."""
        with self._cond:
            self._raise_or_requeue()
            while self._held and self._held + task.nbytes > self.budget:
                self._cond.wait()
                self._raise_or_requeue()
            self._queue.append(task)
            self._held += task.nbytes
            self._start()
            self._cond.notify_all()

    def check(self) -> None:
        """Raise a failure of the thread (once); else queue again what failed before."""
        with self._cond:
            self._raise_or_requeue()

    def wait(self) -> None:
        """Return once every chunk handed over is written; raise a failure instead.

        A failure kept from before is not raised again: the chunks it left are written
        again first, and a failure of that second try is raised.
        """
        with self._cond:
            self._error = None
            while True:
                self._raise_or_requeue()
                if not (self._queue or self._busy):
                    return
                self._cond.wait()

    def drop(self) -> None:
        """Wait for the chunk being written, then forget every failure and queued chunk
        (their rows are being discarded)."""
        with self._cond:
            self._queue.clear()
            while self._busy:
                self._cond.wait()
            self._queue.clear()
            self._retry = []
            self._error = None
            self._held = 0

    def close(self) -> None:
        """Stop the thread once its queue is empty and join it (no failure is raised)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    @property
    def failed(self) -> bool:
        """Whether a failure of the thread is kept, to be raised by the next call."""
        with self._cond:
            return self._error is not None

    @property
    def outstanding(self) -> int:
        """Chunks handed over and not yet written (queued, being written, or kept to retry)."""
        with self._cond:
            return len(self._queue) + int(self._busy) + len(self._retry)

    def _raise_or_requeue(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._retry:
            self._queue.extendleft(reversed(self._retry))
            self._held += sum(t.nbytes for t in self._retry)
            self._retry = []
            self._start()
            self._cond.notify_all()

    def _start(self) -> None:
        if self._thread is None:
            self._closed = False
            self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
            self._thread.start()

    # -- the thread's side -------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._closed:
                    self._cond.wait(IDLE_S)
                if not self._queue:  # closed, or idle: a later submit starts a new thread
                    self._thread = None
                    return
                task = self._queue.popleft()
                self._busy = True
            failure: BaseException | None = None
            try:
                task.run()
            except BaseException as exc:  # kept for the caller, whatever it is
                exc.add_note(f"(raised by the writer's background flush of {task.what})")
                failure = exc
            with self._cond:
                self._busy = False
                if failure is None:
                    self._held -= task.nbytes
                else:
                    self._error = failure
                    self._retry = [task, *self._queue]
                    self._queue.clear()
                    self._held = 0
                self._cond.notify_all()
