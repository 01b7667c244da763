"""The codec registry: every preset written is read the same by the direct reader, by zarr
and by ``verify``; a chain the registry does not know is read by zarr."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import Crc32cCodec, GzipCodec

import wspace
from wspace.architectures import lenet5_layout
from wspace.store import open_store
from wspace.store.chunks import plan_for
from wspace.store.codecs import CODECS, ChunkDecoder, chunk_decoder, column_compressors
from wspace.testing import assert_rows_equal, tiny_weights, tiny_zoo

LAYOUT = lenet5_layout()
N = 7
PRESETS = [name.replace("-N", "-12") for name in CODECS]  # bitround-N: keep 12 bits


def _zarr_rows(url: str) -> np.ndarray:
    """Every committed row of the store's only segment, read by zarr alone."""
    state = open_store(url).arch_state("lenet5")
    (segment,) = {p.segment for p in state.pieces}
    group = zarr.open_group(url, path=f"archs/lenet5/seg/{segment}", mode="r")
    return np.concatenate([np.asarray(group[layer][:N]) for layer in LAYOUT.layers], axis=1)


def _count_registry_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the weight chunks (float32) decoded by the registry's decoders."""
    calls = [0]
    original = ChunkDecoder.decode

    def counted(self: ChunkDecoder, data: Any, dtype: str = "<f4", *args: Any) -> np.ndarray:
        calls[0] += dtype == "<f4"
        return original(self, data, dtype, *args)

    monkeypatch.setattr(ChunkDecoder, "decode", counted)
    return calls


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_reads_the_same_directly_through_zarr_and_in_verify(
    tmp_path, monkeypatch, preset
):
    url = tiny_zoo(str(tmp_path / "z.zarr"), N, codec=preset, segment_codec=preset, segment_rows=3)
    expected = np.stack([tiny_weights(i, LAYOUT.size) for i in range(N)])
    for stage in ("segment", "archive"):
        if stage == "archive":
            wspace.compact(url)
        zoo = wspace.open(url)
        array = zoo._source.readers["conv2d_2"][0].array
        known = chunk_decoder([c.to_dict() for c in _inner_codecs(array)]) is not None
        assert known == (preset != "pcodec"), (preset, stage)  # pcodec: zarr reads it
        assert (plan_for(array).decoders is not None) == known
        direct = zoo.values
        by_zarr = _zarr_rows(url)
        assert_rows_equal(direct, by_zarr)  # bit for bit, lossy presets too
        assert_rows_equal(np.asarray(zoo.weights.data.compute()), direct)
        if preset.startswith("bitround"):
            np.testing.assert_allclose(direct, expected, rtol=2**-12)
        else:
            assert_rows_equal(direct, expected)
        calls = _count_registry_decodes(monkeypatch)
        report = wspace.verify(url)
        monkeypatch.undo()
        assert report.ok and report.chunks_checked
        # verify decodes through the registry (the direct reader's path) when it knows the
        # chain; through zarr otherwise
        assert (calls[0] > 0) == known, (preset, stage, calls)


def _inner_codecs(array: zarr.Array) -> list[Any]:
    codecs = list(array.metadata.codecs)
    return list(codecs[0].codecs) if array.shards else codecs


@pytest.mark.parametrize("preset", PRESETS)
def test_verify_finds_a_damaged_chunk_whatever_the_preset(tmp_path, preset):
    url = tiny_zoo(str(tmp_path / "z.zarr"), N, codec=preset, segment_codec=preset, segment_rows=3)
    chunk = sorted(Path(url).glob("archs/lenet5/seg/*/conv2d_1/c/1/0"))[0]  # conv2d_1, rows 3-5
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x40
    chunk.write_bytes(bytes(data))
    report = wspace.verify(url)
    assert [(p.item, p.rows) for p in report.problems] == [("conv2d_1", (3, 6))]


def test_metadata_columns_use_the_registry_chain(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), N)
    metas = sorted(
        p
        for name in ("model", "cls", "seed", "accuracy")
        for p in Path(url).glob(f"archs/lenet5/seg/*/{name}/zarr.json")
    )
    assert len(metas) == 4  # model, cls, seed, accuracy
    wanted = [c.to_dict() for c in column_compressors()]
    for path in metas:
        codecs = json.loads(path.read_text())["codecs"]
        assert codecs[1:] == wanted
        assert chunk_decoder(codecs) is not None
    frame = open_store(url).models("lenet5")
    segment = metas[0].parent.parent
    group = zarr.open_group(str(segment), mode="r")
    for key in ("model", "cls", "seed", "accuracy"):
        array = group[key]
        column = array.attrs["wspace"]["column"]
        stored = np.asarray(array[:N])
        if column in ("model", "cls"):
            assert [str(v) for v in stored] == frame[column].tolist()
        else:
            np.testing.assert_array_equal(stored.astype(float), frame[column].astype(float))


