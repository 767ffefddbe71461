"""pack: sources → tar writer → blocker → block compressors (pool, ordered) → chunker → sink."""

from __future__ import annotations

import datetime
import io
import os
import shlex
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .. import __version__
from ..codecs import codec_for
from ..codecs.base import Codec, EncodedBlock
from ..core.blocker import Blocker
from ..core.chunker import ChunkEnd, Chunker, ChunkPiece
from ..core.manifest import Manifest
from ..core.tar_writer import TarWriter, padding
from ..errors import SourceChangedError, SourceError, UsageError
from ..fs.walk import (
    Exclude,
    SkippedSource,
    SourceEntry,
    SourceSummary,
    exclude_nothing,
    iter_entries,
    scan,
)
from ..models import ChunkInfo, CompressionType, MemberKind
from ..progress import NullProgress, Progress
from ..storage.local import LocalChunkSink, archive_file_matcher, split_prefix
from .parallel import ordered_map
from .threads import in_background

DEFAULT_CHUNK_SIZE = 50 * 2**20  # bytes
READ_SIZE = 1 << 20  # bytes per read of a source file
MAX_BLOCK_SIZE = 64 * 2**20  # keeps zstd windows under 128 MiB, so no reader needs --long
BLOCKS_IN_FLIGHT_PER_WORKER = 2
EVENTS_AHEAD = 4  # chunk pieces (slices of encoded blocks) framed ahead of the writer
# Blocks in flight take 2 x workers x block size of memory, so the worker count is capped.
MAX_WORKERS = 64


@dataclass(frozen=True, slots=True)
class PackSettings:
    """Checked settings of one pack, with the codec's defaults filled in."""

    compression: CompressionType
    level: int
    chunk_size: int
    block_size: int
    workers: int

    @classmethod
    def build(
        cls,
        compression: CompressionType | str = CompressionType.GZIP,
        level: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        block_size: int | None = None,
        workers: int | None = None,
    ) -> PackSettings:
        kind = CompressionType.parse(compression)
        codec = codec_for(kind)
        level = codec.default_level if level is None else level
        codec.new_encoder(level, 1)  # refuses a bad level before anything starts
        if chunk_size < 1:
            raise UsageError(f"chunk size must be at least 1 byte, not {chunk_size}")
        block_size = codec.default_block_size if block_size is None else block_size
        if not 1 <= block_size <= MAX_BLOCK_SIZE:
            raise UsageError(f"block size must be 1 byte .. 64 MiB, not {block_size}")
        workers = workers if workers is not None else (os.cpu_count() or 1)
        if not 1 <= workers <= MAX_WORKERS:
            raise UsageError(f"workers must be 1..{MAX_WORKERS}, not {workers}")
        return cls(kind, level, chunk_size, block_size, workers)


@dataclass(frozen=True, slots=True)
class _FileDone:
    """A source whose bytes are all in the tar stream so far."""

    path: str
    size: int


@dataclass(frozen=True, slots=True)
class PackResult:
    manifest: Manifest
    chunks: list[ChunkInfo]
    skipped: list[SkippedSource]


@dataclass(frozen=True, slots=True)
class PackProgress:
    """``raw_bytes`` more of the tar stream are packed; ``files`` have been packed whole."""

    raw_bytes: int
    files: list[_FileDone]


@dataclass(frozen=True, slots=True)
class PackEnd:
    """The stream is complete and ``manifest`` describes it."""

    manifest: Manifest


PackEvent = ChunkPiece | ChunkEnd | PackProgress | PackEnd


def restore_command(codec: Codec, prefix_name: str) -> str:
    """The shell line that restores the archive with GNU tar alone, run in its folder."""
    flag = f" {codec.tar_flag}" if codec.tar_flag else ""
    return f"cat {shlex.quote(prefix_name)}.part* | tar{flag} -xf -"


