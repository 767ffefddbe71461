"""none: the tar stream as is; blocks only pace the pipeline."""

from __future__ import annotations

from ..errors import CorruptStreamError, UsageError
from ..models import CompressionType
from ._stream import check_args
from .base import BlockExtent, Buffer, Codec, DecodedBlock, EncodedBlock, EncoderState


class NoneEncoder:
    """Writes each block unchanged."""

    def header(self) -> bytes:
        return b""

    def encode_block(self, block: bytes) -> EncodedBlock:
        return EncodedBlock(bytes(block), len(block))

    def add_block(self, encoded: EncodedBlock) -> bytes:
        return encoded.data

    def trailer(self) -> bytes:
        return b""

    def state(self) -> EncoderState:
        return {}

    def restore(self, state: EncoderState) -> None:
        """Nothing to restore: the stream has no framing."""


class NoneDecoder:
    """Passes bytes through, at most ``max_size`` a read; empty input is an empty stream."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: Buffer) -> None:
        self._pending += data

    def read(self, max_size: int) -> bytes:
        if max_size < 1:
            raise UsageError(f"read size must be positive, not {max_size}")
        out = bytes(self._pending[:max_size])
        del self._pending[:max_size]
        return out

    def close(self) -> None:
        """Nothing can be cut short in an uncompressed stream."""


class NoneCodec:
    """The none row of DESIGN.md's codec table."""

    kind = CompressionType.NONE
    default_level = 0
    min_level = 0
    max_level = 0
    default_block_size = 2**20
    tar_flag = ""

    def new_encoder(self, level: int, block_size: int) -> NoneEncoder:
        check_args(self.kind.value, level, self.min_level, self.max_level, block_size)
        return NoneEncoder()

    def new_decoder(self) -> NoneDecoder:
        return NoneDecoder()

    def max_encoded_size(self, raw_size: int, block_size: int) -> int:
        return raw_size

    def decode_block(self, data: bytes, raw_size: int) -> DecodedBlock:
        if len(data) != raw_size:
            raise CorruptStreamError(f"block has {len(data)} bytes, expected {raw_size}")
        return DecodedBlock(bytes(data))

    def check_stream(self, header: bytes, trailer: bytes, blocks: list[BlockExtent]) -> None:
        if header or trailer:
            raise CorruptStreamError("uncompressed stream has bytes outside its blocks")


CODEC: Codec = NoneCodec()
