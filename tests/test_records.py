"""Typed commit records: byte-compatible JSON, validation naming the record, one replay."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wspace
from wspace.errors import CorruptDataError, SchemaMismatchError
from wspace.layout import Layout
from wspace.store.backend import resolve
from wspace.store.checkpoint import POINTER, checkpoint_key, load_checkpoint, write_checkpoint
from wspace.store.config import StoreConfig
from wspace.store.log import CommitLog, StoreState, replay
from wspace.store.records import (
    SEGMENT_ID,
    AddArchRecord,
    AppendRecord,
    CompactRecord,
    CreateRecord,
    Record,
    parse_record,
    record_key,
)
from wspace.store.state import LazyKeysArchState
from wspace.testing import SMALL_LAYOUT, tiny_weights, tiny_zoo

STORES = Path(__file__).parent / "data" / "stores"
FIXTURE_LOG = STORES / "v1-main.zarr" / "_log"
SMALL = Layout.from_dict(SMALL_LAYOUT)
MLP = Layout.from_dict({"name": "mlp", "tensors": [{"name": "fc/weight", "shape": [2, 3]}]})
KINDS = {
    "create": CreateRecord,
    "add_arch": AddArchRecord,
    "append": AppendRecord,
    "compact": CompactRecord,
}


def dumps(data: dict[str, Any]) -> bytes:
    """How the commit log writes a record."""
    return json.dumps(data, separators=(",", ":")).encode()


def fixture_raw(version: int) -> bytes:
    return (FIXTURE_LOG / f"{version:020d}.json").read_bytes()


def fixture_json(op: str) -> tuple[int, dict[str, Any]]:
    """The first record of kind ``op`` in the fixture store (written by main 4e461f9)."""
    for version in range(9):
        data = json.loads(fixture_raw(version))
        if data["op"] == op:
            return version, data
    raise AssertionError(op)


def log_records(url: str) -> list[Record]:
    log = CommitLog(resolve(url))
    log.refresh()
    return log.records


# -- byte compatibility -------------------------------------------------------------------------
@pytest.mark.parametrize("version", range(9))
def test_every_record_main_wrote_parses_and_writes_back_byte_for_byte(version: int) -> None:
    raw = fixture_raw(version)
    data = json.loads(raw)
    rec = parse_record(data, version=version, url="fixture")
    assert type(rec) is KINDS[data["op"]] and rec.version == version
    assert dumps(rec.to_json()) == raw
    assert list(rec.to_json()) == list(data)  # field order too


def test_a_checkpoint_written_now_is_byte_for_byte_the_one_main_wrote(tmp_path: Path) -> None:
    url = str(tmp_path / "v1.zarr")
    shutil.copytree(STORES / "v1-main.zarr", url)
    expected = Path(url, checkpoint_key(6)).read_bytes()
    Path(url, checkpoint_key(6)).unlink()
    Path(url, POINTER).unlink()
    write_checkpoint(resolve(url), log_records(url)[:7])
    assert Path(url, checkpoint_key(6)).read_bytes() == expected


def _normalised(raw: bytes) -> str:
    """A record's bytes with what differs between runs (ids, txn, time) masked."""
    text = SEGMENT_ID.sub("<id>", raw.decode())
    text = re.sub(r'"txn":"[^"]*"', '"txn":"<txn>"', text)
    return re.sub(r'"time":"[^"]*"', '"time":"<time>"', text)


