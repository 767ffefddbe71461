"""gzip: the blocks as one gzip member, each block raw deflate ended by a full flush (pigz -i).

A full flush byte-aligns the deflate stream and empties the compressor's history, so blocks
compressed by fresh compressors can be concatenated; the trailer's empty final block ends it.
One member, not one per block, because Python's ``gzip``/``tarfile`` stream readers stop after
the first member. A block that will not shrink (see _adaptive) is written as deflate stored
blocks, ended by the same full-flush marker. Format: RFC 1952 (gzip) and RFC 1951 (deflate).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import cast

from zlib_ng import zlib_ng

from ..errors import CorruptStreamError
from ..models import CompressionType
from ._adaptive import incompressible, zstd_fast_frame
from ._stream import Member, MemberStreamDecoder, check_args
from .base import BlockExtent, Codec, DecodedBlock, EncodedBlock, EncoderState, state_int

# RFC 1952 2.3: ID1 ID2, CM=8 (deflate), FLG=0 (no FEXTRA/FNAME/...), MTIME=0 (4 bytes).
_HEADER_START = b"\x1f\x8b\x08\x00\x00\x00\x00\x00"
# RFC 1952 2.3.1: XFL 2 = slowest/best compression, 4 = fastest; OS 255 = unknown.
_XFL_BEST, _XFL_FASTEST, _OS_UNKNOWN = 2, 4, 255
_HEADER_SIZE = 10
# RFC 1951 3.2.3: BFINAL=1 with an empty fixed-Huffman block, as zlib's finish writes it.
_FINAL_EMPTY_BLOCK = b"\x03\x00"
_TRAILER_SIZE = len(_FINAL_EMPTY_BLOCK) + 8
# RFC 1951 3.2.4: a stored block is a header byte (BFINAL=0, BTYPE=00, padding to the byte
# boundary: 0x00 at a boundary), LEN and NLEN (its one's complement; 2 bytes LE each), then LEN
# bytes. A full flush ends with an empty one, which every block of ours ends with.
_STORED_MAX = 0xFFFF
_STORED_HEADER = struct.Struct("<BHH")
_FULL_FLUSH = b"\x00\x00\x00\xff\xff"
_PROBE_LEVEL = 2  # zlib-ng level 1 has fixed Huffman codes: a blind probe (see _adaptive)
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
        crc = zlib_ng.crc32(block)
        # Level 0 is stored blocks already.
        if self._level and incompressible(block, _probe, zstd_fast_frame) is not None:
            return EncodedBlock(_stored(block), len(block), crc)
        deflater = zlib_ng.compressobj(self._level, zlib_ng.DEFLATED, _RAW_DEFLATE)
        data = deflater.compress(block) + deflater.flush(zlib_ng.Z_FULL_FLUSH)
        if len(data) > _stored_size(len(block)):
            data = _stored(block)
        return EncodedBlock(data, len(block), crc)

    def add_block(self, encoded: EncodedBlock) -> bytes:
        self._crc = zlib_ng.crc32_combine(self._crc, encoded.raw_crc32, encoded.raw_size)
        self._size = (self._size + encoded.raw_size) % _ISIZE_MOD
        return encoded.data

    def trailer(self) -> bytes:
        return _FINAL_EMPTY_BLOCK + struct.pack("<II", self._crc, self._size)

    def state(self) -> EncoderState:
        return {"crc32": self._crc, "size": self._size}

    def restore(self, state: EncoderState) -> None:
        self._crc = state_int(state, "crc32", _ISIZE_MOD - 1)
        self._size = state_int(state, "size", _ISIZE_MOD - 1)


def _probe(slices: Sequence[memoryview]) -> list[int]:
    """Each slice's deflated size; a full flush between slices empties the history."""
    deflater = zlib_ng.compressobj(_PROBE_LEVEL, zlib_ng.DEFLATED, _RAW_DEFLATE)
    flush = zlib_ng.Z_FULL_FLUSH
    return [len(deflater.compress(piece)) + len(deflater.flush(flush)) for piece in slices]


def _stored_size(raw_size: int) -> int:
    pieces = -(-raw_size // _STORED_MAX)
    return raw_size + _STORED_HEADER.size * pieces + len(_FULL_FLUSH)


def _stored(block: bytes) -> bytes:
    """``block`` as deflate stored blocks, ended by a full flush (RFC 1951 3.2.4)."""
    view = memoryview(block)
    parts: list[bytes | memoryview] = []
    for start in range(0, len(view), _STORED_MAX):
        piece = view[start : start + _STORED_MAX]
        parts += (_STORED_HEADER.pack(0, len(piece), len(piece) ^ 0xFFFF), piece)
    parts.append(_FULL_FLUSH)
    return b"".join(parts)


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

    def decode_block(self, data: bytes, raw_size: int) -> DecodedBlock:
        # Every block ends with a full flush: byte-aligned, with no final block.
        if data[-4:] != _FULL_FLUSH[1:]:
            raise CorruptStreamError("gzip block does not end with a full flush")
        inflater = zlib_ng.decompressobj(_RAW_DEFLATE)
        try:
            # Our final empty block appended: only a block that ends on a deflate block
            # boundary then reaches the end exactly, with nothing left over.
            out = inflater.decompress(data + _FINAL_EMPTY_BLOCK, raw_size + 1)
        except _ZLIB_ERROR as exc:
            raise CorruptStreamError(f"gzip block is corrupt: {exc}") from exc
        if not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
            raise CorruptStreamError("gzip block does not end on a deflate block boundary")
        if len(out) != raw_size:
            raise CorruptStreamError(f"gzip block does not decode to {raw_size} bytes")
        return DecodedBlock(out, zlib_ng.crc32(out))

    def check_stream(self, header: bytes, trailer: bytes, blocks: list[BlockExtent]) -> None:
        # RFC 1952 2.3: ID1 ID2 CM FLG; FLG=0 as we write it (no optional fields follow).
        if len(header) != _HEADER_SIZE or header[:4] != _HEADER_START[:4]:
            raise CorruptStreamError("gzip header is not the one the encoder writes")
        crc = size = 0
        for block in blocks:
            crc = zlib_ng.crc32_combine(crc, block.raw_crc32, block.raw_size)
            size += block.raw_size
        if len(trailer) != _TRAILER_SIZE or not trailer.startswith(_FINAL_EMPTY_BLOCK):
            raise CorruptStreamError("gzip stream does not end with the final block and trailer")
        if trailer[2:] != struct.pack("<II", crc, size % _ISIZE_MOD):
            raise CorruptStreamError("gzip trailer CRC-32 or size does not match the blocks")


CODEC: Codec = GzipCodec()
