"""Reading the fields of a commit record's JSON form, each checked, for :mod:`.records`.

A field that is missing or of the wrong type or form raises
:class:`~wspace.errors.CorruptDataError` naming the store, the record (``_log/<n>.json``) and
the field, so that a log that cannot be replayed exactly is refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

from wspace.errors import CorruptDataError, SchemaMismatchError
from wspace.layout import Layout
from wspace.store.columns import NUMERIC

__all__ = [
    "LOG_DIR",
    "SEGMENT_ID",
    "Columns",
    "FieldReader",
    "RowKey",
    "as_key",
    "check_version",
    "record_key",
    "record_name",
]

LOG_DIR = "_log"
SEGMENT_ID = re.compile(r"\d{13}-[0-9a-f]{12}")
"""Form of segment identifiers (see :func:`wspace.store.log.new_id`)."""
COLUMN_KEY = re.compile(r"(?!__)(?!\.\.?$)(?!zarr\.json$)[^\s/]+")
"""Form of metadata-column array names inside a segment: ``m000``, ... in format 1; in
format 2 also the column's own name (any Zarr node name without white space, see
:func:`wspace.store.naming.usable_name`)."""
COLUMN_KINDS = frozenset({*NUMERIC, "str", "json"})
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
"""Form of a record's ``time``: ``time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())``."""

RowKey: TypeAlias = tuple[str, "int | None"]
"""Identity of a row: ``(model, step)``; ``step`` is ``None`` for zoos without snapshots."""
Columns: TypeAlias = dict[str, tuple[str, str]]
"""Metadata columns of one segment: name -> (kind, array key)."""


def record_key(version: int) -> str:
    """Object key of the record with this version."""
    return f"{LOG_DIR}/{version:020d}.json"


def as_key(item: Iterable[Any]) -> RowKey:
    """A row key from its JSON form ``[model, step]``."""
    model, step = item
    return (str(model), None if step is None else int(step))


class FieldReader:
    """Reads the fields of one record's JSON form; a wrong one raises naming the record.

    ``version`` is the log position the record was read from (``None``: a draft);
    ``keys_left_out``: a ``compact`` record as a checkpoint stores it, without its keys.
    """

    def __init__(
        self, data: Mapping[str, Any], url: str, version: int | None, *, keys_left_out: bool = False
    ) -> None:
        self.data = data
        self.url = url
        self.version = version
        self.where = record_name(url, version)
        self.keys_left_out = keys_left_out

    def fail(self, problem: str) -> CorruptDataError:
        """The error to raise: this record is malformed, because of ``problem``."""
        return CorruptDataError(
            f"{self.where} is malformed ({problem}); the store is refused rather than shown "
            "without it"
        )

    def get(self, name: str) -> Any:
        """A field that must be present, as it is."""
        if name not in self.data:
            raise self.fail(f"field {name!r} is missing")
        return self.data[name]

    def text(self, name: str) -> str:
        """A string field that must be present."""
        value = self.get(name)
        if not isinstance(value, str):
            raise self.fail(f"field {name!r} is {value!r}, not a string")
        return value

    def maybe_text(self, name: str) -> str | None:
        """A string field that may be absent (``None``)."""
        return self.text(name) if name in self.data else None

    def count(self, name: str) -> int:
        """An integer field >= 0 (a row number, a row count, a version)."""
        value = self.get(name)
        if type(value) is not int or value < 0:
            raise self.fail(f"field {name!r} is {value!r}, not a count (an integer >= 0)")
        return value

    def segment(self) -> str:
        """The ``segment`` field: a segment id of the form wspace makes (no path tricks)."""
        value = self.get("segment")
        if not isinstance(value, str) or not SEGMENT_ID.fullmatch(value):
            raise self.fail(f"field 'segment': segment id {value!r} is not one wspace makes")
        return value

    def layout(self, name: str, value: Any) -> Layout:
        """``value`` (field ``name``) as a layout."""
        try:
            return Layout.from_dict(value)
        except (SchemaMismatchError, TypeError, ValueError, KeyError, AttributeError) as exc:
            raise self.fail(f"field {name!r} is not a layout: {exc}") from None

    def keys(self, name: str) -> tuple[RowKey, ...]:
        """A list of ``[model, step]`` row keys."""
        value = self.get(name)
        if not isinstance(value, list):
            raise self.fail(f"field {name!r} is {type(value).__name__}, not a list of keys")
        out: list[RowKey] = []
        for item in value:
            if not (
                isinstance(item, list)
                and len(item) == 2
                and isinstance(item[0], str)
                and (item[1] is None or type(item[1]) is int)
            ):
                raise self.fail(f"field {name!r} holds {item!r}, not a [model, step] key")
            out.append((item[0], item[1]))
        return tuple(out)

    def columns(self) -> Columns:
        """The ``columns`` field: name -> ``[kind, array key]`` (absent: none)."""
        value = self.data.get("columns", {})
        if not isinstance(value, dict):
            raise self.fail(f"field 'columns' is {type(value).__name__}, not an object")
        out: Columns = {}
        for column, spec in value.items():
            if not (
                isinstance(spec, list)
                and len(spec) == 2
                and spec[0] in COLUMN_KINDS
                and isinstance(spec[1], str)
                and COLUMN_KEY.fullmatch(spec[1])
            ):
                raise self.fail(
                    f"field 'columns': column {column!r} is {spec!r}, not [kind, array key] "
                    f"with a kind of {sorted(COLUMN_KINDS)}"
                )
            out[column] = (spec[0], spec[1])
        return out


def record_name(url: str, version: int | None) -> str:
    """How messages name a record: the store and ``commit record _log/<n>.json``."""
    store = f"store {url!r}: " if url else ""
    name = "draft commit record" if version is None else f"commit record {record_key(version)}"
    return store + name


def check_version(fields: FieldReader) -> None:
    """A published record's ``version`` field must be its place in the log (its name)."""
    said = fields.data.get("version")
    if fields.version is not None and (type(said) is not int or said != fields.version):
        raise CorruptDataError(
            f"{fields.where} is corrupt (its version field says {said!r}, its name "
            f"{fields.version})"
        )
