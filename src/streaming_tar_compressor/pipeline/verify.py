"""verify: every chunk's size and SHA-256, the whole stream's, and with ``deep`` the contents
and each block's SHA-256 (what random access and store unpacks check a block by).

Every problem is collected and reported together — a missing chunk does not hide a corrupt one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.manifest import FileRef, Manifest
from ..core.member_index import IndexEntry, MemberIndex, entry_differences
from ..core.tar_reader import MemberData, MemberEnd, MemberStart, TarEvent
from ..encryption import Identity
from ..encryption.archive import ArchiveDecryptor, OpenedArchive
from ..errors import (
    ArchiveDamagedError,
    DecryptionError,
    ManifestError,
    MissingChunkError,
    StcError,
)
from ..models import ChunkInfo
from ..progress import NullProgress, Progress
from ..storage.archive import ChunkSource, open_source, read_manifest_at
from ..storage.checked_reads import Unit, block_units
from ..storage.local import manifest_path
from ..storage.random_access import RandomAccess, require_random_access
from ..storage.remote import RemoteChunkSource
from .decode import TarStreamDecoder
from .unpack import open_encrypted


@dataclass(slots=True)
class VerifyReport:
    chunks_checked: int = 0
    bytes_checked: int = 0
    members_checked: int = 0
    blocks_checked: int = 0  # blocks checked by their SHA-256 in the manifest (deep)
    index_checked: bool = False  # the member index the manifest pins, by size and SHA-256
    deep: bool = False
    problems: list[str] = field(default_factory=list)
    # A store's chunks checked by their stored size and SHA-256 (no download): with how many
    # requests, and how many chunks had no stored SHA-256 and were downloaded to be hashed.
    from_metadata: bool = False
    requests: int = 0
    downloaded: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            raise ArchiveDamagedError(self.problems)


def verify(
    prefix: str,
    *,
    deep: bool = False,
    progress: Progress | None = None,
    identities: Sequence[Identity] = (),
) -> VerifyReport:
    """An encrypted archive is checked by its ciphertext's digests without a key; with one
    of ``identities``, its manifest is authenticated and every age chunk opened, and the
    compressed stream inside checked by its sealed digests (``deep``: decoded too)."""
    progress = progress or NullProgress()
    manifest = read_manifest_at(prefix)
    if manifest is None:
        raise ManifestError(
            f"{manifest_path(prefix)} is missing; without it there is nothing to verify against"
        )
    source = open_source(prefix)
    if manifest.encryption is not None and deep and not identities:
        raise DecryptionError("no match", "a deep verify of an encrypted archive needs its key")
    if isinstance(source, RemoteChunkSource) and not deep and not identities:
        return _verify_stored(manifest, source, progress)
    opened = open_encrypted(source, identities) if identities else None
    report = VerifyReport(deep=deep)
    listed = {c.name for c in manifest.chunks}
    for extra in source.listed_parts() or ():
        if extra not in listed:
            report.problems.append(f"{extra}: extra chunk, not in the manifest")

    decoder: TarStreamDecoder | None = TarStreamDecoder(manifest.compression) if deep else None
    agreement = (
        _IndexAgreement.of(prefix, identities) if deep and manifest.index_file is not None else None
    )
    inner = _Inner(opened, manifest) if opened is not None else None
    blocks = _BlockDigests.of(manifest) if deep and inner is None else None
    stream_hash = hashlib.sha256()
    stream_whole = True
    offset = 0  # in the stream, while it is whole
    progress.start(sum(chunk.size for chunk in manifest.chunks))
    try:
        for chunk in manifest.chunks:
            chunk_hash = hashlib.sha256()
            size = 0
            try:
                for piece in source.read(chunk):
                    chunk_hash.update(piece)
                    stream_hash.update(piece)
                    if blocks is not None and stream_whole and size < chunk.size:
                        # A chunk too long: its extra bytes are not the next chunk's.
                        blocks.feed(offset + size, memoryview(piece)[: chunk.size - size])
                    size += len(piece)
                    progress.advance(len(piece))
                    if inner is not None:  # after a gap the rest would not line up
                        piece = inner.feed(piece) if stream_whole else b""
                    if decoder is not None:
                        try:
                            events = decoder.events(piece)
                            report.members_checked += _count_members(events, agreement)
                        except StcError as exc:
                            report.problems.append(f"contents: {exc}")
                            decoder = None
            except MissingChunkError:
                report.problems.append(f"{chunk.name}: missing")
                stream_whole = False
                decoder = None
                continue
            report.chunks_checked += 1
            report.bytes_checked += size
            offset += size
            if size != chunk.size:
                report.problems.append(_size_problem(chunk, size))
                stream_whole = False
            elif chunk_hash.hexdigest() != chunk.checksum:
                report.problems.append(f"{chunk.name}: corrupt, SHA-256 does not match")
        if stream_whole and manifest.sha256 and stream_hash.hexdigest() != manifest.sha256:
            report.problems.append("whole stream: SHA-256 does not match the manifest")
        if blocks is not None:  # fed while the stream was whole
            report.problems += blocks.problems
            report.blocks_checked = blocks.checked
        if inner is not None:
            tail = inner.finish(stream_whole)
            if decoder is not None:
                try:
                    report.members_checked += _count_members(decoder.events(tail), agreement)
                except StcError as exc:
                    report.problems.append(f"contents: {exc}")
                    decoder = None
            report.problems += inner.problems
            report.blocks_checked = inner.blocks.checked
        if decoder is not None:
            try:
                report.members_checked += _count_members(decoder.finish(), agreement)
            except StcError as exc:
                report.problems.append(f"contents: {exc}")
            if agreement is not None:
                report.problems += agreement.finish()
        if manifest.index_file is not None:
            index = _as_chunk(manifest.index_file)
            # Not through a store source's read: its prefetch would run on into the chunks.
            report.problems += (
                _stored_index_problems(source, index)
                if isinstance(source, RemoteChunkSource)
                else _index_problems(source, index)
            )
            report.index_checked = True
    finally:
        progress.finish()
        if agreement is not None:
            agreement.close()
    return report


def _as_chunk(index: FileRef) -> ChunkInfo:
    """The index file, checked as a chunk is: its size and SHA-256."""
    return ChunkInfo(index=0, name=index.name, size=index.size, checksum=index.sha256)


def _index_problems(source: ChunkSource, index: ChunkInfo) -> list[str]:
    digest, size = hashlib.sha256(), 0
    try:
        for piece in source.read(index):
            digest.update(piece)
            size += len(piece)
    except MissingChunkError:
        return [f"{index.name}: missing (rebuild it with stc index)"]
    if size != index.size:
        return [_size_problem(index, size)]
    if digest.hexdigest() != index.checksum:
        return [f"{index.name}: corrupt, SHA-256 does not match (rebuild it with stc index)"]
    return []


def _verify_stored(
    manifest: Manifest, source: RemoteChunkSource, progress: Progress
) -> VerifyReport:
    """Each object's size and the SHA-256 it was stored with (S3 checked that hash against the
    bytes on upload), one request per chunk; a chunk stored without one is downloaded."""
    report = VerifyReport(from_metadata=True)
    before = source.requests
    listed = {chunk.name for chunk in manifest.chunks}
    for extra in source.listed_parts() or ():
        if extra not in listed:
            report.problems.append(f"{extra}: extra chunk, not in the manifest")
    progress.start(sum(chunk.size for chunk in manifest.chunks))
    try:
        for chunk in manifest.chunks:
            stored = source.stat(chunk)
            if stored is None:
                report.problems.append(f"{chunk.name}: missing")
                continue
            report.chunks_checked += 1
            report.bytes_checked += stored.size
            progress.advance(chunk.size)
            if stored.size != chunk.size:
                report.problems.append(_size_problem(chunk, stored.size))
                continue
            digest = stored.sha256
            if digest is None:  # uploaded by another tool: hash its bytes
                report.downloaded += 1
                digest = source.stored_sha256(chunk)
            if digest != chunk.checksum:
                report.problems.append(f"{chunk.name}: corrupt, SHA-256 does not match")
        if manifest.index_file is not None:
            report.problems += _stored_index_problems(source, _as_chunk(manifest.index_file))
            report.index_checked = True
    finally:
        progress.finish()
    report.requests = source.requests - before
    return report


def _stored_index_problems(source: RemoteChunkSource, index: ChunkInfo) -> list[str]:
    stored = source.stat(index)
    if stored is None:
        return [f"{index.name}: missing (rebuild it with stc index)"]
    if stored.size != index.size:
        return [_size_problem(index, stored.size)]
    digest = stored.sha256 or source.stored_sha256(index)
    if digest != index.checksum:
        return [f"{index.name}: corrupt, SHA-256 does not match (rebuild it with stc index)"]
    return []


def _size_problem(chunk: ChunkInfo, size: int) -> str:
    kind = "short" if size < chunk.size else "too long"
    return f"{chunk.name}: {kind}, {size} of {chunk.size} bytes"


def _count_members(events: Iterator[TarEvent], agreement: _IndexAgreement | None) -> int:
    if agreement is None:
        return sum(isinstance(event, MemberStart) for event in events)
    count = 0
    for event in events:
        count += isinstance(event, MemberStart)
        agreement.take(event)
    return count


class _Inner:
    """An encrypted archive's compressed stream, decrypted as its chunks pass: each age chunk
    authenticated, each block and the whole checked by the sealed digests. After a problem,
    nothing more is given on (what follows cannot be trusted)."""

    def __init__(self, opened: OpenedArchive, manifest: Manifest) -> None:
        secret = opened.secret
        self._decryptor: ArchiveDecryptor | None = opened.decryptor()
        self._size = 0
        self._expected_size = secret.compressed_size
        ends = [start for _, start in secret.blocks[1:]]
        ends += [secret.trailer_offset] if secret.blocks else []
        units = [
            Unit(start, end, sha256=digest)
            for (_, start), end, digest in zip(
                secret.blocks, ends, secret.block_sha256, strict=True
            )
        ]
        self.blocks = _BlockDigests(units)
        self.problems: list[str] = []

    def feed(self, data: bytes | memoryview) -> bytes:
        if self._decryptor is None:
            return b""
        try:
            plain = self._decryptor.feed(data)
        except DecryptionError as exc:
            return self._failed(exc)
        self._take(plain)
        return plain

    def finish(self, whole: bool) -> bytes:
        if self._decryptor is None or not whole:
            return b""
        try:
            plain = self._decryptor.finish()
        except DecryptionError as exc:
            return self._failed(exc)
        self._take(plain)
        if self._size != self._expected_size:
            self.problems.append("compressed stream: its size differs from the sealed one")
        self.problems += self.blocks.problems
        return plain

    def _take(self, plain: bytes) -> None:
        self.blocks.feed(self._size, plain)
        self._size += len(plain)

    def _failed(self, exc: DecryptionError) -> bytes:
        self.problems.append(f"payload: {exc}")
        self._decryptor = None
        return b""


class _BlockDigests:
    """``verify --deep``: each block's SHA-256, as the manifest records it, over the
    stream's bytes as they pass; none when the manifest has no block digests it can lay out
    (``block_units``), so that a verified archive also restores by ranged, checked reads."""

    def __init__(self, units: list[Unit]) -> None:
        self._units = [unit for unit in units if unit.sha256]
        self._next = 0  # the unit being hashed, or the next one
        self._hash: Any = None
        self.checked = 0
        self.problems: list[str] = []

    @classmethod
    def of(cls, manifest: Manifest) -> _BlockDigests | None:
        units = block_units(manifest, manifest.chunks)
        return cls(units) if units is not None else None

    def feed(self, offset: int, data: bytes | memoryview) -> None:
        """The stream's bytes from ``offset``, following the bytes fed before."""
        end, view = offset + len(data), memoryview(data)
        while self._next < len(self._units) and self._units[self._next].start < end:
            unit = self._units[self._next]
            self._hash = self._hash or hashlib.sha256()
            self._hash.update(view[max(unit.start, offset) - offset : min(unit.end, end) - offset])
            if unit.end > end:
                return
            if self._hash.hexdigest() != unit.sha256:
                self.problems.append(
                    f"block {self._next} (stream bytes {unit.start}-{unit.end}): corrupt, "
                    "SHA-256 does not match the manifest's block_sha256"
                )
            self.checked += 1
            self._hash = None
            self._next += 1


