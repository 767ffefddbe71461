"""lz4: one lz4 frame per block; frames are self-contained, so ``lz4 -d`` reads them as one.

Format: lz4's doc/lz4_Frame_format.md. There is no trailer: the frame format has no index.
"""

from __future__ import annotations

import lz4.frame

from ..models import CompressionType
from ._stream import Member, MemberStreamDecoder, check_args
from .base import EncodedBlock

# lz4_Frame_format.md: header at most 19 bytes, EndMark and Content Checksum 4 bytes each, and a
# 4-byte Block Size before each data block, stored raw when it does not compress (blocks of
# 64 KiB at the smallest).
_FRAME_OVERHEAD = 19 + 4 + 4
_DATA_BLOCK, _DATA_BLOCK_HEADER = 64 * 1024, 4


class Lz4Encoder:
    """Compresses each block to its own frame; the frames need no header or trailer."""

    def __init__(self, level: int) -> None:
        self._level = level
        self._count = 0

    def header(self) -> bytes:
        return b""

    def encode_block(self, block: bytes) -> EncodedBlock:
        data = lz4.frame.compress(
            block, compression_level=self._level, content_checksum=True, store_size=True
        )
        return EncodedBlock(bytes(data), len(block))

    def add_block(self, encoded: EncodedBlock) -> bytes:
        self._count += 1
        return encoded.data

    def trailer(self) -> bytes:
        # An empty stream is one empty frame: a zero-byte file is not a valid lz4 stream.
        return b"" if self._count else self.encode_block(b"").data


class Lz4Decoder(MemberStreamDecoder):
    """Reads any lz4 frame stream: many frames; liblz4 itself skips skippable frames."""

    name = "lz4"
    errors = (RuntimeError,)

    def new_member(self) -> Member:
        decompressor: Member = lz4.frame.LZ4FrameDecompressor()
        return decompressor


class Lz4Codec:
    """The lz4 row of DESIGN.md's codec table."""

    kind = CompressionType.LZ4
    default_level = 0
    min_level = 0
    max_level = 16
    default_block_size = 4 * 2**20
    tar_flag = "-I lz4"

    def new_encoder(self, level: int, block_size: int) -> Lz4Encoder:
        check_args(self.kind.value, level, self.min_level, self.max_level, block_size)
        return Lz4Encoder(level)

    def new_decoder(self) -> Lz4Decoder:
        return Lz4Decoder()

    def max_encoded_size(self, raw_size: int, block_size: int) -> int:
        frames = max(1, -(-raw_size // block_size))
        data_blocks = raw_size // _DATA_BLOCK + frames
        return raw_size + _DATA_BLOCK_HEADER * data_blocks + _FRAME_OVERHEAD * frames


CODEC = Lz4Codec()
