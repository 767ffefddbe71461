"""lz4: one lz4 frame per block; frames are self-contained, so ``lz4 -d`` reads them as one.

Format: lz4's doc/lz4_Frame_format.md. There is no trailer: the frame format has no index.
A block that will not shrink (see _adaptive) is written by liblz4's fast mode with 4 MiB data
blocks, which stores them uncompressed (Block Size high bit set) at about 2.5 GB/s and keeps
the content checksum (no installed library exposes xxh32 to write them ourselves).
"""

from __future__ import annotations

from collections.abc import Sequence

import lz4.block
import lz4.frame

from ..errors import CorruptStreamError
from ..models import CompressionType
from ._adaptive import incompressible
from ._stream import Member, MemberStreamDecoder, check_args
from .base import BlockExtent, Codec, DecodedBlock, EncodedBlock, EncoderState, state_int

# lz4_Frame_format.md: header at most 19 bytes, EndMark and Content Checksum 4 bytes each, and a
# 4-byte Block Size before each data block, stored raw when it does not compress (blocks of
# 64 KiB at the smallest).
_FRAME_OVERHEAD = 19 + 4 + 4
_DATA_BLOCK, _DATA_BLOCK_HEADER = 64 * 1024, 4
_ERRORS = (RuntimeError, ValueError)  # what the lz4 binding raises on bad frames


class Lz4Encoder:
    """Compresses each block to its own frame; the frames need no header or trailer."""

    def __init__(self, level: int) -> None:
        self._level = level
        self._count = 0

    def header(self) -> bytes:
        return b""

    def encode_block(self, block: bytes) -> EncodedBlock:
        stored = incompressible(block, _probe, _fast_frame)
        if stored is not None:
            return EncodedBlock(stored, len(block))
        # liblz4 itself stores a data block that does not shrink: no fallback needed here.
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

    def state(self) -> EncoderState:
        return {"blocks": self._count}

    def restore(self, state: EncoderState) -> None:
        self._count = state_int(state, "blocks")


def _probe(slices: Sequence[memoryview]) -> list[int]:
    """Each slice's size in lz4's fast mode (lz4 has no entropy coder: matches are all it sees)."""
    return [len(lz4.block.compress(piece, store_size=False)) for piece in slices]


def _fast_frame(block: bytes) -> bytes:
    """``block`` as one frame in lz4's fast mode (level 0) with 4 MiB data blocks."""
    frame = lz4.frame.compress(
        block,
        block_size=lz4.frame.BLOCKSIZE_MAX4MB,
        content_checksum=True,
        store_size=True,
    )
    return bytes(frame)


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

    def decode_block(self, data: bytes, raw_size: int) -> DecodedBlock:
        decompressor = lz4.frame.LZ4FrameDecompressor()
        try:
            info = lz4.frame.get_frame_info(data)
            # Our frames carry their content size and a checksum, which liblz4 verifies.
            if info["content_size"] != raw_size or not info["content_checksum"]:
                raise CorruptStreamError(f"lz4 frame does not say {raw_size} bytes with a checksum")
            out = decompressor.decompress(data, max_length=raw_size + 1)
        except _ERRORS as exc:
            raise CorruptStreamError(f"lz4 frame is corrupt: {exc}") from exc
        if not decompressor.eof or decompressor.unused_data or len(out) != raw_size:
            raise CorruptStreamError(f"lz4 frame does not decode to {raw_size} bytes")
        return DecodedBlock(bytes(out))

    def check_stream(self, header: bytes, trailer: bytes, blocks: list[BlockExtent]) -> None:
        if header:
            raise CorruptStreamError("lz4 stream has bytes before its first frame")
        if blocks and trailer:
            raise CorruptStreamError("lz4 stream has bytes after its last frame")
        if not blocks:
            # An empty stream is one empty frame (Lz4Encoder.trailer).
            self.decode_block(trailer, 0)


CODEC: Codec = Lz4Codec()
