"""Adaptive compression: spot a block that will not shrink before paying for full compression.

Such a block (random bytes, media, archives, packages) is written in the codec's own stored
form instead, which every reader of the codec accepts and which costs about a memcpy to make.

Two steps, each with the same bar, MIN_GAIN_PERCENT. First SLICES evenly spaced slices of
SLICE_SIZE bytes (first and last included) are compressed one by one by a fast setting of the
codec's family: if any shrinks, the block is compressed in full (the common case costs only
this probe, 0.1 ms per 4 MiB block for zstd and lz4, 0.8 ms for zlib-ng). Else the whole block
is compressed fast (zstd level 1, or lz4's fast mode), which sees what slices cannot (a zero
run between two slices, a file stored twice in one block, which zstd and LZMA exploit): the
block is stored only if that does not shrink either. On data that does not shrink it runs at
2.5-5 GB/s, and for zstd and lz4 its output is the stored form.

Measured on this machine (2026-11-27), 4 MiB blocks against full compression of each block:

- the mixed corpus of benchmarks/codec_libraries.py (64 MiB, pieces of random bytes of at most
  512 KiB between text, source and binary): 3 x 16 KiB slices stored 1 of 16 blocks, one that
  gzip shrinks 1.7x (+6.7 % output); 8 x 8 KiB and 16 x 4 KiB stored none, and the output
  of every codec is byte for byte what it was before;
- a 248 MiB stream of file-sized pieces (64 KiB - 8 MiB of random bytes, gzip output, text,
  a real tar, skewed bytes, PCM-like noise, zeros): 16 x 4 KiB slices alone stored 25 of the
  27 blocks that gzip shrinks by less than 1 %, for +0.07 % output, where one joined 64 KiB
  sample gave +0.3 %; with the whole-block step the output grew by 0.06 % (gzip), 0.01 %
  (zstd) and 0.1 % (lz4), and gzip packed it 1.4x faster. Bars of 2 and 3 % made the same
  choices; 1 % stored 3 blocks fewer.

zlib-ng level 1 is no probe: its fixed Huffman codes make skewed but match-free data (PCM, a
skewed byte histogram) look incompressible although dynamic codes shrink it by 10-27 %;
zlib-ng level 2 and zstd level 1 see that gain. lz4 has no entropy coder, so its own fast mode
probes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import zstandard

SLICES = 16
SLICE_SIZE = 4096
# Smaller blocks are compressed in full (cheap at that size) and then checked.
PROBE_MIN = SLICES * SLICE_SIZE
MIN_GAIN_PERCENT = 3
# RFC 8878: zstd windows are 2**10 .. 2**31; DESIGN keeps them within 128 MiB (no --long).
_ZSTD_MIN_WINDOW_LOG, _ZSTD_MAX_WINDOW_LOG = 10, 27

Probe = Callable[[Sequence[memoryview]], Sequence[int]]


def shrinks(compressed_size: int, raw_size: int) -> bool:
    """True when ``compressed_size`` saves at least MIN_GAIN_PERCENT of ``raw_size``."""
    return compressed_size * 100 <= raw_size * (100 - MIN_GAIN_PERCENT)


def sample(block: bytes) -> list[memoryview]:
    """SLICES slices of SLICE_SIZE bytes, evenly spaced from the start to the end of ``block``."""
    view = memoryview(block)
    starts = [i * (len(view) - SLICE_SIZE) // (SLICES - 1) for i in range(SLICES)]
    return [view[start : start + SLICE_SIZE] for start in starts]


def incompressible(block: bytes, probe: Probe, fast: Callable[[bytes], bytes]) -> bytes | None:
    """``fast(block)`` when ``block`` does not shrink, else None (compress it in full).

    ``probe`` returns the compressed size of each slice, each compressed on its own; when no
    slice shrinks, ``fast`` compresses the whole block as fast as the codec family can, which
    sees what slices cannot (matches far apart), and the block is incompressible when that
    does not shrink either. zstd and lz4 write that output as their stored form.
    """
    if len(block) < PROBE_MIN:
        return None
    slices = sample(block)
    sizes = probe(slices)
    if any(shrinks(size, len(piece)) for size, piece in zip(sizes, slices, strict=True)):
        return None
    whole = fast(block)
    return None if shrinks(len(whole), len(block)) else whole


def zstd_slice_sizes(slices: Sequence[memoryview]) -> list[int]:
    """The probe of the zstd and xz codecs: zstd level 1, which codes literals with Huffman."""
    compressor = zstandard.ZstdCompressor(level=1, write_content_size=False)
    return [len(compressor.compress(piece)) for piece in slices]


def zstd_fast_frame(block: bytes) -> bytes:
    """``block`` as one zstd frame at level 1 with a window covering the block, content size
    and checksum: libzstd writes blocks that do not shrink raw (RFC 8878 3.1.1.2.2,
    Block_Type 0), so for such data this is the stored form, at about 5 GB/s."""
    window_log = max(_ZSTD_MIN_WINDOW_LOG, min(_ZSTD_MAX_WINDOW_LOG, (len(block) - 1).bit_length()))
    params = zstandard.ZstdCompressionParameters.from_level(
        1, source_size=len(block), window_log=window_log, write_checksum=1, write_content_size=1
    )
    return zstandard.ZstdCompressor(compression_params=params).compress(block)
