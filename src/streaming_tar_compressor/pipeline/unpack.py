"""unpack: chunk source → verifier (SHA-256) → decoder → tar reader → safety → file writer.

With a manifest, files finished from a chunk stay under temporary names until that chunk's
SHA-256 has matched; a mismatch removes them, so no unverified byte ever sits in a file that
looks complete. ``StreamUnpacker`` is the whole chain as one push object, whatever brings the
bytes: chunk files (``unpack``), a pipe (``unpack_stream``) or the asyncio API.

``unpack`` also journals, after each verified chunk, where the first member not yet in place
starts (fs/journal.py), so ``resume`` can skip what an interrupted run restored and start
decoding at the block that holds the first missing member, reading nothing before it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..core.manifest import Manifest
from ..core.reorder import ChunkReorderer
from ..core.tar_reader import MemberData, MemberEnd, MemberStart, TarEvent, WholeMember
from ..core.verifier import ChunkVerified, StreamVerifier, VerifierEvent
from ..encryption import Identity
from ..encryption.archive import (
    ArchiveDecryptor,
    OpenedArchive,
    key_needed,
    open_archive,
    refuse_plain_with_keys,
)
from ..encryption.stream import NONCE_SIZE
from ..errors import (
    ChecksumMismatchError,
    CompressionMismatchError,
    CorruptStreamError,
    DecryptionError,
    StcError,
    UnsafeMemberError,
    UsageError,
)
from ..fs.journal import ResumeState, UnpackJournal
from ..fs.writer import TreeWriter
from ..models import CompressionType, MemberKind, TarMember
from ..progress import NullProgress, Progress
from ..storage.archive import ChunkSource, open_source
from ..storage.follow import FollowingSource
from ..storage.location import RemotePrefix, parse_prefix
from .decode import (
    ParallelBlockDecoder,
    StartPoint,
    TarStreamDecoder,
    block_holding,
    start_point,
)
from .threads import in_background

# Chunks that may wait for a missing one when they arrive out of order: memory is at most this
# many chunks, so the default stays small.
DEFAULT_REORDER_WINDOW = 4
READ_AHEAD_PIECES = 4  # 1 MiB pieces read and hashed ahead of decoding
FOLLOW_PIECE = 1 << 20  # a followed chunk (checked whole) goes on in pieces of this size
# What damaged bytes make decoding raise, possibly before their chunk's SHA-256 is known.
_DATA_ERRORS = (CorruptStreamError, UnsafeMemberError, CompressionMismatchError, DecryptionError)


@dataclass(frozen=True, slots=True)
class UnpackResult:
    """``members`` this run restored. ``resumed``: it skipped the ``skipped_members`` an
    interrupted run had restored and began decoding in mid-stream, so the whole-stream checks
    (stream SHA-256, gzip CRC-32, xz index, zstd seek table) were skipped; every chunk it read
    still matched its SHA-256."""

    members: int
    compressed_bytes: int
    verified: bool
    compression: CompressionType | None
    resumed: bool = False
    skipped_members: int = 0


class _Extractor:
    """Routes tar events to the writer and reports each finished member; with a journal, says
    after each commit where the first member not yet in place starts."""

    def __init__(
        self,
        writer: TreeWriter,
        progress: Progress,
        journal: UnpackJournal | None = None,
        resume: ResumeState | None = None,
        select: Callable[[str], bool] | None = None,
    ) -> None:
        self._writer = writer
        self._select = select  # None: every member
        self._skipping = False  # the member being read is not selected
        self._progress = progress
        # Nothing to tell NullProgress: no path joined per member (~1 µs of ~30 on small files).
        self._reports_files = type(progress) is not NullProgress
        self._journal = journal
        # Member offsets count from where decoding began; the journal's from the stream start.
        self._base = resume.position if resume is not None else 0
        self._skipped = resume.members if resume is not None else 0
        self._open: TarMember | None = None  # started, not yet ended
        self._directories: list[TarMember] = []  # ended since the last record
        self._due = False  # a commit with no member open: record when the next one starts

    def __call__(self, event: TarEvent) -> None:
        if self._select is not None:
            if isinstance(event, (WholeMember, MemberStart)):
                self._skipping = not self._select(event.member.name)
            if self._skipping:
                return
        if isinstance(event, WholeMember):
            self._starting(event.member)
            self._writer.whole(event.member, event.data)
            self._ended(event.member)
        elif isinstance(event, MemberData):
            self._writer.write(event.data)
        elif isinstance(event, MemberStart):
            self._starting(event.member)
            self._open = event.member
            self._writer.start(event.member)
        elif isinstance(event, MemberEnd):
            self._writer.end(event.member)
            self._open = None
            self._ended(event.member)

    def _starting(self, member: TarMember) -> None:
        if self._due:
            self._record(member)

    def _ended(self, member: TarMember) -> None:
        if member.kind is MemberKind.DIRECTORY and self._journal is not None:
            self._directories.append(member)
        if self._reports_files:
            size = member.size if member.kind is MemberKind.FILE else 0
            self._progress.file(os.path.join(self._writer.output_dir, member.name), size)

    def committed(self) -> None:
        """Every ended member now has its real name: journal that the open member (or, when
        none is open, the next to start) is the first one not in place."""
        if self._journal is None:
            return
        if self._open is not None:
            self._record(self._open)
        else:
            self._due = True

    def _record(self, first: TarMember) -> None:
        assert self._journal is not None
        self._due = False
        # Between members, every member the writer counted has ended and is in place.
        members = self._skipped + self._writer.members_written
        self._journal.record(self._base + first.offset, members, self._directories)
        self._directories = []


class StreamUnpacker:
    """Compressed bytes in, safe files out; verified against the manifest when one is given.

    ``push`` takes pieces of the stream in order (any sizes) or whole chunks as
    ``(index, bytes)`` in any order within ``reorder_window``; call ``finish`` at the end, or
    ``abort`` after a failure to remove what was not verified. Checking (``verify``) and
    writing (``consume``) are separate steps so a driver may run them on two threads.
    ``checked_ahead``: the driver's source checked every byte against the manifest before
    handing it over (block by block), so whole files take their names as they are made.
    ``opened``: the archive is encrypted; its chunks are decrypted as they are checked, and
    every byte decoded has been authenticated first (age's AEAD, under a file key the
    manifest's MAC binds), so it is checked input too: chunks are sized but not hashed again.
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
        same_permissions: bool = False,
        location: str = "",
        max_output_bytes: int | None = None,
        max_members: int | None = None,
        journal: UnpackJournal | None = None,
        resume: ResumeState | None = None,
        select: Callable[[str], bool] | None = None,
        checked_ahead: bool = False,
        opened: OpenedArchive | None = None,
        identities: Sequence[Identity] = (),
    ) -> None:
        encrypted = manifest is not None and manifest.encryption is not None
        refuse_plain_with_keys(manifest, identities)
        if encrypted and opened is None and not identities:
            raise key_needed()
        self._progress = progress or NullProgress()
        self._manifest = manifest
        self._journal = journal
        self._resume = resume
        chunks = manifest.chunks if manifest is not None else ()
        self._start: StartPoint | None = None
        resumed_decryptor: ArchiveDecryptor | None = None
        if resume is not None:
            if manifest is None or not verify_checksum:
                raise UsageError("resuming needs the manifest and its chunk checks")
            if encrypted and opened is None:
                raise UsageError("resuming an encrypted archive needs it opened (opened=)")
            if opened is not None:
                self._start, resumed_decryptor = _encrypted_start(opened, manifest, resume)
            else:
                self._start = start_point(manifest, resume.position)
            chunks = chunks[self._start.chunk :]
        self.first_chunk = self._start.chunk if self._start is not None else 0
        checked_ahead = checked_ahead or encrypted
        self._verifier = (
            StreamVerifier(
                chunks,
                None if self._start else manifest.sha256,
                location,
                hashed=not checked_ahead,
            )
            if verify_checksum and manifest is not None
            else None
        )
        self._stated = compression or (manifest.compression if manifest is not None else None)
        self._workers = workers or os.cpu_count() or 1
        # Encrypted, the chunks are decrypted first; the decoder reads the stream inside. Given
        # identities, the archive opens once its age header has arrived (``_opening``).
        self._decryptor: ArchiveDecryptor | None = None
        self._identities = identities
        self._held: list[VerifierEvent] = []  # what came before the header was whole
        self._head = bytearray()  # the bytes of those
        self._decoder: TarStreamDecoder | ParallelBlockDecoder | None = None
        if opened is not None:
            self._open(opened, resumed_decryptor)
        elif not encrypted:
            self._decoder = self._new_decoder(manifest)
        self._writer = TreeWriter(
            output_dir,
            deferred=self._verifier is not None,
            same_owner=same_owner,
            same_permissions=same_permissions,
            max_output_bytes=max_output_bytes,
            max_members=max_members,
            resumed=resume is not None,
            members_before=resume.members if resume is not None else 0,
            checked_input=checked_ahead,
        )
        if journal is not None:
            journal.begin()
        for directory in resume.directories if resume is not None else ():
            self._writer.restore_directory(directory)
        self._extract = _Extractor(self._writer, self._progress, journal, resume, select)
        self._reorder_window = reorder_window
        self._location = location
        self._reorderer: ChunkReorderer | None = None
        self._in_order = False
        self._total = 0
        # Chunks before this index are proven good (by this run, or before its resume point).
        self.verified_chunks = self.first_chunk
        self._progress.start(sum(c.size for c in chunks) if manifest is not None else None)

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
        """Check the bytes, and decrypt them (thread-safe against ``consume``: it touches
        only the verifier and the decryptor, and makes the decoder before consume sees a
        byte)."""
        events: list[VerifierEvent] = (
            [memoryview(data)] if self._verifier is None else self._verifier.feed(data)
        )
        if self._decoder is None:
            events = self._opening(events)
        if self._decryptor is None:
            return events
        return [self._decrypted(event) for event in events]

    def verify_end(self) -> list[VerifierEvent]:
        """Every chunk must have come; the whole stream must match its SHA-256."""
        if self._reorderer is not None:
            self._reorderer.finish()
        events = self._verifier.finish() if self._verifier is not None else []
        if self._decoder is None:
            events = self._opening(events)
            if self._decoder is None:
                raise DecryptionError("header", "the archive ends inside its age header")
        if self._decryptor is not None:
            tail = memoryview(self._decryptor.finish())
            events = [*(self._decrypted(event) for event in events), tail]
        return events

    def _opening(self, events: list[VerifierEvent]) -> list[VerifierEvent]:
        """Held until the age header is whole; then the archive opens, and all of it goes on."""
        assert self._manifest is not None and self._manifest.encryption is not None
        for event in events:
            if isinstance(event, ChunkVerified):
                self._held.append(event)
            else:
                self._held.append(memoryview(bytes(event)))  # its buffer may be reused
                self._head += event
        if len(self._head) < self._manifest.encryption.header_length:
            return []
        self._open(open_archive(self._manifest, bytes(self._head), self._identities))
        held, self._held, self._head = self._held, [], bytearray()
        return held

    def _open(self, opened: OpenedArchive, decryptor: ArchiveDecryptor | None = None) -> None:
        assert self._manifest is not None
        self._decryptor = decryptor or opened.decryptor()
        self._decoder = self._new_decoder(opened.inner(self._manifest))

    def _new_decoder(self, manifest: Manifest | None) -> TarStreamDecoder | ParallelBlockDecoder:
        stated, workers = self._stated, self._workers
        if manifest is not None and self._start is not None:
            return ParallelBlockDecoder(manifest, stated, workers, self._start, whole_members=True)
        if manifest is not None and workers > 1 and ParallelBlockDecoder.usable(manifest):
            return ParallelBlockDecoder(manifest, stated, workers, whole_members=True)
        return TarStreamDecoder(stated, whole_members=True)

    def _decrypted(self, event: VerifierEvent) -> VerifierEvent:
        assert self._decryptor is not None
        if isinstance(event, ChunkVerified):
            return event
        return memoryview(self._decryptor.feed(event))

    def consume(self, event: VerifierEvent) -> None:
        """Decode and write checked bytes; a verified chunk makes its files visible."""
        if isinstance(event, ChunkVerified):
            self._writer.commit()
            self.verified_chunks += 1
            self._extract.committed()
            return
        self._total += len(event)
        assert self._decoder is not None  # made by verify() before any byte is passed on
        for tar_event in self._decoder.events(event):
            self._extract(tar_event)
        self._progress.advance(len(event))

    def finish(self) -> UnpackResult:
        for event in self.verify_end():
            self.consume(event)
        return self.complete()

    def complete(self) -> UnpackResult:
        """After ``verify_end``'s events were consumed: drain the decoder, close the tree."""
        assert self._decoder is not None
        for event in self._decoder.finish():
            self._extract(event)
        self._writer.commit()
        self._writer.close()
        if self._journal is not None:
            self._journal.remove()
        self._progress.finish()
        return UnpackResult(
            self._writer.members_written,
            self._total,
            self._verifier is not None,
            self._decoder.compression,
            resumed=self._resume is not None,
            skipped_members=self._resume.members if self._resume is not None else 0,
        )

    def abort(self) -> None:
        """Remove every file not yet verified or complete; keep what was, and the journal
        that says so."""
        if self._journal is not None:
            self._journal.close()
        if self._decoder is not None:
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
    same_permissions: bool = False,
    max_output_bytes: int | None = None,
    max_members: int | None = None,
    resume: bool = False,
    follow_timeout: float | None = None,
    select: Callable[[str], bool] | None = None,
    identities: Sequence[Identity] = (),
) -> UnpackResult:
    """Restores ``PREFIX.part*``: with its manifest, every chunk verified as it is read.

    A checked unpack journals its progress in ``output_dir``; after an interruption,
    ``resume`` skips the members already in place (without it, everything is restored again).
    ``follow_timeout`` (seconds) follows a pack still running to a store, waiting that long
    at most for each new chunk. ``select`` keeps only the members whose name it accepts (the
    others are decoded and skipped; no journal, so no resume). An encrypted archive needs
    one of ``identities`` (keys or a passphrase) to open it.
    """
    if select is not None and (resume or follow_timeout is not None):
        raise UsageError("a selection of members is neither resumed nor followed")
    if follow_timeout is not None and identities:
        raise UsageError("following a pack of an encrypted archive is not supported yet")
    if follow_timeout is not None:
        if resume or not verify_checksum:
            raise UsageError(
                "--follow checks every chunk and starts afresh: no --resume, no --no-verify"
            )
        return _unpack_following(
            input_prefix,
            output_dir,
            follow_timeout,
            compression=compression,
            progress=progress,
            same_owner=same_owner,
            same_permissions=same_permissions,
            max_output_bytes=max_output_bytes,
            max_members=max_members,
        )
    source = open_source(input_prefix, by_block=verify_checksum)
    opened = open_encrypted(source, identities)
    # The manifest of the compressed stream: an encrypted archive's with its sealed part.
    inner = opened.inner(source.manifest) if opened is not None and source.manifest else None
    journal: UnpackJournal | None = None
    journaled = select is None  # a partial restore is not journaled
    described = inner or source.manifest
    if journaled and verify_checksum and described is not None and _has_block_index(described):
        assert source.manifest is not None
        journal = UnpackJournal(output_dir, source.manifest, described.uncompressed_size)
    elif resume:
        raise UsageError(_not_resumable(input_prefix, source.manifest, verify_checksum))
    try:
        resume_state = journal.open(resume=resume) if journal is not None else None
        first = 0
        if resume_state is not None and source.manifest is not None and opened is None:
            first = start_point(source.manifest, resume_state.position).chunk
        unpacker = StreamUnpacker(
            output_dir,
            manifest=source.manifest,
            compression=compression,
            verify_checksum=verify_checksum,
            progress=progress,
            same_owner=same_owner,
            same_permissions=same_permissions,
            location=source.directory,
            max_output_bytes=max_output_bytes,
            max_members=max_members,
            journal=journal,
            resume=resume_state,
            select=select,
            # Only where the journal marks an unpack cut short: what a kill interrupts may
            # then be a placed file cut short, and --resume makes it again.
            checked_ahead=journal is not None and source.checked_from(first),
            opened=opened,
        )
    except BaseException:
        if journal is not None:
            journal.close()
        raise
    checked = source.manifest is not None and verify_checksum

    def read_and_verify() -> Iterator[VerifierEvent]:
        """Runs in its own thread: reading and hashing overlap decoding and writing."""
        for chunk in source.chunks[unpacker.first_chunk :]:
            size = 0
            for piece in source.read(chunk):
                size += len(piece)
                if checked and size > chunk.size:
                    # Raised here, or its extra bytes would count as the next chunk's.
                    raise ChecksumMismatchError(
                        chunk.name, f"{chunk.size} bytes", f"more than {chunk.size} bytes"
                    )
                yield from unpacker.verify(piece)
            if checked and size != chunk.size:
                raise ChecksumMismatchError(chunk.name, f"{chunk.size} bytes", f"{size} bytes")
        yield from unpacker.verify_end()

    events = in_background(read_and_verify(), depth=READ_AHEAD_PIECES, name="stc-read")
    try:
        for event in events:
            unpacker.consume(event)
        return unpacker.complete()
    except BaseException as exc:
        try:
            events.close()
        finally:
            unpacker.abort()
        if checked and isinstance(exc, _DATA_ERRORS):
            _blame_unverified_chunk(source, unpacker.verified_chunks, exc)
        raise