def test_metadata_column_with_an_unknown_chain_is_read_through_zarr(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), N)
    before = wspace.open(url).models
    cls = sorted(Path(url).glob("archs/lenet5/seg/*/cls"))[0]
    old = zarr.open_array(str(cls), mode="r")
    values, attrs, chunks = np.asarray(old[: old.chunks[0]]), dict(old.attrs), old.chunks
    rewritten = zarr.create_array(  # same shape (a writer segment's capacity), gzip
        str(cls),
        shape=old.shape,
        chunks=chunks,
        dtype=str,
        fill_value=old.fill_value,
        compressors=[GzipCodec(), Crc32cCodec()],
        attributes=attrs,
        overwrite=True,
    )
    rewritten[: chunks[0]] = values
    codecs = json.loads((cls / "zarr.json").read_text())["codecs"]
    assert chunk_decoder(codecs) is None
    after = wspace.open(url).models
    assert after.equals(before)


def test_unknown_chains_are_refused_by_the_registry():
    little = {"name": "bytes", "configuration": {"endian": "little"}}
    big = {"name": "bytes", "configuration": {"endian": "big"}}
    crc = {"name": "crc32c"}
    assert chunk_decoder([little, {"name": "gzip", "configuration": {"level": 5}}, crc]) is None
    assert chunk_decoder([big, crc]) is None
    assert chunk_decoder([{"name": "numcodecs.pcodec"}, crc]) is None
    assert chunk_decoder([{"name": "transpose"}, little, crc]) is None
    assert chunk_decoder([crc]) is None  # no array-to-bytes codec
    decoder = chunk_decoder([little, crc])
    assert decoder is not None and not decoder.strings


def test_a_chunk_too_short_for_its_checksum_is_refused():
    decoder = chunk_decoder([{"name": "bytes"}, {"name": "crc32c"}])
    assert decoder is not None
    with pytest.raises(ValueError, match="too short"):
        decoder.decode(b"\x00\x00")
    with pytest.raises(ValueError, match="crc32c"):
        decoder.decode(b"\x00" * 12)


@pytest.mark.parametrize("preset", ["blosc-zstd", "blosc-lz4", "zstd", "none", "bitround-12"])
def test_the_writers_encoder_gives_the_bytes_zarr_writes(preset):
    """Writers encode whole chunks themselves (no zarr event loop per chunk): the stored
    bytes must be exactly zarr's, for weights and for both kinds of metadata column."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync
    from zarr.storage import MemoryStore

    from wspace.store.codecs import chunk_encoder, codec_chain

    def stored(store: Any, key: str) -> bytes:
        return sync(store.get(key, prototype=default_buffer_prototype())).to_bytes()

    rng = np.random.default_rng(7)
    chain = codec_chain(preset)
    store = MemoryStore()
    weights = zarr.create_array(
        store,
        name="w",
        shape=(64, 700),
        chunks=(16, 700),
        dtype="float32",
        fill_value=np.nan,
        filters=chain.filters,
        serializer=chain.serializer,
        compressors=chain.compressors,
        config={"write_empty_chunks": True},
    )
    block = (rng.standard_normal((16, 700)) * 0.05).astype(np.float32)
    block[11:] = np.nan  # a partial chunk, padded as writers pad it
    weights[16:32] = block
    encoder = chunk_encoder(json.loads(stored(store, "w/zarr.json"))["codecs"])
    if preset.startswith("bitround"):  # a lossy filter: left to zarr
        assert encoder is None
        return
    assert encoder is not None and encoder.encode(block) == stored(store, "w/c/1/0")
    columns = {
        "float64": np.array([1.0, np.nan, -3.5, 2e300, np.nan, np.nan, np.nan, np.nan]),
        "str": np.array(["a", "héllo", '{"x": [1, 2]}', "", "\x00", "\x00", "\x00", "z"], object),
    }
    for dtype, values in columns.items():
        array = zarr.create_array(
            store,
            name=f"m{dtype}",
            shape=(16,),
            chunks=(8,),
            dtype=dtype if dtype == "float64" else str,
            fill_value=np.nan if dtype == "float64" else "",
            compressors=column_compressors(),
            config={"write_empty_chunks": True},
        )
        array[8:16] = values
        meta = json.loads(stored(store, f"m{dtype}/zarr.json"))
        column_encoder = chunk_encoder(meta["codecs"])
        assert column_encoder is not None
        assert column_encoder.encode(values) == stored(store, f"m{dtype}/c/1"), dtype


def test_a_written_store_reads_back_through_zarr_alone(tmp_path):
    """What the writer encoded itself is what zarr-python reads from the segment arrays."""
    url = str(tmp_path / "z.zarr")
    layout = lenet5_layout()
    wspace.create(url, layout)
    rows = [tiny_weights(i, layout.size) for i in range(5)]
    with wspace.writer(url) as w:
        for i, row in enumerate(rows):
            w.append(row, model=f"m{i}", cls="ab"[i % 2], curve=[i, i / 2])
    zoo = wspace.open(url)
    state = open_store(url).arch_state(zoo._arch)
    (piece,) = state.merged()
    where = f"{url}/{state.location(piece.segment)}"
    for layer in layout.layers:
        array = zarr.open_array(f"{where}/{state.arrays[layer]}", mode="r")
        np.testing.assert_array_equal(array[:5], np.stack(rows)[:, layout.layer_slice(layer)])
    cls = zarr.open_array(f"{where}/{state.columns[piece.segment]['cls'][1]}", mode="r")
    assert [str(v) for v in cls[:5]] == ["a", "b", "a", "b", "a"]
    curve = zarr.open_array(f"{where}/{state.columns[piece.segment]['curve'][1]}", mode="r")
    assert json.loads(str(curve[4])) == [4, 2.0]