def test_records_written_now_are_those_main_wrote_for_the_same_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a store of format 1 (what main created): this wspace writes into it in format 1
    monkeypatch.setattr(importlib.import_module("wspace.store.create"), "FORMAT_VERSION", 1)
    spec = importlib.util.spec_from_file_location("make_v1_store", STORES / "make_v1_store.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(tmp_path)  # the commits that wrote the fixture, by this wspace
    log = tmp_path / "v1-main.zarr" / "_log"
    names = sorted(p.name for p in log.iterdir())
    assert names == sorted(p.name for p in FIXTURE_LOG.iterdir())
    for name in names:
        assert _normalised((log / name).read_bytes()) == _normalised(
            (FIXTURE_LOG / name).read_bytes()
        ), name


# -- every kind, in code and back ---------------------------------------------------------------
def _examples() -> list[Record]:
    stamp: dict[str, Any] = {"txn": "t", "version": 3, "time": "2026-01-02T03:04:05Z"}
    keys = (("a", 1), ("b", None))
    columns = {"model": ("str", "m000"), "step": ("int", "m001")}
    segment = "1796266888477-ad94f007a273"
    return [
        CreateRecord(config=StoreConfig(codec="zstd"), archs={"small": SMALL}, **stamp),
        AddArchRecord(arch="mlp", layout=MLP, **stamp),
        AppendRecord(
            arch="small",
            segment=segment,
            start=2,
            stop=4,
            keys=keys,
            columns=columns,
            replaces=(("a", 1),),
            writer="1796266888447-8020c23bbfc1",
            **stamp,
        ),
        AppendRecord(  # as written before commits had a txn (no txn field)
            arch="small",
            segment=segment,
            start=0,
            stop=2,
            keys=keys,
            columns=columns,
            writer="w",
            version=3,
            time="2026-01-02T03:04:05Z",
        ),
        CompactRecord(arch="mlp", base=2, segment=segment, rows=2, keys=keys, **stamp),
    ]


@pytest.mark.parametrize("rec", _examples(), ids=lambda r: type(r).__name__)
def test_every_record_kind_round_trips_through_its_json_form(rec: Record) -> None:
    data = json.loads(dumps(rec.to_json()))
    back = parse_record(data, version=3, url="mem")
    assert back == rec
    assert dumps(back.to_json()) == dumps(rec.to_json())
    assert next(iter(data)) == "op" and list(data)[-2:] == ["version", "time"]
    assert ("txn" in data) == (rec.txn is not None)
    # a draft (not yet published) has no txn, version, time; publishing fills them in
    draft = parse_record(
        {k: v for k, v in data.items() if k not in ("txn", "version", "time")}, version=None
    )
    assert draft.version is None and "version" not in draft.to_json()
    assert draft.published(txn="t", version=3, time=rec.time or "") == back.published(
        txn="t", version=3, time=rec.time or ""
    )


def test_a_compact_record_without_its_keys_is_the_form_a_checkpoint_stores() -> None:
    rec = _examples()[-1]
    assert isinstance(rec, CompactRecord)
    short = rec.without_keys()
    assert short.keys is None and "keys" not in short.to_json()
    back = CompactRecord.from_checkpoint_json(short.to_json(), version=3, url="mem")
    assert back == short
    with pytest.raises(CorruptDataError, match=r"field 'keys' is missing"):
        parse_record(short.to_json(), version=3, url="mem")  # in the log, keys are required


def test_records_are_typed_not_dicts() -> None:
    rec = parse_record(json.loads(fixture_raw(7)), version=7)
    assert isinstance(rec, AppendRecord) and rec.replaces == (("s1", 2),)
    assert rec.keys == (("s9", 1), ("s1", 2)) and rec.to_json()["keys"] == [["s9", 1], ["s1", 2]]
    with pytest.raises(TypeError):
        rec["op"]  # type: ignore[index]  # records are read by attribute, not as dicts


# -- validation ---------------------------------------------------------------------------------
DELETE = object()
MALFORMED: list[tuple[str, str, Any, str]] = [
    # (op, field, new value or DELETE, what the message says)
    ("create", "format_version", "1", "'format_version'"),
    ("create", "config", "fast", "'config'"),
    ("create", "config", {"codec": "no-such-codec"}, "'config'"),
    ("create", "config", {"meta_rows": 0}, "'config'"),
    ("create", "archs", [], "'archs'"),
    ("create", "archs", {"small": {"tensors": 5}}, "'archs.small'"),
    ("add_arch", "arch", DELETE, "'arch' is missing"),
    ("add_arch", "arch", 5, "'arch'"),
    ("add_arch", "layout", DELETE, "'layout' is missing"),
    ("add_arch", "layout", {"tensors": [{"name": "x"}]}, "'layout'"),
    ("append", "arch", DELETE, "'arch' is missing"),
    ("append", "segment", "../../etc", "segment id"),
    ("append", "segment", 7, "segment id"),
    ("append", "start", -1, "'start'"),
    ("append", "start", "0", "'start'"),
    ("append", "stop", DELETE, "'stop' is missing"),
    ("append", "stop", 99, "do not match"),
    ("append", "keys", DELETE, "'keys' is missing"),
    ("append", "keys", {"a": 1}, "'keys'"),
    ("append", "keys", [["a"], ["b", 1]], "'keys'"),
    ("append", "keys", [[1, 2], ["b", 1]], "'keys'"),
    ("append", "keys", [["a", 1.5], ["b", 1]], "'keys'"),
    ("append", "keys", [["a", True], ["b", 1]], "'keys'"),
    ("append", "columns", [], "'columns'"),
    ("append", "columns", {"x": ["weird", "m000"]}, "'columns'"),
    ("append", "columns", {"x": ["int", "../w000"]}, "'columns'"),
    ("append", "replaces", "s1", "'replaces'"),
    ("append", "writer", 5, "'writer'"),
    ("append", "txn", 5, "'txn'"),
    ("append", "time", DELETE, "'time' is missing"),
    ("append", "time", "yesterday", "'time'"),
    ("compact", "base", -1, "'base'"),
    ("compact", "rows", "8", "'rows'"),
    ("compact", "rows", 9, "do not match"),
    ("compact", "keys", DELETE, "'keys' is missing"),
    ("compact", "segment", "x", "segment id"),
    ("compact", "columns", {"x": "int"}, "'columns'"),
]


@pytest.mark.parametrize(("op", "field", "value", "says"), MALFORMED)
def test_a_malformed_field_is_refused_naming_store_record_and_field(
    op: str, field: str, value: Any, says: str
) -> None:
    version, data = fixture_json(op)
    if value is DELETE:
        del data[field]
    else:
        data[field] = value
    url = "s3://bucket/zoo.zarr"
    with pytest.raises(CorruptDataError) as info:
        parse_record(data, version=version, url=url)
    message = str(info.value)
    assert url in message and record_key(version) in message
    assert "is malformed" in message and says in message, message


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ([1, 2], "is corrupt (not a JSON object)"),
        ({"op": "append"}, "is corrupt (its version field says None"),
        ({"op": "append", "version": 4}, "is corrupt (its version field says 4"),
        ({"version": 2}, "is corrupt (no 'op' field)"),
        ({"op": "merge", "version": 2}, "is malformed (unknown op 'merge': written by a newer"),
        ({"op": 5, "version": 2}, "is malformed (unknown op 5"),
    ],
)
def test_an_unknown_op_or_a_wrong_version_is_refused(data: Any, says: str) -> None:
    with pytest.raises(CorruptDataError) as info:
        parse_record(data, version=2, url="zoo")
    assert says in str(info.value) and record_key(2) in str(info.value)


