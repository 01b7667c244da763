"""Storage calls that survive transient faults and fail with wspace errors.

Every store wspace resolves is wrapped in a :class:`GuardedStore`. Each call to the storage
(get, set, list, exists, delete) that fails with a transient error — a dropped connection, an
HTTP 5xx, a timeout, an endpoint that is down — is retried with jittered exponential backoff,
a bounded number of times (:class:`RetryPolicy`). What still fails, or cannot succeed by
retrying, becomes a wspace error that names the store and the key:

* permission denied, read-only file system, or a read-only zarr store, while writing:
  :class:`~wspace.errors.ReadOnlyStoreError`;
* no space left (``ENOSPC``, ``EDQUOT``, ``EFBIG``): :class:`~wspace.errors.StorageError`,
  at once (retrying cannot free space);
* anything else after the last attempt: :class:`~wspace.errors.StorageError`.

Only errors that storage can cause are retried or converted: :class:`OSError` (which covers
timeouts, dropped connections, fsspec's ``FSTimeoutError`` and s3fs's translated S3 errors) and
the storage clients' own classes (aiohttp's ``ClientError``, botocore's ``BotoCoreError`` and
``ClientError``, ``http.client.HTTPException``, ``asyncio.IncompleteReadError``). Anything
else — ``AttributeError``, ``IndexError``, ``AssertionError``, ``TypeError``, ``KeyError``,
``ValueError``, ... — is a programming error: it passes unchanged, at once, with its traceback.
``FileNotFoundError`` and ``FileExistsError`` pass unchanged too: they are answers, not faults.
Retrying is safe because every write wspace makes is idempotent: a chunk PUT writes the same
bytes again, and a commit record is created only if absent and recognised as one's own when a
lost response makes the retry find it there (see :meth:`wspace.store.log.CommitLog.publish`).
"""

from __future__ import annotations

import asyncio
import errno
import http.client
import logging
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import WrapperStore

from wspace.errors import ReadOnlyStoreError, StorageError, WspaceError

__all__ = ["GuardedStore", "RetryPolicy", "guarded_call", "storage_fault"]

log = logging.getLogger(__name__)
T = TypeVar("T")

FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
DENIED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often, and how patiently, a failed storage call is retried.

    The defaults come from the environment variables ``WSPACE_IO_ATTEMPTS`` (4),
    ``WSPACE_IO_BACKOFF`` (0.25 seconds) and ``WSPACE_IO_TIMEOUT`` (120 seconds), read once
    per store resolved.

    Examples
    --------
    >>> policy = RetryPolicy(attempts=3, backoff=0.1, max_delay=1.0)
    >>> [round(d, 1) <= 0.4 for d in policy.delays()]
    [True, True]
    """

    attempts: int = 4
    """Tries in all (1: no retry)."""
    backoff: float = 0.25
    """Delay before the first retry, in seconds; doubled (with jitter) for each further one."""
    max_delay: float = 8.0
    """Upper bound of one delay."""
    timeout: float = 120.0
    """Seconds one try of an object-store call may take before it counts as failed. Client
    timeouts do not cover everything: an s3fs PUT to a server that stopped answering waits
    for its ``100 Continue`` forever."""

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """The policy set by ``WSPACE_IO_ATTEMPTS`` / ``WSPACE_IO_BACKOFF``, else the default."""
        env = os.environ
        return cls(
            attempts=max(1, int(env.get("WSPACE_IO_ATTEMPTS", 4))),
            backoff=max(0.0, float(env.get("WSPACE_IO_BACKOFF", 0.25))),
            timeout=max(0.001, float(env.get("WSPACE_IO_TIMEOUT", 120))),
        )

    def delays(self) -> Iterator[float]:
        """The ``attempts - 1`` sleeps between tries."""
        for i in range(self.attempts - 1):
            yield min(self.max_delay, self.backoff * 2**i * random.uniform(0.5, 1.5))


def _errno(exc: BaseException) -> int | None:
    code = getattr(exc, "errno", None)
    return code if isinstance(code, int) else None


CLIENT_ERRORS = (
    ("aiohttp", "ClientError"),  # connection reset or refused, server disconnected, cut payload
    ("botocore.exceptions", "BotoCoreError"),  # endpoint unreachable, read timeout, ...
    ("botocore.exceptions", "ClientError"),  # an error answer of S3 that s3fs did not translate
)
"""``(module, class)``: the storage clients' errors that are not :class:`OSError`."""


