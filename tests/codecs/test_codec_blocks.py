"""Parallel decoding: each block decoded alone (decode_block), then the stream (check_stream)."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, replace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streaming_tar_compressor.codecs import codec_for
from streaming_tar_compressor.codecs.base import BlockExtent, Codec
from streaming_tar_compressor.errors import CorruptStreamError
from streaming_tar_compressor.models import CompressionType
from tests.codecs.codec_helpers import ALL_KINDS, COMPRESSED_KINDS

few = settings(max_examples=6, deadline=None)
# Codecs whose trailer describes the blocks (CRC-32 and size, index, seek table).
INDEXED_KINDS = [CompressionType.GZIP, CompressionType.XZ, CompressionType.ZSTD]


@dataclass
class Framed:
    """A stream as the pipeline sees it: header, each block's bytes, trailer."""

    header: bytes
    blocks: list[bytes]
    trailer: bytes
    raw: list[bytes]


def piece(kind: str, size: int, rng: random.Random) -> bytes:
    if kind == "random":
        return rng.randbytes(size)
    if kind == "text":
        return bytes(rng.choices(b"block of tar stream text\n", k=size))
    return bytes(size)


# Pieces of random bytes, text and zeros: blocks of 64 KiB and more take the adaptive path.
streams = st.lists(
    st.tuples(st.sampled_from(["random", "text", "zeros"]), st.integers(0, 150_000)), max_size=3
)


def frame(codec: Codec, data: bytes, block_size: int) -> Framed:
    encoder = codec.new_encoder(codec.default_level, block_size)
    raw = [data[i : i + block_size] for i in range(0, len(data), block_size)]
    header = encoder.header()
    blocks = [encoder.add_block(encoder.encode_block(block)) for block in raw]
    return Framed(header, blocks, encoder.trailer(), raw)


def decode_blocks(codec: Codec, framed: Framed) -> tuple[list[bytes], list[BlockExtent]]:
    """decode_block on every block, last first: the outputs, and the extents for check_stream."""
    outputs: list[bytes] = []
    extents: list[BlockExtent] = []
    for data, raw in reversed(list(zip(framed.blocks, framed.raw, strict=True))):
        decoded = codec.decode_block(data, len(raw))
        outputs.append(decoded.data)
        extents.append(BlockExtent(len(raw), len(data), decoded.raw_crc32))
    return outputs[::-1], extents[::-1]


def decode_all(codec: Codec, framed: Framed) -> list[BlockExtent]:
    """decode_blocks, checking that every block decodes to what was encoded."""
    outputs, extents = decode_blocks(codec, framed)
    assert outputs == framed.raw
    return extents


@functools.cache
def _sample_stream(kind: CompressionType) -> Framed:
    rng = random.Random(5)
    data = piece("text", 90_000, rng) + piece("random", 140_000, rng) + piece("zeros", 5000, rng)
    # Blocks: text; text and random; random (stored); random and zeros (short: compressed in
    # full, then checked).
    return frame(codec_for(kind), data, 70_000)


def sample_stream(codec: Codec) -> Framed:
    framed = _sample_stream(codec.kind)
    return replace(framed, blocks=list(framed.blocks))


@pytest.mark.parametrize("kind", ALL_KINDS)
@few
@given(pieces=streams, block_size=st.integers(2000, 160_000), seed=st.integers(0, 2**16))
@example(pieces=[("text", 80_000), ("random", 150_000), ("zeros", 9000)], block_size=70_000, seed=1)
def test_blocks_decode_alone_in_reverse_and_the_stream_checks(
    kind: CompressionType, pieces: list[tuple[str, int]], block_size: int, seed: int
) -> None:
    codec = codec_for(kind)
    rng = random.Random(seed)
    framed = frame(codec, b"".join(piece(k, size, rng) for k, size in pieces), block_size)
    codec.check_stream(framed.header, framed.trailer, decode_all(codec, framed))


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_empty_stream_checks(kind: CompressionType) -> None:
    codec = codec_for(kind)
    framed = frame(codec, b"", 2**16)
    codec.check_stream(framed.header, framed.trailer, [])


@pytest.mark.parametrize("kind", INDEXED_KINDS)
def test_every_flipped_trailer_byte_is_caught(kind: CompressionType) -> None:
    codec = codec_for(kind)
    framed = sample_stream(codec)
    extents = decode_all(codec, framed)
    for index in range(len(framed.trailer)):
        trailer = bytearray(framed.trailer)
        trailer[index] ^= 0x01
        with pytest.raises(CorruptStreamError):
            codec.check_stream(framed.header, bytes(trailer), extents)


