"""pack: sources → tar stream cut into blocks → block compressors (pool, ordered) → chunker →
sink."""

from __future__ import annotations

import bisect
import datetime
import hashlib
import io
import os
import shlex
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from operator import itemgetter

from .. import __version__
from .._compiled import native
from ..codecs import codec_for
from ..codecs.base import Codec, EncodedBlock
from ..core.chunker import ChunkEnd, Chunker, ChunkPiece
from ..core.manifest import FileRef, Manifest
from ..core.member_index import ENTRIES_PER_PAGE, Page, PageBuilder, Row
from ..core.tar_writer import TarWriter, padding
from ..encryption import Recipient
from ..encryption.archive import ArchiveSealer, SealedIndex, Secret, sealing_start
from ..encryption.stream import CHUNK, sealed_size, unseal_prefix
from ..errors import ManifestError, OutputError, SourceChangedError, SourceError, UsageError
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
from ..storage.archive import ChunkSink
from ..storage.local import (
    INDEX_SUFFIX,
    MANIFEST_SUFFIX,
    LocalChunkSink,
    PrefixLock,
    archive_file_matcher,
    manifest_path,
    read_manifest_if_present,
    remove_stale_temps,
    split_prefix,
)
from ..storage.location import RemotePrefix, parse_prefix
from ..storage.remote import (
    RemoteChunkSink,
    RemoteLock,
    checkpoint_reader,
    read_remote_manifest,
)
from ..storage.store import PART_SIZE, open_store
from .checkpoint import (
    NO_SOURCES,
    Checkpoint,
    ChunkReader,
    PackIdentity,
    PackOptions,
    ResumePoint,
    Resumption,
    SourceCheck,
    checkpoint_manifest,
    load_resumption,
    local_chunk_reader,
    made_with,
)
from .pack_index import PackIndexer, whole_file_digests
from .pack_state import (
    AgeChunks,
    WrittenPastCheck,
    check_same_recipients,
    merged,
    public_checkpoint,
    read_state,
    remove_state,
    state_of,
    state_path,
    write_state,
    written_age_chunks,
)
from .parallel import ordered_map
from .threads import HashInThread, in_background

DEFAULT_CHUNK_SIZE = 50 * 2**20  # bytes
AUTO = 0  # PackSettings.chunk_size: choose from the input's size
AUTO_CHUNKS = 2000
AUTO_MIN_CHUNK, AUTO_MAX_CHUNK = 8 * 2**20, 64 * 2**20
MAX_STORE_CHUNK = 10_000 * PART_SIZE  # S3's most parts of one multipart upload
READ_SIZE = 1 << 20  # bytes per read of a source file
# Index rows live while their blocks are in flight; untracked by the cycle collector
# (_native.untracked) they cost no collections. Without it, they do.
_untracked: Callable[[Row], Row] = native.untracked if native is not None else lambda row: row
MAX_BLOCK_SIZE = 64 * 2**20  # keeps zstd windows under 128 MiB, so no reader needs --long
BLOCKS_IN_FLIGHT_PER_WORKER = 2
EVENTS_AHEAD = 4  # chunk pieces (slices of encoded blocks) framed ahead of the writer
# An encrypted pack's pieces, sealed and handed on one at a time: 4 age chunks. The writer
# holds EVENTS_AHEAD of them as copies (an unencrypted pack's are views of its blocks); with
# a block's worth sealed at once and pieces of 1 MiB, an m500 pack's peak RSS was ~6 MiB more.
SEALED_PIECE = 1 << 18
# Blocks in flight take 2 x workers x block size of memory, so the worker count is capped.
MAX_WORKERS = 64
# A checkpoint (manifest rewrite) waits until the stream has grown by this many times its
# estimated size, so tiny chunks or blocks cannot make checkpointing quadratic.
CHECKPOINT_RATIO = 8


@dataclass(frozen=True, slots=True)
class PackSettings:
    """Checked settings of one pack, with the codec's defaults filled in."""

    compression: CompressionType
    level: int
    chunk_size: int  # AUTO: chosen from the input's size once the sources are scanned
    block_size: int
    workers: int

    @classmethod
    def build(
        cls,
        compression: CompressionType | str = CompressionType.GZIP,
        level: int | None = None,
        chunk_size: int | str = DEFAULT_CHUNK_SIZE,
        block_size: int | None = None,
        workers: int | None = None,
    ) -> PackSettings:
        """``chunk_size`` may be ``"auto"``: from the input's size (auto_chunk_size)."""
        kind = CompressionType.parse(compression)
        codec = codec_for(kind)
        level = codec.default_level if level is None else level
        codec.new_encoder(level, 1)  # refuses a bad level before anything starts
        if chunk_size == "auto":
            chunk_size = AUTO
        elif not isinstance(chunk_size, int) or chunk_size < 1:
            raise UsageError(f"chunk size must be 'auto' or at least 1 byte, not {chunk_size!r}")
        block_size = codec.default_block_size if block_size is None else block_size
        if not 1 <= block_size <= MAX_BLOCK_SIZE:
            raise UsageError(f"block size must be 1 byte .. 64 MiB, not {block_size}")
        workers = workers if workers is not None else (os.cpu_count() or 1)
        if not 1 <= workers <= MAX_WORKERS:
            raise UsageError(f"workers must be 1..{MAX_WORKERS}, not {workers}")
        return cls(kind, level, chunk_size, block_size, workers)

    def sized_for(self, input_bound: int, earlier: Manifest | None = None) -> PackSettings:
        """An automatic chunk size made concrete: the interrupted pack's when resuming one
        (``earlier``), else auto_chunk_size of the input."""
        if self.chunk_size != AUTO:
            return self
        if earlier is not None and earlier.chunk_size is not None:
            return replace(self, chunk_size=earlier.chunk_size)
        return replace(self, chunk_size=auto_chunk_size(input_bound))


