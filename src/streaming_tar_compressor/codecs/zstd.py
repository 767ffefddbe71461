"""zstd: one frame per block, checksummed, plus the seek table of the zstd seekable format.

Frames are self-contained, so the ``zstd`` CLI and GNU tar ``--zstd`` read the concatenation as
one stream, and the seek table (a skippable frame they ignore) lets seekable readers jump to
any block. Formats: RFC 8878 (zstd frames) and zstd's contrib/seekable_format/zstd_seekable
_compression_format.md, cited below by section.
"""

from __future__ import annotations

import struct

import zstandard

from ..errors import CorruptStreamError
from ..models import CompressionType
from ._stream import Member, MemberStreamDecoder, check_args
from .base import EncodedBlock

# RFC 8878 3.1.1: frame magic; 3.1.2: skippable frames have magics 0x184D2A50..0x184D2A5F.
_FRAME_MAGIC = 0xFD2FB528
_SKIPPABLE_MASK, _SKIPPABLE_MAGIC = 0xFFFFFFF0, 0x184D2A50
# Seekable format: the seek table's skippable magic, its footer magic, and the descriptor
# byte (0: no per-frame checksums; the frames carry their own).
_SEEK_TABLE_MAGIC = 0x184D2A5E
_SEEKABLE_MAGIC = 0x8F92EAB1
_SEEK_DESCRIPTOR = 0
# RFC 8878 3.1.1.2: Block_Maximum_Size; each block decodes to at most this much.
_BLOCK_MAX = 128 * 1024
# zstd.h ZSTD_COMPRESSBOUND, plus frame header (at most 18 bytes) and checksum (4).
_FRAME_OVERHEAD = 18 + 4 + (_BLOCK_MAX >> 11)
_SEEK_ENTRY, _SEEK_FIXED = 8, 8 + 9  # per frame; skippable header + footer


class ZstdEncoder:
    """Compresses each block to its own frame and writes the seek table at the end."""

    def __init__(self, level: int) -> None:
        self._level = level
        self._entries = bytearray()
        self._count = 0

    def header(self) -> bytes:
        return b""

    def encode_block(self, block: bytes) -> EncodedBlock:
        # A fresh compressor per call: ZstdCompressor instances are not thread-safe.
        compressor = zstandard.ZstdCompressor(
            level=self._level, write_checksum=True, write_content_size=True
        )
        return EncodedBlock(compressor.compress(block), len(block))

    def add_block(self, encoded: EncodedBlock) -> bytes:
        # Seekable format, Seek_Table_Entries: Compressed_Size, Decompressed_Size (u32 LE).
        self._entries += struct.pack("<II", len(encoded.data), encoded.raw_size)
        self._count += 1
        return encoded.data

    def trailer(self) -> bytes:
        # An empty stream still gets one (empty) frame: some readers reject frameless input.
        empty = b"" if self._count else self.add_block(self.encode_block(b""))
        # Seek_Table_Footer: Number_Of_Frames, Seek_Table_Descriptor, Seekable_Magic_Number.
        footer = struct.pack("<IBI", self._count, _SEEK_DESCRIPTOR, _SEEKABLE_MAGIC)
        table = bytes(self._entries) + footer
        return empty + struct.pack("<II", _SEEK_TABLE_MAGIC, len(table)) + table


