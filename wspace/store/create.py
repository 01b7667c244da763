"""Creating stores and adding architecture groups."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import zarr

from wspace.errors import CommitConflictError, SchemaMismatchError, StoreExistsError, WspaceError
from wspace.layout import Layout
from wspace.store.backend import StoreLike, resolve
from wspace.store.config import FORMAT_VERSION, StoreConfig
from wspace.store.log import CommitLog, replay
from wspace.store.records import AddArchRecord, CreateRecord, Record

__all__ = ["add_arch", "create"]

ARCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _check_arch_name(name: str) -> None:
    if not ARCH_NAME.fullmatch(name):
        raise SchemaMismatchError(
            f"architecture name {name!r} must be 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def create(
    url: StoreLike,
    layout: Layout | Sequence[Layout],
    *,
    storage_options: Mapping[str, Any] | None = None,
    codec: str = "blosc-zstd",
    chunks: int | dict[str, int] | None = None,
    **settings: Any,
) -> None:
    """Create an empty wspace store.

    Parameters
    ----------
    url
        Local path or fsspec URL (``s3://bucket/zoo.zarr``, ``memory://zoo``) or zarr store.
    layout
        The parameter layout of the architecture, or several (one architecture group each,
        named by ``Layout.name``).
    storage_options
        fsspec options, e.g. ``{"endpoint_url": "http://127.0.0.1:5555"}`` for S3.
    codec
        Codec preset for weight chunks; see :data:`wspace.store.config.CODECS`.
    chunks
        Rows per chunk of compacted archives (one number, or ``{layer: rows}``); by default
        a layer's chunks hold as many rows as fit in ``chunk_bytes`` (128 KiB; at least one
        row), in shards of about ``shard_bytes`` (32 MiB). Writer segments are chunked by
        ``segment_bytes`` (4 MiB) or ``segment_rows``.
    **settings
        Further :class:`~wspace.store.config.StoreConfig` fields (``segment_rows``,
        ``chunk_bytes``, ``meta_rows``, ``commit_every``, ...).

    Raises
    ------
    StoreExistsError
        A store already exists at ``url``.

    Examples
    --------
    >>> import wspace
    >>> from wspace.architectures import lenet5_layout
    >>> wspace.create("memory://doc-create", lenet5_layout())
    >>> len(wspace.open("memory://doc-create"))
    0
    """
    layouts = [layout] if isinstance(layout, Layout) else list(layout)
    if not layouts:
        raise SchemaMismatchError("create() needs at least one layout")
    names = [lay.name for lay in layouts]
    if len(set(names)) != len(names):
        raise SchemaMismatchError(f"layouts must have distinct names; got {names}")
    for name in names:
        _check_arch_name(name)
    try:
        config = StoreConfig(codec=codec, chunks=chunks, **settings)
    except TypeError as exc:
        raise SchemaMismatchError(f"unknown store setting: {exc}") from exc
    backend = resolve(url, storage_options=storage_options)
    log = CommitLog(backend)
    record = CreateRecord(
        format_version=FORMAT_VERSION, config=config, archs={lay.name: lay for lay in layouts}
    )
    try:
        log.publish(record)
    except CommitConflictError:
        raise StoreExistsError(f"a wspace store already exists at {backend.url!r}") from None
    root = zarr.open_group(backend.store, mode="a")
    root.attrs["wspace"] = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "note": "rows are defined by the commit log in _log/, not by array shapes",
    }
    for lay in layouts:
        root.require_group(f"archs/{lay.name}").attrs["wspace"] = {"layout": lay.to_dict()}


def add_arch(
    url: StoreLike, layout: Layout, *, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Add an architecture group to an existing store.

    Adding a layout identical to an existing group of the same name does nothing; a
    different layout under an existing name raises :class:`SchemaMismatchError`.
    """
    _check_arch_name(layout.name)
    backend = resolve(url, storage_options=storage_options)
    log = CommitLog(backend)
    log.refresh()

    def validate(records: list[Record]) -> None:
        current = replay(log.records).archs.get(layout.name)
        if current is not None:
            if current.layout == layout:
                raise _AlreadyThere
            raise SchemaMismatchError(
                f"store {backend.url!r} already has an architecture {layout.name!r} with a "
                "different layout"
            )

    try:
        validate(log.records)
        log.publish(AddArchRecord(arch=layout.name, layout=layout), validate)
    except _AlreadyThere:
        return
    zarr.open_group(backend.store, mode="a").require_group(f"archs/{layout.name}").attrs[
        "wspace"
    ] = {"layout": layout.to_dict()}


class _AlreadyThere(WspaceError):
    pass
