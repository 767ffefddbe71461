"""zstd: one frame per block, checksummed, plus the seek table of the zstd seekable format.

Frames are self-contained, so the ``zstd`` CLI and GNU tar ``--zstd`` read the concatenation as
one stream, and the seek table (a skippable frame they ignore) lets seekable readers jump to
any block. A block that will not shrink (see _adaptive) is written by libzstd at level 1, which
stores it as raw blocks at about 5 GB/s and keeps the checksum (no installed library exposes
XXH64 to write raw blocks with a checksum ourselves). Formats: RFC 8878 (zstd frames) and zstd's
contrib/seekable_format/zstd_seekable_compression_format.md, cited below by section.
"""

from __future__ import annotations

import struct

import zstandard

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

# RFC 8878 3.1.1: frame magic; 3.1.2: skippable frames have magics 0x184D2A50..0x184D2A5F.
_FRAME_MAGIC = 0xFD2FB528
_SKIPPABLE_MASK, _SKIPPABLE_MAGIC = 0xFFFFFFF0, 0x184D2A50
# Seekable format: the seek table's skippable magic, its footer magic, and the descriptor
# byte (0: no per-frame checksums; the frames carry their own).
_SEEK_TABLE_MAGIC = 0x184D2A5E
_SEEKABLE_MAGIC = 0x8F92EAB1
_SEEK_DESCRIPTOR = 0
_SEEK_FOOTER = struct.Struct("<IBI")
_SKIPPABLE_HEADER = struct.Struct("<II")
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
        stored = incompressible(block, zstd_slice_sizes, zstd_fast_frame)
        if stored is not None:
            return EncodedBlock(stored, len(block))
        # libzstd itself writes a block that does not shrink raw: no fallback needed here.
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

    def state(self) -> EncoderState:
        return {"blocks": self._count, "seek_entries": self._entries.hex()}

    def restore(self, state: EncoderState) -> None:
        count, entries = state_int(state, "blocks"), state_bytes(state, "seek_entries")
        if len(entries) != count * _SEEK_ENTRY:
            raise ManifestError("the checkpoint's seek table does not match its block count")
        self._count, self._entries = count, bytearray(entries)


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

    def decode_block(self, data: bytes, raw_size: int) -> DecodedBlock:
        try:
            params = zstandard.get_frame_parameters(data)
            # Our frames carry their content size (checked first: it sizes the output buffer)
            # and a checksum, which libzstd verifies.
            if params.content_size != raw_size or not params.has_checksum:
                raise CorruptStreamError(
                    f"zstd frame does not say {raw_size} bytes with a checksum"
                )
            out = zstandard.ZstdDecompressor().decompress(
                data, max_output_size=raw_size, allow_extra_data=False
            )
        except zstandard.ZstdError as exc:
            raise CorruptStreamError(f"zstd frame is corrupt: {exc}") from exc
        if len(out) != raw_size:
            raise CorruptStreamError(f"zstd frame does not decode to {raw_size} bytes")
        return DecodedBlock(out)

    def check_stream(self, header: bytes, trailer: bytes, blocks: list[BlockExtent]) -> None:
        if header:
            raise CorruptStreamError("zstd stream has bytes before its first frame")
        frames = [(block.compressed_size, block.raw_size) for block in blocks]
        table = trailer
        if not blocks:
            # An empty stream is one empty frame (ZstdEncoder.trailer), then the seek table.
            table = _skip_empty_frame(trailer)
            frames.append((len(trailer) - len(table), 0))
        _check_seek_table(table, frames)


def _skip_empty_frame(data: bytes) -> bytes:
    """What follows the empty frame that ``data`` must start with."""
    try:
        if zstandard.get_frame_parameters(data).content_size != 0:
            raise CorruptStreamError("zstd stream without blocks does not end with an empty frame")
        decompressor = zstandard.ZstdDecompressor().decompressobj()
        if decompressor.decompress(data) or not decompressor.eof:
            raise CorruptStreamError("zstd empty frame is corrupt")
    except zstandard.ZstdError as exc:
        raise CorruptStreamError(f"zstd empty frame is corrupt: {exc}") from exc
    return decompressor.unused_data


def _check_seek_table(table: bytes, frames: list[tuple[int, int]]) -> None:
    """The seekable format's skippable frame must list exactly ``frames`` (compressed size,
    decompressed size), as ZstdEncoder.trailer writes it."""
    if len(table) < _SKIPPABLE_HEADER.size + _SEEK_FOOTER.size:
        raise CorruptStreamError("zstd seek table is truncated")
    magic, size = _SKIPPABLE_HEADER.unpack_from(table)
    count, descriptor, seekable_magic = _SEEK_FOOTER.unpack_from(table, len(table) - 9)
    if magic != _SEEK_TABLE_MAGIC or seekable_magic != _SEEKABLE_MAGIC:
        raise CorruptStreamError("zstd stream ends with something other than its seek table")
    if descriptor != _SEEK_DESCRIPTOR or size != len(table) - _SKIPPABLE_HEADER.size:
        raise CorruptStreamError("zstd seek table is corrupt")
    if count != len(frames) or size != _SEEK_ENTRY * count + _SEEK_FOOTER.size:
        raise CorruptStreamError(f"zstd seek table lists {count} frames, not {len(frames)}")
    for number, frame in enumerate(frames):
        if struct.unpack_from("<II", table, _SKIPPABLE_HEADER.size + _SEEK_ENTRY * number) != frame:
            raise CorruptStreamError(f"zstd seek table entry {number} does not match the frame")


CODEC: Codec = ZstdCodec()
