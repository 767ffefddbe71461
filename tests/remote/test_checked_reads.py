"""Store reads checked unit by unit before they are passed on (storage/checked_reads.py): a
block goes on as soon as it has arrived and matched its SHA-256, and a damaged block, codec
header or trailer is fetched again."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from itertools import accumulate
from pathlib import Path

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor.core.manifest import Manifest
from streaming_tar_compressor.models import ChunkInfo
from streaming_tar_compressor.storage import checked_reads
from streaming_tar_compressor.storage.checked_reads import (
    Unit,
    block_units,
    chunk_units,
    prefetch_units,
)
from tests.safety.test_resume_pack import SMALL, make_source

PIECE = 1000  # bytes per fetched range in these tests


class Stored:
    """A packed archive's stream, served by ranges that can arrive damaged."""

    def __init__(self, tmp_path: Path, codec: str) -> None:
        source = make_source(tmp_path)
        result = stc.pack([str(source)], str(tmp_path / "out" / "a"), compression=codec, **SMALL)
        self.manifest: Manifest = result.manifest
        self.chunks: list[ChunkInfo] = list(self.manifest.chunks)
        self.offsets = list(accumulate((c.size for c in self.chunks), initial=0))[:-1]
        self.stream = b"".join((tmp_path / "out" / c.name).read_bytes() for c in self.chunks)
        self.damaged: dict[int, int] = {}  # stream offset -> downloads that still flip it
        self.fetches = 0  # fetch_span calls

    def damage(self, offset: int, times: int) -> None:
        self.damaged[offset] = times

    def _bytes(self, start: int, end: int) -> memoryview:
        data = bytearray(self.stream[start:end])
        for offset, times in self.damaged.items():
            if start <= offset < end and times:
                data[offset - start] ^= 1
                self.damaged[offset] = times - 1
        return memoryview(bytes(data))

    def fetched(self, consumed: list[int]) -> Iterator[memoryview]:
        """The first download, in ranges; ``consumed`` counts the ranges taken so far."""
        for start in range(0, len(self.stream), PIECE):
            consumed.append(start)
            yield self._bytes(start, min(len(self.stream), start + PIECE))

    def fetch_span(self, span: tuple[ChunkInfo, int, int]) -> memoryview:
        chunk, start, end = span
        self.fetches += 1
        first = self.offsets[chunk.index]
        return self._bytes(first + start, first + end)

    def read(
        self, units: list[Unit], consumed: list[int], strict: bool = True
    ) -> Iterator[tuple[int, memoryview]]:
        return prefetch_units(
            self.fetched(consumed),
            units,
            self.chunks,
            self.offsets,
            self.fetch_span,
            3,
            strict=strict,
        )


def chunks_holding(stored: Stored, units: list[Unit], offset: int) -> int:
    """How many chunks the unit that holds stream byte ``offset`` lies in."""
    unit = next(u for u in units if u.start <= offset < u.end)
    return sum(
        1
        for first, chunk in zip(stored.offsets, stored.chunks, strict=True)
        if first < unit.end and unit.start < first + chunk.size
    )


def joined(pieces: Iterator[tuple[int, memoryview]], chunks: list[ChunkInfo]) -> bytes:
    """The pieces' bytes, checking each chunk's come in order and whole."""
    got = {chunk.index: b"" for chunk in chunks}
    order = []
    for index, piece in pieces:
        order.append(index)
        got[index] += bytes(piece)
    assert order == sorted(order)
    assert [len(got[c.index]) for c in chunks] == [c.size for c in chunks]
    return b"".join(got[c.index] for c in chunks)


@pytest.mark.parametrize("codec", ["gzip", "zstd", "xz", "lz4"])
def test_blocks_go_on_before_their_chunk_has_arrived(tmp_path: Path, codec: str) -> None:
    stored = Stored(tmp_path, codec)
    units = block_units(stored.manifest, stored.chunks)
    assert units is not None and len(units) > len(stored.chunks)
    consumed: list[int] = []
    pieces = stored.read(units, consumed)
    first = next(pieces)
    assert first[0] == 0 and len(consumed) * PIECE < stored.chunks[0].size
    rest = joined(iter([first, *pieces]), stored.chunks)
    assert rest == stored.stream and stored.fetches == 0