def auto_chunk_size(input_bound: int) -> int:
    """About 2,000 chunks (two LIST pages, a manifest of ~300 KB), a power of two between
    8 MiB (cheap per request, a legal S3 part) and 64 MiB (three in memory stay small)."""
    target = max(1, -(-input_bound // AUTO_CHUNKS))
    return min(AUTO_MAX_CHUNK, max(AUTO_MIN_CHUNK, 1 << (target - 1).bit_length()))


_FileDone = tuple[str, int]
"""A source whose bytes are all in the tar stream so far: its path and size. A plain tuple,
which the cycle collector stops tracking at its first pass: a tree's worth of objects in
flight cost a tree of small files collections."""


@dataclass(frozen=True, slots=True)
class PackResult:
    manifest: Manifest
    chunks: list[ChunkInfo]
    skipped: list[SkippedSource]
    resumed_chunks: int = 0  # chunks an interrupted run had written (all: it was complete)


@dataclass(frozen=True, slots=True)
class PackProgress:
    """``raw_bytes`` more of the tar stream are packed; ``files`` have been packed whole."""

    raw_bytes: int
    files: list[_FileDone]


@dataclass(frozen=True, slots=True)
class PackEnd:
    """The stream is complete and ``manifest`` describes it."""

    manifest: Manifest


PackEvent = ChunkPiece | ChunkEnd | Checkpoint | PackProgress | PackEnd


def restore_command(codec: Codec, prefix_name: str) -> str:
    """The shell line that restores the archive with GNU tar alone, run in its folder."""
    flag = f" {codec.tar_flag}" if codec.tar_flag else ""
    return f"cat {shlex.quote(prefix_name)}.part* | tar{flag} -xf -"


def encrypted_restore_command(codec: Codec, prefix_name: str, passphrase: bool) -> str:
    """The same with age in between; pipefail, because age gives out the chunks it has
    authenticated before it finds the stream cut short, and tar may then end with 0. A
    passphrase is asked for by age itself (it refuses -i for one)."""
    flag = f" {codec.tar_flag}" if codec.tar_flag else ""
    key = "" if passphrase else " -i key.txt"
    return f"set -o pipefail; cat {shlex.quote(prefix_name)}.part* | age -d{key} | tar{flag} -xf -"


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
    resume: Resumption | None = None,
    created: str = "",
    checkpoints: bool = True,
    index: PackIndexer | None = None,
    sealer: ArchiveSealer | None = None,
) -> Generator[PackEvent, None, None]:
    """The whole pack as events: chunk pieces, chunk ends each followed by a checkpoint,
    progress, and the manifest last.

    Drivers decide where chunks go (files, memory) and report progress from their own thread;
    closing the generator early stops the work, waiting only for the few blocks in flight.
    With ``resume``, the stream continues at its resume point: the bytes already in final
    chunks are made again (from that point's block on) and dropped, not emitted. Without
    ``checkpoints`` (nothing on disk to resume), none are made. With ``index``, the member
    index is written as the blocks pass (on resume, the members before its point first,
    their files read again for their content digests) and the manifest records it. With
    ``sealer``, the chunks hold the compressed stream age-encrypted, and the manifest keeps
    what would tell about its content sealed (the index is written through the sealer's
    ``index_output``; a resumed pack's sealer starts where ``resume`` does).
    """
    if settings.chunk_size == AUTO:
        raise UsageError("an automatic chunk size must be made concrete (sized_for) first")
    codec = codec_for(settings.compression)
    encoder = codec.new_encoder(settings.level, settings.block_size)
    max_stream = codec.max_encoded_size(summary.tar_size_bound, settings.block_size)
    if sealer is not None:  # age adds its header and 16 bytes a 64 KiB
        max_stream = sealer.header_length + sealed_size(max_stream)
    if resume is None:
        width = suffix_width(max_stream, settings.chunk_size)
        start = ResumePoint(0, 0, 0, encoder.state(), NO_SOURCES)
        stream_hash = HashInThread(hashlib.sha256())
        chunker = Chunker(settings.chunk_size, prefix_name, width, stream_hash=stream_hash)
    else:
        width, start = resume.suffix_width, resume.point
        if suffix_width(max_stream, settings.chunk_size) > width:
            raise SourceChangedError(
                "(sources)",
                "they grew so much since the interrupted pack that chunk names would need "
                "more digits; pack again with --force",
            )
        encoder.restore(start.encoder_state)
        stream_hash = HashInThread(resume.stream_hash)
        chunker = Chunker(
            settings.chunk_size,
            prefix_name,
            width,
            resume_at=(len(resume.chunks), resume.stream_done),
            stream_hash=stream_hash,
        )
    chunks: list[ChunkInfo] = list(resume.chunks) if resume else []
    blocks: list[tuple[int, int]] = list(resume.blocks) if resume else []
    # None: a resumed checkpoint that did not record them, so this archive will not either.
    block_digests: list[str] | None = list(resume.block_sha256) if resume else []
    if resume is not None and len(resume.block_sha256) != len(resume.blocks):
        block_digests = None
    # Bytes of the archive before ``to_drop`` are already in final chunks (resume only).
    position, to_drop = start.stream_offset, (resume.stream_done if resume else 0)
    # Where the bytes cut next start in the archive: encrypted, ``position`` is the place
    # in the compressed stream inside, which the sealer lags behind.
    cut_at = position if sealer is None else sealer.sealed_start
    point: ResumePoint | None = start  # None: no checkpoint in the bytes being cut
    # Encrypted, a block start in whose sealed bytes a chunk ends is a candidate: a
    # checkpoint takes the last one whose sealed bytes before it are in final chunks (a
    # resume reads its age chunk's head back).
    candidates: deque[ResumePoint] = deque()
    checkpointed = finished = to_drop  # bytes in final chunks: at the last checkpoint, now
    sealing_final = False

    def far_enough(end: int) -> bool:
        """The stream grew by CHECKPOINT_RATIO times a checkpoint's size since the last."""
        gap = CHECKPOINT_RATIO * (64 * (len(blocks) + len(chunks)) + 1024)
        return checkpoints and end - checkpointed >= gap

    # The bytes made again and dropped must be those on disk, or the chunks would not join.
    dropped = hashlib.sha256()

    def cut(data: bytes) -> Iterator[ChunkPiece | ChunkEnd | Checkpoint]:
        nonlocal position
        position += len(data)
        if sealer is None:
            yield from to_chunks(memoryview(data))
            return
        view = memoryview(data)  # sealed a piece at a time, not a block's worth at once
        for at in range(0, len(view), SEALED_PIECE):
            yield from sealed_to_chunks(sealer.feed(view[at : at + SEALED_PIECE]))

    def sealed_to_chunks(sealed: list[bytes]) -> Iterator[ChunkPiece | ChunkEnd | Checkpoint]:
        """Sealed 64 KiB chunks handed on SEALED_PIECE at a time: a piece per age chunk
        cost the handing on, a piece per block the memory of a block copied."""
        for start in range(0, len(sealed), SEALED_PIECE // CHUNK):
            yield from to_chunks(
                memoryview(b"".join(sealed[start : start + SEALED_PIECE // CHUNK]))
            )

    def to_chunks(view: memoryview) -> Iterator[ChunkPiece | ChunkEnd | Checkpoint]:
        nonlocal checkpointed, cut_at, finished
        if resume is not None and resume.written_past is not None:
            resume.written_past.check(cut_at, view)
        if cut_at < to_drop:  # made again: must be what is stored, then dropped
            drop = view[: to_drop - cut_at]
            dropped.update(drop)
            if cut_at + len(drop) == to_drop and resume is not None:
                _check_remade(dropped.hexdigest(), resume)
            view = view[len(drop) :]
            cut_at += len(drop)
        cut_at += len(view)
        for event in chunker.feed(view):
            yield event
            if isinstance(event, ChunkEnd):
                chunks.append(event.info)
                finished += event.info.size  # the chunker may have been fed further
                chosen = point if sealer is None else sealed_point(finished, sealing_final)
                if chosen is not None and far_enough(chunker.total_size):
                    checkpointed = chunker.total_size
                    digests = tuple(block_digests[: chosen.block] if block_digests else ())
                    yield Checkpoint(
                        tuple(chunks), tuple(blocks[: chosen.block]), digests, chosen, width
                    )

    def sealed_point(final: int, last_chunk: bool) -> ResumePoint | None:
        """The last candidate whose sealed bytes before it are all in the first ``final``
        bytes of the archive; the ones before it are dropped (a later one serves better).
        None once the final age chunk is out: its head, sealed with the final flag, cannot be
        read back as a middle chunk's, and it ends the archive anyway."""
        assert sealer is not None
        if last_chunk:
            return None
        chosen = None
        while candidates and sealer.sealed_position(candidates[0].stream_offset) <= final:
            chosen = candidates.popleft()
        if chosen is not None:
            candidates.appendleft(chosen)
        return chosen

    def sealed_boundary_in(start: int, end: int) -> bool:
        """A chunk boundary falls where compressed stream bytes ``start:end`` are sealed: a
        block start is a candidate only then (its encoder state grows with the blocks)."""
        assert sealer is not None
        low, high = sealer.sealed_position(start), sealer.sealed_position(end)
        return -(-low // settings.chunk_size) * settings.chunk_size < high

    def checkpoint_due(size: int) -> bool:
        """A chunk may end with a checkpoint in the next ``size`` bytes: save the state."""
        end = position + size
        return end // settings.chunk_size > position // settings.chunk_size and far_enough(end)

    try:
        if start.block == 0:
            yield from cut(encoder.header())
        raw_offset = start.raw_offset
        window = settings.workers * BLOCKS_IN_FLIGHT_PER_WORKER

        digest_files = index is not None and index.content_sha256

        def encode(block: _TarBlock) -> tuple[EncodedBlock, str, _TarBlock, _Digests]:
            """A block compressed, its bytes' SHA-256 and its whole files' digests, in the pool."""
            encoded = encoder.encode_block(block.data)
            files = (
                whole_file_digests(block.start, block.data, block.members) if digest_files else None
            )
            return encoded, hashlib.sha256(encoded.data).hexdigest(), block, files

        if index is not None and start.raw_offset:
            rows: list[Row] = []  # handed on a page at a time: memory stays bounded
            for row in _rows_before(sources, exclude, start.raw_offset, digest_files):
                rows.append(row)
                if len(rows) == ENTRIES_PER_PAGE:
                    index.add(rows)
                    rows = []
            index.add(rows)

        tar = _TarState(start.raw_offset, expect=start.sources if resume else None)
        # The tar stream (walking, reading files) is made in its own thread, ahead of us.
        tar_blocks = in_background(
            _tar_blocks(
                iter_entries(sources, skipped, exclude),
                settings.block_size,
                tar,
                index.builder if index is not None else None,
                rows=index is not None,
            ),
            depth=BLOCKS_IN_FLIGHT_PER_WORKER,
            name="stc-tar",
        )
        try:
            with ThreadPoolExecutor(settings.workers, thread_name_prefix="stc-pack") as pool:
                for encoded, digest, block, files in ordered_map(
                    encode, tar_blocks, pool=pool, window=window
                ):
                    # add_block returns encoded.data: its length tells whether a chunk ends in it.
                    point = None
                    if sealer is not None and checkpoints:
                        offset = position if blocks else 0  # as below
                        if sealed_boundary_in(offset, position + len(encoded.data)):
                            candidates.append(
                                ResumePoint(
                                    len(blocks), raw_offset, offset, encoder.state(), block.sources
                                )
                            )
                    elif checkpoint_due(len(encoded.data)):
                        # Block 0's bytes include the codec header, which a resume makes again.
                        offset = position if blocks else 0
                        point = ResumePoint(
                            len(blocks), raw_offset, offset, encoder.state(), block.sources
                        )
                    if block_digests is not None:
                        block_digests.append(digest)
                    blocks.append((raw_offset, position))
                    raw_offset += encoded.raw_size
                    if index is not None:
                        index.add_block(block.start, block.data, block.members, block.pages, files)
                    yield from cut(encoder.add_block(encoded))
                    yield PackProgress(encoded.raw_size, block.files)
        finally:
            tar_blocks.close()
        assert tar.end is not None, "the tar stream ended without its source check"
        point = ResumePoint(len(blocks), raw_offset, position, encoder.state(), tar.end)
        if sealer is not None and checkpoints:
            candidates.append(point)
        trailer_offset = position
        yield from cut(encoder.trailer())
        if sealer is not None:
            sealing_final = True
            yield from sealed_to_chunks(sealer.finish())
        for event in chunker.finish():
            assert isinstance(event, ChunkEnd)
            chunks.append(event.info)
            yield event
        manifest = Manifest(
            compression=settings.compression,
            level=settings.level,
            block_size=settings.block_size,
            chunk_size=settings.chunk_size,
            chunks=tuple(chunks),
            compressed_size=chunker.total_size,
            uncompressed_size=raw_offset,
            sha256=chunker.stream_sha256,
            blocks=tuple(blocks),
            block_sha256=tuple(block_digests or ()),
            trailer_offset=trailer_offset,
            index=index.finish() if index is not None else None,
            complete=True,
            restore_command=restore_command(codec, prefix_name),
            created=created or _now(),
            tool=f"streaming-tar-compressor {__version__}",
        )
        if sealer is not None:
            manifest = _sealed(manifest, sealer, position, codec, prefix_name)
        yield PackEnd(manifest)
    finally:
        stream_hash.close()  # its thread ends with the pack, done or stopped


def _sealed(
    manifest: Manifest, sealer: ArchiveSealer, size: int, codec: Codec, prefix_name: str
) -> Manifest:
    """The manifest of an encrypted pack: what is about the compressed stream inside goes
    into its sealed part; in public stay the chunks (whose sizes and digests are of the
    ciphertext), the codec and the settings."""
    assert manifest.uncompressed_size is not None and manifest.trailer_offset is not None
    index, stored_index = None, None
    if manifest.index is not None:
        stored = sealer.finish_index()
        index = SealedIndex(manifest.index, stored.file_key, stored.header_length)
        stored_index = FileRef(manifest.index.name, stored.size, stored.sha256)
    secret = Secret(
        compressed_size=size,
        uncompressed_size=manifest.uncompressed_size,
        trailer_offset=manifest.trailer_offset,
        blocks=manifest.blocks,
        block_sha256=manifest.block_sha256,
        index=index,
    )
    public = replace(
        manifest,
        uncompressed_size=None,
        trailer_offset=None,
        blocks=(),
        block_sha256=(),
        index=None,
        restore_command=encrypted_restore_command(codec, prefix_name, sealer.passphrase),
    )
    return sealer.seal(public, secret, stored_index)


def pack(
    sources: Sequence[str],
    output_prefix: str,
    settings: PackSettings,
    *,
    progress: Progress | None = None,
    force: bool = False,
    resume: bool = False,
    content_digests: bool = False,
    recipients: Sequence[Recipient] = (),
) -> PackResult:
    """Packs into chunk files beside the manifest; a missing source fails before any write.

    After each chunk the manifest is a checkpoint (``complete: false``); with ``resume`` a pack
    interrupted at any moment continues from its last one, to the same bytes. With
    ``recipients``, the archive is age-encrypted to them; its checkpoints keep their keys and
    structure in the private ``PREFIX.resume`` (pack_state), so that it resumes too.
    """
    if force and resume:
        raise UsageError("force replaces an archive and resume continues one: choose one")
    location = parse_prefix(output_prefix)
    if isinstance(location, RemotePrefix):
        if recipients and resume:
            raise UsageError(
                "an encrypted pack to a store cannot be resumed yet: pack again (drop --resume)"
            )
        return _pack_to_store(
            sources,
            location,
            settings,
            progress,
            force=force,
            resume=resume,
            content_digests=content_digests,
            recipients=recipients,
        )
    output_prefix = location
    directory = split_prefix(output_prefix)[0]
    exclude = archive_file_matcher(output_prefix)
    summary = scan(sources, exclude)
    identity = PackIdentity.of(sources)
    with PrefixLock(output_prefix):
        existing = read_manifest_if_present(output_prefix)
        settings = settings.sized_for(summary.tar_size_bound, existing if resume else None)
        if resume and existing is not None and existing.complete:
            remove_stale_temps(directory, split_prefix(output_prefix)[1])
            remove_state(output_prefix)  # a pack that died just after its manifest
            return _already_complete(existing, settings, output_prefix, directory)
        sealer: ArchiveSealer | None = None
        resumption: Resumption | None
        if resume and existing is not None and existing.encryption is not None:
            resumption, sealer = _sealed_resumption(
                existing, identity, settings, output_prefix, recipients
            )
        else:
            if resume and existing is not None and recipients:
                raise UsageError(
                    "the interrupted pack is not encrypted: resume it without -r/-R/--passphrase"
                )
            resumption = _resumption(
                existing,
                identity,
                settings,
                local_chunk_reader(directory),
                output_prefix,
                manifest_path(output_prefix),
                resume=resume,
                force=force,
            )
            sealer = ArchiveSealer(recipients) if recipients else None
        sink = LocalChunkSink(output_prefix, force=force, resume=resume)
        if sealer is not None:
            sink.keep_partial_chunk()  # a failure or Ctrl-C leaves what it sealed for --resume
        written = resumption.written_past if resumption is not None else None
        state = (
            _StateKeeper(
                output_prefix,
                recipients,
                written.written if isinstance(written, WrittenPastCheck) else {},
            )
            if sink.writes_checkpoints
            else None
        )
        result = _pack_to(
            sink,
            sources,
            settings,
            summary,
            identity,
            exclude,
            progress,
            resumption,
            content_digests=content_digests,
            sealer=sealer,
            state=state,
        )
        remove_state(output_prefix)  # the keys of an incomplete pack, if one was here
        return result


def _sealed_resumption(
    existing: Manifest,
    identity: PackIdentity,
    settings: PackSettings,
    prefix: str,
    recipients: Sequence[Recipient],
) -> tuple[Resumption, ArchiveSealer]:
    """An interrupted encrypted pack, continued from its private state: the checkpoint is
    checked as an unencrypted one is, and the sealer takes up its keys at the age chunk that
    holds the resume point, that chunk's head read back from the stored ciphertext."""
    state = read_state(prefix)
    check_same_recipients(state, recipients)
    keys, header_length = state.keys, len(state.keys.header)
    common = min(len(state.checkpoint.chunks), len(existing.chunks))  # a kill between the two
    if state.checkpoint.chunks[:common] != existing.chunks[:common]:
        raise ManifestError(
            f"{state_path(prefix)} belongs to another pack (pack again with --force)"
        )

    def remade_from(point: ResumePoint) -> int:
        return sealing_start(header_length, point.stream_offset)

    def head_of_its_age_chunk(point: ResumePoint) -> tuple[int, int]:
        start = remade_from(point)
        return start, start + point.stream_offset % CHUNK if point.stream_offset else 0

    resumption = load_resumption(
        state.checkpoint,
        identity,
        _stated(settings),
        local_chunk_reader(split_prefix(prefix)[0]),
        state_path(prefix),
        remade_from=remade_from,
        keep=head_of_its_age_chunk,
    )
    offset = resumption.point.stream_offset
    if len(resumption.kept) != offset % CHUNK:
        raise ManifestError(f"{state_path(prefix)}: its resume point is past its chunks")
    primer = unseal_prefix(keys.file_key, keys.nonce, offset // CHUNK, resumption.kept)
    # What this and earlier runs wrote past the checkpoint, recorded before the sink removes
    # the chunk in progress: kept until the pack completes, whatever happens to the files.
    directory, name = split_prefix(prefix)
    on_disk = written_age_chunks(
        directory,
        name,
        resumption.suffix_width,
        settings.chunk_size,
        header_length,
        resumption.stream_done,
    )
    state = replace(state, written=merged(state.written, on_disk))
    write_state(prefix, state)
    resumption.written_past = WrittenPastCheck(state.written, header_length)
    return resumption, ArchiveSealer(recipients, keys, offset=offset, primer=primer)


class _StateKeeper:
    """Writes an encrypted pack's checkpoints: whole into its private state, then the public
    manifest without what the state holds."""

    def __init__(self, prefix: str, recipients: Sequence[Recipient], written: AgeChunks) -> None:
        self._prefix, self._recipients, self._written = prefix, recipients, written
        self._name = split_prefix(prefix)[1]

    def public(self, checkpoint: Manifest, sealer: ArchiveSealer) -> Manifest:
        state = state_of(sealer, self._recipients, checkpoint, self._written)
        write_state(self._prefix, state)
        return public_checkpoint(state, sealer, self._name)


def _resumption(
    existing: Manifest | None,
    identity: PackIdentity,
    settings: PackSettings,
    read_chunk: ChunkReader,
    prefix: str,
    source: str,
    *,
    resume: bool,
    force: bool,
) -> Resumption | None:
    """Where a resumed pack continues (None: from the start); an interrupted pack found
    without ``resume`` or ``force`` is refused, so it is never silently replaced."""
    if resume and existing is not None:
        return load_resumption(existing, identity, _stated(settings), read_chunk, source)
    if existing is not None and not existing.complete and not force:
        raise OutputError(
            f"{prefix} holds an interrupted pack: continue it with --resume "
            "(resume=True), or replace it with --force"
        )
    return None


def _stated(settings: PackSettings) -> PackOptions:
    return (settings.compression.value, settings.level, settings.block_size, settings.chunk_size)


def _pack_to_store(
    sources: Sequence[str],
    prefix: RemotePrefix,
    settings: PackSettings,
    progress: Progress | None,
    *,
    force: bool,
    resume: bool,
    content_digests: bool,
    recipients: Sequence[Recipient],
) -> PackResult:
    """Chunks upload while the pack runs; the manifest is written last, conditionally."""
    if prefix.read_only:
        raise UsageError(f"{prefix.scheme}:// is read-only: pack to s3://, gs://, az://, …")
    if settings.chunk_size > MAX_STORE_CHUNK:
        raise UsageError(
            "a chunk goes to a store as one object of at most 10,000 parts of 8 MiB: "
            f"choose --chunk-size 78G or less, not {settings.chunk_size}"
        )
    summary = scan(sources, exclude_nothing)
    identity = PackIdentity.of(sources)
    store = open_store(prefix)
    with RemoteLock(store, prefix) as lock:
        existing = read_remote_manifest(prefix, store)
        settings = settings.sized_for(summary.tar_size_bound, existing if resume else None)
        if resume and existing is not None and existing.complete:
            return _already_complete(existing, settings, prefix.url, prefix.folder)
        resumption = _resumption(
            existing,
            identity,
            settings,
            checkpoint_reader(prefix, store),
            prefix.url,
            prefix.key(prefix.name + MANIFEST_SUFFIX),
            resume=resume,
            force=force,
        )
        resumed = len(resumption.chunks) if resumption is not None else None
        sink = RemoteChunkSink(
            prefix,
            store,
            # Resuming a pack that died before its first checkpoint: its parts are ours.
            force=force or (resume and existing is None),
            lock=lock,
            chunk_size=settings.chunk_size,
            resumed_chunks=resumed,
        )
        return _pack_to(
            sink,
            sources,
            settings,
            summary,
            identity,
            exclude_nothing,
            progress,
            resumption,
            content_digests=content_digests,
            sealer=ArchiveSealer(recipients) if recipients else None,
        )


def _already_complete(
    manifest: Manifest, settings: PackSettings, prefix: str, directory: str
) -> PackResult:
    """``--resume`` on a finished archive: nothing to do, if it is the same job's archive."""
    if made_with(manifest) != _stated(settings):
        raise UsageError(
            f"{prefix} already holds a complete archive made with other options; "
            "replace it with --force"
        )
    chunks = [replace(c, path=os.path.join(directory, c.name)) for c in manifest.chunks]
    return PackResult(manifest, chunks, [], resumed_chunks=len(chunks))


def _pack_to(
    sink: ChunkSink,
    sources: Sequence[str],
    settings: PackSettings,
    summary: SourceSummary,
    identity: PackIdentity,
    exclude: Exclude,
    progress: Progress | None,
    resumption: Resumption | None,
    *,
    content_digests: bool,
    sealer: ArchiveSealer | None,
    state: _StateKeeper | None = None,
) -> PackResult:
    """Runs the pack into ``sink``. Encrypted (``sealer``), it makes checkpoints only when
    ``state`` keeps them (a local pack's private state)."""
    progress = progress or NullProgress()
    skipped: list[SkippedSource] = []
    chunks = [
        replace(c, path=os.path.join(sink.directory, c.name))
        for c in (resumption.chunks if resumption else ())
    ]
    # Only what a checkpoint needs besides its chunks and resume point.
    base = Manifest(
        compression=settings.compression,
        level=settings.level,
        block_size=settings.block_size,
        chunk_size=settings.chunk_size,
        chunks=(),
        created=resumption.created if resumption else _now(),
        tool=f"streaming-tar-compressor {__version__}",
    )
    index_out = sink.open_index()
    index = PackIndexer(
        sealer.index_output(index_out) if sealer is not None else index_out,
        sink.name + INDEX_SUFFIX,
        content_sha256=content_digests,
    )
    # Framing, cutting, hashing and indexing run in their own thread; this one writes chunks.
    events = in_background(
        pack_events(
            sources,
            settings,
            sink.name,
            summary,
            skipped=skipped,
            exclude=exclude,
            resume=resumption,
            created=base.created,
            checkpoints=sealer is None or state is not None,
            index=index,
            sealer=sealer,
        ),
        depth=EVENTS_AHEAD,
        name="stc-frame",
    )
    try:  # from here on a failure removes what the sink holds (the index's temp file too)
        progress.start(summary.tar_size_bound)
        if resumption is not None:
            progress.advance(resumption.point.raw_offset)
        for event in events:
            if isinstance(event, ChunkPiece):
                sink.write(event.index, event.data, event.name)
            elif isinstance(event, ChunkEnd):
                chunks.append(sink.finish_chunk(event.info))
            elif isinstance(event, Checkpoint):
                checkpoint = checkpoint_manifest(
                    base, event, identity, content_digests=content_digests
                )
                if sealer is not None:
                    assert state is not None, "no checkpoints without a state to keep them"
                    checkpoint = state.public(checkpoint, sealer)
                sink.write_checkpoint(checkpoint)
            elif isinstance(event, PackProgress):
                report(progress, event)
            else:
                sink.write_manifest(event.manifest)
                resumed = len(resumption.chunks) if resumption else 0
                return PackResult(event.manifest, chunks, skipped, resumed_chunks=resumed)
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
    for path, size in event.files:
        progress.file(path, size)


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
        recipients: Sequence[Recipient] = (),
    ) -> None:
        self._outcome = _Outcome()
        self._chunks = _memory_chunks(
            list(sources),
            settings,
            prefix_name,
            progress or NullProgress(),
            self._outcome,
            recipients,
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
    recipients: Sequence[Recipient],
) -> Generator[tuple[int, bytes], None, None]:
    summary = scan(sources)
    settings = settings.sized_for(summary.tar_size_bound)
    events = pack_events(
        sources,
        settings,
        prefix_name,
        summary,
        skipped=outcome.skipped,
        checkpoints=False,
        sealer=ArchiveSealer(recipients) if recipients else None,
    )
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
            elif isinstance(event, PackEnd):
                outcome.manifest = event.manifest
    finally:
        progress.finish()
        events.close()


@dataclass(frozen=True, slots=True)
class _TarBlock:
    """A block of the tar stream at offset ``start``, the sources whose last byte is in it,
    for the index the rows of the members whose first header byte is in it (without a page
    builder) or the pages its builder sealed since the last block, and the check of the
    members that start before its end (a checkpoint's source check)."""

    start: int
    data: bytes
    files: list[_FileDone]
    members: list[Row]
    pages: list[Page]
    sources: SourceCheck


_Digests = list[bytes | None] | None  # whole_file_digests of a block, when files are hashed
_header_offset = itemgetter(1)


@dataclass(slots=True)
class _TarState:
    """Shared with the tar thread: where the stream starts and, once it ended, ``end`` (the
    check of every member). With ``expect``, the members before the start must match it."""

    start: int
    expect: SourceCheck | None = None
    end: SourceCheck | None = None


class _SourceDigest:
    """Folds each member's fingerprint (its header and stamp), in stream order, into the check
    of the members seen so far."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._members = 0

    def add(self, header: bytes, stamp: bytes) -> None:
        self._hash.update(b"%d\0" % (len(header) + len(stamp)))
        self._hash.update(header)
        self._hash.update(stamp)
        self._members += 1

    def current(self) -> SourceCheck:
        return SourceCheck(self._members, self._hash.hexdigest())


def _tar_blocks(
    entries: Iterator[SourceEntry],
    block_size: int,
    state: _TarState,
    builder: PageBuilder | None = None,
    rows: bool = True,
) -> Iterator[_TarBlock]:
    """The pax tar stream of the entries from offset ``state.start`` on (bytes before it are
    left out and their files not opened), cut into blocks of ``block_size``.

    One loop appends each member's header, data and padding to one buffer and cuts blocks
    when it holds one: per member, no generator hop or object besides the progress record
    (a tree of small files spends its pack in this loop). Members with at most READ_SIZE
    bytes of data are appended in batches that end where a block fills, larger files in
    READ_SIZE pieces, so the buffer stays under a block and a batch or a read. Each member
    goes to the index's page ``builder`` as its header is written (in the same C call when
    compiled), or without one as a row, unless no ``rows`` are wanted (no index).
    """
    start = state.start
    writer = TarWriter()
    digest = _SourceDigest()
    buffer = bytearray()
    buffer_offset = start  # where the buffer's first byte is in the stream
    finished: list[_FileDone] = []
    finished_ends: list[int] = []  # where each of them ends in the stream
    members: list[Row] = []  # not yet in a block
    first = True

    def cut(whole_only: bool = True) -> Iterator[_TarBlock]:
        nonlocal first, finished, finished_ends, members, buffer_offset
        count = len(buffer) // block_size if whole_only else 1
        with memoryview(buffer) as view:
            pieces = [bytes(view[i * block_size : (i + 1) * block_size]) for i in range(count)]
        del buffer[: count * block_size]
        for data in pieces:
            block_start = buffer_offset
            buffer_offset += len(data)
            # Every member whose header starts before this block's end is in the digest now
            # (blocks are cut only after a member's header is added): all the block depends on.
            sources = digest.current()
            if first:
                _check_sources(state.expect, sources)
                first = False
            ended = bisect.bisect_right(finished_ends, buffer_offset)
            inside = bisect.bisect_left(members, buffer_offset, key=_header_offset)
            pages = builder.take() if builder is not None else []
            yield _TarBlock(block_start, data, finished[:ended], members[:inside], pages, sources)
            finished, finished_ends = finished[ended:], finished_ends[ended:]
            members = members[inside:]

    # Members whose header and data (files of at most READ_SIZE bytes) wait to be appended,
    # in order, by one _append_members call; ``waiting`` bytes in all.
    batch: list[_Appended] = []
    waiting = 0

    def append_batch() -> None:
        nonlocal waiting
        _append_batch(buffer, tuple(batch))
        batch.clear()
        waiting = 0

    entries = _reads_first(entries, batch, append_batch)
    for entry in entries:
        member = entry.member
        offset = writer.offset
        # The index of a resumed pack has the members before its start already.
        header = writer.header(member, builder if offset >= start else None)
        digest.add(header, entry.stamp)
        if writer.offset <= start:
            continue  # wholly before the resume point
        drop = start - offset  # > 0 only for the member the resume point falls in
        if drop <= 0 and builder is None and rows:
            members.append(_untracked((member, offset, offset + len(header), b"")))
        # Reported with the block its last byte goes to, which may be cut while it is read.
        finished.append((entry.path, member.size))
        finished_ends.append(writer.offset)
        is_file = member.kind is MemberKind.FILE
        size = member.size if is_file else 0
        if drop <= 0 and size <= READ_SIZE:
            batch.append((header, entry.path if is_file else None, size))
            waiting += writer.offset - offset
            # Every member of a batch starts before the block it completes ends: the source
            # check of a block stays that of the members whose header starts in or before it.
            if len(buffer) + waiting >= block_size or len(batch) == BATCH_MEMBERS:
                append_batch()
                if len(buffer) >= block_size:
                    yield from cut()
            continue
        if batch:
            append_batch()
        buffer += header if drop <= 0 else header[drop:]
        if is_file:
            skip = min(size, max(0, drop - len(header)))
            for data in _file_data(entry.path, size, skip):
                buffer += data
                if len(buffer) >= block_size:
                    yield from cut()
            buffer += padding(size)[max(0, drop - len(header) - size) :]
        if len(buffer) >= block_size:
            yield from cut()
    if batch:
        append_batch()
    offset = writer.offset
    buffer += writer.finish()[max(0, start - offset) :]
    yield from cut()
    if buffer:
        yield from cut(whole_only=False)
    state.end = digest.current()
    if first:  # nothing after the start: the trailer is next
        _check_sources(state.expect, state.end)
    assert not finished, "the end-of-archive bytes always follow the last file"


def _reads_first(
    entries: Iterator[SourceEntry], batch: list[_Appended], append_batch: Callable[[], None]
) -> Iterator[SourceEntry]:
    """``entries``, but a walk error waits for the files of the batch before it to be read:
    a file that cannot be read before the entry that cannot be walked is the one named."""
    try:
        yield from entries
    except SourceError:
        if batch:
            append_batch()
        raise


def _rows_before(
    sources: Sequence[str], exclude: Exclude, start: int, content_sha256: bool
) -> Iterator[Row]:
    """The index rows of the members whose first header starts before ``start`` (a resumed
    pack's point), their files read again for their digests."""
    writer = TarWriter()
    for entry in iter_entries(sources, [], exclude):
        member, offset = entry.member, writer.offset
        if offset >= start:
            return
        header = writer.header(member)
        yield member, offset, offset + len(header), _file_sha256(entry, content_sha256)


def _file_sha256(entry: SourceEntry, wanted: bool) -> bytes:
    if not wanted or entry.member.kind is not MemberKind.FILE:
        return b""
    digest = hashlib.sha256()
    for data in _file_data(entry.path, entry.member.size):
        digest.update(data)
    return digest.digest()


def _check_remade(digest: str, resume: Resumption) -> None:
    if digest != resume.overlap_sha256:
        raise SourceChangedError(
            "(sources)",
            f"block {resume.point.block}, made again, differs from the bytes the interrupted "
            "pack wrote (a source in it changed, or a codec library was upgraded); pack again "
            "with --force",
        )


def _check_sources(expected: SourceCheck | None, found: SourceCheck) -> None:
    if expected is not None and found != expected:
        what = (
            f"{found.members} members now, {expected.members} then"
            if found.members != expected.members
            else "a name, size, mode, owner, time or inode differs"
        )
        raise SourceChangedError(
            "(sources)",
            f"they changed since the interrupted pack: up to its resume point {what}, so the "
            "archive cannot continue; pack again with --force",
        )


_Appended = tuple[bytes, str | None, int]
"""A member for ``_append_members``: its header, and the path and size of its data (a file's
path, or None and 0)."""


def append_members_python(buffer: bytearray, items: tuple[_Appended, ...]) -> tuple[int, int]:
    """The Python twin of ``_native.append_members``: each member's header, its file's first
    ``size`` bytes and their padding appended to ``buffer``. Returns (count, got): count of
    members appended whole; short of len(items), the file of item ``count`` ended after
    ``got`` bytes. OSError as open() raises it."""
    for count, (header, path, size) in enumerate(items):
        buffer += header
        if path is None:
            continue
        got = 0
        try:
            with open(path, "rb", buffering=0) as handle:
                while got < size and (data := handle.read(size - got)):
                    buffer += data
                    got += len(data)
        except OSError as exc:
            del buffer[len(buffer) - got - len(header) :]  # the members before it, as in C
            exc.filename = path  # a failed read names no file
            raise
        if got < size:
            del buffer[len(buffer) - got - len(header) :]
            return count, got
        buffer += padding(size)
    return len(items), 0


# Small files are opened, read and closed in batches by one C call without the GIL
# (_native.append_members) when the compiled module is there: a call per file cost a pack's
# tar thread ~1/5 of its time waiting to take the GIL back on a busy machine, and Python's
# open/read/close ~1/5 before that.
_append_members: Callable[[bytearray, tuple[_Appended, ...]], tuple[int, int]] = (
    native.append_members if native is not None else append_members_python
)
BATCH_MEMBERS = 256  # members per _append_members call at most


def _append_batch(buffer: bytearray, batch: tuple[_Appended, ...]) -> None:
    """``batch`` appended to ``buffer``, a file's errors worded as ``_file_data`` (its
    piecewise twin for large files) words them."""
    try:
        count, got = _append_members(buffer, batch)
    except OSError as exc:
        raise SourceError(str(exc.filename), exc.strerror or str(exc)) from exc
    if count < len(batch):
        _, path, size = batch[count]
        raise SourceChangedError(str(path), f"it shrank while being packed ({got} of {size} bytes)")


def _file_data(path: str, size: int, skip: int = 0) -> Iterator[bytes]:
    """The file's bytes after the first ``skip``, in READ_SIZE pieces; a file that shrank is
    an error."""
    try:
        handle = open(path, "rb", buffering=0)  # noqa: SIM115
        if skip:
            handle.seek(skip)
    except OSError as exc:
        raise SourceError(path, exc.strerror or str(exc)) from exc
    with handle:
        remaining = size - skip
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
