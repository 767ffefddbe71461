"""zstd framing: frames per block, the seekable format's seek table, skippable frames."""

from __future__ import annotations

import struct

import pytest
import zstandard

from streaming_tar_compressor.codecs import codec_for
from streaming_tar_compressor.errors import CorruptStreamError, TruncatedStreamError
from streaming_tar_compressor.models import CompressionType
from tests.codecs.codec_helpers import cut, decode, encode

ZSTD = codec_for(CompressionType.ZSTD)


def skippable(payload: bytes, nibble: int = 0) -> bytes:
    """RFC 8878 3.1.2: a skippable frame around ``payload``."""
    return struct.pack("<II", 0x184D2A50 + nibble, len(payload)) + payload


def test_frames_carry_checksum_and_content_size() -> None:
    frame = ZSTD.new_encoder(3, 2**16).encode_block(b"abc" * 100).data
    params = zstandard.get_frame_parameters(frame)
    assert params.has_checksum
    assert params.content_size == 300


def test_seek_table_lists_every_frame() -> None:
    blocks = [b"a" * 1000, bytes(range(256)) * 4, b"z"]
    encoder = ZSTD.new_encoder(3, 2**16)
    frames = [encoder.add_block(encoder.encode_block(block)) for block in blocks]
    table = encoder.trailer()
    magic, size = struct.unpack_from("<II", table)
    assert magic == 0x184D2A5E and size == len(table) - 8
    entries = [struct.unpack_from("<II", table, 8 + 8 * i) for i in range(len(blocks))]
    assert entries == [(len(f), len(b)) for f, b in zip(frames, blocks, strict=True)]
    # Seek_Table_Footer: Number_Of_Frames, descriptor, Seekable_Magic_Number.
    assert table[-9:] == struct.pack("<IBI", len(blocks), 0, 0x8F92EAB1)


def test_empty_stream_is_one_empty_frame_and_its_table() -> None:
    stream = encode(ZSTD, [])
    assert stream.startswith(b"\x28\xb5\x2f\xfd")
    assert stream.endswith(struct.pack("<IBI", 1, 0, 0x8F92EAB1))


def test_skippable_frames_anywhere_are_skipped() -> None:
    frame = ZSTD.new_encoder(3, 2**16).encode_block(b"payload ").data
    stream = skippable(b"head", 3) + frame + skippable(b"") + frame + skippable(b"x" * 5000, 15)
    assert decode(ZSTD, [stream]) == b"payload payload "
    pieces = cut(stream, range(0, len(stream), 3))
    assert decode(ZSTD, pieces, max_size=5) == b"payload payload "


def test_bad_checksum_is_corrupt() -> None:
    stream = bytearray(encode(ZSTD, [b"checked" * 10]))
    frame_end = len(ZSTD.new_encoder(3, 2**16).encode_block(b"checked" * 10).data)
    stream[frame_end - 1] ^= 1
    with pytest.raises(CorruptStreamError, match="zstd"):
        decode(ZSTD, [bytes(stream)])


def test_bad_magic_and_reserved_block_type_are_corrupt() -> None:
    with pytest.raises(CorruptStreamError, match="magic"):
        decode(ZSTD, [b"\x28\xb5\x2f\xfe" + bytes(20)])
    # Frame header: single segment, 1-byte content size; then a block of type 3 (reserved).
    reserved = b"\x28\xb5\x2f\xfd\x20\x05" + struct.pack("<I", 0b111)[:3]
    with pytest.raises(CorruptStreamError, match="reserved"):
        decode(ZSTD, [reserved])


def test_cut_inside_a_skippable_frame_is_truncated() -> None:
    stream = encode(ZSTD, [b"data"])
    with pytest.raises(TruncatedStreamError):
        decode(ZSTD, [stream[:-5]])


def test_rle_bomb_is_read_a_bounded_piece_at_a_time() -> None:
    # Frame header without content size, window 128 KiB (Window_Descriptor exponent 7), then
    # 512 RLE blocks (type 1) of 128 KiB: 2 KiB of input for 64 MiB of output.
    block = struct.pack("<I", (128 * 1024) << 3 | 1 << 1)[:3] + b"\x07"
    last = struct.pack("<I", (128 * 1024) << 3 | 1 << 1 | 1)[:3] + b"\x07"
    bomb = b"\x28\xb5\x2f\xfd\x00\x38" + block * 511 + last
    decoder = ZSTD.new_decoder()
    decoder.feed(bomb)
    first = decoder.read(1000)
    assert first == b"\x07" * 1000
    total = len(first)
    while data := decoder.read(2**20):
        assert len(data) <= 2**20
        total += len(data)
    decoder.close()
    assert total == 64 * 2**20
