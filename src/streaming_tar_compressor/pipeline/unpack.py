"""unpack: chunk source → verifier (SHA-256) → decoder → tar reader → safety → file writer.

With verification on, files finished from a chunk stay under temporary names until that chunk's
SHA-256 has matched the manifest; a mismatch removes them, so no unverified byte ever sits in a
file that looks complete.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

from ..core.tar_reader import MemberData, MemberEnd, MemberStart, TarEvent
from ..errors import ChecksumMismatchError
from ..fs.writer import TreeWriter
from ..models import ChunkInfo, CompressionType, MemberKind
from ..progress import NullProgress, Progress
from ..storage.local import LocalChunkSource
from .decode import TarStreamDecoder


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


def unpack(
    input_prefix: str,
    output_dir: str,
    *,
    compression: CompressionType | None = None,
    verify_checksum: bool = True,
    progress: Progress | None = None,
    same_owner: bool = False,
) -> UnpackResult:
    progress = progress or NullProgress()
    source = LocalChunkSource(input_prefix)
    manifest = source.manifest
    verify = verify_checksum and manifest is not None
    stated = compression or (manifest.compression if manifest is not None else None)
    writer = TreeWriter(output_dir, deferred=verify, same_owner=same_owner)
    decoder = TarStreamDecoder(_Extractor(writer, progress), stated)
    stream_hash = hashlib.sha256()
    total = 0
    progress.start(manifest.compressed_size if manifest is not None else None)
    try:
        for chunk in source.chunks:
            chunk_hash = hashlib.sha256()
            size = 0
            for piece in source.read(chunk):
                chunk_hash.update(piece)
                stream_hash.update(piece)
                size += len(piece)
                decoder.feed(piece)
                progress.advance(len(piece))
            total += size
            if verify:
                _check_chunk(chunk, size, chunk_hash.hexdigest())
                writer.commit()
        decoder.finish()
        expected = manifest.sha256 if verify and manifest is not None else None
        if expected is not None and stream_hash.hexdigest() != expected:
            raise ChecksumMismatchError("the whole stream", expected, stream_hash.hexdigest())
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        progress.finish()
        writer.close()
    return UnpackResult(writer.members_written, total, verify, decoder.compression)


def unpack_stream(
    pieces: Iterable[bytes],
    output_dir: str,
    *,
    compression: CompressionType | None = None,
    progress: Progress | None = None,
    same_owner: bool = False,
) -> UnpackResult:
    """Unpacks one compressed stream (stdin, a pipe, ``cat`` of parts) that has no manifest."""
    progress = progress or NullProgress()
    writer = TreeWriter(output_dir, deferred=False, same_owner=same_owner)
    decoder = TarStreamDecoder(_Extractor(writer, progress), compression)
    total = 0
    progress.start(None)
    try:
        for piece in pieces:
            total += len(piece)
            decoder.feed(piece)
            progress.advance(len(piece))
        decoder.finish()
    except BaseException:
        writer.abort()
        raise
    finally:
        progress.finish()
        writer.close()
    return UnpackResult(writer.members_written, total, False, decoder.compression)


def _check_chunk(chunk: ChunkInfo, size: int, checksum: str) -> None:
    if size != chunk.size:
        raise ChecksumMismatchError(chunk.name, f"{chunk.size} bytes", f"{size} bytes")
    if checksum != chunk.checksum:
        raise ChecksumMismatchError(chunk.name, f"sha256 {chunk.checksum}", f"sha256 {checksum}")
