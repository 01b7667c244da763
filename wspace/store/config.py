"""Store settings: codec presets and chunk sizing, fixed when a store is created."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

from wspace.errors import SchemaMismatchError

__all__ = ["CODECS", "StoreConfig", "codec_chain"]

FORMAT_VERSION = 1
"""Version of the on-storage layout written by this wspace."""

CODECS: dict[str, str] = {
    "blosc-zstd": "Blosc zstd level 3 with bit-shuffle, 64 KiB blocks + crc32c (default; lossless)",
    "blosc-lz4": "Blosc lz4 with bit-shuffle + crc32c (lossless; fastest, compresses least)",
    "zstd": "Zstandard level 3 + crc32c (lossless)",
    "none": "no compression, crc32c only",
    "pcodec": "PCodec level 8 + crc32c (lossless, archival; needs the `pcodec` package)",
    "bitround-N": "BitRound keeping N mantissa bits (N in 1..23) + Blosc zstd + crc32c (lossy)",
}
"""Codec presets accepted by ``wspace.create(codec=...)``."""


def codec_chain(name: str) -> tuple[list[Any], list[Any]]:
    """Return ``(filters, compressors)`` for zarr's ``create_array`` from a preset name.

    Every chain ends with a crc32c checksum so that corrupt chunks are detected on read.

    Parameters
    ----------
    name
        One of :data:`CODECS` (``bitround-14`` for ``bitround-N``).
    """
    # level 3, 64 KiB blocks: on trained LeNet-5 weights in 128 KiB archive chunks this
    # compresses better than level 5 with automatic blocks (0.875x vs 0.889x raw) and encodes
    # faster (benchmarks/codec_study.py)
    blosc = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle", blocksize=2**16)
    if name == "blosc-zstd":
        return [], [blosc, Crc32cCodec()]
    if name == "blosc-lz4":
        return [], [BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"), Crc32cCodec()]
    if name == "zstd":
        return [], [ZstdCodec(level=3), Crc32cCodec()]
    if name == "none":
        return [], [Crc32cCodec()]
    if name == "pcodec":
        try:
            import pcodec  # noqa: F401
        except ImportError as exc:
            raise SchemaMismatchError(
                "codec 'pcodec' needs the pcodec package: pip install pcodec"
            ) from exc
        from zarr.codecs.numcodecs import PCodec

        return [], [PCodec(level=8), Crc32cCodec()]
    if name.startswith("bitround-"):
        try:
            keepbits = int(name.split("-", 1)[1])
        except ValueError:
            keepbits = -1
        if not 1 <= keepbits <= 23:
            raise SchemaMismatchError(f"codec {name!r}: keep between 1 and 23 mantissa bits")
        from zarr.codecs.numcodecs import BitRound

        return [BitRound(keepbits=keepbits)], [blosc, Crc32cCodec()]
    raise SchemaMismatchError(
        f"unknown codec {name!r}; choose one of: " + ", ".join(sorted(CODECS))
    )


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Settings recorded in a store when it is created.

    Parameters
    ----------
    codec
        Codec preset for weight chunks of compacted archives (see :data:`CODECS`).
    segment_codec
        Codec preset for weight chunks of writer segments; ``None`` (default): ``blosc-lz4``
        when ``codec`` is lossless (encodes ~4x faster than zstd; compaction recompresses
        with ``codec``), ``codec`` itself when it is lossy, so that a row reads the same
        before and after compaction.
    segment_rows
        Rows per weight chunk of every layer in writer segments; ``None`` sizes each layer's
        chunks by bytes (``segment_bytes``).
    segment_bytes
        Target uncompressed bytes of one chunk of one layer in a writer segment.
    chunk_bytes
        Target uncompressed bytes of one chunk of one layer in compacted archives: the unit
        a read decodes (an inner chunk of a shard). Small, so that reading one row decodes
        little more than that row.
    shard_bytes
        Target uncompressed bytes of one shard (one stored object) of one layer in compacted
        archives; a shard holds whole chunks. Large, so that a layer scan reads few objects.
        ``0`` writes archives without shards (one object per chunk).
    chunks
        Rows per chunk in compacted archives, overriding ``chunk_bytes``: one number for all
        layers or a ``{layer: rows}`` mapping.
    meta_rows
        Rows per chunk of metadata columns.
    commit_every
        Default number of rows after which a writer commits by itself.
    """

    codec: str = "blosc-zstd"
    segment_codec: str | None = None
    segment_rows: int | None = None
    segment_bytes: int = 2**22
    chunk_bytes: int = 2**17
    shard_bytes: int = 2**25
    chunks: int | dict[str, int] | None = None
    meta_rows: int = 4096
    commit_every: int = 256
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        codec_chain(self.codec)  # validates the names
        if self.segment_codec is not None:
            codec_chain(self.segment_codec)
        for label in ("segment_bytes", "chunk_bytes", "meta_rows", "commit_every"):
            if int(getattr(self, label)) < 1:
                raise SchemaMismatchError(f"store setting {label} must be >= 1")
        if int(self.shard_bytes) < 0:
            raise SchemaMismatchError("store setting shard_bytes must be >= 0")
        if self.segment_rows is not None and self.segment_rows < 1:
            raise SchemaMismatchError("store setting segment_rows must be >= 1")

    def segment_codec_name(self) -> str:
        """The codec preset writer segments use (see ``segment_codec``)."""
        if self.segment_codec is not None:
            return self.segment_codec
        return self.codec if self.codec.startswith("bitround-") else "blosc-lz4"

    def segment_chunk_rows(self, layer_size: int) -> int:
        """Rows per chunk of a layer of ``layer_size`` parameters in a writer segment.

        Sized by bytes like archives (``segment_bytes``), so a layer scan of an uncompacted
        store makes few large reads, capped at 4096 rows so that a writer's buffers stay small.
        """
        if self.segment_rows is not None:
            return self.segment_rows
        return max(1, min(4096, self.segment_bytes // (4 * layer_size)))

    def archive_chunk_rows(self, layer: str, layer_size: int, n_rows: int) -> int:
        """Rows per chunk of ``layer`` in a compacted archive: ~``chunk_bytes`` each."""
        if isinstance(self.chunks, int):
            rows = self.chunks
        elif isinstance(self.chunks, dict) and layer in self.chunks:
            rows = self.chunks[layer]
        else:
            rows = max(1, self.chunk_bytes // (4 * layer_size))
        return max(1, min(rows, max(n_rows, 1)))

    def archive_shard_rows(self, layer: str, layer_size: int, n_rows: int) -> int | None:
        """Rows per shard of ``layer`` in a compacted archive (a multiple of its chunk rows),
        or ``None`` for an archive without shards."""
        if not self.shard_bytes:
            return None
        chunk = self.archive_chunk_rows(layer, layer_size, n_rows)
        per_shard = max(1, self.shard_bytes // (4 * layer_size * chunk))
        return chunk * min(per_shard, max(1, -(-n_rows // chunk)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoreConfig:
        """Inverse of :meth:`to_dict`; unknown keys are kept in ``extra``."""
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        extra = {k: v for k, v in data.items() if k not in known and k != "extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        return cls(**kwargs, extra={**dict(data.get("extra", {})), **extra})


def chunk_count(rows: int, chunk_rows: int) -> int:
    """Number of chunks covering ``rows`` rows."""
    return math.ceil(rows / chunk_rows) if rows else 0
