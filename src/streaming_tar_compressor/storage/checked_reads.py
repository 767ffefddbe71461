"""Reading a stored archive ahead of its unpack, checking each stretch of the compressed
stream before any of it is passed on, and fetching a stretch again when it arrives damaged.

The stretches ("units") are the archive's blocks when the manifest records each block's
SHA-256, so the unpack starts on a block as soon as that block has arrived, not when its whole
chunk has: after the last byte, only the last block is left to extract. Around the blocks,
the codec's header is compared with the bytes the codec writes, and its trailer is checked
with the last chunk's SHA-256 (hashed on from the chunk's first byte). Without block digests
(an archive of an earlier version), or for a read that starts after the first chunk (a
resume), each chunk is one unit, checked whole.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..codecs import codec_for
from ..core.manifest import Manifest
from ..errors import ChecksumMismatchError, MissingChunkError, UsageError
from ..models import ChunkInfo

FetchSpan = Callable[[tuple[ChunkInfo, int, int]], memoryview]
CheckedPieces = Generator[tuple[int, memoryview], None, None]
# What is wrong with a chunk as stored, if anything (a source's ``damage``).
Blame = Callable[[ChunkInfo], ChecksumMismatchError | None]
# The run of chunks that checked pieces from a chunk on cover, and those pieces.
CheckedRunFrom = Callable[[ChunkInfo], tuple[list[ChunkInfo], CheckedPieces]]
# The biggest block a unit may be: a 64 MiB block that does not compress, with its framing.
MAX_UNIT = 65 * 2**20
# Reads of a stretch that arrives damaged, in all, before the damage is the error (an unpack
# from a store; an extraction, wherever its archive is).
FETCH_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Unit:
    """Bytes ``start:end`` of the stream, checked by their SHA-256, by being exactly
    ``expected``, or (``tail_of``) by completing that chunk's SHA-256."""

    start: int
    end: int
    sha256: str = ""
    expected: bytes | None = None
    tail_of: ChunkInfo | None = None


def chunk_units(chunks: Sequence[ChunkInfo], offsets: Sequence[int]) -> list[Unit]:
    return [
        Unit(offset, offset + chunk.size, sha256=chunk.checksum)
        for chunk, offset in zip(chunks, offsets, strict=True)
    ]


def block_units(manifest: Manifest, chunks: Sequence[ChunkInfo]) -> list[Unit] | None:
    """The stream cut at its blocks, or None when the manifest cannot check them so: no
    block digests, a trailer outside the last chunk, or blocks that do not follow each other
    or are bigger than MAX_UNIT (a manifest is input too: a unit is held whole)."""
    if not manifest.block_sha256 or manifest.trailer_offset is None or not chunks:
        return None
    if not all(chunk.checksum for chunk in chunks):  # the trailer is checked with the last's
        return None
    if manifest.compression is None or manifest.level is None or manifest.block_size is None:
        return None
    total = sum(chunk.size for chunk in chunks)
    last_start = total - chunks[-1].size
    trailer = manifest.trailer_offset
    try:
        header = (
            codec_for(manifest.compression)
            .new_encoder(manifest.level, manifest.block_size)
            .header()
        )
    except UsageError:  # a level the codec does not have: decoding does not need it
        return None
    starts = [position for _, position in manifest.blocks]
    if starts[0] != len(header) or not last_start <= trailer <= total:
        return None
    bounds = itertools.pairwise([*starts, trailer])
    if any(not 0 < end - start <= MAX_UNIT for start, end in bounds):
        return None
    units = [Unit(0, starts[0], expected=header)] if starts[0] else []
    ends = [*starts[1:], trailer]
    units += [
        Unit(start, end, sha256=digest)
        for start, end, digest in zip(starts, ends, manifest.block_sha256, strict=True)
    ]
    if trailer < total:
        units.append(Unit(trailer, total, tail_of=chunks[-1]))
    return units


