"""xz: the blocks as one xz stream with one xz block per block and the index, as ``xz -T`` writes.

One stream, not one per block, because Python's ``lzma``/``tarfile`` stream readers stop after
the first. The stdlib compresses each block to raw LZMA2; a block that will not shrink (see
_adaptive) is written as LZMA2 uncompressed chunks instead. The framing follows "The .xz File
Format" 1.2.1 (https://tukaani.org/xz/xz-file-format.txt), cited below by section, and LZMA2
chunks follow liblzma's lzma2_decoder.c.
"""

from __future__ import annotations

import lzma
import struct
import zlib

from ..errors import CorruptStreamError, ManifestError
from ..models import CompressionType
from ._adaptive import incompressible, zstd_fast_frame, zstd_slice_sizes
from ._stream import Member, MemberStreamDecoder, check_args
from .base import (
    BlockExtent,
    Codec,
    DecodedBlock,
    EncodedBlock,
    EncoderState,
    state_bytes,
    state_int,
)

# 2.1.1.1 Header Magic Bytes; 2.1.2.3 Footer Magic Bytes.
_HEADER_MAGIC = b"\xfd7zXZ\x00"
_FOOTER_MAGIC = b"YZ"
# 2.1.1.2 Stream Flags: a null byte, then the Check ID; 0x01 = CRC32 (3.4), 4 bytes.
_STREAM_FLAGS = b"\x00\x01"
_CHECK_SIZE = 4
_FOOTER_SIZE = 12  # 2.1.2: CRC32, Backward Size, Stream Flags, magic
# 3.1.2 Block Flags: one filter (bits 0-1 = 0), Compressed Size (0x40) and Uncompressed Size
# (0x80) present, as multithreaded xz writes them.
_BLOCK_FLAGS = 0xC0
# 5.3.1 LZMA2: Filter ID 0x21 with one property byte, the dictionary size (at most 40).
_LZMA2_ID = 0x21
_MAX_DICT_PROPERTY = 40
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
# LZMA2 control bytes: 0x01 = uncompressed chunk that resets the dictionary (a block's first
# chunk must), 0x02 = uncompressed chunk, 0x00 = end of data; a 2-byte big-endian size - 1
# follows the first two.
_LZMA2_STORED_RESET, _LZMA2_STORED, _LZMA2_END = 1, 2, b"\x00"
_VLI_MAX_BYTES = 9  # 1.2
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


