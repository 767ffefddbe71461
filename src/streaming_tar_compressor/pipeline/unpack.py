"""unpack: chunk source → verifier (SHA-256) → decoder → tar reader → safety → file writer.

With a manifest, files finished from a chunk stay under temporary names until that chunk's
SHA-256 has matched; a mismatch removes them, so no unverified byte ever sits in a file that
looks complete. ``StreamUnpacker`` is the whole chain as one push object, whatever brings the
bytes: chunk files (``unpack``), a pipe (``unpack_stream``) or the asyncio API.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..core.manifest import Manifest
from ..core.reorder import ChunkReorderer
from ..core.tar_reader import MemberData, MemberEnd, MemberStart, TarEvent
from ..core.verifier import ChunkVerified, StreamVerifier, VerifierEvent
from ..errors import ChecksumMismatchError, UsageError
from ..fs.writer import TreeWriter
from ..models import CompressionType, MemberKind
from ..progress import NullProgress, Progress
from ..storage.local import LocalChunkSource
from .decode import ParallelBlockDecoder, TarStreamDecoder
from .threads import in_background

# Chunks that may wait for a missing one when they arrive out of order: memory is at most this
# many chunks, so the default stays small.
DEFAULT_REORDER_WINDOW = 4
READ_AHEAD_PIECES = 4  # 1 MiB pieces read and hashed ahead of decoding


@dataclass(frozen=True, slots=True)
class UnpackResult:
    members: int
    compressed_bytes: int
    verified: bool
    compression: CompressionType | None


class _Extractor:
    """Routes tar events to the writer and reports each finished member."""

    def __init__(self, writer: TreeWriter, progress: Progress) -> None:
        self._writer = writer
        self._progress = progress

    def __call__(self, event: TarEvent) -> None:
        if isinstance(event, MemberData):
            self._writer.write(event.data)
        elif isinstance(event, MemberStart):
            self._writer.start(event.member)
        elif isinstance(event, MemberEnd):
            self._writer.end(event.member)
            member = event.member
            size = member.size if member.kind is MemberKind.FILE else 0
            self._progress.file(os.path.join(self._writer.output_dir, member.name), size)


class StreamUnpacker:
    """Compressed bytes in, safe files out; verified against the manifest when one is given.

    ``push`` takes pieces of the stream in order (any sizes) or whole chunks as
    ``(index, bytes)`` in any order within ``reorder_window``; call ``finish`` at the end, or
    ``abort`` after a failure to remove what was not verified. Checking (``verify``) and
    writing (``consume``) are separate steps so a driver may run them on two threads.
    """

    def __init__(
        self,
        output_dir: str,
        *,
        manifest: Manifest | None = None,
        compression: CompressionType | None = None,
        verify_checksum: bool = True,
        reorder_window: int = DEFAULT_REORDER_WINDOW,
        workers: int | None = None,
        progress: Progress | None = None,
        same_owner: bool = False,
        location: str = "",
    ) -> None:
        self._progress = progress or NullProgress()
        self._manifest = manifest
        self._verifier = (
            StreamVerifier(manifest.chunks, manifest.sha256, location)
            if verify_checksum and manifest is not None
            else None
        )
        stated = compression or (manifest.compression if manifest is not None else None)
        workers = workers or os.cpu_count() or 1
        self._decoder: TarStreamDecoder | ParallelBlockDecoder
        if manifest is not None and workers > 1 and ParallelBlockDecoder.usable(manifest):
            self._decoder = ParallelBlockDecoder(manifest, stated, workers)
        else:
            self._decoder = TarStreamDecoder(stated)
        self._writer = TreeWriter(
            output_dir, deferred=self._verifier is not None, same_owner=same_owner
        )
        self._extract = _Extractor(self._writer, self._progress)
        self._reorder_window = reorder_window
        self._location = location
        self._reorderer: ChunkReorderer | None = None
        self._in_order = False
        self._total = 0
        self._progress.start(manifest.compressed_size if manifest is not None else None)

    def push(self, item: bytes | bytearray | memoryview | tuple[int, bytes]) -> None:
        if isinstance(item, tuple):
            if self._in_order:
                raise UsageError("give either pieces of bytes or (index, bytes) chunks, not both")
            index, data = item
            for chunk in self._reorder().push(index, bytes(data)):
                self.feed(chunk)
        else:
            if self._reorderer is not None:
                raise UsageError("give either pieces of bytes or (index, bytes) chunks, not both")
            self._in_order = True
            self.feed(item)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """The next bytes of the stream, in order."""
        for event in self.verify(data):
            self.consume(event)

    def verify(self, data: bytes | bytearray | memoryview) -> list[VerifierEvent]:
        """Check the bytes (thread-safe against ``consume``: it touches only the verifier)."""
        if self._verifier is None:
            return [memoryview(data)]
        return self._verifier.feed(data)

    def verify_end(self) -> list[VerifierEvent]:
        """Every chunk must have come; the whole stream must match its SHA-256."""
        if self._reorderer is not None:
            self._reorderer.finish()
        return self._verifier.finish() if self._verifier is not None else []

    def consume(self, event: VerifierEvent) -> None:
        """Decode and write checked bytes; a verified chunk makes its files visible."""
        if isinstance(event, ChunkVerified):
            self._writer.commit()
            return
        self._total += len(event)
        for tar_event in self._decoder.events(event):
            self._extract(tar_event)
        self._progress.advance(len(event))

    def finish(self) -> UnpackResult:
        for event in self.verify_end():
            self.consume(event)
        return self.complete()

    def complete(self) -> UnpackResult:
        """After ``verify_end``'s events were consumed: drain the decoder, close the tree."""
        for event in self._decoder.finish():
            self._extract(event)
        self._writer.commit()
        self._writer.close()
        self._progress.finish()
        return UnpackResult(
            self._writer.members_written,
            self._total,
            self._verifier is not None,
            self._decoder.compression,
        )

    def abort(self) -> None:
        """Remove every file not yet verified or complete; keep what was."""
        self._decoder.close()
        self._writer.abort()
        self._writer.close()
        self._progress.finish()

    def _reorder(self) -> ChunkReorderer:
        if self._reorderer is None:
            total = self._manifest.total_chunks if self._manifest is not None else None
            self._reorderer = ChunkReorderer(self._reorder_window, total, self._location)
        return self._reorderer


