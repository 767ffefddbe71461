"""Drive a codec the way the pipelines do: encode a list of blocks, decode in pieces."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from streaming_tar_compressor.codecs.base import Codec
from streaming_tar_compressor.models import CompressionType

ALL_KINDS = list(CompressionType)
COMPRESSED_KINDS = [kind for kind in CompressionType if kind is not CompressionType.NONE]


def encode(
    codec: Codec, blocks: Sequence[bytes], level: int | None = None, block_size: int = 2**16
) -> bytes:
    """The whole stream for ``blocks``: header, each block in order, trailer."""
    encoder = codec.new_encoder(codec.default_level if level is None else level, block_size)
    parts = [encoder.header()]
    parts += [encoder.add_block(encoder.encode_block(block)) for block in blocks]
    parts.append(encoder.trailer())
    return b"".join(parts)


def decode(codec: Codec, pieces: Iterable[bytes], max_size: int = 2**16) -> bytes:
    """Feed ``pieces`` one by one, reading until b"" after each; checks the read bound."""
    decoder = codec.new_decoder()
    out = bytearray()
    for piece in pieces:
        decoder.feed(piece)
        while data := decoder.read(max_size):
            assert len(data) <= max_size
            out += data
    decoder.close()
    return bytes(out)


def cut(data: bytes, points: Iterable[int]) -> list[bytes]:
    """``data`` cut at the given offsets (any order, out of range ones clamp)."""
    edges = sorted({0, len(data), *(min(max(p, 0), len(data)) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]
