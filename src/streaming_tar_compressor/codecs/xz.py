"""xz: the blocks as one xz stream with one xz block per block and the index, as ``xz -T`` writes.

One stream, not one per block, because Python's ``lzma``/``tarfile`` stream readers stop after
the first. The stdlib compresses each block to raw LZMA2; the framing follows "The .xz File
Format" 1.2.1 (https://tukaani.org/xz/xz-file-format.txt), cited below by section.
"""

from __future__ import annotations

import lzma
import struct
import zlib

from ..errors import CorruptStreamError
from ..models import CompressionType
from ._stream import Member, MemberStreamDecoder, check_args
from .base import EncodedBlock

# 2.1.1.1 Header Magic Bytes; 2.1.2.3 Footer Magic Bytes.
_HEADER_MAGIC = b"\xfd7zXZ\x00"
_FOOTER_MAGIC = b"YZ"
# 2.1.1.2 Stream Flags: a null byte, then the Check ID; 0x01 = CRC32 (3.4), 4 bytes.
_STREAM_FLAGS = b"\x00\x01"
_CHECK_SIZE = 4
# 3.1.2 Block Flags: one filter (bits 0-1 = 0), Compressed Size (0x40) and Uncompressed Size
# (0x80) present, as multithreaded xz writes them.
_BLOCK_FLAGS = 0xC0
# 5.3.1 LZMA2: Filter ID 0x21 with one property byte, the dictionary size.
_LZMA2_ID = 0x21
# 5.3.1: the smallest dictionary the property byte can say is 4 KiB.
_MIN_DICT = 4096
# xz(1), "-0 ... -9": the dictionary size of each preset.
_PRESET_DICT = (
    256 * 2**10,
    2**20,
    2 * 2**20,
    4 * 2**20,
    4 * 2**20,
    8 * 2**20,
    8 * 2**20,
    16 * 2**20,
    32 * 2**20,
    64 * 2**20,
)
# liblzma's lzma_block_buffer_bound: LZMA2 stores incompressible data in chunks of at most
# 64 KiB with a 3-byte header, plus the 1-byte end marker.
_LZMA2_CHUNK, _LZMA2_CHUNK_HEADER = 2**16, 3
_BLOCK_HEADER_MAX = 28  # 3.1: size, flags, two 9-byte VLIs, 3 filter bytes, padding, CRC32
_INDEX_RECORD_MAX = 18  # 4.3: two 9-byte VLIs


