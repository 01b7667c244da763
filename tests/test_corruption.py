"""Damaged chunks and commit records: named by model, layer and tensor; nothing else harmed.

Damage is done to the real stored bytes (files on disk, objects on the moto S3 server).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import s3fs
from typer.testing import CliRunner

import wspace
from tests.conftest import StoreSpot
from tests.workers import SMALL, name_of
from wspace.cli import app
from wspace.layout import Layout
from wspace.testing import assert_rows_equal, tiny_weights

LAYOUT = Layout.from_dict(SMALL)
N = 30
CHUNK_ROWS = 10


class Raw:
    """The stored objects of a store, local or on S3, to damage them."""

    def __init__(self, spot) -> None:
        self.spot = spot
        if spot.kind == "s3":
            opts = dict(spot.options)
            self.fs = s3fs.S3FileSystem(
                key=opts["key"],
                secret=opts["secret"],
                endpoint_url=opts["endpoint_url"],
                client_kwargs=opts["client_kwargs"],
                skip_instance_cache=True,
            )
            self.root = spot.url[len("s3://") :]
        else:
            self.fs = None
            self.root = spot.url

    def keys(self, pattern: str) -> list[str]:
        if self.fs is not None:
            return sorted(p[len(self.root) + 1 :] for p in self.fs.glob(f"{self.root}/{pattern}"))
        from pathlib import Path

        return sorted(str(p.relative_to(self.root)) for p in Path(self.root).glob(pattern))

    def read(self, key: str) -> bytes:
        if self.fs is not None:
            return bytes(self.fs.cat_file(f"{self.root}/{key}"))
        with open(os.path.join(self.root, key), "rb") as f:
            return f.read()

    def write(self, key: str, data: bytes) -> None:
        if self.fs is not None:
            self.fs.pipe_file(f"{self.root}/{key}", data)
        else:
            with open(os.path.join(self.root, key), "wb") as f:
                f.write(data)

    def delete(self, key: str) -> None:
        if self.fs is not None:
            self.fs.rm_file(f"{self.root}/{key}")
        else:
            os.remove(os.path.join(self.root, key))


def damage(raw: Raw, key: str, how: str) -> None:
    data = bytearray(raw.read(key))
    if how == "flip":
        data[len(data) // 2] ^= 0x40
        raw.write(key, bytes(data))
    elif how == "truncate":
        raw.write(key, bytes(data[: len(data) // 3]))
    elif how == "garbage":
        raw.write(key, np.random.default_rng(0).bytes(len(data)))
    elif how == "empty":
        raw.write(key, b"")
    else:
        raw.delete(key)


def make(spot) -> tuple[str, dict | None]:
    wspace.create(spot.url, LAYOUT, storage_options=spot.options, segment_rows=CHUNK_ROWS)
    with wspace.writer(spot.url, storage_options=spot.options) as w:
        for i in range(N):
            w.append(tiny_weights(i, LAYOUT.size), model=name_of(i), seed=i)
    return spot.url, spot.options


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def spot(request, tmp_path) -> StoreSpot:
    """A store on local disk or on the moto S3 server (memory:// has no bytes to damage)."""
    if request.param == "local":
        return StoreSpot("local", str(tmp_path / "zoo.zarr"))
    return request.getfixturevalue("s3_spot")


@pytest.mark.parametrize("how", ["flip", "truncate", "garbage", "empty", "delete"])
def test_damaged_chunk_is_named_by_model_and_tensor(spot, how, trials):
    url, options = make(spot)
    raw = Raw(spot)
    # layer fc, rows 10-19; and layer conv, rows 20-29
    fc = raw.keys("archs/small/seg/*/fc/c/1/0")[0]
    conv = raw.keys("archs/small/seg/*/conv/c/2/0")[0]
    damage(raw, fc, how)
    damage(raw, conv, how)
    zoo = wspace.open(url, storage_options=options)
    with pytest.raises(wspace.CorruptDataError) as info:
        zoo.sel(model=name_of(12)).values
    message = str(info.value)
    for part in (url, "'fc'", "fc/weight", "fc/bias", name_of(12)):
        assert part in message, (part, message)
    with pytest.raises(wspace.CorruptDataError, match="conv/weight.*m00025"):
        zoo.sel(model=name_of(25)).layer("conv").values
    # every other model, and the undamaged layer of the damaged ones, still read exactly
    good = [i for i in range(N) if not 10 <= i < 30]
    assert_rows_equal(
        zoo.isel(model=good).values, np.stack([tiny_weights(i, LAYOUT.size) for i in good])
    )
    conv_of_12 = zoo.sel(model=name_of(12)).layer("conv").values[0]
    assert_rows_equal(conv_of_12, tiny_weights(12, LAYOUT.size)[LAYOUT.layer_slice("conv")])
    report = wspace.verify(url, storage_options=options)
    assert sorted((p.item, p.rows, p.tensors) for p in report.problems) == [
        ("conv", (20, 30), ("conv/weight", "conv/bias")),
        ("fc", (10, 20), ("fc/weight", "fc/bias")),
    ]
    assert report.damaged_models == [name_of(i) for i in range(10, 30)]
    args = ["verify", url] + [f"-o{k}={v}" for k, v in cli_options(options)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "layer=fc tensors=fc/weight,fc/bias" in result.output
    assert "2 damaged (20 models)" in result.output
    trials.add(
        f"corruption: chunk {how} ({spot.kind})",
        1,
        "CorruptDataError names store, layer, tensors and models; other rows and layers "
        "read exactly; verify lists exactly the 2 damaged chunks (20 models)",
    )


def cli_options(options: dict | None) -> list[tuple[str, str]]:
    if not options:
        return []
    return [
        ("endpoint_url", options["endpoint_url"]),
        ("key", options["key"]),
        ("secret", options["secret"]),
    ]


def _records(raw: Raw) -> list[str]:
    return raw.keys("_log/*.json")


def garbage(raw: Raw, key: str) -> None:
    raw.write(key, b"\x00\xffnot json{")


def half(raw: Raw, key: str) -> None:
    data = raw.read(key)
    raw.write(key, data[: len(data) // 2])


def wrong_version(raw: Raw, key: str) -> None:
    rec = json.loads(raw.read(key))
    rec["version"] += 7
    raw.write(key, json.dumps(rec).encode())


def edit(**changes):
    def apply(raw: Raw, key: str) -> None:
        rec = json.loads(raw.read(key))
        for field, value in changes.items():
            if value is None:
                del rec[field]
            else:
                rec[field] = value(rec) if callable(value) else value
        raw.write(key, json.dumps(rec).encode())

    return apply


RECORD_DAMAGE = {
    "garbage": (garbage, "is corrupt"),
    "truncated": (half, "is corrupt"),
    "empty": (lambda raw, key: raw.write(key, b""), "is corrupt"),
    "wrong-version": (wrong_version, "is corrupt.*version"),
    "missing": (lambda raw, key: raw.delete(key), "missing record"),
    "no-keys": (edit(keys=None), "is malformed.*keys"),
    "keys-rows-mismatch": (edit(stop=lambda r: r["stop"] + 1), "is malformed.*do not match"),
    "unknown-op": (edit(op="merge"), "is malformed.*unknown op 'merge'"),
    "bad-segment": (edit(segment="../../etc"), "is malformed.*segment id"),
}


@pytest.mark.parametrize("how", list(RECORD_DAMAGE))
def test_damaged_commit_record_refuses_the_store_by_name(tmp_path, how, trials):
    url = str(tmp_path / "zoo.zarr")
    wspace.create(url, LAYOUT)
    for k in range(4):
        with wspace.writer(url) as w:
            for i in range(k * 5, k * 5 + 5):
                w.append(tiny_weights(i, LAYOUT.size), model=name_of(i), seed=i)
    raw = Raw(StoreSpot("local", url))
    key = _records(raw)[2]  # an append record in the middle of the log
    spoil, match = RECORD_DAMAGE[how]
    spoil(raw, key)
    for attempt in (wspace.open, wspace.writer, wspace.compact):
        with pytest.raises(wspace.CorruptDataError, match=match) as info:
            attempt(url)
        assert url in str(info.value)
        if how != "missing":
            assert key in str(info.value)
    report = wspace.verify(url)
    assert [p.item for p in report.problems] == ["commit-log"]
    result = CliRunner().invoke(app, ["verify", url])
    assert result.exit_code == 1 and "commit-log" in result.output
    trials.add(
        f"corruption: commit record {how}",
        1,
        "open, writer and compact refuse the store with CorruptDataError naming the record; "
        "verify reports it",
    )


def test_newer_store_format_is_refused_clearly(tmp_path):
    url = str(tmp_path / "zoo.zarr")
    wspace.create(url, LAYOUT)
    raw = Raw(StoreSpot("local", url))
    edit(format_version=99)(raw, _records(raw)[0])
    with pytest.raises(wspace.SchemaMismatchError, match="format 99.*upgrade wspace"):
        wspace.open(url)
