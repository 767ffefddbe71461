"""lz4, bzip2 and none framing details."""

from __future__ import annotations

import bz2
import struct

import lz4.frame
import pytest

from streaming_tar_compressor.codecs import codec_for
from streaming_tar_compressor.errors import CorruptStreamError
from streaming_tar_compressor.models import CompressionType
from tests.codecs.codec_helpers import decode, encode

LZ4 = codec_for(CompressionType.LZ4)
BZIP2 = codec_for(CompressionType.BZIP2)
NONE = codec_for(CompressionType.NONE)


def test_lz4_frames_carry_content_size_and_checksum() -> None:
    frame = LZ4.new_encoder(0, 2**16).encode_block(b"lz4 " * 500).data
    info = lz4.frame.get_frame_info(frame)
    assert info["content_checksum"] and info["content_size"] == 2000


def test_lz4_skippable_frames_are_skipped() -> None:
    frame = LZ4.new_encoder(0, 2**16).encode_block(b"frame ").data
    skip = struct.pack("<II", 0x184D2A5A, 3) + b"abc"
    stream = skip + frame + skip + frame + skip
    assert decode(LZ4, [stream]) == b"frame frame "
    assert decode(LZ4, [stream[i : i + 1] for i in range(len(stream))], max_size=2) == (
        b"frame frame "
    )


def test_lz4_empty_stream_is_one_empty_frame() -> None:
    stream = encode(LZ4, [])
    assert lz4.frame.decompress(stream) == b""
    assert stream.startswith(b"\x04\x22\x4d\x18")


def test_lz4_garbage_after_a_frame_is_corrupt() -> None:
    with pytest.raises(CorruptStreamError, match="lz4"):
        decode(LZ4, [encode(LZ4, [b"x"]) + b"garbage!"])


def test_bzip2_writes_one_stream_per_block() -> None:
    blocks = [b"one" * 100, b"two" * 100]
    stream = encode(BZIP2, blocks, level=9)
    first = bz2.compress(blocks[0], 9)
    assert stream == first + bz2.compress(blocks[1], 9)
    assert bz2.decompress(stream) == b"".join(blocks)


def test_bzip2_empty_stream_is_one_empty_bzip2_stream() -> None:
    assert encode(BZIP2, []) == bz2.compress(b"")


def test_bzip2_garbage_after_a_stream_is_corrupt() -> None:
    with pytest.raises(CorruptStreamError, match="bzip2"):
        decode(BZIP2, [encode(BZIP2, [b"x"]) + b"garbage"])


def test_none_is_the_identity() -> None:
    blocks = [b"raw ", b"bytes"]
    assert encode(NONE, blocks) == b"raw bytes"
    assert NONE.max_encoded_size(12345, 100) == 12345
    decoder = NONE.new_decoder()
    decoder.feed(b"abcdef")
    assert decoder.read(4) == b"abcd"
    assert decoder.read(4) == b"ef"
    assert decoder.read(4) == b""
    decoder.close()
