"""Chunker: any cut of the input gives the same chunks (tests/pipeline/test_tar_blocks.py
covers the cutting of the tar stream into blocks)."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streaming_tar_compressor.core.chunker import ChunkEnd, Chunker, ChunkPiece


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def drain_chunker(chunk_size: int, pieces: list[bytes]) -> list[tuple[int, bytes, str, int]]:
    chunker = Chunker(chunk_size, "backup")
    events = [e for piece in pieces for e in chunker.feed(piece)] + chunker.finish()
    chunks: dict[int, bytearray] = {}
    ends = []
    for event in events:
        if isinstance(event, ChunkPiece):
            chunks.setdefault(event.index, bytearray()).extend(event.data)
        else:
            assert isinstance(event, ChunkEnd)
            ends.append(event.info)
    return [(i.index, bytes(chunks.get(i.index, b"")), i.checksum, i.size) for i in ends]


@given(st.binary(max_size=5000), st.lists(st.integers(0, 5000)), st.integers(1, 700))
def test_any_cut_of_the_input_gives_the_same_chunks(data, cuts, chunk_size):
    chunks = drain_chunker(chunk_size, cut(data, cuts))
    assert chunks == drain_chunker(chunk_size, [data])
    assert b"".join(c[1] for c in chunks) == data
    assert [c[0] for c in chunks] == list(range(len(chunks)))
    for _, body, checksum, size in chunks:
        assert hashlib.sha256(body).hexdigest() == checksum
        assert size == len(body)
    assert all(c[3] == chunk_size for c in chunks[:-1])
    assert 0 < chunks[-1][3] <= chunk_size or (not data and chunks[-1][3] == 0)


def test_chunk_names_have_the_requested_width_and_stream_hash():
    chunker = Chunker(4, "b", width=6)
    events = chunker.feed(b"0123456789") + chunker.finish()
    names = [e.info.name for e in events if isinstance(e, ChunkEnd)]
    assert names == ["b.part000000", "b.part000001", "b.part000002"]
    assert chunker.stream_sha256 == hashlib.sha256(b"0123456789").hexdigest()
    assert chunker.total_size == 10


def test_empty_stream_still_has_one_chunk():
    chunker = Chunker(10, "b")
    events = chunker.finish()
    assert len(events) == 1 and isinstance(events[0], ChunkEnd)
    assert events[0].info.size == 0


def test_the_chunker_refuses_use_after_finish():
    chunker = Chunker(4, "b")
    chunker.finish()
    with pytest.raises(RuntimeError):
        chunker.feed(b"x")