def test_a_newer_store_format_is_a_schema_mismatch_naming_the_store() -> None:
    version, data = fixture_json("create")
    data["format_version"] = 99
    with pytest.raises(SchemaMismatchError, match=r"store 'zoo': .*format 99.*upgrade wspace"):
        parse_record(data, version=version, url="zoo")


def test_a_record_of_another_kind_is_refused_by_from_json() -> None:
    version, data = fixture_json("append")
    with pytest.raises(CorruptDataError, match=r"op is 'append', not 'compact'"):
        CompactRecord.from_json(data, version=version, url="zoo")


def test_publish_takes_a_typed_draft_or_its_json_form(tmp_path: Path) -> None:
    url = tiny_zoo(str(tmp_path / "z.zarr"), 1, layout=SMALL)
    log = CommitLog(resolve(url))
    log.refresh()
    first = log.publish(AddArchRecord(arch="mlp", layout=MLP))
    second = log.publish({"op": "add_arch", "arch": "other", "layout": MLP.to_dict()})
    assert [type(r) for r in log_records(url)[first:]] == [AddArchRecord, AddArchRecord]
    assert log_records(url)[second].version == second == first + 1
    with pytest.raises(CorruptDataError, match=r"draft commit record is malformed.*'layout'"):
        log.publish({"op": "add_arch", "arch": "bad"})
    assert len(log_records(url)) == second + 1


# -- one replay: from a checkpoint as from every record -----------------------------------------
def _same_state(a: StoreState, b: StoreState) -> None:
    assert a.version == b.version and a.config == b.config and list(a.archs) == list(b.archs)
    for name in a.archs:
        x, y = a.archs[name], b.archs[name]
        assert x.layout == y.layout and x.columns == y.columns and x.n_rows == y.n_rows
        xs, ys = x.merged(), y.merged()
        assert [(p.segment, p.start, p.stop) for p in xs] == [
            (p.segment, p.start, p.stop) for p in ys
        ]
        for p, q in zip(xs, ys, strict=True):
            assert (p.live is None) == (q.live is None)
            assert p.live is None or (q.live is not None and np.array_equal(p.live, q.live))
        assert x.keys == y.keys


def _append(url: str, names: list[str], *, seed: int, replace: bool = False) -> None:
    with wspace.writer(url, commit_every=2) as w:
        for k, name in enumerate(names):
            w.append(
                tiny_weights(seed + k, SMALL.size),
                model=name,
                arch="small",
                seed=seed + k,
                replace=replace,
            )


def _fixture(tmp: Path) -> str:
    url = str(tmp / "v1.zarr")
    shutil.copytree(STORES / "v1-main.zarr", url)
    return url


def _compact_then_append(tmp: Path) -> str:
    url = tiny_zoo(str(tmp / "a.zarr"), 4, writers=2, layout=SMALL)
    wspace.compact(url)
    _append(url, ["x", "y", "z"], seed=10)
    return url


