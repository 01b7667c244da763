"""Store settings: codec presets and chunk sizing, fixed when a store is created.

The presets themselves live in the codec registry, :mod:`wspace.store.codecs`; ``CODECS``
and ``codec_chain`` are importable from here too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from wspace.errors import SchemaMismatchError
from wspace.store.codecs import CODECS, codec_chain

__all__ = ["CODECS", "StoreConfig", "codec_chain"]

FORMAT_VERSION = 2
"""Version of the on-storage layout written by this wspace (1: anonymous ``w000``/``m000``
arrays; 2: arrays named by layer and column, self-describing archives). This wspace reads
stores of every version up to it, and writes into a store in that store's own version."""


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