def _read_vli_checked(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """1.2: the variable-length integer at ``pos`` (ending before ``end``) and the position after
    it; CorruptStreamError when it runs past ``end``, is longer than 9 bytes, or not minimal."""
    value = 0
    for index in range(_VLI_MAX_BYTES):
        if pos + index >= end:
            break
        byte = data[pos + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index:
                break
            return value, pos + index + 1
    raise CorruptStreamError("xz stream has a bad variable-length integer")


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


def _dict_size(prop: int) -> int:
    """5.3.1: the dictionary size a property byte says (40 means 4 GiB - 1)."""
    return 2**32 - 1 if prop == _MAX_DICT_PROPERTY else (2 | prop & 1) << (prop // 2 + 11)


def _stored_size(raw_size: int) -> int:
    return raw_size + _LZMA2_CHUNK_HEADER * -(-raw_size // _LZMA2_CHUNK) + len(_LZMA2_END)


def _stored_lzma2(block: bytes) -> bytes:
    """``block`` as LZMA2 uncompressed chunks, the first one resetting the dictionary."""
    view = memoryview(block)
    parts: list[bytes | memoryview] = []
    control = _LZMA2_STORED_RESET
    for start in range(0, len(view), _LZMA2_CHUNK):
        piece = view[start : start + _LZMA2_CHUNK]
        parts += (bytes((control,)) + (len(piece) - 1).to_bytes(2, "big"), piece)
        control = _LZMA2_STORED
    parts.append(_LZMA2_END)
    return b"".join(parts)


def _parse_block(data: bytes, raw_size: int) -> tuple[bytes, int, int]:
    """Check a block of our framing (3.1-3.4); its LZMA2 data, dictionary size and CRC32."""
    if not data or data[0] == 0:
        raise CorruptStreamError("xz block has no block header")
    header_size = (data[0] + 1) * 4
    if len(data) < header_size + _CHECK_SIZE:
        raise CorruptStreamError("xz block is truncated")
    header = data[:header_size]
    if _crc32(header[:-4]) != header[-4:]:
        raise CorruptStreamError("xz block header has a bad CRC32")
    if header[1] != _BLOCK_FLAGS:
        raise CorruptStreamError("xz block header has flags our encoder does not write")
    end = header_size - 4
    compressed, pos = _read_vli_checked(header, 2, end)
    uncompressed, pos = _read_vli_checked(header, pos, end)
    if uncompressed != raw_size:
        raise CorruptStreamError(f"xz block holds {uncompressed} bytes, expected {raw_size}")
    if header[pos : pos + 2] != bytes((_LZMA2_ID, 1)) or pos + 3 > end:
        raise CorruptStreamError("xz block does not use the one LZMA2 filter")
    prop = header[pos + 2]
    if prop > _MAX_DICT_PROPERTY or any(header[pos + 3 : end]):
        raise CorruptStreamError("xz block header has bad filter properties or padding")
    data_end = header_size + compressed
    if len(data) != data_end + -compressed % 4 + _CHECK_SIZE:
        raise CorruptStreamError("xz block size does not match its header")
    if any(data[data_end:-_CHECK_SIZE]):
        raise CorruptStreamError("xz block padding is not zero")
    check = int.from_bytes(data[-_CHECK_SIZE:], "little")
    return data[header_size:data_end], _dict_size(prop), check


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
        if incompressible(block, zstd_slice_sizes, zstd_fast_frame) is not None:
            data = _stored_lzma2(block)
        else:
            data = lzma.compress(block, format=lzma.FORMAT_RAW, filters=self._filters)
            if len(data) > _stored_size(len(block)):
                data = _stored_lzma2(block)
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

    def state(self) -> EncoderState:
        return {"blocks": self._count, "index_records": self._records.hex()}

    def restore(self, state: EncoderState) -> None:
        count, records = state_int(state, "blocks"), state_bytes(state, "index_records")
        pos = 0
        try:
            for _ in range(2 * count):  # Unpadded Size and Uncompressed Size per block
                pos = _read_vli_checked(records, pos, len(records))[1]
        except CorruptStreamError:
            pos = -1
        if pos != len(records):
            raise ManifestError("the checkpoint's xz index does not match its block count")
        self._count, self._records = count, bytearray(records)


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
    # 2 MiB: liblzma's preset-6 encoder takes ~11x its dictionary (at most the block) per
    # worker. Measured on a 150 MiB mixed tree, 8 -> 4 MiB took peak RSS from 339 to 180 MiB
    # for 0.6 % more output; on a 60 MiB mixed tree (2 workers), 4 -> 2 MiB took it from
    # 183-189 to 112-118 MiB (under the 128 MiB goal) and 13.7-16.3 -> 11.0-12.2 s, for 0.7 %
    # more output (1.018x `xz -6 -T2`'s, which took 29.2 s and 259 MiB).
    default_block_size = 2 * 2**20
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

    def decode_block(self, data: bytes, raw_size: int) -> DecodedBlock:
        lzma2, dict_size, check = _parse_block(data, raw_size)
        # The dictionary is reset at the block's start, so no match reaches further back than
        # the block's own size: a larger dictionary would only cost memory.
        dict_size = max(_MIN_DICT, min(dict_size, raw_size))
        decompressor = lzma.LZMADecompressor(
            lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "dict_size": dict_size}]
        )
        try:
            out = decompressor.decompress(lzma2, raw_size + 1)
        except lzma.LZMAError as exc:
            raise CorruptStreamError(f"xz block is corrupt: {exc}") from exc
        if not decompressor.eof or decompressor.unused_data or len(out) != raw_size:
            raise CorruptStreamError(f"xz block does not decode to {raw_size} bytes")
        crc = zlib.crc32(out)
        if crc != check:
            raise CorruptStreamError("xz block has a bad CRC32 check")
        return DecodedBlock(out, crc)

    def check_stream(self, header: bytes, trailer: bytes, blocks: list[BlockExtent]) -> None:
        if header != _HEADER_MAGIC + _STREAM_FLAGS + _crc32(_STREAM_FLAGS):
            raise CorruptStreamError("xz stream header is not the one the encoder writes")
        # 2.1.2 Stream Footer: CRC32, Backward Size, Stream Flags (as the header's), magic.
        index, footer = trailer[:-_FOOTER_SIZE], trailer[-_FOOTER_SIZE:]
        if len(footer) != _FOOTER_SIZE or footer[-2:] != _FOOTER_MAGIC:
            raise CorruptStreamError("xz stream footer is missing")
        if footer[8:10] != _STREAM_FLAGS or _crc32(footer[4:10]) != footer[:4]:
            raise CorruptStreamError("xz stream footer is corrupt or disagrees with the header")
        if (int.from_bytes(footer[4:8], "little") + 1) * 4 != len(index):
            raise CorruptStreamError("xz index size does not match the stream footer")
        # 4 Index: indicator 0x00, record count, records, padding, CRC32.
        end = len(index) - 4
        if end < 2 or index[0] != 0 or _crc32(index[:end]) != index[end:]:
            raise CorruptStreamError("xz index is corrupt")
        count, pos = _read_vli_checked(index, 1, end)
        if count != len(blocks):
            raise CorruptStreamError(f"xz index lists {count} blocks, not {len(blocks)}")
        for number, block in enumerate(blocks):
            unpadded, pos = _read_vli_checked(index, pos, end)
            uncompressed, pos = _read_vli_checked(index, pos, end)
            # 4.3.1: Unpadded Size leaves out the block padding, which rounds it up to 4.
            if uncompressed != block.raw_size or unpadded + -unpadded % 4 != block.compressed_size:
                raise CorruptStreamError(f"xz index record {number} does not match the block")
        if end - pos != -pos % 4 or any(index[pos:end]):
            raise CorruptStreamError("xz index padding is wrong")


CODEC: Codec = XzCodec()
