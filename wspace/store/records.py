"""Typed commit records: one frozen dataclass per operation, and their JSON form on storage.

A record is ``_log/<version>.json``, a JSON object whose ``op`` names its kind:

:class:`CreateRecord`    ``create``   version 0: format version, store settings, first layouts.
:class:`AddArchRecord`   ``add_arch`` a new architecture group and its layout.
:class:`AppendRecord`    ``append``   rows ``[start, stop)`` of a writer segment become visible.
:class:`CompactRecord`   ``compact``  an archive segment holds an arch's rows as of ``base``.

Every published record also carries ``txn`` (the commit's identifier; absent in records
written before commits had one), ``version`` (its place in the log) and ``time`` (UTC, to the
second). A record not yet published (a *draft*) has them ``None``;
:meth:`~wspace.store.log.CommitLog.publish` fills them in.

:func:`parse_record` reads one record's JSON form and checks every field, raising
:class:`~wspace.errors.CorruptDataError` that names the store, the record and the field;
``to_json`` gives back the form wspace writes, key for key in the order it always wrote them,
so that ``json.dumps(record.to_json(), separators=(",", ":"))`` is byte for byte what is stored.

Examples
--------
>>> rec = parse_record(
...     {"op": "add_arch", "arch": "mlp", "layout": {"tensors": [{"name": "fc/w", "shape": [2]}]},
...      "txn": "t1", "version": 1, "time": "2026-01-01T00:00:00Z"},
...     version=1,
... )
>>> type(rec).__name__, rec.arch, rec.layout.size, list(rec.to_json())
('AddArchRecord', 'mlp', 2, ['op', 'arch', 'layout', 'txn', 'version', 'time'])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from wspace.errors import CorruptDataError, SchemaMismatchError
from wspace.layout import Layout
from wspace.store.config import FORMAT_VERSION, StoreConfig
from wspace.store.record_fields import (
    LOG_DIR,
    SEGMENT_ID,
    TIME,
    Columns,
    FieldReader,
    RowKey,
    as_key,
    check_version,
    record_key,
    record_name,
)

__all__ = [
    "LOG_DIR",
    "RECORD_TYPES",
    "SEGMENT_ID",
    "AddArchRecord",
    "AppendRecord",
    "Columns",
    "CompactRecord",
    "CreateRecord",
    "Record",
    "RowKey",
    "as_key",
    "parse_record",
    "record_key",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Record:
    """Fields every commit record carries; ``None`` in a draft (not yet published)."""

    OP: ClassVar[str] = ""
    """The ``op`` this kind of record is stored with."""

    txn: str | None = None
    """Identifier of the commit (``None`` also in records written before commits had one)."""
    version: int | None = None
    """Place in the log: the record is ``_log/<version>.json``."""
    time: str | None = None
    """When it was published, UTC, ``YYYY-MM-DDTHH:MM:SSZ``."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, version: int | None, url: str = "") -> Self:
        """The record from its JSON form; ``version``: the log position it was read from.

        ``version=None`` reads a draft (a record not yet published): ``txn``, ``version`` and
        ``time`` are then optional.

        Raises
        ------
        CorruptDataError
            A field is missing or of the wrong type or form; the message names the store,
            the record and the field.
        """
        return cls._parse(FieldReader(data, url, version))

    @classmethod
    def _parse(cls, fields: FieldReader) -> Self:
        op = fields.data.get("op")
        if op != cls.OP:
            raise fields.fail(f"op is {op!r}, not {cls.OP!r}")
        return cls(**cls._fields_from_json(fields), **_published(fields))

    @classmethod
    def _fields_from_json(cls, fields: FieldReader) -> dict[str, Any]:
        return {}

    def _body(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> dict[str, Any]:
        """The JSON form, as stored: ``op``, the kind's fields, then ``txn, version, time``."""
        out: dict[str, Any] = {"op": self.OP, **self._body()}
        for name in ("txn", "version", "time"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def published(self, *, txn: str, version: int, time: str) -> Self:
        """This record as published at ``version`` (a copy; records are immutable)."""
        return dataclasses.replace(self, txn=txn, version=version, time=time)


@dataclass(frozen=True, kw_only=True, slots=True)
class CreateRecord(Record):
    """Version 0: the store's format version, settings and first architecture groups."""

    OP: ClassVar[str] = "create"
    format_version: int = FORMAT_VERSION
    """On-storage format the store was written in."""
    config: StoreConfig = dataclasses.field(default_factory=StoreConfig)
    """Store settings."""
    archs: Mapping[str, Layout] = dataclasses.field(default_factory=dict)
    """Architecture group name -> layout."""

    @classmethod
    def _fields_from_json(cls, fields: FieldReader) -> dict[str, Any]:
        fmt = fields.data.get("format_version", 1)
        if type(fmt) is not int:
            raise fields.fail(f"field 'format_version' is {fmt!r}, not an integer")
        if fmt > FORMAT_VERSION:
            raise SchemaMismatchError(
                f"{f'store {fields.url!r}: ' if fields.url else ''}written in wspace store "
                f"format {fmt}; this wspace reads formats up to {FORMAT_VERSION}: upgrade wspace"
            )
        config = fields.data.get("config", {})
        try:
            settings = StoreConfig.from_dict(config)
        except (SchemaMismatchError, TypeError, ValueError, AttributeError) as exc:
            raise fields.fail(f"field 'config' is not store settings: {exc}") from None
        archs = fields.data.get("archs", {})
        if not isinstance(archs, dict):
            raise fields.fail(f"field 'archs' is {type(archs).__name__}, not an object")
        return {
            "format_version": fmt,
            "config": settings,
            "archs": {str(name): fields.layout(f"archs.{name}", d) for name, d in archs.items()},
        }

    def _body(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "config": self.config.to_dict(),
            "archs": {name: layout.to_dict() for name, layout in self.archs.items()},
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class AddArchRecord(Record):
    """A new architecture group and its layout."""

    OP: ClassVar[str] = "add_arch"
    arch: str
    """Architecture group name."""
    layout: Layout
    """Its parameter layout."""

    @classmethod
    def _fields_from_json(cls, fields: FieldReader) -> dict[str, Any]:
        layout = fields.layout("layout", fields.get("layout"))
        return {"arch": fields.text("arch"), "layout": layout}

    def _body(self) -> dict[str, Any]:
        return {"arch": self.arch, "layout": self.layout.to_dict()}


@dataclass(frozen=True, kw_only=True, slots=True)
class AppendRecord(Record):
    """Rows ``[start, stop)`` of a writer segment become visible."""

    OP: ClassVar[str] = "append"
    arch: str
    """Architecture group."""
    segment: str
    """Writer segment holding the rows."""
    start: int
    """First row of the segment this record makes visible."""
    stop: int
    """One past its last row."""
    keys: tuple[RowKey, ...]
    """Keys of the rows, in row order (``stop - start`` of them)."""
    columns: Columns = dataclasses.field(default_factory=dict)
    """The segment's metadata columns as of this record."""
    replaces: tuple[RowKey, ...] = ()
    """Those of ``keys`` that replace rows committed earlier."""
    writer: str | None = None
    """Identifier of the writer that published it."""

    @classmethod
    def _fields_from_json(cls, fields: FieldReader) -> dict[str, Any]:
        start, stop = fields.count("start"), fields.count("stop")
        keys = fields.keys("keys")
        if not start < stop or len(keys) != stop - start:
            raise fields.fail(f"rows {start}-{stop} do not match its {len(keys)} keys")
        return {
            "arch": fields.text("arch"),
            "segment": fields.segment(),
            "start": start,
            "stop": stop,
            "keys": keys,
            "columns": fields.columns(),
            "replaces": fields.keys("replaces") if "replaces" in fields.data else (),
            "writer": fields.maybe_text("writer"),
        }

    def _body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "arch": self.arch,
            "segment": self.segment,
            "start": self.start,
            "stop": self.stop,
            "keys": [list(k) for k in self.keys],
            "columns": {name: list(spec) for name, spec in self.columns.items()},
            "replaces": [list(k) for k in self.replaces],
        }
        if self.writer is not None:
            out["writer"] = self.writer
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class CompactRecord(Record):
    """An archive segment now holds the arch's rows as of version ``base``.

    Later ``append`` records apply on top of it. A checkpoint stores it without its keys
    (``keys`` is then ``None``, see :meth:`without_keys`).
    """

    OP: ClassVar[str] = "compact"
    arch: str
    """Architecture group."""
    base: int
    """The log version whose visible rows the archive holds."""
    segment: str
    """The archive segment."""
    rows: int
    """Rows in the archive."""
    keys: tuple[RowKey, ...] | None
    """Keys of the rows, in row order; ``None`` where left out (in a checkpoint)."""
    columns: Columns = dataclasses.field(default_factory=dict)
    """The archive's metadata columns."""
    path: str | None = None
    """Group path of the archive when it is not ``archs/<arch>/seg/<segment>`` (``""``: the
    store's root, as in an export); ``None``: there (format 2; absent before)."""

    @classmethod
    def from_checkpoint_json(
        cls, data: Mapping[str, Any], *, version: int | None, url: str = ""
    ) -> Self:
        """As :meth:`~Record.from_json`, for the form a checkpoint stores (no ``keys``)."""
        return cls._parse(FieldReader(data, url, version, keys_left_out=True))

    @classmethod
    def _fields_from_json(cls, fields: FieldReader) -> dict[str, Any]:
        rows = fields.count("rows")
        keys = None if fields.keys_left_out else fields.keys("keys")
        if keys is not None and len(keys) != rows:
            raise fields.fail(f"{rows} rows do not match its {len(keys)} keys")
        path = fields.data.get("path")
        if path is not None and not (
            isinstance(path, str) and all(p and p not in (".", "..") for p in _parts(path))
        ):
            raise fields.fail(f"field 'path' is {path!r}, not a group path inside the store")
        return {
            "arch": fields.text("arch"),
            "base": fields.count("base"),
            "segment": fields.segment(),
            "rows": rows,
            "keys": keys,
            "columns": fields.columns(),
            "path": path,
        }

    def _body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "arch": self.arch,
            "base": self.base,
            "segment": self.segment,
            "rows": self.rows,
        }
        if self.keys is not None:
            out["keys"] = [list(k) for k in self.keys]
        out["columns"] = {name: list(spec) for name, spec in self.columns.items()}
        if self.path is not None:
            out["path"] = self.path
        return out

    def without_keys(self) -> CompactRecord:
        """This record as a checkpoint stores it: its row keys left out."""
        return dataclasses.replace(self, keys=None)


RECORD_TYPES: dict[str, type[Record]] = {
    t.OP: t for t in (CreateRecord, AddArchRecord, AppendRecord, CompactRecord)
}
"""Record kinds this wspace knows, by ``op``; a log holding another kind is refused."""


def parse_record(data: Any, *, version: int | None, url: str = "") -> Record:
    """The typed record of one record's JSON form (the object ``json.loads`` gave).

    Parameters
    ----------
    data
        The decoded JSON.
    version
        The log position it was read from (its ``version`` field must say the same);
        ``None`` for a draft, a record not yet published.
    url
        The store, for messages.

    Raises
    ------
    CorruptDataError
        Not an object, a ``version`` that is not its position, an unknown ``op`` (written by a
        newer wspace?) or a malformed field; the message names the store and the record.
    SchemaMismatchError
        A ``create`` record of a newer store format.
    """
    if not isinstance(data, dict):
        raise CorruptDataError(f"{record_name(url, version)} is corrupt (not a JSON object)")
    fields = FieldReader(data, url, version)
    check_version(fields)
    if "op" not in data:
        raise CorruptDataError(f"{fields.where} is corrupt (no 'op' field)")
    op = data.get("op")
    kind = RECORD_TYPES.get(op) if isinstance(op, str) else None
    if kind is None:
        raise fields.fail(f"unknown op {op!r}: written by a newer wspace?")
    return kind._parse(fields)


def _parts(path: str) -> list[str]:
    """The names of a group path (none for the root, ``""``)."""
    return path.split("/") if path else []


def _published(fields: FieldReader) -> dict[str, Any]:
    """The ``txn``, ``version`` and ``time`` fields, checked."""
    check_version(fields)
    txn = fields.maybe_text("txn")
    version = fields.version
    if version is None:
        stamp = fields.maybe_text("time")
        version = fields.data.get("version")
        if version is not None and (type(version) is not int or version < 0):
            raise fields.fail(f"field 'version' is {version!r}, not a log position")
    else:
        stamp = fields.text("time")
    if stamp is not None and not TIME.fullmatch(stamp):
        raise fields.fail(f"field 'time' is {stamp!r}, not YYYY-MM-DDTHH:MM:SSZ")
    return {"txn": txn, "version": version, "time": stamp}
