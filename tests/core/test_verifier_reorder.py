"""StreamVerifier and ChunkReorderer: any cut, any order within the window, clear errors."""

from __future__ import annotations

import hashlib
import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streaming_tar_compressor.core.reorder import ChunkReorderer
from streaming_tar_compressor.core.verifier import ChunkVerified, StreamVerifier
from streaming_tar_compressor.errors import ChecksumMismatchError, MissingChunkError
from streaming_tar_compressor.models import ChunkInfo


def chunk_infos(data: bytes, size: int) -> list[ChunkInfo]:
    pieces = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    return [
        ChunkInfo(i, f"b.part{i:04d}", len(p), hashlib.sha256(p).hexdigest())
        for i, p in enumerate(pieces)
    ]


def run_verifier(verifier: StreamVerifier, pieces: list[bytes]) -> tuple[bytes, list[int]]:
    out, verified = bytearray(), []
    for event in [e for p in pieces for e in verifier.feed(p)] + verifier.finish():
        if isinstance(event, ChunkVerified):
            verified.append(event.info.index)
        else:
            out += event
    return bytes(out), verified


@given(st.binary(max_size=3000), st.integers(1, 500), st.lists(st.integers(0, 3000)))
def test_any_cut_passes_the_bytes_and_verifies_every_chunk(data, size, cuts):
    bounds = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    infos = chunk_infos(data, size)
    out, verified = run_verifier(StreamVerifier(infos, hashlib.sha256(data).hexdigest()), pieces)
    assert out == data
    assert verified == list(range(len(infos)))


@given(st.binary(max_size=3000), st.integers(1, 500), st.lists(st.integers(0, 3000)))
def test_bytes_checked_before_they_came_keep_their_chunk_boundaries(data, size, cuts):
    """hashed=False (a source checked every block already): the same bytes and the same
    ChunkVerified events at the same places, sizes still enforced, no hash computed."""
    bounds = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    infos = chunk_infos(data, size)
    plain = run_verifier(StreamVerifier(infos, hashlib.sha256(data).hexdigest()), pieces)
    unhashed = StreamVerifier(infos, "0" * 64, hashed=False)
    assert run_verifier(unhashed, pieces) == plain
    if data:
        with pytest.raises(MissingChunkError):
            run_verifier(StreamVerifier(infos, hashed=False), [data[:-1]])
    with pytest.raises(ChecksumMismatchError, match="whole stream"):
        run_verifier(StreamVerifier(infos, hashed=False), [data + b"x"])


def test_a_chunk_is_verified_only_after_its_last_byte():
    data = bytes(range(200))
    verifier = StreamVerifier(chunk_infos(data, 100))
    events = verifier.feed(data[:99])
    assert not any(isinstance(e, ChunkVerified) for e in events)
    events = verifier.feed(data[99:101])
    assert [e.info.index for e in events if isinstance(e, ChunkVerified)] == [0]


def test_a_flipped_byte_names_its_chunk():
    data = bytes(300)
    verifier = StreamVerifier(chunk_infos(data, 100))
    with pytest.raises(ChecksumMismatchError, match=r"b\.part0001"):
        verifier.feed(data[:150] + b"\x01" + data[151:])


def test_missing_tail_and_extra_bytes_are_errors():
    data = bytes(300)
    short = StreamVerifier(chunk_infos(data, 100))
    short.feed(data[:200])
    with pytest.raises(MissingChunkError) as info:
        short.finish()
    assert info.value.index == 2
    with pytest.raises(ChecksumMismatchError, match="whole stream"):
        StreamVerifier(chunk_infos(data, 100)).feed(data + b"x")


def test_whole_stream_hash_is_checked():
    data = bytes(10)
    verifier = StreamVerifier(chunk_infos(data, 100), stream_sha256="0" * 64)
    verifier.feed(data)
    with pytest.raises(ChecksumMismatchError, match="whole stream"):
        verifier.finish()


@given(st.integers(1, 30), st.integers(1, 8), st.randoms())
def test_any_order_within_the_window_comes_out_in_order(count, window, rng):
    chunks = [bytes([i]) * 3 for i in range(count)]
    order = list(range(count))
    # shuffle only within blocks of `window`, so no gap ever outgrows the window
    for start in range(0, count, window):
        block = order[start : start + window]
        rng.shuffle(block)
        order[start : start + window] = block
    reorderer = ChunkReorderer(window, total=count)
    out = [c for i in order for c in reorderer.push(i, chunks[i])]
    reorderer.finish()
    assert out == chunks


def test_identical_duplicates_are_ignored_and_different_ones_refused():
    reorderer = ChunkReorderer(4)
    assert reorderer.push(0, b"a") == [b"a"]
    assert reorderer.push(0, b"a") == []
    assert reorderer.push(2, b"c") == []
    assert reorderer.push(2, b"c") == []
    with pytest.raises(ChecksumMismatchError, match="chunk 0"):
        reorderer.push(0, b"X")
    with pytest.raises(ChecksumMismatchError, match="chunk 2"):
        reorderer.push(2, b"X")


def test_a_gap_that_outgrows_the_window_names_the_missing_chunk():
    reorderer = ChunkReorderer(3)
    reorderer.push(0, b"a")
    reorderer.push(2, b"c")
    reorderer.push(3, b"d")
    with pytest.raises(MissingChunkError) as info:
        reorderer.push(4, b"e")
    assert info.value.index == 1


def test_a_chunk_missing_at_the_end_is_named():
    reorderer = ChunkReorderer(8, total=5)
    for i in random.Random(1).sample(range(4), 4):
        reorderer.push(i, b"x")
    with pytest.raises(MissingChunkError) as info:
        reorderer.finish()
    assert info.value.index == 4
