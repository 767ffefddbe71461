"""Checkpoints of a pack in progress, and what a resumed pack needs to continue from one.

After each chunk takes its final name, the pack writes its manifest with ``complete: false``
and a ``resume`` object: the block to encode next (the one that holds the first byte not yet
in a final chunk), the codec's framing state before that block, and a digest of the tar
members that start before it. Blocks are independent and encoding is deterministic, so a
resumed pack re-encodes that one block, drops the bytes already on disk, and writes the same
bytes an uninterrupted run would have.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..codecs.base import EncoderState
from ..core.manifest import Manifest
from ..errors import (
    ChecksumMismatchError,
    ManifestError,
    MissingChunkError,
    OutputError,
    UsageError,
)
from ..models import ChunkInfo
from ..storage.local import open_regular_file

READ_SIZE = 1 << 20
_EMPTY_DIGEST = hashlib.sha256().hexdigest()


@dataclass(frozen=True, slots=True)
class SourceCheck:
    """The tar members before some offset: how many, and the SHA-256 of their headers and
    file stamps (inode, mtime and ctime in ns). Equal checks mean equal tar bytes up to there."""

    members: int
    digest: str


NO_SOURCES = SourceCheck(0, _EMPTY_DIGEST)


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a pack can continue: the start of block ``block`` (== the block count: the
    trailer), ``raw_offset`` into the tar stream and ``stream_offset`` into the compressed
    stream (0 for block 0: the codec header is made again)."""

    block: int
    raw_offset: int
    stream_offset: int
    encoder_state: EncoderState
    sources: SourceCheck


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Emitted after each chunk: the chunks so far and the point to continue from."""

    chunks: tuple[ChunkInfo, ...]
    blocks: tuple[tuple[int, int], ...]
    block_sha256: tuple[str, ...]  # of those blocks; empty when a resumed checkpoint had none
    point: ResumePoint
    suffix_width: int


@dataclass(frozen=True, slots=True)
class PackIdentity:
    """What makes two pack runs the same job; a resumed run must match the interrupted one."""

    sources: tuple[str, ...]
    cwd: str

    @classmethod
    def of(cls, sources: Sequence[str]) -> PackIdentity:
        """Sources as normalised paths: ``./src/`` and ``src`` make the same members."""
        return cls(tuple(os.path.normpath(source) for source in sources), os.getcwd())


class WrittenPast(Protocol):
    """What earlier runs of an encrypted pack wrote past its last checkpoint (chunks finished
    after it, the chunk in progress): the resumed pack may write there only the same bytes,
    or it would seal other plaintext under counters already used."""

    def check(self, offset: int, data: memoryview) -> None:
        """The resumed pack's next bytes, at archive ``offset``, before they are written;
        SourceChangedError where they differ from what was written there."""


@dataclass(slots=True)
class Resumption:
    """A checkpoint checked against the chunks on disk, ready to continue from."""

    chunks: tuple[ChunkInfo, ...]
    blocks: tuple[tuple[int, int], ...]
    block_sha256: tuple[str, ...]  # empty: a checkpoint of a version that did not record them
    point: ResumePoint
    suffix_width: int
    stream_hash: Any  # hashlib's sha256 of the chunks so far, to continue the stream's hash
    overlap_sha256: str  # of the written bytes from the resume point on: made again, dropped
    created: str
    kept: bytes = b""  # the stored bytes the caller asked to keep (an encrypted pack's)
    written_past: WrittenPast | None = None

    @property
    def stream_done(self) -> int:
        return sum(chunk.size for chunk in self.chunks)


PackOptions = tuple[str | None, int | None, int | None, int | None]


def made_with(manifest: Manifest) -> PackOptions:
    """The options that decide an archive's bytes: codec, level, block and chunk size (None
    where a seed manifest does not record them)."""
    codec = manifest.compression.value if manifest.compression is not None else None
    return (codec, manifest.level, manifest.block_size, manifest.chunk_size)


def checkpoint_manifest(
    base: Manifest, checkpoint: Checkpoint, identity: PackIdentity, *, content_digests: bool
) -> Manifest:
    """The manifest written after a chunk: ``complete: false`` plus where to continue (and,
    for the command that resumes it, whether the index gets content digests)."""
    point = checkpoint.point
    resume = {
        "block": point.block,
        "raw_offset": point.raw_offset,
        "stream_offset": point.stream_offset,
        "encoder_state": dict(point.encoder_state),
        "members": point.sources.members,
        "sources_digest": point.sources.digest,
        "suffix_width": checkpoint.suffix_width,
        "sources": list(identity.sources),
        "cwd": identity.cwd,
        "content_digests": content_digests,
    }
    return Manifest(
        compression=base.compression,
        level=base.level,
        block_size=base.block_size,
        chunk_size=base.chunk_size,
        chunks=checkpoint.chunks,
        compressed_size=sum(chunk.size for chunk in checkpoint.chunks),
        blocks=checkpoint.blocks,
        block_sha256=checkpoint.block_sha256,
        complete=False,
        restore_command="",
        created=base.created,
        tool=base.tool,
        extra={"resume": resume},
    )


ChunkReader = Callable[[ChunkInfo], Iterator[bytes | memoryview]]


def local_chunk_reader(directory: str) -> ChunkReader:
    """Reads a checkpoint's chunk files back, as a resumed pack must."""

    def read(chunk: ChunkInfo) -> Iterator[bytes | memoryview]:
        try:
            with open_regular_file(os.path.join(directory, chunk.name)) as handle:
                while piece := handle.read(READ_SIZE):
                    yield piece
        except FileNotFoundError:
            raise MissingChunkError(
                chunk.index, directory, "the pack cannot be resumed; pack again with --force"
            ) from None
        except OSError as exc:
            raise OutputError(f"cannot read {chunk.name} to resume the pack: {exc}") from exc

    return read


