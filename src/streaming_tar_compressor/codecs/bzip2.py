"""bzip2: one bzip2 stream per block, as pbzip2 writes; ``bzip2 -d`` reads them as one file.

Python's ``tarfile`` stream mode (``r|bz2``) reads only the first stream; ``bz2.open`` and
``tarfile.open(mode="r:bz2")`` read them all. bzip2 has no stored form, so every block is
compressed (bzip2 -9 expands random data by 0.5 %).
"""

from __future__ import annotations

import bz2

from ..errors import CorruptStreamError
from ..models import CompressionType
from ._stream import Member, MemberStreamDecoder, check_args
from .base import BlockExtent, Codec, DecodedBlock, EncodedBlock, EncoderState, state_int

_ERRORS = (OSError, ValueError, EOFError)  # what the bz2 module raises on bad streams


class Bzip2Encoder:
    """Compresses each block to its own bzip2 stream; streams need no header or trailer."""

    def __init__(self, level: int) -> None:
        self._level = level
        self._count = 0

    def header(self) -> bytes:
        return b""

    def encode_block(self, block: bytes) -> EncodedBlock:
        return EncodedBlock(bz2.compress(block, self._level), len(block))

    def add_block(self, encoded: EncodedBlock) -> bytes:
        self._count += 1
        return encoded.data

    def trailer(self) -> bytes:
        # An empty stream is one empty bzip2 stream: a zero-byte file is not valid bzip2.
        return b"" if self._count else self.encode_block(b"").data

    def state(self) -> EncoderState:
        return {"blocks": self._count}

    def restore(self, state: EncoderState) -> None:
        self._count = state_int(state, "blocks")


class Bzip2Decoder(MemberStreamDecoder):
    """Reads any bzip2 file: one stream or many (pbzip2, ``cat a.bz2 b.bz2``)."""

    name = "bzip2"
    errors = (OSError,)

    def new_member(self) -> Member:
        return bz2.BZ2Decompressor()


class Bzip2Codec:
    """The bzip2 row of DESIGN.md's codec table."""

    kind = CompressionType.BZIP2
    default_level = 9
    min_level = 1
    max_level = 9
    default_block_size = 900_000
    tar_flag = "-j"

    def new_encoder(self, level: int, block_size: int) -> Bzip2Encoder:
        check_args(self.kind.value, level, self.min_level, self.max_level, block_size)
        return Bzip2Encoder(level)

    def new_decoder(self) -> Bzip2Decoder:
        return Bzip2Decoder()

    def max_encoded_size(self, raw_size: int, block_size: int) -> int:
        streams = max(1, -(-raw_size // block_size))
        # bzlib.h, BZ2_bzBuffToBuffCompress: output fits in 1% more than the input plus 600.
        return raw_size + raw_size // 100 + 600 * streams

    def decode_block(self, data: bytes, raw_size: int) -> DecodedBlock:
        decompressor = bz2.BZ2Decompressor()
        try:
            out = decompressor.decompress(data, raw_size + 1)
        except _ERRORS as exc:
            raise CorruptStreamError(f"bzip2 stream is corrupt: {exc}") from exc
        # The stream's own CRCs (per bzip2 block and combined) were checked at its end.
        if not decompressor.eof or decompressor.unused_data or len(out) != raw_size:
            raise CorruptStreamError(f"bzip2 stream does not decode to {raw_size} bytes")
        return DecodedBlock(out)

    def check_stream(self, header: bytes, trailer: bytes, blocks: list[BlockExtent]) -> None:
        if header:
            raise CorruptStreamError("bzip2 stream has bytes before its first stream")
        if blocks and trailer:
            raise CorruptStreamError("bzip2 stream has bytes after its last stream")
        if not blocks:
            # An empty stream is one empty bzip2 stream (Bzip2Encoder.trailer).
            self.decode_block(trailer, 0)


CODEC: Codec = Bzip2Codec()