class _Tail:
    """The SHA-256 of the last chunk's bytes before its tail unit, for checking that unit."""

    def __init__(self, chunk_start: int) -> None:
        self.start, self.hash = chunk_start, hashlib.sha256()

    def add(self, offset: int, data: memoryview) -> None:
        skip = max(0, self.start - offset)
        if skip < len(data):
            self.hash.update(data[skip:])


class _Run:
    """Chunks that follow each other, where each starts in the stream."""

    def __init__(self, chunks: Sequence[ChunkInfo], offsets: Sequence[int]) -> None:
        self.chunks, self.offsets = list(chunks), list(offsets)

    def spans(self, start: int, end: int) -> Iterator[tuple[int, ChunkInfo, int, int]]:
        """Stream bytes ``start:end`` as (stream offset, chunk, start, end) ranges of the
        chunks that hold them (found by bisection: a run may have thousands of chunks)."""
        at = max(0, bisect.bisect_right(self.offsets, start) - 1)
        while at < len(self.chunks) and self.offsets[at] < end:
            chunk, first = self.chunks[at], self.offsets[at]
            low, high = max(start, first), min(end, first + chunk.size)
            if low < high:
                yield low, chunk, low - first, high - first
            at += 1

    def pieces(self, offset: int, piece: memoryview) -> Iterator[tuple[int, memoryview]]:
        """The piece cut at chunk boundaries, each part with its chunk's index."""
        for low, chunk, start, end in self.spans(offset, offset + len(piece)):
            yield chunk.index, piece[low - offset : low - offset + end - start]


def prefetch_units(
    fetched: Iterator[memoryview],
    units: list[Unit],
    chunks: Sequence[ChunkInfo],
    offsets: Sequence[int],
    fetch_span: FetchSpan,
    attempts: int,
    *,
    strict: bool,
    blame: Blame | None = None,
) -> CheckedPieces:
    """``(chunk index, piece)`` for ``chunks`` (starting at stream ``offsets``), in order,
    each piece passed on once its unit checked. ``fetched`` yields the chunks' bytes in
    order, from the first unit's start, which is the first chunk's.

    A unit still wrong after ``attempts`` reads goes on as it is unless ``strict`` (a reader
    that checks nothing itself, as ``verify`` and ``--no-verify``, gets what is stored); when
    ``strict`` it is an error, and so is a stream that breaks off. Either names the first
    chunk not yet checked that ``blame`` finds damaged, as checking each chunk whole in turn
    would have (without ``blame``, or when none is: every chunk the unit lies in)."""
    run = _Run(chunks, offsets)
    pending: deque[tuple[int, memoryview]] = deque()  # (stream offset, bytes) not passed on
    received = units[0].start
    tail = _Tail(offsets[-1]) if units[-1].tail_of is not None else None
    upcoming = iter(units)
    unit = next(upcoming, None)
    stream = iter(fetched)
    while True:
        try:
            data = next(stream)
        except StopIteration:
            return
        except (MissingChunkError, ChecksumMismatchError) as broke_off:
            culprit = None
            if strict and unit is not None:
                culprit = _culprit(run, unit.start, received, blame)
            if culprit is None:
                raise
            raise culprit from broke_off
        pending.append((received, data))
        received += len(data)
        while unit is not None and unit.end <= received:
            pieces = _take(pending, unit.end)
            attempt, good = 1, _holds(unit, pieces, tail)
            while not good and attempt < attempts:
                pieces = [
                    (low, fetch_span((chunk, start, end)))
                    for low, chunk, start, end in run.spans(unit.start, unit.end)
                ]
                attempt, good = attempt + 1, _holds(unit, pieces, tail)
            if not good and strict:
                # Nothing unchecked goes on: what reads checked pieces may write them under
                # their final names at once.
                culprit = _culprit(run, unit.start, unit.end, blame)
                raise culprit or _damaged(unit, run, attempts)
            for offset, piece in pieces:
                if tail is not None:
                    tail.add(offset, piece)
                yield from run.pieces(offset, piece)
            unit = next(upcoming, None)