def storage_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is an error that storage can cause, rather than a programming error.

    Parameters
    ----------
    exc
        The exception a storage call raised.

    Returns
    -------
    bool
        True for :class:`OSError` and the storage clients' error classes (see the module's
        docstring), which the guard retries or converts; False for everything else.

    Examples
    --------
    >>> storage_fault(ConnectionResetError()), storage_fault(AttributeError("x"))
    (True, False)
    """
    if isinstance(exc, OSError | http.client.HTTPException | asyncio.IncompleteReadError):
        return True
    for module_name, class_name in CLIENT_ERRORS:
        module = sys.modules.get(module_name)  # a client never imported raised nothing
        cls = getattr(module, class_name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def _verdict(exc: Exception) -> str:
    """``pass`` (re-raise as is), ``denied``, ``full`` or ``retry``."""
    if isinstance(exc, WspaceError | FileNotFoundError | FileExistsError | NotADirectoryError):
        return "pass"
    if not storage_fault(exc):
        return "pass"  # a programming error, not a storage fault: surface it unchanged
    code = _errno(exc)
    if code in FULL:
        return "full"
    if isinstance(exc, PermissionError) or code in DENIED:
        return "denied"
    return "retry"


def _failure(exc: Exception, verdict: str, *, url: str, what: str, key: str, tries: int) -> OSError:
    cause = f"{type(exc).__name__}: {exc}"
    error: OSError
    if verdict == "denied" and what == "writing":
        error = ReadOnlyStoreError(
            f"store {url!r} refuses writing {key!r} (permission denied or read-only): {cause}"
        )
    elif verdict == "denied":
        error = StorageError(f"store {url!r}: permission denied {what} {key!r}: {cause}")
    elif verdict == "full":
        error = StorageError(
            f"store {url!r}: no space left {what} {key!r}; free space and try again "
            f"(uncommitted rows are kept, committed ones are safe): {cause}"
        )
    else:
        error = StorageError(f"store {url!r}: {what} {key!r} failed after {tries} tries: {cause}")
    error.errno = _errno(exc)
    return error


class _Tries:
    """Counts the tries of one call; says how long to wait, or raises the final error."""

    def __init__(self, policy: RetryPolicy, url: str, what: str, key: str) -> None:
        self.delays = iter(policy.delays())
        self.tries = 0
        self.where = (url, what, key)

    def failed(self, exc: Exception) -> float:
        self.tries += 1
        verdict = _verdict(exc)
        if verdict == "pass":
            raise exc
        delay = next(self.delays, None) if verdict == "retry" else None
        url, what, key = self.where
        if delay is None:
            raise _failure(exc, verdict, url=url, what=what, key=key, tries=self.tries) from exc
        log.warning("store %r: %s %r failed (%s); retry in %.2fs", url, what, key, exc, delay)
        return delay


async def guarded_call(
    call: Callable[[], Awaitable[T]],
    *,
    url: str,
    what: str,
    key: str,
    policy: RetryPolicy,
) -> T:
    """Await ``call()``, retrying transient failures; raise wspace errors for the rest."""
    tries = _Tries(policy, url, what, key)
    while True:
        try:
            try:
                return await asyncio.wait_for(call(), policy.timeout)
            except TimeoutError as exc:
                if str(exc):
                    raise
                raise TimeoutError(f"no answer within {policy.timeout:g} s") from None
        except Exception as exc:
            await asyncio.sleep(tries.failed(exc))


def guarded_sync(call: Callable[[], T], *, url: str, what: str, key: str, policy: RetryPolicy) -> T:
    """:func:`guarded_call` for synchronous calls (local files)."""
    tries = _Tries(policy, url, what, key)
    while True:
        try:
            return call()
        except Exception as exc:
            time.sleep(tries.failed(exc))


class GuardedStore(WrapperStore[Store]):
    """A zarr store whose calls retry transient faults and fail with wspace errors.

    Parameters
    ----------
    store
        The store to guard.
    url
        Its location, for messages.
    policy
        Retry policy (default: :meth:`RetryPolicy.from_env`).

    Examples
    --------
    >>> from zarr.core.buffer import default_buffer_prototype
    >>> from zarr.core.sync import sync
    >>> from zarr.storage import MemoryStore
    >>> store = GuardedStore(MemoryStore(read_only=True), url="memory://x")
    >>> sync(store.set("key", default_buffer_prototype().buffer.from_bytes(b"x")))
    Traceback (most recent call last):
    ...
    wspace.errors.ReadOnlyStoreError: store 'memory://x' is open read-only; it refuses writes
    """

    def __init__(self, store: Store, *, url: str = "", policy: RetryPolicy | None = None) -> None:
        super().__init__(store)
        self.url = url or str(store)
        self.policy = policy or RetryPolicy.from_env()

    def _with_store(self, store: Store) -> GuardedStore:
        return type(self)(store, url=self.url, policy=self.policy)

    def __repr__(self) -> str:
        return f"GuardedStore({self._store!r})"

    def _guard(self, call: Callable[[], Awaitable[T]], what: str, key: str) -> Awaitable[T]:
        return guarded_call(call, url=self.url, what=what, key=key, policy=self.policy)

    def _check_writable(self) -> None:
        if self._store.read_only:
            raise ReadOnlyStoreError(f"store {self.url!r} is open read-only; it refuses writes")

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        return await self._guard(
            lambda: self._store.get(key, prototype, byte_range), "reading", key
        )

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        ranges = list(key_ranges)
        keys = ", ".join(k for k, _ in ranges[:3])
        return await self._guard(
            lambda: self._store.get_partial_values(prototype, ranges), "reading", keys
        )

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> Any:
        for request in requests:
            yield (request[0], await self.get(*request))

    async def exists(self, key: str) -> bool:
        return await self._guard(lambda: self._store.exists(key), "checking", key)

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()
        await self._guard(lambda: self._store.set(key, value), "writing", key)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        self._check_writable()
        # zarr writes new metadata so; a retry after a lost response finds it there: no-op
        await self._guard(lambda: self._store.set_if_not_exists(key, value), "writing", key)

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        await asyncio.gather(*(self.set(k, v) for k, v in values))

    async def delete(self, key: str) -> None:
        self._check_writable()
        await self._guard(lambda: self._store.delete(key), "writing", key)

    async def delete_dir(self, prefix: str) -> None:
        self._check_writable()
        await self._guard(lambda: self._store.delete_dir(prefix), "writing", prefix)

    async def _listed(self, listing: Callable[[], AsyncIterator[str]], prefix: str) -> list[str]:
        async def collect() -> list[str]:
            return [key async for key in listing()]

        return await self._guard(collect, "listing", prefix)

    async def list(self) -> AsyncIterator[str]:
        for key in await self._listed(self._store.list, ""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for key in await self._listed(lambda: self._store.list_prefix(prefix), prefix):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        for key in await self._listed(lambda: self._store.list_dir(prefix), prefix):
            yield key