def _unpack_following(
    input_prefix: str, output_dir: str, timeout: float, **options: Any
) -> UnpackResult:
    """Restores an archive that may still be being packed to a store, chunk by chunk as its
    checkpoints name them: a stream with no manifest of its own, whose every chunk the
    FollowingSource has checked before any of it is written (and the whole stream at the end).
    """
    location = parse_prefix(input_prefix)
    if not isinstance(location, RemotePrefix):
        raise UsageError("--follow follows a pack to an object store: give its URL")
    source = FollowingSource(location, timeout=timeout)

    def pieces() -> Iterator[memoryview]:
        for _, data in source.chunks():
            view = memoryview(data)
            for start in range(0, len(view), FOLLOW_PIECE):
                yield view[start : start + FOLLOW_PIECE]

    ahead = in_background(pieces(), depth=READ_AHEAD_PIECES, name="stc-follow")
    try:
        return replace(unpack_stream(ahead, output_dir, **options), verified=True)
    finally:
        ahead.close()


def open_encrypted(source: ChunkSource, identities: Sequence[Identity]) -> OpenedArchive | None:
    """An encrypted archive's keys and sealed part, from its age header (and payload nonce)
    at the start of its stream (None: the archive is not encrypted, and no key was given)."""
    manifest = source.manifest
    refuse_plain_with_keys(manifest, identities)
    if manifest is None or manifest.encryption is None:
        return None
    if not identities:
        raise key_needed()
    head = bytearray()
    for chunk in manifest.chunks:  # tiny chunks: the header may span several
        pieces = source.read(chunk)
        try:
            for piece in pieces:
                head += piece
                if len(head) >= manifest.encryption.header_length + NONCE_SIZE:
                    return open_archive(manifest, bytes(head), identities)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
    raise DecryptionError("header", "the archive ends inside its age header")


