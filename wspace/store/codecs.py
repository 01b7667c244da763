"""The codec registry: which codec chains wspace writes, and how its own readers undo them.

One place knows the codecs:

* writing: the weight presets (:data:`CODECS`, :func:`codec_chain`) and the metadata column
  chain (:func:`column_compressors`);
* reading: :func:`chunk_decoder` maps a stored array's zarr codec chain to the numcodecs
  decoders that the direct reader (:mod:`wspace.store.chunks`), metadata reads
  (:mod:`wspace.store.metaread`) and :func:`~wspace.store.maintenance.verify` run, or to
  ``None`` for a chain it does not know (zarr reads those arrays then).

Every chain wspace writes ends with a crc32c checksum, so a damaged chunk fails on read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import crc32c
import numpy as np
from numcodecs import Blosc, Zstd
from numcodecs.vlen import VLenUTF8
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

from wspace.errors import SchemaMismatchError

__all__ = [
    "CODECS",
    "CRC32C",
    "ArrayCodecs",
    "ChunkDecoder",
    "ChunkEncoder",
    "chunk_decoder",
    "chunk_encoder",
    "codec_chain",
    "column_compressors",
]

CODECS: dict[str, str] = {
    "blosc-zstd": "Blosc zstd level 3 with bit-shuffle, 64 KiB blocks + crc32c (default; lossless)",
    "blosc-lz4": "Blosc lz4 with bit-shuffle + crc32c (lossless; fastest, compresses least)",
    "zstd": "Zstandard level 3 + crc32c (lossless)",
    "none": "no compression, crc32c only",
    "pcodec": "PCodec level 8 + crc32c (lossless, archival; needs the `pcodec` package)",
    "bitround-N": "BitRound keeping N mantissa bits (N in 1..23) + Blosc zstd + crc32c (lossy)",
}
"""Codec presets accepted by ``wspace.create(codec=...)``."""

CRC32C = "crc32c"
"""A step of :attr:`ChunkDecoder.steps`: check and strip the trailing crc32c checksum."""

_LOSSY_FILTERS = frozenset({"numcodecs.bitround"})
"""Array-to-array filters with nothing to undo on read (they only drop precision)."""

_BYTES_DECODERS: dict[str, type[Any]] = {"blosc": Blosc, "zstd": Zstd}
"""Bytes-to-bytes zarr codecs by name, and the numcodecs class that decodes them (Blosc and
Zstandard frames describe themselves: no configuration is needed to decode)."""


class ArrayCodecs(NamedTuple):
    """The codecs of a weight array, as zarr's ``create_array`` takes them."""

    filters: list[Any]
    """Array-to-array codecs (BitRound)."""
    serializer: Any
    """The array-to-bytes codec: ``"auto"`` (little-endian bytes) or PCodec."""
    compressors: list[Any]
    """Bytes-to-bytes codecs, ending with the crc32c checksum."""


def codec_chain(name: str) -> ArrayCodecs:
    """The codecs of a preset: ``(filters, serializer, compressors)`` for zarr's
    ``create_array``.

    Every chain ends with a crc32c checksum so that corrupt chunks are detected on read.

    Parameters
    ----------
    name
        One of :data:`CODECS` (``bitround-14`` for ``bitround-N``).

    Raises
    ------
    SchemaMismatchError
        An unknown preset, a ``bitround-N`` with N outside 1..23, or ``pcodec`` without the
        ``pcodec`` package.
    """
    # level 3, 64 KiB blocks: on trained LeNet-5 weights in 128 KiB archive chunks this
    # compresses better than level 5 with automatic blocks (0.875x vs 0.889x raw) and encodes
    # faster (benchmarks/codec_study.py)
    blosc = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle", blocksize=2**16)
    if name == "blosc-zstd":
        return ArrayCodecs([], "auto", [blosc, Crc32cCodec()])
    if name == "blosc-lz4":
        lz4 = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")
        return ArrayCodecs([], "auto", [lz4, Crc32cCodec()])
    if name == "zstd":
        return ArrayCodecs([], "auto", [ZstdCodec(level=3), Crc32cCodec()])
    if name == "none":
        return ArrayCodecs([], "auto", [Crc32cCodec()])
    if name == "pcodec":
        try:
            import pcodec  # noqa: F401
        except ImportError as exc:
            raise SchemaMismatchError(
                "codec 'pcodec' needs the pcodec package: pip install pcodec"
            ) from exc
        from zarr.codecs.numcodecs import PCodec

        # PCodec turns numbers into bytes itself: it is the serializer, not a compressor
        return ArrayCodecs([], PCodec(level=8), [Crc32cCodec()])
    if name.startswith("bitround-"):
        try:
            keepbits = int(name.split("-", 1)[1])
        except ValueError:
            keepbits = -1
        if not 1 <= keepbits <= 23:
            raise SchemaMismatchError(f"codec {name!r}: keep between 1 and 23 mantissa bits")
        from zarr.codecs.numcodecs import BitRound

        return ArrayCodecs([BitRound(keepbits=keepbits)], "auto", [blosc, Crc32cCodec()])
    raise SchemaMismatchError(
        f"unknown codec {name!r}; choose one of: " + ", ".join(sorted(CODECS))
    )