def _replace_compacted_rows(tmp: Path) -> str:
    url = tiny_zoo(str(tmp / "b.zarr"), 4, layout=SMALL)
    wspace.compact(url)
    _append(url, ["late"], seed=20)
    _append(url, ["church_0", "late"], seed=30, replace=True)
    return url


def _two_compactions_and_a_second_arch(tmp: Path) -> str:
    url = tiny_zoo(str(tmp / "c.zarr"), 3, writers=2, layout=SMALL)
    wspace.compact(url)
    w = wspace.writer(url, commit_every=1)
    w.append(tiny_weights(40, SMALL.size), model="during", arch="small")
    _append(url, ["tench_1", "n"], seed=50, replace=True)
    wspace.compact(url)
    w.append(tiny_weights(41, SMALL.size), model="after", arch="small")
    w.close()
    wspace.add_arch(url, MLP)
    with wspace.writer(url) as mw:
        mw.append(np.ones(6, "float32"), model="m0", arch="mlp")
    wspace.compact(url, arch="mlp")
    return url


def _never_compacted(tmp: Path) -> str:
    url = tiny_zoo(str(tmp / "d.zarr"), 3, writers=3, layout=SMALL)
    _append(url, ["small_0"], seed=60, replace=False)
    return url


STORES_TO_REPLAY: dict[str, Callable[[Path], str]] = {
    "fixture-v1": _fixture,
    "compact-then-append": _compact_then_append,
    "replace-compacted-rows": _replace_compacted_rows,
    "two-compactions-second-arch": _two_compactions_and_a_second_arch,
    "never-compacted": _never_compacted,
}


@pytest.mark.parametrize("make", list(STORES_TO_REPLAY.values()), ids=list(STORES_TO_REPLAY))
def test_replay_from_a_checkpoint_equals_the_full_replay_at_every_version(
    tmp_path: Path, make: Callable[[Path], str]
) -> None:
    url = make(tmp_path)
    backend = resolve(url)
    records = log_records(url)
    full = replay(records, url=url)
    assert sum(a.n_rows for a in full.archs.values()) == sum(
        len(wspace.open(url, arch=name)) for name in full.archs
    )
    for version in range(len(records)):
        write_checkpoint(backend, records[: version + 1])
        backend.write(POINTER, json.dumps({"version": version}).encode())
        loaded = load_checkpoint(backend)
        assert loaded is not None
        state, used = loaded
        versions = [r.version or 0 for r in used]
        assert versions == sorted(set(versions))
        assert used[-1].version == len(records) - 1
        # the records a checkpoint load used replay as it did: the same one replay
        _same_state(state, full)
        _same_state(replay(used, url=url, load_keys=lambda c: _keys_of(records, c)), full)


def _keys_of(records: list[Record], compact: CompactRecord) -> tuple[tuple[str, int | None], ...]:
    rec = records[compact.version or 0]
    assert isinstance(rec, CompactRecord) and rec.keys is not None
    return rec.keys


def test_compacted_keys_are_read_only_when_asked_for(tmp_path: Path) -> None:
    url = _compact_then_append(tmp_path)
    backend = resolve(url)
    loaded = load_checkpoint(backend)  # compact wrote a checkpoint of its head
    assert loaded is not None
    state = loaded[0].archs["small"]
    assert isinstance(state, LazyKeysArchState) and state.n_rows == 7
    compact = next(r for r in loaded[1] if isinstance(r, CompactRecord))
    assert compact.keys is None and compact.version is not None
    Path(url, record_key(compact.version)).unlink()  # the keys are only in the log
    with pytest.raises(CorruptDataError, match=r"compact record .* is missing"):
        _ = state.keys


def test_replay_refuses_a_compact_record_without_keys_and_no_way_to_read_them(
    tmp_path: Path,
) -> None:
    url = _compact_then_append(tmp_path)
    records = [r.without_keys() if isinstance(r, CompactRecord) else r for r in log_records(url)]
    with pytest.raises(CorruptDataError, match=r"store '.*': compact record _log/\d+\.json has no"):
        replay(records, url=url)


def test_replay_refuses_records_that_do_not_start_with_create_or_are_unpublished() -> None:
    records = [parse_record(json.loads(fixture_raw(v)), version=v) for v in range(9)]
    with pytest.raises(CorruptDataError, match="does not start with a 'create' record"):
        replay(records[1:], url="zoo")
    with pytest.raises(CorruptDataError, match="unpublished or out of order"):
        replay([records[0], records[2], records[1]], url="zoo")
    draft = AddArchRecord(arch="x", layout=MLP)
    with pytest.raises(CorruptDataError, match="unpublished or out of order"):
        replay([records[0], draft], url="zoo")
