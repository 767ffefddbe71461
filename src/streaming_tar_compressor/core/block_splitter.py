"""Cuts a compressed stream at the block offsets its manifest records, so blocks can be
decoded in parallel: header, then each block with its uncompressed size, then the trailer.

The manifest is not trusted further than this: offsets must increase, and no block may claim
more than MAX_BLOCK_BYTES, so a hostile manifest cannot make us buffer without bound.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import CorruptStreamError, ManifestError, TruncatedStreamError

# A block holds at most 64 MiB of tar (the pack limit); compressed it may grow a little.
MAX_BLOCK_BYTES = 64 * 2**20 + 2**20
# Headers are a few bytes (gzip 10, xz 12); trailers hold a record per block at most (the xz
# index: two VLIs; the zstd seek table: 8 bytes) plus a few dozen bytes of their own.
MAX_HEADER_BYTES = 2**16


def _max_trailer(blocks: int) -> int:
    return 2**16 + 32 * blocks


@dataclass(frozen=True, slots=True)
class StreamHeader:
    data: bytes


@dataclass(frozen=True, slots=True)
class CompressedBlock:
    index: int
    data: bytes
    raw_size: int


@dataclass(frozen=True, slots=True)
class StreamTrailer:
    data: bytes


SplitEvent = StreamHeader | CompressedBlock | StreamTrailer


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int
    raw_size: int  # -1 for the header and the trailer


class BlockSplitter:
    """Feed the stream in any cut; get header, blocks and trailer as whole pieces."""

    def __init__(
        self,
        blocks: Sequence[tuple[int, int]],
        uncompressed_size: int,
        trailer_offset: int,
        total_size: int,
    ) -> None:
        self._spans = _spans(blocks, uncompressed_size, trailer_offset, total_size)
        self._next = 0
        self._pieces: deque[memoryview] = deque()
        self._held = 0  # bytes in _pieces

    def feed(self, data: bytes | bytearray | memoryview) -> list[SplitEvent]:
        # Pieces are kept as they come and joined once per block: one copy of each byte, not
        # the three that growing and cutting a bytearray makes (measured ~9 % of unpack's
        # main thread on 100,000 small files). A piece that may change later is copied.
        if data:
            view = memoryview(data)
            self._pieces.append(view if isinstance(view.obj, bytes) else memoryview(bytes(view)))
            self._held += len(view)
        events: list[SplitEvent] = []
        while self._next < len(self._spans):
            span = self._spans[self._next]
            length = span.end - span.start
            if self._held < length:
                break
            events.append(self._event(span, self._take(length)))
            self._next += 1
        if self._next == len(self._spans) and self._held:
            # Trailing bytes, as in the codecs' own decoders: the stream is damaged, whereas a
            # manifest that cannot describe any stream is a ManifestError.
            raise CorruptStreamError("the stream is longer than its manifest says")
        return events

    def _take(self, length: int) -> bytes:
        """The next ``length`` bytes held, as one bytes object."""
        parts: list[memoryview] = []
        needed = length
        while needed:
            piece = self._pieces[0]
            if len(piece) <= needed:
                parts.append(self._pieces.popleft())
                needed -= len(piece)
            else:
                parts.append(piece[:needed])
                self._pieces[0] = piece[needed:]
                needed = 0
        self._held -= length
        return parts[0].tobytes() if len(parts) == 1 else b"".join(parts)

    def finish(self) -> list[SplitEvent]:
        events = self.feed(b"")
        if self._next < len(self._spans):
            raise TruncatedStreamError("the stream ends before the last block its manifest lists")
        return events

    def _event(self, span: _Span, piece: bytes) -> SplitEvent:
        if self._next == 0:
            return StreamHeader(piece)
        if self._next == len(self._spans) - 1:
            return StreamTrailer(piece)
        return CompressedBlock(self._next - 1, piece, span.raw_size)


def check_block_index(
    blocks: Sequence[tuple[int, int]], uncompressed_size: int, trailer_offset: int, total: int
) -> None:
    """ManifestError for a block index no pack writes (what a ranged read trusts too): blocks
    out of order, larger than MAX_BLOCK_BYTES, past the chunks' end."""
    _spans(blocks, uncompressed_size, trailer_offset, total)


def _spans(
    blocks: Sequence[tuple[int, int]], uncompressed_size: int, trailer_offset: int, total: int
) -> list[_Span]:
    starts = [compressed for _, compressed in blocks] + [trailer_offset]
    raws = [raw for raw, _ in blocks] + [uncompressed_size]
    first = starts[0]
    spans = [_Span(0, first, -1)]
    for index in range(len(blocks)):
        start, end = starts[index], starts[index + 1]
        raw_size = raws[index + 1] - raws[index]
        if not (start < end and 0 < raw_size <= MAX_BLOCK_BYTES and end - start <= MAX_BLOCK_BYTES):
            raise ManifestError(f"the manifest's block {index} has impossible offsets")
        spans.append(_Span(start, end, raw_size))
    if not first <= trailer_offset <= total or (blocks and raws[0] != 0):
        raise ManifestError("the manifest's block offsets do not fit its sizes")
    if first > MAX_HEADER_BYTES or total - trailer_offset > _max_trailer(len(blocks)):
        raise ManifestError("the manifest's header or trailer is larger than any codec writes")
    spans.append(_Span(trailer_offset, total, -1))
    return spans
