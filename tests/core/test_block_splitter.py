"""BlockSplitter: any cut of the stream gives the same header, blocks and trailer."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streaming_tar_compressor.core.block_splitter import (
    BlockSplitter,
    CompressedBlock,
    StreamHeader,
    StreamTrailer,
)
from streaming_tar_compressor.errors import CorruptStreamError, ManifestError, TruncatedStreamError


def layout(header: int, sizes: list[int], trailer: int) -> tuple[list[tuple[int, int]], int, int]:
    blocks, raw, offset = [], 0, header
    for size in sizes:
        blocks.append((raw, offset))
        raw += size * 3
        offset += size
    return blocks, raw, offset


@given(
    st.integers(0, 20),
    st.lists(st.integers(1, 300), max_size=8),
    st.integers(0, 20),
    st.lists(st.integers(0, 3000), max_size=10),
)
def test_any_cut_gives_the_same_pieces(header, sizes, trailer, cuts):
    blocks, raw_total, trailer_offset = layout(header, sizes, trailer)
    total = trailer_offset + trailer
    stream = bytes(i % 251 for i in range(total))
    bounds = [0, *sorted(min(c, total) for c in cuts), total]
    splitter = BlockSplitter(blocks, raw_total, trailer_offset, total)
    events = [e for a, b in itertools.pairwise(bounds) for e in splitter.feed(stream[a:b])]
    events += splitter.finish()
    assert isinstance(events[0], StreamHeader) and events[0].data == stream[:header]
    assert isinstance(events[-1], StreamTrailer) and events[-1].data == stream[trailer_offset:]
    middle = events[1:-1]
    assert all(isinstance(e, CompressedBlock) for e in middle)
    assert [len(e.data) for e in middle] == sizes
    assert [e.raw_size for e in middle] == [s * 3 for s in sizes]
    assert b"".join(e.data for e in events) == stream


def test_a_short_stream_is_truncated_and_a_long_one_refused():
    blocks, raw, trailer_offset = layout(10, [100, 100], 8)
    short = BlockSplitter(blocks, raw, trailer_offset, trailer_offset + 8)
    short.feed(bytes(150))
    with pytest.raises(TruncatedStreamError):
        short.finish()
    long = BlockSplitter(blocks, raw, trailer_offset, trailer_offset + 8)
    with pytest.raises(CorruptStreamError, match="longer"):
        long.feed(bytes(trailer_offset + 9))


@pytest.mark.parametrize(
    ("blocks", "raw", "trailer_offset", "total"),
    [
        ([(0, 10), (100, 5)], 200, 50, 60),  # offsets go backwards
        ([(0, 10), (0, 20)], 200, 30, 40),  # a block with no raw bytes
        ([(0, 10)], 2**40, 30, 40),  # a block claiming a terabyte
        ([(0, 10)], 100, 30, 20),  # trailer past the end
        ([(5, 10)], 100, 30, 40),  # first block not at raw offset 0
    ],
)
def test_impossible_manifests_are_refused(blocks, raw, trailer_offset, total):
    with pytest.raises(ManifestError):
        BlockSplitter(blocks, raw, trailer_offset, total)


def test_a_manifest_cannot_make_the_header_or_trailer_hold_the_archive():
    total = 200 * 2**20
    with pytest.raises(ManifestError, match="header or trailer"):
        BlockSplitter([], 10 * 2**20, 0, total)  # everything would be "trailer"
    with pytest.raises(ManifestError, match="header or trailer"):
        BlockSplitter([(0, total - 10)], 100, total - 5, total)  # everything "header"