@pytest.mark.parametrize("kind", INDEXED_KINDS)
def test_wrong_block_list_is_caught(kind: CompressionType) -> None:
    codec = codec_for(kind)
    framed = sample_stream(codec)
    extents = decode_all(codec, framed)
    wrong_lists = [
        extents[:-1],
        [*extents, extents[-1]],
        [replace(extents[0], raw_size=extents[0].raw_size + 1), *extents[1:]],
    ]
    if kind is not CompressionType.GZIP:  # its trailer has no compressed sizes
        wrong_lists.append([*extents[:-1], replace(extents[-1], compressed_size=1)])
    else:
        wrong_lists.append([*extents[:-1], replace(extents[-1], raw_crc32=1)])
    for blocks in wrong_lists:
        with pytest.raises(CorruptStreamError):
            codec.check_stream(framed.header, framed.trailer, blocks)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_bytes_outside_the_blocks_are_caught(kind: CompressionType) -> None:
    codec = codec_for(kind)
    framed = sample_stream(codec)
    extents = decode_all(codec, framed)
    for header, trailer in [
        (framed.header + b"\x00", framed.trailer),
        (framed.header[1:], framed.trailer),
        (b"\x01" + framed.header, framed.trailer),
        (framed.header, framed.trailer + b"\x00"),
        (framed.header, framed.trailer[:-1]),
        (framed.header, b"\x01" + framed.trailer),
    ]:
        if (header, trailer) == (framed.header, framed.trailer):
            continue  # nothing to cut from an empty header or trailer
        with pytest.raises(CorruptStreamError):
            codec.check_stream(header, trailer, extents)


@pytest.mark.parametrize("kind", [CompressionType.GZIP, CompressionType.XZ])
def test_flipped_header_byte_is_caught(kind: CompressionType) -> None:
    codec = codec_for(kind)
    framed = sample_stream(codec)
    extents = decode_all(codec, framed)
    # gzip: magic, CM and FLG are checked; MTIME, XFL and OS may be anything.
    checked = 4 if kind is CompressionType.GZIP else len(framed.header)
    for index in range(checked):
        header = bytearray(framed.header)
        header[index] ^= 0x20
        with pytest.raises(CorruptStreamError):
            codec.check_stream(bytes(header), framed.trailer, extents)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_wrong_raw_size_truncation_and_extra_bytes_are_corrupt(kind: CompressionType) -> None:
    codec = codec_for(kind)
    framed = sample_stream(codec)
    for data, raw in zip(framed.blocks, framed.raw, strict=True):
        for size in (len(raw) - 1, len(raw) + 1, 0):
            with pytest.raises(CorruptStreamError):
                codec.decode_block(data, size)
        for cut in (data[:-1], data[: len(data) // 2], data[1:], b""):
            with pytest.raises(CorruptStreamError):
                codec.decode_block(cut, len(raw))
        with pytest.raises(CorruptStreamError):
            codec.decode_block(data + b"\x07", len(raw))


@pytest.mark.parametrize("kind", COMPRESSED_KINDS)
@settings(max_examples=40, deadline=None)
@given(number=st.integers(0, 3), position=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_a_flipped_bit_never_decodes_to_wrong_data(
    kind: CompressionType, number: int, position: float, bit: int
) -> None:
    """A flip raises, in decode_block or (gzip: CRC-32 in the trailer) in check_stream, or it
    was harmless (a padding bit, a window size): the output is never silently wrong."""
    codec = codec_for(kind)
    framed = sample_stream(codec)
    block = bytearray(framed.blocks[number])
    block[int(position * len(block))] ^= 1 << bit
    framed.blocks[number] = bytes(block)
    try:
        outputs, extents = decode_blocks(codec, framed)
        codec.check_stream(framed.header, framed.trailer, extents)
    except CorruptStreamError:
        return
    assert outputs == framed.raw, f"a flipped bit in block {number} decoded to wrong data"


def test_gzip_block_crc_is_the_crc_of_its_data() -> None:
    codec = codec_for(CompressionType.GZIP)
    framed = sample_stream(codec)
    encoder = codec.new_encoder(6, 70_000)
    for data, raw in zip(framed.blocks, framed.raw, strict=True):
        assert codec.decode_block(data, len(raw)).raw_crc32 == encoder.encode_block(raw).raw_crc32