def suffix_width(max_stream_size: int, chunk_size: int) -> int:
    """Four digits, or as many as the largest possible chunk count needs (glob order = order)."""
    max_chunks = max(1, -(-max_stream_size // chunk_size))
    return max(4, len(str(max_chunks - 1)))


def pack_events(
    sources: Sequence[str],
    settings: PackSettings,
    prefix_name: str,
    summary: SourceSummary,
    *,
    skipped: list[SkippedSource],
    exclude: Exclude = exclude_nothing,
) -> Generator[PackEvent, None, None]:
    """The whole pack as events: chunk pieces, chunk ends, progress, and the manifest last.

    Drivers decide where chunks go (files, memory) and report progress from their own thread;
    closing the generator early stops the work, waiting only for the few blocks in flight.
    """
    codec = codec_for(settings.compression)
    encoder = codec.new_encoder(settings.level, settings.block_size)
    max_stream = codec.max_encoded_size(summary.tar_size_bound, settings.block_size)
    chunker = Chunker(
        settings.chunk_size, prefix_name, suffix_width(max_stream, settings.chunk_size)
    )
    chunks: list[ChunkInfo] = []
    blocks: list[tuple[int, int]] = []

    def cut(data: bytes) -> Iterator[ChunkPiece | ChunkEnd]:
        for event in chunker.feed(data):
            if isinstance(event, ChunkEnd):
                chunks.append(event.info)
            yield event

    yield from cut(encoder.header())
    raw_offset = 0
    window = settings.workers * BLOCKS_IN_FLIGHT_PER_WORKER

    def encode(block: _TarBlock) -> tuple[EncodedBlock, list[_FileDone]]:
        return encoder.encode_block(block.data), block.files

    # The tar stream (walking, reading files) is made in its own thread, ahead of us.
    tar_blocks = in_background(
        _tar_blocks(iter_entries(sources, skipped, exclude), settings.block_size),
        depth=BLOCKS_IN_FLIGHT_PER_WORKER,
        name="stc-tar",
    )
    try:
        with ThreadPoolExecutor(settings.workers, thread_name_prefix="stc-pack") as pool:
            for encoded, files in ordered_map(encode, tar_blocks, pool=pool, window=window):
                blocks.append((raw_offset, chunker.total_size))
                raw_offset += encoded.raw_size
                yield from cut(encoder.add_block(encoded))
                yield PackProgress(encoded.raw_size, files)
    finally:
        tar_blocks.close()
    trailer_offset = chunker.total_size
    yield from cut(encoder.trailer())
    for event in chunker.finish():
        assert isinstance(event, ChunkEnd)
        chunks.append(event.info)
        yield event
    yield PackEnd(
        Manifest(
            compression=settings.compression,
            level=settings.level,
            block_size=settings.block_size,
            chunk_size=settings.chunk_size,
            chunks=tuple(chunks),
            compressed_size=chunker.total_size,
            uncompressed_size=raw_offset,
            sha256=chunker.stream_sha256,
            blocks=tuple(blocks),
            trailer_offset=trailer_offset,
            complete=True,
            restore_command=restore_command(codec, prefix_name),
            created=_now(),
            tool=f"streaming-tar-compressor {__version__}",
        )
    )


def pack(
    sources: Sequence[str],
    output_prefix: str,
    settings: PackSettings,
    *,
    progress: Progress | None = None,
    force: bool = False,
) -> PackResult:
    """Packs into chunk files beside the manifest; a missing source fails before any write."""
    _, prefix_name = split_prefix(output_prefix)
    exclude = archive_file_matcher(output_prefix)
    summary = scan(sources, exclude)
    sink = LocalChunkSink(output_prefix, force=force)
    progress = progress or NullProgress()
    skipped: list[SkippedSource] = []
    chunks: list[ChunkInfo] = []
    # Framing, cutting and hashing run in their own thread; this one writes the chunks.
    events = in_background(
        pack_events(sources, settings, prefix_name, summary, skipped=skipped, exclude=exclude),
        depth=EVENTS_AHEAD,
        name="stc-frame",
    )
    progress.start(summary.tar_size_bound)
    try:
        for event in events:
            if isinstance(event, ChunkPiece):
                sink.write(event.index, event.data)
            elif isinstance(event, ChunkEnd):
                chunks.append(sink.finish_chunk(event.info))
            elif isinstance(event, PackProgress):
                report(progress, event)
            else:
                sink.write_manifest(event.manifest)
                return PackResult(event.manifest, chunks, skipped)
    except BaseException:
        try:
            events.close()
        finally:
            sink.abort()
        raise
    finally:
        progress.finish()
    raise AssertionError("pack_events ended without its manifest")


def report(progress: Progress, event: PackProgress) -> None:
    progress.advance(event.raw_bytes)
    for done in event.files:
        progress.file(done.path, done.size)


@dataclass(slots=True)
class _Outcome:
    """What an in-memory pack leaves behind; kept apart so the generator does not hold the
    iterator (a cycle only the garbage collector would break, from any thread)."""

    manifest: Manifest | None = None
    skipped: list[SkippedSource] = field(default_factory=list)


class ChunkIterator:
    """``(index, bytes)`` per chunk, each assembled in memory while the next is not started.

    ``manifest`` and ``skipped`` are filled in once the last chunk has been taken.
    """

    def __init__(
        self,
        sources: Sequence[str],
        settings: PackSettings,
        *,
        progress: Progress | None = None,
        prefix_name: str = "chunks",
    ) -> None:
        self._outcome = _Outcome()
        self._chunks = _memory_chunks(
            list(sources), settings, prefix_name, progress or NullProgress(), self._outcome
        )

    @property
    def manifest(self) -> Manifest | None:
        return self._outcome.manifest

    @property
    def skipped(self) -> list[SkippedSource]:
        return self._outcome.skipped

    def __iter__(self) -> ChunkIterator:
        return self

    def __next__(self) -> tuple[int, bytes]:
        return next(self._chunks)

    def close(self) -> None:
        """Stop packing (waits for the blocks in flight)."""
        self._chunks.close()


def _memory_chunks(
    sources: list[str],
    settings: PackSettings,
    prefix_name: str,
    progress: Progress,
    outcome: _Outcome,
) -> Generator[tuple[int, bytes], None, None]:
    summary = scan(sources)
    events = pack_events(sources, settings, prefix_name, summary, skipped=outcome.skipped)
    # BytesIO.getvalue() hands over its buffer without a copy when nothing else holds it.
    buffer = io.BytesIO()
    progress.start(summary.tar_size_bound)
    try:
        for event in events:
            if isinstance(event, ChunkPiece):
                buffer.write(event.data)
            elif isinstance(event, ChunkEnd):
                data, buffer = buffer.getvalue(), io.BytesIO()
                yield event.info.index, data
            elif isinstance(event, PackProgress):
                report(progress, event)
            else:
                outcome.manifest = event.manifest
    finally:
        progress.finish()
        events.close()


@dataclass(frozen=True, slots=True)
class _TarBlock:
    """A block of the tar stream and the sources that ended in it (or just before it)."""

    data: bytes
    files: list[_FileDone]


def _tar_blocks(entries: Iterator[SourceEntry], block_size: int) -> Iterator[_TarBlock]:
    blocker = Blocker(block_size)
    finished: list[_FileDone] = []
    for item in _tar_stream(entries):
        if isinstance(item, _FileDone):
            finished.append(item)
            continue
        for block in blocker.feed(item):
            yield _TarBlock(block, finished)
            finished = []
    for block in blocker.finish():
        yield _TarBlock(block, finished)
        finished = []
    assert not finished, "the end-of-archive bytes always follow the last file"


def _tar_stream(entries: Iterator[SourceEntry]) -> Iterator[bytes | _FileDone]:
    """The pax tar stream of the entries; file data is read in READ_SIZE pieces, never whole."""
    writer = TarWriter()
    for entry in entries:
        member = entry.member
        yield writer.header(member)
        if member.kind is MemberKind.FILE:
            yield from _file_data(entry.path, member.size)
            yield padding(member.size)
        yield _FileDone(entry.path, member.size)
    yield writer.finish()


def _file_data(path: str, size: int) -> Iterator[bytes]:
    try:
        handle = open(path, "rb", buffering=0)  # noqa: SIM115
    except OSError as exc:
        raise SourceError(path, exc.strerror or str(exc)) from exc
    with handle:
        remaining = size
        while remaining:
            try:
                data = handle.read(min(remaining, READ_SIZE))
            except OSError as exc:
                raise SourceError(path, exc.strerror or str(exc)) from exc
            if not data:
                raise SourceChangedError(
                    path, f"it shrank while being packed ({size - remaining} of {size} bytes)"
                )
            remaining -= len(data)
            yield data


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