def unpack(
    input_prefix: str,
    output_dir: str,
    *,
    compression: CompressionType | None = None,
    verify_checksum: bool = True,
    progress: Progress | None = None,
    same_owner: bool = False,
) -> UnpackResult:
    """Restores ``PREFIX.part*``: with its manifest, every chunk verified as it is read."""
    source = LocalChunkSource(input_prefix)
    unpacker = StreamUnpacker(
        output_dir,
        manifest=source.manifest,
        compression=compression,
        verify_checksum=verify_checksum,
        progress=progress,
        same_owner=same_owner,
        location=source.directory,
    )
    checked = source.manifest is not None and verify_checksum

    def read_and_verify() -> Iterator[VerifierEvent]:
        """Runs in its own thread: reading and hashing overlap decoding and writing."""
        for chunk in source.chunks:
            size = 0
            for piece in source.read(chunk):
                size += len(piece)
                yield from unpacker.verify(piece)
            if checked and size != chunk.size:
                raise ChecksumMismatchError(chunk.name, f"{chunk.size} bytes", f"{size} bytes")
        yield from unpacker.verify_end()

    events = in_background(read_and_verify(), depth=READ_AHEAD_PIECES, name="stc-read")
    try:
        for event in events:
            unpacker.consume(event)
        return unpacker.complete()
    except BaseException:
        try:
            events.close()
        finally:
            unpacker.abort()
        raise


def unpack_stream(
    pieces: Iterable[bytes],
    output_dir: str,
    *,
    compression: CompressionType | None = None,
    progress: Progress | None = None,
    same_owner: bool = False,
) -> UnpackResult:
    """Unpacks one compressed stream (stdin, a pipe, ``cat`` of parts) that has no manifest."""
    unpacker = StreamUnpacker(
        output_dir, compression=compression, progress=progress, same_owner=same_owner
    )
    try:
        for piece in pieces:
            unpacker.feed(piece)
        return unpacker.finish()
    except BaseException:
        unpacker.abort()
        raise