def _encrypted_start(
    opened: OpenedArchive, manifest: Manifest, resume: ResumeState
) -> tuple[StartPoint, ArchiveDecryptor]:
    """Where a resumed unpack of an encrypted archive starts: the age chunk that holds the
    start of the block that holds the resume position (each age chunk opens alone), read
    from the archive's chunk that holds that age chunk."""
    inner = opened.inner(manifest)
    block = block_holding(inner, resume.position)
    raw, compressed = inner.blocks[block]
    chunk, lead, decryptor = opened.decryptor_from(manifest.chunks, compressed)
    return StartPoint(resume.position, block, chunk, lead, resume.position - raw), decryptor


def _has_block_index(manifest: Manifest) -> bool:
    """Only the manifest's block index tells where a block starts: what a resume needs."""
    return (
        bool(manifest.blocks)
        and manifest.compression is not None
        and manifest.trailer_offset is not None
        and manifest.uncompressed_size is not None
    )


def _not_resumable(prefix: str, manifest: Manifest | None, verify_checksum: bool) -> str:
    if not verify_checksum:
        return "--resume needs the chunk checks (it trusts only verified chunks): drop --no-verify"
    if manifest is None:
        return f"--resume needs {prefix}.manifest.json, whose block index says where to restart"
    return (
        f"--resume needs a manifest with a block index, and {prefix}'s has none "
        "(packed by another tool?): unpack without --resume"
    )