class _IndexAgreement:
    """``verify --deep``: every member decoded must be the index's next entry (offsets,
    type, size, metadata) and, where it records one, have its content SHA-256; the first
    disagreement is the problem reported."""

    def __init__(self, archive: RandomAccess, index: MemberIndex) -> None:
        self._archive, self._name = archive, index.name
        self._entries = iter(index)
        self._current: tuple[IndexEntry, Any] | None = None
        self.problem: str | None = None

    @classmethod
    def of(cls, prefix: str, identities: Sequence[Identity]) -> _IndexAgreement | None:
        """None when the index cannot be read (the index check names what is wrong)."""
        archive = require_random_access(prefix, identities)
        try:
            index = archive.member_index()
        except StcError:
            index = None
        if index is None:
            archive.close()
            return None
        return cls(archive, index)

    def take(self, event: TarEvent) -> None:
        if self.problem is not None:
            return
        try:
            self._take(event)
        except StcError as exc:
            self.problem = f"{self._name}: {exc}"

    def _take(self, event: TarEvent) -> None:
        if isinstance(event, MemberStart):
            entry = next(self._entries, None)
            member = event.member
            if entry is None:
                self.problem = f"{self._name}: the stream holds {member.name!r}, the index no more"
                return
            differs = entry_differences(entry, member, member.offset, event.data_offset)
            if differs:
                self.problem = (
                    f"{self._name}: the entry for {entry.name!r} disagrees with the stream "
                    f"({', '.join(differs)}); rebuild it with stc index"
                )
            self._current = (entry, hashlib.sha256() if entry.sha256 else None)
        elif isinstance(event, MemberData) and self._current and self._current[1] is not None:
            self._current[1].update(event.data)
        elif isinstance(event, MemberEnd) and self._current is not None:
            entry, digest = self._current
            if digest is not None and digest.digest() != entry.sha256:
                self.problem = (
                    f"{self._name}: the content of {entry.name!r} does not match its SHA-256"
                )
            self._current = None

    def finish(self) -> list[str]:
        try:
            if self.problem is None and next(self._entries, None) is not None:
                self.problem = f"{self._name}: lists more members than the stream holds"
        except StcError as exc:
            self.problem = f"{self._name}: {exc}"
        return [self.problem] if self.problem is not None else []

    def close(self) -> None:
        self._archive.close()
