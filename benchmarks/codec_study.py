"""Codec study: compressed size and single-thread encode/decode speed on the zoo's weights.

Each candidate compresses the sample rows layer by layer, in chunks of the archive's chunk
rows (what a read decodes), with one thread, the way the store would; speeds are the best of
three passes. The store's
presets (``wspace.store.config.CODECS``) and a few variants are compared, so the default codec
is chosen on measured numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numcodecs import Blosc, Zstd

from wspace.layout import Layout

__all__ = ["CANDIDATES", "study"]


def _blosc(cname: str, level: int, blocksize: int = 0) -> Callable[[], Any]:
    return lambda: Blosc(cname=cname, clevel=level, shuffle=Blosc.BITSHUFFLE, blocksize=blocksize)


def _pcodec(level: int) -> Callable[[], Any]:
    def make() -> Any:
        from numcodecs import PCodec

        return PCodec(level=level)

    return make


CANDIDATES: dict[str, tuple[Callable[[], Any], int | None]] = {
    "blosc-zstd (default: level 3, bit-shuffle, 64 KiB blocks)": (_blosc("zstd", 3, 2**16), None),
    "blosc zstd level 5, automatic blocks (previous default)": (_blosc("zstd", 5), None),
    "blosc zstd level 1, 64 KiB blocks": (_blosc("zstd", 1, 2**16), None),
    "blosc-lz4 (bit-shuffle; writer segments)": (_blosc("lz4", 5), None),
    "zstd level 3 (no shuffle)": (lambda: Zstd(level=3), None),
    "pcodec level 8 (archival preset)": (_pcodec(8), None),
    "pcodec level 4": (_pcodec(4), None),
    "bitround-14 + blosc-zstd (lossy)": (_blosc("zstd", 3, 2**16), 14),
    "bitround-10 + blosc-zstd (lossy)": (_blosc("zstd", 3, 2**16), 10),
}
"""Name -> (codec factory, BitRound keep-bits or ``None`` for lossless)."""


def _bitround(a: np.ndarray, keepbits: int) -> np.ndarray:
    from numcodecs import BitRound

    return np.asarray(BitRound(keepbits=keepbits).encode(a)).view(np.float32).reshape(a.shape)


def study(rows: np.ndarray, layout: Layout, chunk_rows: dict[str, int]) -> list[dict[str, Any]]:
    """Compress ``rows`` (``(n, params)`` float32) with every candidate; one dict per codec."""
    Blosc.use_threads = False
    out = []
    for name, (factory, keepbits) in CANDIDATES.items():
        try:
            codec = factory()
        except (ImportError, ModuleNotFoundError):
            out.append({"codec": name, "available": False})
            continue
        chunks = []
        for layer in layout.layers:
            part = np.ascontiguousarray(rows[:, layout.layer_slice(layer)])
            step = max(1, chunk_rows[layer])
            chunks += [np.ascontiguousarray(part[i : i + step]) for i in range(0, len(part), step)]
        source = [_bitround(c, keepbits) if keepbits else c for c in chunks]
        encode = decode = float("inf")
        for _ in range(3):  # best of three: other work on the machine only slows a run down
            t = time.perf_counter()
            encoded = [codec.encode(c) for c in source]
            encode = min(encode, time.perf_counter() - t)
            t = time.perf_counter()
            decoded = [codec.decode(e) for e in encoded]
            decode = min(decode, time.perf_counter() - t)
        raw = sum(c.nbytes for c in chunks)
        stored = sum(len(e) for e in encoded)
        error = max(
            float(np.max(np.abs(np.frombuffer(d, np.float32) - c.ravel())))
            for d, c in zip(decoded, chunks, strict=True)
        )
        out.append(
            {
                "codec": name,
                "available": True,
                "ratio": stored / raw,
                "encode_mb_s": raw / encode / 1e6,
                "decode_mb_s": raw / decode / 1e6,
                "max_abs_error": error,
                "lossless": keepbits is None,
            }
        )
    Blosc.use_threads = None
    return out
