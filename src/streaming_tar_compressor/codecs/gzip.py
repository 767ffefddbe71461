"""gzip: the blocks as one gzip member, each block raw deflate ended by a full flush (pigz -i).

A full flush byte-aligns the deflate stream and empties the compressor's history, so blocks
compressed by fresh compressors can be concatenated; the trailer's empty final block ends it.
One member, not one per block, because Python's ``gzip``/``tarfile`` stream readers stop after
the first member. Format: RFC 1952 (gzip) and RFC 1951 (deflate).
"""

from __future__ import annotations

import struct
from typing import cast

from zlib_ng import zlib_ng

from ..errors import CorruptStreamError
from ..models import CompressionType
from ._stream import Member, MemberStreamDecoder, check_args
from .base import EncodedBlock

# RFC 1952 2.3: ID1 ID2, CM=8 (deflate), FLG=0 (no FEXTRA/FNAME/...), MTIME=0 (4 bytes).
_HEADER_START = b"\x1f\x8b\x08\x00\x00\x00\x00\x00"
# RFC 1952 2.3.1: XFL 2 = slowest/best compression, 4 = fastest; OS 255 = unknown.
_XFL_BEST, _XFL_FASTEST, _OS_UNKNOWN = 2, 4, 255
# RFC 1951 3.2.3: BFINAL=1 with an empty fixed-Huffman block, as zlib's finish writes it.
_FINAL_EMPTY_BLOCK = b"\x03\x00"
_RAW_DEFLATE = -15  # zlib: negative wbits = raw deflate, 2**15 window
_GZIP_WRAPPER = 16 + 15  # zlib: +16 = expect a gzip header and trailer
_ISIZE_MOD = 2**32  # RFC 1952 2.3.1: ISIZE is the input size modulo 2**32
# zlib_ng's stub declares ``error`` as an instance; it is the exception class.
_ZLIB_ERROR = cast("type[Exception]", zlib_ng.error)


class GzipEncoder:
    """Frames independently deflated blocks as one gzip member."""

    def __init__(self, level: int) -> None:
        self._level = level
        self._crc = 0
        self._size = 0

    def header(self) -> bytes:
        xfl = {9: _XFL_BEST, 1: _XFL_FASTEST}.get(self._level, 0)
        return _HEADER_START + bytes((xfl, _OS_UNKNOWN))

    def encode_block(self, block: bytes) -> EncodedBlock:
        deflater = zlib_ng.compressobj(self._level, zlib_ng.DEFLATED, _RAW_DEFLATE)
        data = deflater.compress(block) + deflater.flush(zlib_ng.Z_FULL_FLUSH)
        return EncodedBlock(data, len(block), zlib_ng.crc32(block))

    def add_block(self, encoded: EncodedBlock) -> bytes:
        self._crc = zlib_ng.crc32_combine(self._crc, encoded.raw_crc32, encoded.raw_size)
        self._size = (self._size + encoded.raw_size) % _ISIZE_MOD
        return encoded.data

    def trailer(self) -> bytes:
        return _FINAL_EMPTY_BLOCK + struct.pack("<II", self._crc, self._size)


class _GzipMember:
    """zlib's decompressobj in the Member shape (it keeps unconsumed input in a tail)."""

    def __init__(self) -> None:
        self._inflater = zlib_ng.decompressobj(_GZIP_WRAPPER)

    @property
    def eof(self) -> bool:
        return self._inflater.eof

    @property
    def needs_input(self) -> bool:
        return not self._inflater.unconsumed_tail

    @property
    def unused_data(self) -> bytes:
        return self._inflater.unused_data

    def decompress(self, data: bytes, max_length: int) -> bytes:
        return self._inflater.decompress(self._inflater.unconsumed_tail + data, max_length)


class GzipDecoder(MemberStreamDecoder):
    """Reads any gzip file: several members (pigz, ``cat a.gz b.gz``) and zero padding after.

    Zero bytes after a member are taken as padding to the end (tar pads archives with zeros;
    GNU gzip accepts them); anything else after a member must be another member.
    """

    name = "gzip"
    errors = (_ZLIB_ERROR,)

    def __init__(self) -> None:
        super().__init__()
        self._padding = False

    def new_member(self) -> Member:
        return _GzipMember()

    def skip_between(self, pending: bytearray, after_member: bool) -> bool:
        if after_member and (self._padding or pending[0] == 0):
            self._padding = True
            if pending.count(0) != len(pending):
                raise CorruptStreamError("gzip stream has garbage after its zero padding")
            pending.clear()
            return False
        return True


class GzipCodec:
    """The gzip row of DESIGN.md's codec table."""

    kind = CompressionType.GZIP
    default_level = 6
    min_level = 0
    max_level = 9
    default_block_size = 4 * 2**20
    tar_flag = "-z"

    def new_encoder(self, level: int, block_size: int) -> GzipEncoder:
        check_args(self.kind.value, level, self.min_level, self.max_level, block_size)
        return GzipEncoder(level)

    def new_decoder(self) -> GzipDecoder:
        return GzipDecoder()

    def max_encoded_size(self, raw_size: int, block_size: int) -> int:
        blocks = -(-raw_size // block_size)
        # zlib-ng's deflateBound allows 1/8 growth (fixed-Huffman literals of level 1 take up to
        # 9 bits); 64 bytes per block cover block headers and the full-flush marker.
        return 10 + raw_size + raw_size // 8 + 64 * blocks + len(_FINAL_EMPTY_BLOCK) + 8


CODEC = GzipCodec()