@pytest.mark.parametrize("where", ["header", "block", "trailer"])
def test_a_damaged_unit_is_fetched_again(tmp_path: Path, where: str) -> None:
    stored = Stored(tmp_path, "gzip")
    units = block_units(stored.manifest, stored.chunks)
    assert units is not None
    assert stored.manifest.trailer_offset is not None
    offset = {
        "header": 3,
        "block": stored.manifest.blocks[5][1] + 7,
        "trailer": stored.manifest.trailer_offset + 2,
    }[where]
    stored.damage(offset, times=2)  # the first download and the first fetch again
    assert joined(stored.read(units, []), stored.chunks) == stored.stream
    spanned = chunks_holding(stored, units, offset)
    assert stored.fetches == 2 * spanned  # fetched again twice, a range per chunk it lies in


def damaged_for_good(tmp_path: Path) -> tuple[Stored, list[Unit], int]:
    """A stored archive whose fourth block arrives damaged on every read; the damaged byte."""
    stored = Stored(tmp_path, "zstd")
    units = block_units(stored.manifest, stored.chunks)
    assert units is not None
    offset = stored.manifest.blocks[3][1] + 1
    stored.damage(offset, times=100)
    return stored, units, offset


def test_a_unit_wrong_every_time_is_an_error_and_none_of_it_goes_on(tmp_path: Path) -> None:
    stored, units, offset = damaged_for_good(tmp_path)
    got = bytearray()
    with pytest.raises(stc.ChecksumMismatchError) as raised:
        for _, piece in stored.read(units, []):
            got += piece
    unit = next(u for u in units if u.start <= offset < u.end)
    assert bytes(got) == stored.stream[: unit.start]  # every unit before it, nothing of it
    held = [c.name for c, first in zip(stored.chunks, stored.offsets, strict=True)
            if first < unit.end and unit.start < first + c.size]  # fmt: skip
    assert raised.value.name == " or ".join(held)
    assert stored.fetches == 2 * chunks_holding(stored, units, offset)  # three downloads


def test_a_reader_that_checks_nothing_itself_gets_what_is_stored(tmp_path: Path) -> None:
    """Not strict (verify, list, --no-verify): a unit wrong every time goes on as stored."""
    stored, units, offset = damaged_for_good(tmp_path)
    got = joined(stored.read(units, [], strict=False), stored.chunks)
    assert got != stored.stream and got[offset] == stored.stream[offset] ^ 1
    assert stored.fetches == 2 * chunks_holding(stored, units, offset)  # three downloads


def test_chunks_are_the_units_without_block_digests(tmp_path: Path) -> None:
    stored = Stored(tmp_path, "gzip")
    bare = Manifest.from_json(stored.manifest.to_json().replace('"block_sha256"', '"other"'))
    assert block_units(bare, stored.chunks) is None
    units = chunk_units(stored.chunks, stored.offsets)
    consumed: list[int] = []
    pieces = stored.read(units, consumed)
    next(pieces)
    assert len(consumed) * PIECE >= stored.chunks[0].size  # the whole first chunk came first
    stored.damage(stored.offsets[2] + 5, times=1)
    assert joined(stored.read(units, []), stored.chunks) == stored.stream
    assert stored.fetches == 1


def test_a_manifest_whose_blocks_cannot_be_units_is_read_chunk_by_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest is input too: blocks out of order, too big to hold, or a level the codec
    does not have make block_units give up (the reads go chunk by chunk), not misbehave."""
    stored = Stored(tmp_path, "gzip")
    manifest = stored.manifest
    assert block_units(manifest, stored.chunks) is not None
    blocks = list(manifest.blocks)
    blocks[2], blocks[3] = blocks[3], blocks[2]
    assert block_units(replace(manifest, blocks=tuple(blocks)), stored.chunks) is None
    assert block_units(replace(manifest, level=12), stored.chunks) is None
    biggest = max(
        b - a for (_, a), (_, b) in zip(manifest.blocks, manifest.blocks[1:], strict=False)
    )
    monkeypatch.setattr(checked_reads, "MAX_UNIT", biggest - 1)
    assert block_units(manifest, stored.chunks) is None
