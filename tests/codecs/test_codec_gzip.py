"""gzip framing: one member with a fixed header, pigz-style blocks, zero padding after."""

from __future__ import annotations

import struct
import zlib

import pytest

from streaming_tar_compressor.codecs import codec_for
from streaming_tar_compressor.codecs.base import EncodedBlock
from streaming_tar_compressor.errors import CorruptStreamError
from streaming_tar_compressor.models import CompressionType
from tests.codecs.codec_helpers import decode, encode

GZIP = codec_for(CompressionType.GZIP)


@pytest.mark.parametrize(("level", "xfl"), [(1, 4), (6, 0), (9, 2), (0, 0)])
def test_header_is_fixed_and_names_the_level(level: int, xfl: int) -> None:
    header = GZIP.new_encoder(level, 2**16).header()
    # ID1 ID2 CM FLG MTIME(4) XFL OS: no optional fields, mtime 0, OS unknown.
    assert header == b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes((xfl, 255))


def test_one_member_with_whole_stream_crc_and_size() -> None:
    blocks = [b"alpha" * 1000, b"beta" * 3000, b"gamma"]
    stream = encode(GZIP, blocks)
    data = b"".join(blocks)
    assert stream[-8:] == struct.pack("<II", zlib.crc32(data), len(data))
    inflater = zlib.decompressobj(31)
    assert inflater.decompress(stream) == data
    assert inflater.eof and inflater.unused_data == b""


def test_each_block_ends_byte_aligned_with_a_full_flush() -> None:
    block = GZIP.new_encoder(6, 2**16).encode_block(b"some data " * 100)
    # RFC 1951 3.2.4: a full flush ends with an empty stored block, LEN 0 and NLEN 0xFFFF.
    assert block.data.endswith(b"\x00\x00\xff\xff")
    assert zlib.decompressobj(-15).decompress(block.data) == b"some data " * 100
    assert block.raw_crc32 == zlib.crc32(b"some data " * 100)


def test_size_in_trailer_wraps_at_four_gib() -> None:
    encoder = GZIP.new_encoder(6, 2**16)
    encoder.add_block(EncodedBlock(b"", 2**32 - 1, 0))
    encoder.add_block(EncodedBlock(b"", 5, 0))
    assert encoder.trailer()[-4:] == struct.pack("<I", 4)


def test_zero_padding_after_the_stream_is_accepted() -> None:
    stream = encode(GZIP, [b"padded"])
    assert decode(GZIP, [stream + bytes(700)]) == b"padded"
    assert decode(GZIP, [stream, b"\x00", bytes(10)]) == b"padded"


@pytest.mark.parametrize("tail", [b"garbage", bytes(20) + b"\x01", bytes(5) + b"\x1f\x8b"])
def test_garbage_after_the_stream_is_corrupt(tail: bytes) -> None:
    stream = encode(GZIP, [b"data"])
    with pytest.raises(CorruptStreamError):
        decode(GZIP, [stream + tail])


def test_members_with_optional_header_fields_are_read() -> None:
    # FLG = FNAME | FCOMMENT | FHCRC-free member as `gzip` writes for a named file.
    body = zlib.compressobj(6, zlib.DEFLATED, -15)
    deflated = body.compress(b"named") + body.flush()
    member = (
        b"\x1f\x8b\x08\x18\x00\x00\x00\x00\x00\x03name.txt\x00a comment\x00"
        + deflated
        + struct.pack("<II", zlib.crc32(b"named"), 5)
    )
    assert decode(GZIP, [member + encode(GZIP, [b" and ours"])]) == b"named and ours"


def test_bad_crc_is_corrupt() -> None:
    stream = bytearray(encode(GZIP, [b"checked"]))
    stream[-8] ^= 1
    with pytest.raises(CorruptStreamError, match="gzip"):
        decode(GZIP, [bytes(stream)])