def _blame_unverified_chunk(source: ChunkSource, index: int, error: StcError) -> None:
    """A chunk is decoded piece by piece before its last byte is hashed, so a damaged chunk can
    first show as a corrupt stream or an unsafe member: when that chunk (the first one not yet
    verified) is damaged, raise the ChecksumMismatchError that names it instead. Decrypting
    runs on the reading thread, ahead of the decoder: for a chunk that did not authenticate,
    the chunks that thread may have reached are checked too."""
    if isinstance(error, DecryptionError):  # it may lag the chunk sizes by an age chunk
        index, ahead = max(0, index - 1), READ_AHEAD_PIECES + 3
    else:
        ahead = 1
    for chunk in source.chunks[index : index + ahead]:
        damage = source.damage(chunk)
        if damage is not None:
            raise damage from error


def unpack_stream(
    pieces: Iterable[bytes | memoryview],
    output_dir: str,
    *,
    compression: CompressionType | None = None,
    progress: Progress | None = None,
    same_owner: bool = False,
    same_permissions: bool = False,
    max_output_bytes: int | None = None,
    max_members: int | None = None,
) -> UnpackResult:
    """Unpacks one compressed stream (stdin, a pipe, ``cat`` of parts) that has no manifest."""
    unpacker = StreamUnpacker(
        output_dir,
        compression=compression,
        progress=progress,
        same_owner=same_owner,
        same_permissions=same_permissions,
        max_output_bytes=max_output_bytes,
        max_members=max_members,
    )
    try:
        for piece in pieces:
            unpacker.feed(piece)
        return unpacker.finish()
    except BaseException:
        unpacker.abort()
        raise