def column_compressors() -> list[Any]:
    """Compressors of every metadata-column array: Zstandard level 3, then crc32c (so that
    metadata is checksummed like the weights)."""
    return [ZstdCodec(level=3), Crc32cCodec()]


@dataclass(frozen=True, slots=True)
class ChunkDecoder:
    """How to decode one stored chunk of a chain in the registry.

    Parameters
    ----------
    steps
        What to undo, last applied first: :data:`CRC32C` (check and strip the checksum) or a
        numcodecs codec to ``decode``.
    strings
        The array-to-bytes codec is ``vlen-utf8``: the decoded bytes are variable-length
        strings (an object array), not little-endian numbers.
    """

    steps: tuple[Any, ...]
    strings: bool = False

    def decode(self, data: Any, dtype: str = "<f4", out: np.ndarray | None = None) -> np.ndarray:
        """Decode one chunk's bytes.

        Parameters
        ----------
        data
            The stored bytes (any buffer).
        dtype
            Element type of the decoded numbers (ignored for strings).
        out
            A C-contiguous array of exactly the chunk's size to decode into (no copy when the
            last step is a decompressor).

        Returns
        -------
        numpy.ndarray
            ``out`` when given; else a flat array (a view of the decoded bytes).

        Raises
        ------
        ValueError
            The chunk fails its checksum or is too short to hold one; the codecs raise their
            own errors for truncated or garbage bytes.
        """
        buf = memoryview(data)
        last = len(self.steps) - 1
        for i, step in enumerate(self.steps):
            if isinstance(step, str):  # CRC32C (compared by type: steps are pickled)
                if len(buf) < 4:
                    raise ValueError(f"chunk of {len(buf)} bytes is too short for its checksum")
                if crc32c.crc32c(buf[:-4]) != int.from_bytes(buf[-4:], "little"):
                    raise ValueError("chunk fails its crc32c checksum")
                buf = buf[:-4]
            elif i == last and out is not None and not self.strings:
                step.decode(buf, out=out)
                return out
            else:
                buf = memoryview(step.decode(buf))
        if self.strings:
            values: np.ndarray = _VLEN.decode(buf)
            return values
        array = np.frombuffer(buf, dtype=dtype)
        if out is not None:
            out.reshape(-1)[...] = array
            return out
        return array


_VLEN = VLenUTF8()


def chunk_decoder(codecs: Sequence[Mapping[str, Any]]) -> ChunkDecoder | None:
    """The decoder of a zarr v3 codec chain, or ``None`` when wspace's readers do not know it.

    Known: optional lossy filters (BitRound), a little-endian ``bytes`` or a ``vlen-utf8``
    array-to-bytes codec, then any of Blosc, Zstandard and crc32c. Anything else (PCodec,
    gzip, big-endian bytes, ...) is left to zarr.

    Parameters
    ----------
    codecs
        The chain as in ``zarr.json`` (``{"name": ..., "configuration": ...}`` mappings, in
        the order they are applied when writing); for codec objects, their ``to_dict()``.

    Examples
    --------
    >>> from wspace.store.codecs import chunk_decoder, codec_chain
    >>> compressors = codec_chain("zstd").compressors
    >>> chain = [{"name": "bytes", "configuration": {"endian": "little"}}]
    >>> decoder = chunk_decoder(chain + [c.to_dict() for c in compressors])
    >>> [getattr(step, "codec_id", step) for step in decoder.steps]
    ['crc32c', 'zstd']
    >>> chunk_decoder([{"name": "numcodecs.pcodec"}, {"name": "crc32c"}]) is None
    True
    """
    if not np.little_endian:
        return None
    steps: list[Any] = []
    strings = False
    seen_bytes = False
    for codec in codecs:
        name = codec.get("name")
        config = codec.get("configuration") or {}
        if not seen_bytes:
            if name == "bytes" and config.get("endian", "little") in ("little", None):
                seen_bytes = True
            elif name == "vlen-utf8":
                seen_bytes = strings = True
            elif name not in _LOSSY_FILTERS:
                return None
        elif name == CRC32C:
            steps.append(CRC32C)
        elif name in _BYTES_DECODERS:
            steps.append(_BYTES_DECODERS[str(name)]())
        else:
            return None
    if not seen_bytes:
        return None
    return ChunkDecoder(tuple(steps[::-1]), strings)