def _vli(value: int) -> bytes:
    """1.2 Variable-length integer: 7 bits a byte, low first, high bit set on all but the last."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_vli(data: bytes, pos: int) -> int:
    """1.2: the variable-length integer that starts at ``pos``."""
    value = shift = 0
    while data[pos] & 0x80:
        value |= (data[pos] & 0x7F) << shift
        shift += 7
        pos += 1
    return value | data[pos] << shift


def _pad4(size: int) -> bytes:
    """Zero bytes that bring ``size`` to a multiple of four (3.1.6, 3.3, 4.4)."""
    return bytes(-size % 4)


def _crc32(data: bytes) -> bytes:
    return struct.pack("<I", zlib.crc32(data))


def _dict_property(dict_size: int) -> int:
    """5.3.1: the smallest property byte whose size, 2 or 3 times 2**(11 + byte // 2), fits."""
    prop = 0
    while (2 | prop & 1) << (prop // 2 + 11) < dict_size:
        prop += 1
    return prop


# What a stream may make liblzma allocate: `xz -9` needs 65 MiB to decode; a larger declared
# dictionary is refused (as "Memory usage limit reached") instead of being allocated.
DECODER_MEMORY_LIMIT = 256 * 2**20


class XzEncoder:
    """Frames raw LZMA2 blocks as one xz stream and builds its index."""

    def __init__(self, level: int, block_size: int) -> None:
        dict_size = max(_MIN_DICT, min(_PRESET_DICT[level], block_size))
        self._filters = [{"id": lzma.FILTER_LZMA2, "preset": level, "dict_size": dict_size}]
        self._filter_flags = bytes((_LZMA2_ID, 1, _dict_property(dict_size)))
        self._records = bytearray()
        self._count = 0

    def header(self) -> bytes:
        # 2.1.1 Stream Header: magic, flags, CRC32 of the flags.
        return _HEADER_MAGIC + _STREAM_FLAGS + _crc32(_STREAM_FLAGS)

    def encode_block(self, block: bytes) -> EncodedBlock:
        data = lzma.compress(block, format=lzma.FORMAT_RAW, filters=self._filters)
        # 3.1 Block Header: size byte, flags, sizes, filter flags, padding, CRC32.
        fields = bytes((_BLOCK_FLAGS,)) + _vli(len(data)) + _vli(len(block)) + self._filter_flags
        fields += _pad4(1 + len(fields) + 4)
        head = bytes(((1 + len(fields) + 4) // 4 - 1,)) + fields
        head += _crc32(head)
        # 3.3 Block Padding, 3.4 Check (CRC32 of the uncompressed data).
        framed = head + data + _pad4(len(data)) + struct.pack("<I", zlib.crc32(block))
        return EncodedBlock(framed, len(block))

    def add_block(self, encoded: EncodedBlock) -> bytes:
        # 4.3 Records: Unpadded Size (header + data + check, without the block padding) and
        # Uncompressed Size; the data size is the first VLI after the size and flags bytes.
        header_size = (encoded.data[0] + 1) * 4
        unpadded = header_size + _read_vli(encoded.data, 2) + _CHECK_SIZE
        self._records += _vli(unpadded) + _vli(encoded.raw_size)
        self._count += 1
        return encoded.data

    def trailer(self) -> bytes:
        # 4 Index: indicator, record count, records, padding, CRC32.
        index = b"\x00" + _vli(self._count) + bytes(self._records)
        index += _pad4(len(index))
        index += _crc32(index)
        # 2.1.2 Stream Footer: CRC32, Backward Size (index size / 4 - 1), flags, magic.
        tail = struct.pack("<I", len(index) // 4 - 1) + _STREAM_FLAGS
        return index + _crc32(tail) + tail + _FOOTER_MAGIC


class XzDecoder(MemberStreamDecoder):
    """Reads any .xz file: several streams (``cat a.xz b.xz``) with Stream Padding between.

    2.2 Stream Padding: null bytes, a multiple of four in all, after any stream.
    """

    name = "xz"
    errors = (lzma.LZMAError,)

    def __init__(self) -> None:
        super().__init__()
        self._padding = 0

    def new_member(self) -> Member:
        return lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=DECODER_MEMORY_LIMIT)

    def skip_between(self, pending: bytearray, after_member: bool) -> bool:
        if not after_member:
            return True
        zeros = len(pending) - len(pending.lstrip(b"\x00"))
        self._padding += zeros
        del pending[:zeros]
        if not pending:
            return False
        self.check_end()
        return True

    def check_end(self) -> None:
        if self._padding % 4:
            raise CorruptStreamError("xz stream padding is not a multiple of four bytes")
        self._padding = 0


class XzCodec:
    """The xz row of DESIGN.md's codec table."""

    kind = CompressionType.XZ
    default_level = 6
    min_level = 0
    max_level = 9
    default_block_size = 8 * 2**20
    tar_flag = "-J"

    def new_encoder(self, level: int, block_size: int) -> XzEncoder:
        check_args(self.kind.value, level, self.min_level, self.max_level, block_size)
        return XzEncoder(level, block_size)

    def new_decoder(self) -> XzDecoder:
        return XzDecoder()

    def max_encoded_size(self, raw_size: int, block_size: int) -> int:
        blocks = -(-raw_size // block_size)
        chunks = raw_size // _LZMA2_CHUNK + blocks
        lzma2 = raw_size + _LZMA2_CHUNK_HEADER * chunks + blocks
        per_block = _BLOCK_HEADER_MAX + 3 + _CHECK_SIZE + _INDEX_RECORD_MAX
        # Stream Header and Footer (12 bytes each), index indicator, count, padding and CRC32.
        return lzma2 + per_block * blocks + 24 + 1 + 9 + 3 + 4


CODEC = XzCodec()