class _Frame:
    """One zstd or skippable frame in the Member shape, with output bounded per read.

    zstandard's decompressobj decodes all the input it gets, so this walks the frame's block
    headers (RFC 8878 3.1.1) and feeds it at most one block per call: at most 128 KiB out.
    """

    def __init__(self, context: zstandard.ZstdDecompressor) -> None:
        self._input = bytearray()
        self._output = bytearray()
        self._decoder = context.decompressobj()
        self._skip = -1  # bytes of a skippable frame still to drop; -1: not known yet
        self._feedable = 0  # input bytes known to belong to the frame, not yet decoded
        self._header_done = False
        self._last_block = False
        self._checksum = 0
        self._ended = False

    @property
    def eof(self) -> bool:
        return self._ended and not self._output

    @property
    def needs_input(self) -> bool:
        return not self._output

    @property
    def unused_data(self) -> bytes:
        return bytes(self._input) if self._ended else b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        self._input += data
        while len(self._output) < max_length and not self._ended and self._step():
            pass
        out = bytes(self._output[:max_length])
        del self._output[:max_length]
        return out

    def _step(self) -> bool:
        """Parse or decode what the input allows; False when it needs more input."""
        if self._skip >= 0:
            dropped = min(self._skip, len(self._input))
            del self._input[:dropped]
            self._skip -= dropped
            return self._end() if not self._skip else False
        if self._feedable:
            return self._feed()
        if not self._header_done:
            return self._parse_header()
        if self._last_block:
            # RFC 8878 3.1.1: the optional 4-byte Content_Checksum after the last block.
            self._feedable = self._checksum
            self._checksum = 0
            return self._feed() if self._feedable else self._end()
        return self._parse_block_header()

    def _parse_header(self) -> bool:
        if len(self._input) < 5:
            return False
        magic = int.from_bytes(self._input[:4], "little")
        if magic & _SKIPPABLE_MASK == _SKIPPABLE_MAGIC:
            # RFC 8878 3.1.2: magic, Frame_Size (u32 LE), then that many bytes of user data.
            if len(self._input) < 8:
                return False
            self._skip = int.from_bytes(self._input[4:8], "little")
            del self._input[:8]
            return True
        if magic != _FRAME_MAGIC:
            raise CorruptStreamError("zstd stream has bad frame magic")
        # RFC 8878 3.1.1.1.1 Frame_Header_Descriptor.
        descriptor = self._input[4]
        fcs_flag, single_segment = descriptor >> 6, descriptor >> 5 & 1
        fcs_size = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
        dict_id_size = (0, 1, 2, 4)[descriptor & 3]
        self._checksum = 4 if descriptor & 4 else 0
        self._feedable = 5 + (0 if single_segment else 1) + dict_id_size + fcs_size
        self._header_done = True
        return True

    def _parse_block_header(self) -> bool:
        # RFC 8878 3.1.1.2.1 Block_Header: Last_Block (bit 0), Block_Type (bits 1-2),
        # Block_Size (bits 3-23); an RLE block (type 1) stores one byte.
        if len(self._input) < 3:
            return False
        header = int.from_bytes(self._input[:3], "little")
        block_type, block_size = header >> 1 & 3, header >> 3
        if block_type == 3:
            raise CorruptStreamError("zstd stream has a reserved block type")
        self._last_block = bool(header & 1)
        self._feedable = 3 + (1 if block_type == 1 else block_size)
        return True

    def _feed(self) -> bool:
        piece = bytes(self._input[: self._feedable])
        if not piece:
            return False
        del self._input[: len(piece)]
        self._feedable -= len(piece)
        self._output += self._decoder.decompress(piece)
        if self._last_block and not self._feedable and not self._checksum:
            return self._end()
        return True

    def _end(self) -> bool:
        if self._skip < 0 and not self._decoder.eof:
            raise CorruptStreamError("zstd frame ends before its decoder does")
        self._ended = True
        return False


class ZstdDecoder(MemberStreamDecoder):
    """Reads any zstd stream: many frames, skippable frames between and after them."""

    name = "zstd"
    errors = (zstandard.ZstdError,)

    def __init__(self) -> None:
        super().__init__()
        # One context for all frames: decompressobj() resets it, and frames come one at a time.
        self._context = zstandard.ZstdDecompressor()

    def new_member(self) -> Member:
        return _Frame(self._context)


class ZstdCodec:
    """The zstd row of DESIGN.md's codec table."""

    kind = CompressionType.ZSTD
    default_level = 3
    min_level = -7
    max_level = 22
    default_block_size = 4 * 2**20
    tar_flag = "--zstd"

    def new_encoder(self, level: int, block_size: int) -> ZstdEncoder:
        check_args(self.kind.value, level, self.min_level, self.max_level, block_size)
        return ZstdEncoder(level)

    def new_decoder(self) -> ZstdDecoder:
        return ZstdDecoder()

    def max_encoded_size(self, raw_size: int, block_size: int) -> int:
        frames = max(1, -(-raw_size // block_size))
        bound = raw_size + (raw_size >> 8) + (_FRAME_OVERHEAD + _SEEK_ENTRY) * frames
        return bound + _SEEK_FIXED


CODEC = ZstdCodec()
