"""What every codec promises: round trips, any input cut, independent blocks, bounds, errors."""

from __future__ import annotations

import os
import random
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming_tar_compressor.codecs import codec_for
from streaming_tar_compressor.errors import CorruptStreamError, TruncatedStreamError, UsageError
from streaming_tar_compressor.models import CompressionType
from tests.codecs.codec_helpers import ALL_KINDS, COMPRESSED_KINDS, cut, decode, encode

# Random bytes and repetitive runs, so both the stored and the compressed paths are taken.
block_data = st.one_of(
    st.binary(max_size=3000),
    st.builds(lambda unit, n: unit * n, st.binary(min_size=1, max_size=16), st.integers(1, 400)),
)
block_lists = st.lists(block_data, max_size=4)
few = settings(max_examples=15, deadline=None)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_registry_returns_the_codec_of_each_kind(kind: CompressionType) -> None:
    codec = codec_for(kind)
    assert codec.kind is kind
    assert codec.min_level <= codec.default_level <= codec.max_level
    assert codec.default_block_size > 0


@pytest.mark.parametrize("kind", ALL_KINDS)
@few
@given(blocks=block_lists, points=st.lists(st.integers(0, 20_000), max_size=6))
def test_round_trip_with_any_cut(
    kind: CompressionType, blocks: list[bytes], points: list[int]
) -> None:
    codec = codec_for(kind)
    stream = encode(codec, blocks)
    expected = b"".join(blocks)
    assert decode(codec, [stream]) == expected
    assert decode(codec, cut(stream, points), max_size=1000) == expected


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_byte_by_byte_and_tiny_reads(kind: CompressionType) -> None:
    codec = codec_for(kind)
    blocks = [b"first block " * 40, os.urandom(300), b""]
    stream = encode(codec, blocks)
    pieces = [stream[i : i + 1] for i in range(len(stream))]
    assert decode(codec, pieces, max_size=7) == b"".join(blocks)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_empty_stream_decodes_to_nothing(kind: CompressionType) -> None:
    codec = codec_for(kind)
    stream = encode(codec, [])
    assert (stream == b"") is (kind is CompressionType.NONE)
    assert decode(codec, [stream]) == b""


@pytest.mark.parametrize("kind", ALL_KINDS)
@few
@given(blocks=block_lists)
def test_blocks_are_independent(kind: CompressionType, blocks: list[bytes]) -> None:
    codec = codec_for(kind)
    forward = encode(codec, blocks)
    # Encoded out of order on other threads, added in order: the same stream.
    encoder = codec.new_encoder(codec.default_level, 2**16)
    with ThreadPoolExecutor(2) as pool:
        encoded = list(pool.map(encoder.encode_block, blocks[::-1]))[::-1]
    parts = [encoder.header(), *(encoder.add_block(e) for e in encoded), encoder.trailer()]
    assert b"".join(parts) == forward
    # Each block alone, in a fresh stream, decodes without the blocks before it.
    for block, alone in zip(blocks, encoded, strict=True):
        fresh = codec.new_encoder(codec.default_level, 2**16)
        assert fresh.encode_block(block) == alone
        stream = fresh.header() + fresh.add_block(alone) + fresh.trailer()
        assert decode(codec, [stream]) == block


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_max_encoded_size_bounds_incompressible_data(kind: CompressionType) -> None:
    codec = codec_for(kind)
    rng = random.Random(7)
    for level in sorted({codec.min_level, codec.default_level, codec.max_level}):
        for raw_size, block_size in ((0, 4096), (1, 4096), (70_000, 2**16), (300_001, 100_000)):
            data = rng.randbytes(raw_size)
            blocks = [data[i : i + block_size] for i in range(0, raw_size, block_size)]
            stream = encode(codec, blocks, level, block_size)
            assert len(stream) <= codec.max_encoded_size(raw_size, block_size), (level, raw_size)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_levels_out_of_range_are_usage_errors(kind: CompressionType) -> None:
    codec = codec_for(kind)
    for level in (codec.min_level - 1, codec.max_level + 1):
        with pytest.raises(UsageError):
            codec.new_encoder(level, 2**16)
    with pytest.raises(UsageError):
        codec.new_encoder(codec.default_level, 0)
    with pytest.raises(UsageError):
        codec.new_decoder().read(0)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_tar_flags_name_the_gnu_tar_option(kind: CompressionType) -> None:
    flags = {"gzip": "-z", "bzip2": "-j", "xz": "-J", "zstd": "--zstd", "lz4": "-I lz4"}
    assert codec_for(kind).tar_flag == flags.get(kind.value, "")


@pytest.mark.parametrize("kind", COMPRESSED_KINDS)
def test_flipped_byte_is_corrupt(kind: CompressionType) -> None:
    codec = codec_for(kind)
    data = bytes(random.Random(3).choices(b"abcdefgh \n", k=50_000))
    stream = bytearray(encode(codec, [data]))
    stream[len(stream) // 2] ^= 0x10
    with pytest.raises(CorruptStreamError):
        decode(codec, [bytes(stream)])


@pytest.mark.parametrize("kind", COMPRESSED_KINDS)
def test_cut_streams_are_truncated(kind: CompressionType) -> None:
    codec = codec_for(kind)
    stream = encode(codec, [os.urandom(5000), b"x" * 5000])
    for end in (1, len(stream) // 2, len(stream) - 1):
        with pytest.raises(CorruptStreamError):
            decode(codec, [stream[:end]])
    with pytest.raises(TruncatedStreamError):
        decode(codec, [stream[: len(stream) - 1]])


@pytest.mark.parametrize("kind", COMPRESSED_KINDS)
def test_empty_input_is_truncated(kind: CompressionType) -> None:
    with pytest.raises(TruncatedStreamError):
        decode(codec_for(kind), [])


def test_empty_input_is_an_empty_uncompressed_stream() -> None:
    assert decode(codec_for(CompressionType.NONE), []) == b""


@pytest.mark.parametrize("kind", COMPRESSED_KINDS)
def test_garbage_is_corrupt(kind: CompressionType) -> None:
    with pytest.raises(CorruptStreamError):
        decode(codec_for(kind), [b"this is not compressed at all, not even close" * 4])


@pytest.mark.parametrize("kind", COMPRESSED_KINDS)
def test_bomb_decodes_in_bounded_memory(kind: CompressionType) -> None:
    codec = codec_for(kind)
    size = 16 * 2**20
    # Level 1 at most: xz's dictionary (traced here too) is then 1 MiB, not 8.
    stream = encode(codec, [bytes(size)], level=max(codec.min_level, 1), block_size=size)
    assert len(stream) < size // 100
    decoder = codec.new_decoder()
    decoder.feed(stream)
    total = 0
    tracemalloc.start()
    try:
        while data := decoder.read(2**16):
            assert len(data) <= 2**16
            total += len(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    decoder.close()
    assert total == size
    assert peak < 4 * 2**20