_SHUFFLE = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
"""zarr v3's Blosc ``shuffle`` names, as numcodecs numbers them."""


@dataclass(frozen=True, slots=True)
class ChunkEncoder:
    """How to encode one whole chunk of a chain in the registry, in the calling thread, to
    the bytes zarr writes for it (``tests/test_codecs.py`` checks they are identical).

    Parameters
    ----------
    steps
        What to apply, in order, to the serialised chunk: a numcodecs codec to ``encode``,
        or :data:`CRC32C` (append the checksum, little-endian, as zarr's ``crc32c``).
    strings
        The array-to-bytes codec is ``vlen-utf8`` (an object array of strings), not
        little-endian numbers.
    """

    steps: tuple[Any, ...]
    strings: bool = False

    def encode(self, chunk: np.ndarray) -> bytes:
        """The stored bytes of a whole chunk (an array of the chunk's shape and dtype)."""
        if self.strings:
            data: Any = _VLEN.encode(np.asarray(chunk, dtype=object).reshape(-1))
        else:
            data = np.ascontiguousarray(chunk).reshape(-1)
        for step in self.steps:
            if isinstance(step, str):  # CRC32C
                raw = memoryview(data).cast("B")
                data = bytes(raw) + crc32c.crc32c(raw).to_bytes(4, "little")
            else:
                data = step.encode(data)
        return bytes(data)


def chunk_encoder(codecs: Sequence[Mapping[str, Any]]) -> ChunkEncoder | None:
    """The encoder of a zarr v3 codec chain, or ``None`` when it is not one wspace encodes
    itself (writers then let zarr encode).

    Known: a little-endian ``bytes`` or a ``vlen-utf8`` array-to-bytes codec, then any of
    Blosc (with its ``typesize``), Zstandard and crc32c — the chains of the ``blosc-lz4``,
    ``blosc-zstd``, ``zstd`` and ``none`` presets and of the metadata columns.

    Why not zarr: a writer writes a few whole chunks per row batch, and zarr's
    ``array[rows] = block`` runs each through its event loop thread, with the Blosc encode
    and the file write in further worker threads; on 2 cores that took 0.71 s of a 1,000-row
    append's 2.3 s (``benchmarks/writers.py``), the encode itself 0.29 s.

    Examples
    --------
    >>> from wspace.store.codecs import chunk_decoder, chunk_encoder, codec_chain
    >>> chain = [{"name": "bytes", "configuration": {"endian": "little"}}]
    >>> chain += [c.to_dict() for c in codec_chain("zstd").compressors]
    >>> block = np.arange(6, dtype=np.float32).reshape(2, 3)
    >>> chunk_decoder(chain).decode(chunk_encoder(chain).encode(block)).tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    """
    if not np.little_endian or not codecs:
        return None
    first, *rest = codecs
    name, config = first.get("name"), first.get("configuration") or {}
    if name == "bytes" and config.get("endian", "little") in ("little", None):
        strings = False
    elif name == "vlen-utf8":
        strings = True
    else:
        return None
    steps: list[Any] = []
    for codec in rest:
        name, config = codec.get("name"), codec.get("configuration") or {}
        if name == CRC32C:
            steps.append(CRC32C)
        elif name == "blosc" and config.get("shuffle") in _SHUFFLE and "typesize" in config:
            steps.append(
                Blosc.from_config(
                    {
                        "cname": config["cname"],
                        "clevel": config["clevel"],
                        "shuffle": _SHUFFLE[config["shuffle"]],
                        "blocksize": config.get("blocksize", 0),
                        "typesize": config["typesize"],
                    }
                )
            )
        elif name == "zstd":
            steps.append(Zstd(level=config.get("level", 0), checksum=config.get("checksum", False)))
        else:
            return None
    return ChunkEncoder(tuple(steps), strings)
