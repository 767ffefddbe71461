"""xz framing: one stream, one block per block with sizes in its header, and the index."""

from __future__ import annotations

import lzma
import struct
import zlib

import pytest

from streaming_tar_compressor.codecs import codec_for
from streaming_tar_compressor.codecs.xz import _dict_property, _read_vli, _vli
from streaming_tar_compressor.errors import CorruptStreamError, TruncatedStreamError
from streaming_tar_compressor.models import CompressionType
from tests.codecs.codec_helpers import decode, encode

XZ = codec_for(CompressionType.XZ)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"), (2**63 - 1, None)],
)
def test_vli_round_trips(value: int, encoded: bytes | None) -> None:
    if encoded is not None:
        assert _vli(value) == encoded
    assert _read_vli(b"\xff" + _vli(value), 1) == value


@pytest.mark.parametrize(
    ("dict_size", "prop"),
    [(4096, 0), (4097, 1), (6144, 1), (256 * 2**10, 12), (2**20, 16), (5 * 2**20, 21), (2**26, 28)],
)
def test_dict_property_is_the_smallest_that_fits(dict_size: int, prop: int) -> None:
    assert _dict_property(dict_size) == prop


def test_stream_header_and_footer_follow_the_spec() -> None:
    stream = encode(XZ, [b"one", b"two"])
    assert stream[:8] == b"\xfd7zXZ\x00\x00\x01"
    assert stream[8:12] == struct.pack("<I", zlib.crc32(b"\x00\x01"))
    assert stream[-2:] == b"YZ" and stream[-4:-2] == b"\x00\x01"
    assert len(stream) % 4 == 0


def test_dictionary_is_capped_to_the_block_size() -> None:
    stream = encode(XZ, [b"small"], level=9, block_size=100_000)
    # Block header: size byte, flags 0xC0, two VLIs, then filter 0x21, 1 property byte.
    header = stream[12 : 12 + (stream[12] + 1) * 4]
    assert header[1] == 0xC0
    filter_at = header.index(b"\x21\x01", 2)
    assert header[filter_at + 2] == _dict_property(100_000)


def test_concatenated_streams_with_padding_are_read() -> None:
    first, second = encode(XZ, [b"first "]), encode(XZ, [b"second"])
    assert decode(XZ, [first + bytes(8) + second + bytes(4)]) == b"first second"
    foreign = lzma.compress(b"!", check=lzma.CHECK_CRC64)
    assert decode(XZ, [first + foreign]) == b"first !"


@pytest.mark.parametrize("padding", [1, 3, 6])
def test_padding_not_a_multiple_of_four_is_corrupt(padding: int) -> None:
    first = encode(XZ, [b"first"])
    with pytest.raises(CorruptStreamError, match="padding"):
        decode(XZ, [first + bytes(padding)])
    with pytest.raises(CorruptStreamError, match="padding"):
        decode(XZ, [first + bytes(padding) + first])


def test_padding_before_the_first_stream_is_corrupt() -> None:
    with pytest.raises(CorruptStreamError):
        decode(XZ, [bytes(4) + encode(XZ, [b"x"])])


def test_stream_without_its_index_is_truncated() -> None:
    encoder = XZ.new_encoder(6, 2**16)
    partial = encoder.header() + encoder.add_block(encoder.encode_block(b"no index"))
    with pytest.raises(TruncatedStreamError):
        decode(XZ, [partial])