def _culprit(run: _Run, start: int, end: int, blame: Blame | None) -> ChecksumMismatchError | None:
    """The first chunk holding stream bytes ``start:end`` that ``blame`` finds damaged."""
    if blame is None:
        return None
    for _, chunk, _, _ in run.spans(start, end):
        found = blame(chunk)
        if found is not None:
            return found
    return None


def _damaged(unit: Unit, run: _Run, attempts: int) -> ChecksumMismatchError:
    names = " or ".join(chunk.label for _, chunk, _, _ in run.spans(unit.start, unit.end))
    wanted = (
        f"{len(unit.expected)} bytes of the codec's header"
        if unit.expected is not None
        else f"sha256 {unit.tail_of.checksum if unit.tail_of is not None else unit.sha256}"
    )
    return ChecksumMismatchError(
        names,
        f"{wanted} for stream bytes {unit.start}-{unit.end}",
        f"other bytes on each of {attempts} reads",
    )


def _take(pending: deque[tuple[int, memoryview]], end: int) -> list[tuple[int, memoryview]]:
    """The pending pieces up to stream offset ``end`` (the last one cut there)."""
    taken: list[tuple[int, memoryview]] = []
    while pending and pending[0][0] < end:
        offset, data = pending.popleft()
        if offset + len(data) > end:
            pending.appendleft((end, data[end - offset :]))
            data = data[: end - offset]
        taken.append((offset, data))
    return taken


def _holds(unit: Unit, pieces: list[tuple[int, memoryview]], tail: _Tail | None) -> bool:
    if unit.expected is not None:
        return b"".join(piece for _, piece in pieces) == unit.expected
    digest: Any = hashlib.sha256()
    if unit.tail_of is not None:
        assert tail is not None
        digest = tail.hash.copy()
    for _, piece in pieces:
        digest.update(piece)
    wanted = unit.tail_of.checksum if unit.tail_of is not None else unit.sha256
    return bool(digest.hexdigest() == wanted)


class CheckedRun:
    """Chunk reads served from checked pieces that run ahead over the chunks that follow
    (``run_from(chunk)``), started afresh when a read asks for another chunk than the next
    one (a resume, a second pass, a read left unfinished) or after a read failed (a missing
    part: the caller may go on). ``run_from`` comes with each read, not kept: a source that
    holds this must not be held by it, or what runs ahead would outlive the source."""

    def __init__(self) -> None:
        self._pieces: CheckedPieces | None = None
        self._upcoming: deque[ChunkInfo] = deque()
        self._taken = 0  # bytes of upcoming[0] read so far

    def read(self, chunk: ChunkInfo, run_from: CheckedRunFrom) -> Iterator[memoryview]:
        upcoming = self._upcoming
        if self._pieces is None or not upcoming or upcoming[0] != chunk or self._taken:
            self.stop()
            run, self._pieces = run_from(chunk)
            self._upcoming = deque(run)
        taken = 0
        try:
            while taken < chunk.size:
                index, piece = next(self._pieces)
                if index != chunk.index:
                    raise RuntimeError("the checked pieces and the reads went out of step")
                taken += len(piece)
                self._taken = taken
                if taken == chunk.size:
                    self._chunk_done()  # before the last piece: a caller may stop there
                yield piece
        except BaseException:  # a failed read, or one left unfinished: nothing runs on
            if taken < chunk.size:
                self.stop()
            raise
        if not chunk.size:
            self._chunk_done()

    def next_is(self, chunk: ChunkInfo) -> bool:
        """``chunk`` is the one the pieces under way give next, none of it read yet."""
        upcoming, under_way = self._upcoming, self._pieces is not None
        return under_way and bool(upcoming) and upcoming[0] == chunk and not self._taken

    def stop(self) -> None:
        if self._pieces is not None:
            self._pieces.close()
        self._pieces = None
        self._upcoming.clear()
        self._taken = 0

    def _chunk_done(self) -> None:
        self._taken = 0
        self._upcoming.popleft()
        if not self._upcoming:
            self.stop()  # its last chunk: a thread behind it ends now, not some time later