def load_resumption(
    manifest: Manifest,
    identity: PackIdentity,
    settings: PackOptions,
    read_chunk: ChunkReader,
    source: str,
    *,
    remade_from: Callable[[ResumePoint], int] | None = None,
    keep: Callable[[ResumePoint], tuple[int, int]] | None = None,
) -> Resumption:
    """Check the checkpoint fits this run and every chunk it lists is whole and unchanged
    (``read_chunk`` reads one back, from disk or from a store). ``remade_from``: where in
    the chunks the resumed pack's bytes start (else at the point's stream offset: an
    encrypted pack's are further on); ``keep``: a range of the stored bytes to keep."""
    resume = manifest.extra.get("resume")
    if not isinstance(resume, dict):
        raise ManifestError(f"{source} is incomplete but holds no resume checkpoint")
    names = ("compression", "level", "block size", "chunk size")
    for name, before, now in zip(names, made_with(manifest), settings, strict=True):
        if before != now:
            raise UsageError(
                f"the interrupted pack used {name} {before}, not {now}: resume it with the "
                "same options"
            )
    if list(identity.sources) != _field(resume, "sources", list, source):
        raise UsageError(
            "the interrupted pack had the sources "
            f"{' '.join(resume['sources'])}: resume it with the same ones"
        )
    relative = not all(os.path.isabs(path) for path in identity.sources)
    if relative and identity.cwd != _field(resume, "cwd", str, source):
        raise UsageError(f"the interrupted pack ran in {resume['cwd']}: resume it from there")
    state = _field(resume, "encoder_state", dict, source)
    if not all(isinstance(v, int | str) and not isinstance(v, bool) for v in state.values()):
        raise ManifestError(f"{source}: the checkpoint's encoder state is not valid")
    point = ResumePoint(
        block=_int(resume, "block", source),
        raw_offset=_int(resume, "raw_offset", source),
        stream_offset=_int(resume, "stream_offset", source),
        encoder_state=state,
        sources=SourceCheck(
            _int(resume, "members", source), _field(resume, "sources_digest", str, source)
        ),
    )
    done = sum(chunk.size for chunk in manifest.chunks)
    block_size = manifest.block_size or 0
    if (
        len(manifest.blocks) != point.block
        or point.stream_offset > done
        or point.raw_offset > point.block * block_size
    ):
        raise ManifestError(f"{source}: the checkpoint's block index does not fit its chunks")
    if point.block == 0 and point.stream_offset:
        raise ManifestError(f"{source}: the checkpoint's block 0 does not start the stream")
    if any(chunk.size != manifest.chunk_size for chunk in manifest.chunks):
        raise ManifestError(f"{source}: a checkpoint lists only whole chunks")
    overlap_start = remade_from(point) if remade_from is not None else point.stream_offset
    kept = keep(point) if keep is not None else (0, 0)
    stream_hash, overlap, kept_bytes = _rehash(manifest.chunks, read_chunk, overlap_start, kept)
    return Resumption(
        chunks=manifest.chunks,
        blocks=manifest.blocks,
        block_sha256=manifest.block_sha256,
        point=point,
        suffix_width=_int(resume, "suffix_width", source),
        stream_hash=stream_hash,
        overlap_sha256=overlap,
        created=manifest.created,
        kept=kept_bytes,
    )


def _rehash(
    chunks: Sequence[ChunkInfo],
    read_chunk: ChunkReader,
    overlap_start: int,
    keep: tuple[int, int],
) -> tuple[Any, str, bytes]:
    """Read back every final chunk: each must match its checksum, and together they give the
    whole stream's hash so far (hashlib state cannot be saved in a checkpoint), the hash of
    the bytes from ``overlap_start`` on, which the resumed pack makes again, and the bytes
    of the range ``keep``."""
    stream, overlap = hashlib.sha256(), hashlib.sha256()
    kept = bytearray()
    offset = 0
    for chunk in chunks:
        digest = hashlib.sha256()
        size = 0
        for piece in read_chunk(chunk):
            digest.update(piece)
            stream.update(piece)
            view = memoryview(piece)
            overlap.update(view[max(0, overlap_start - offset) :])
            kept += view[max(0, keep[0] - offset) : max(0, keep[1] - offset)]
            offset += len(piece)
            size += len(piece)
        if size != chunk.size or digest.hexdigest() != chunk.checksum:
            raise ChecksumMismatchError(
                chunk.name,
                f"{chunk.size} bytes with SHA-256 {chunk.checksum}",
                f"{size} bytes with SHA-256 {digest.hexdigest()} (pack again with --force)",
            )
    return stream, overlap.hexdigest(), bytes(kept)


def _field(resume: dict[str, Any], key: str, kind: type, source: str) -> Any:
    value = resume.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ManifestError(
            f"{source}: the checkpoint's {key!r} is missing or not a {kind.__name__}"
        )
    return value


def _int(resume: dict[str, Any], key: str, source: str) -> int:
    value = _field(resume, key, int, source)
    if value < 0:
        raise ManifestError(f"{source}: the checkpoint's {key!r} is negative")
    return int(value)
