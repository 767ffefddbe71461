"""Compressed bytes → tar member events: detection, decoding and tar parsing chained.

Shared by unpack, list and deep verify. Events come out lazily, one decoded piece at a time,
so memory holds one piece whatever the archive expands to or however many members it packs
into a few bytes.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..codecs import codec_for
from ..codecs.base import BlockExtent, Buffer, DecodedBlock, StreamDecoder
from ..core.block_splitter import (
    BlockSplitter,
    CompressedBlock,
    SplitEvent,
    StreamHeader,
)
from ..core.detect import HEAD_SIZE, resolve_compression
from ..core.manifest import Manifest
from ..core.tar_reader import TarEvent, TarReader
from ..errors import CompressionMismatchError, ManifestError
from ..models import CompressionType

DECODED_PIECE = 1 << 20  # bytes of decoded output handled at a time
BLOCKS_IN_FLIGHT_PER_WORKER = 2
MAX_DECODE_WORKERS = 64
# Decoded bytes in flight at most (a block may be 64 MiB): memory follows this setting, not
# the number of cores or what a stream expands to.
MAX_RAW_IN_FLIGHT = 128 * 2**20


class TarStreamDecoder:
    """Takes compressed bytes in any cut; yields the tar events they complete."""

    def __init__(
        self, stated: CompressionType | None = None, *, whole_members: bool = False
    ) -> None:
        self._stated = stated
        self._head = bytearray()
        self._decoder: StreamDecoder | None = None
        self._tar = TarReader(whole_members=whole_members)
        self.compression: CompressionType | None = None

    def events(self, data: Buffer) -> Iterator[TarEvent]:
        """Consume the iterator before the next call: data events are views into this piece."""
        if self._decoder is None:
            self._head += data
            if len(self._head) < HEAD_SIZE:
                return
            data = self._start()
        yield from self._decode(data)

    def finish(self) -> Iterator[TarEvent]:
        """End of input: raises TruncatedStreamError if the codec or tar stream is incomplete."""
        if self._decoder is None:
            yield from self._decode(self._start())
        assert self._decoder is not None
        self._decoder.close()
        yield from self._tar.finish()

    def close(self) -> None:
        """Nothing to release: one thread, no pool."""

    def _start(self) -> bytes:
        head, self._head = bytes(self._head), bytearray()
        self.compression = resolve_compression(self._stated, head)
        self._decoder = codec_for(self.compression).new_decoder()
        return head

    def _decode(self, data: Buffer) -> Iterator[TarEvent]:
        assert self._decoder is not None
        self._decoder.feed(data)
        while piece := self._decoder.read(DECODED_PIECE):
            yield from self._tar.feed(piece)


@dataclass(frozen=True, slots=True)
class StartPoint:
    """Where decoding resumes: tar offset ``position`` lies ``skip`` bytes into block ``block``,
    whose compressed bytes begin ``lead`` bytes into chunk ``chunk``."""

    position: int
    block: int
    chunk: int
    lead: int
    skip: int


def block_holding(manifest: Manifest, position: int) -> int:
    """The block that holds tar offset ``position``."""
    assert manifest.uncompressed_size is not None
    raws = [raw for raw, _ in manifest.blocks]
    block = bisect.bisect_right(raws, position) - 1
    ends = [*raws[1:], manifest.uncompressed_size]
    if block < 0 or not raws[block] <= position < ends[block]:
        raise ManifestError(
            f"the manifest's block index has no block holding tar offset {position}"
        )
    return block


def start_point(manifest: Manifest, position: int) -> StartPoint:
    """The block that holds tar offset ``position``, and the chunk that holds that block's
    start: every block decodes alone, so nothing before it needs reading."""
    block = block_holding(manifest, position)
    raw, compressed = manifest.blocks[block]
    start = 0
    for chunk in manifest.chunks:
        if compressed < start + chunk.size:
            return StartPoint(position, block, chunk.index, compressed - start, position - raw)
        start += chunk.size
    raise ManifestError(f"the manifest's block {block} starts past its last chunk")


class ParallelBlockDecoder:
    """Decodes OUR streams block by block in a thread pool, using the manifest's block index.

    Same interface as TarStreamDecoder; blocks are decoded out of order by the workers but
    parsed as tar strictly in order, and the codec's whole-stream check (gzip CRC-32, xz
    index, zstd seek table) runs at the end. At most ``window`` blocks are in flight.

    With ``start`` it is fed from the start of the chunk that holds the start block, and
    yields events from the member at ``start.position`` on; the whole-stream check, which
    needs every block, is skipped.
    """

    def __init__(
        self,
        manifest: Manifest,
        stated: CompressionType | None,
        workers: int,
        start: StartPoint | None = None,
        *,
        whole_members: bool = False,
    ) -> None:
        assert manifest.trailer_offset is not None and manifest.uncompressed_size is not None
        assert manifest.compression is not None  # a block index comes with its codec
        codec = manifest.compression
        first = start.block if start is not None else 0
        raw0, compressed0 = manifest.blocks[first] if start is not None else (0, 0)
        # Offsets rebased on the start block: the splitter sees a stream with an empty header.
        self._splitter = BlockSplitter(
            [(raw - raw0, compressed - compressed0) for raw, compressed in manifest.blocks[first:]],
            manifest.uncompressed_size - raw0,
            manifest.trailer_offset - compressed0,
            _compressed_size(manifest) - compressed0,
        )
        self._stated = stated or codec
        self._codec = codec_for(codec)
        workers = min(workers, MAX_DECODE_WORKERS)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="stc-unpack")
        self._window = workers * BLOCKS_IN_FLIGHT_PER_WORKER
        self._raw_in_flight = 0
        self._pending: deque[Future[DecodedBlock]] = deque()
        self._header = b""
        self._detected = False
        self._extents: list[BlockExtent] = []
        self._tar = TarReader(whole_members=whole_members)
        self.compression: CompressionType | None = None
        self._resumed = start is not None
        self._lead = start.lead if start is not None else 0  # chunk bytes before the block
        self._skip = start.skip if start is not None else 0  # tar bytes before the member
        if start is not None:
            # A block in mid-stream may carry no magic number (gzip, xz): trust the manifest,
            # whose blocks decode_block checks as it decodes them.
            if stated is not None and stated is not codec:
                raise CompressionMismatchError(stated.value, codec.value)
            self.compression, self._detected = codec, True

    @staticmethod
    def usable(manifest: Manifest | None) -> bool:
        """Only manifests that record where the trailer starts describe every block's end;
        an uncompressed stream has nothing to decode in parallel."""
        return (
            manifest is not None
            and manifest.compression not in (None, CompressionType.NONE)
            and manifest.trailer_offset is not None
            and manifest.uncompressed_size is not None
        )

    def events(self, data: Buffer) -> Iterator[TarEvent]:
        if self._lead:
            view = memoryview(data)
            data, self._lead = view[self._lead :], max(0, self._lead - len(view))
        for item in self._splitter.feed(data):
            yield from self._take(item)
        while self._pending and self._pending[0].done():
            yield from self._parse(self._pending.popleft())

    def finish(self) -> Iterator[TarEvent]:
        for item in self._splitter.finish():
            yield from self._take(item)
        while self._pending:
            yield from self._parse(self._pending.popleft())
        self._close()
        yield from self._tar.finish()

    def close(self) -> None:
        """Stop early (after an error elsewhere): drop the blocks in flight."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True)

    def _take(self, item: SplitEvent) -> Iterator[TarEvent]:
        if not self._detected and item.data:
            # Our codecs' magic numbers are in their first few bytes: header or first block.
            self.compression = resolve_compression(self._stated, item.data[:HEAD_SIZE])
            self._detected = True
        if isinstance(item, StreamHeader):
            self._header = item.data
        elif isinstance(item, CompressedBlock):
            while self._pending and (
                len(self._pending) >= self._window
                or self._raw_in_flight + item.raw_size > MAX_RAW_IN_FLIGHT
            ):
                yield from self._parse(self._pending.popleft())
            self._raw_in_flight += item.raw_size
            self._pending.append(
                self._pool.submit(self._codec.decode_block, item.data, item.raw_size)
            )
            self._extents.append(BlockExtent(item.raw_size, len(item.data)))
        else:
            while self._pending:
                yield from self._parse(self._pending.popleft())
            if not self._resumed:
                self._codec.check_stream(self._header, item.data, self._extents)

    def _parse(self, future: Future[DecodedBlock]) -> Iterator[TarEvent]:
        decoded = future.result()
        index = len(self._extents) - len(self._pending) - 1
        extent = self._extents[index]
        self._raw_in_flight -= extent.raw_size
        self._extents[index] = BlockExtent(
            extent.raw_size, extent.compressed_size, decoded.raw_crc32
        )
        data: bytes | memoryview = decoded.data
        if self._skip:
            data, self._skip = memoryview(data)[self._skip :], 0
        yield from self._tar.feed(data)

    def _close(self) -> None:
        self._pool.shutdown(wait=True)


def _compressed_size(manifest: Manifest) -> int:
    """The compressed stream's size: its chunks' unless it is encrypted (then the manifest
    given is the archive's inner one, and the chunks hold more: the age header and tags)."""
    if manifest.compressed_size is not None:
        return manifest.compressed_size
    return sum(chunk.size for chunk in manifest.chunks)
