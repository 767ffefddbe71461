"""Extract a selection of members, or read one, by reading only the blocks that hold them.

The member index says where each selected member lies in the tar stream; the manifest's block
index says which compressed blocks hold those bytes. Each block is read by range (``pread``,
or ranged GETs from a store), checked against its SHA-256 before it is decoded (or, in an
archive that records no block digests, its whole chunks against theirs), and its tar headers
must agree with the index entry. Files go through the same safe writer as a full unpack and
take their names only once their member is whole and checked. An archive without an index is
decoded whole and the unselected members skipped.
"""

from __future__ import annotations

import bisect
import hashlib
import io
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Any

from ..codecs import codec_for
from ..core.block_splitter import check_block_index
from ..core.member_index import IndexEntry, MemberIndex, entry_differences
from ..core.selection import Selection, clean_name
from ..core.tar_reader import MemberData, MemberEnd, MemberStart, TarReader
from ..encryption import Identity
from ..errors import (
    ChecksumMismatchError,
    CompressionMismatchError,
    ManifestError,
    MemberNotFoundError,
    MissingChunkError,
    UsageError,
)
from ..fs.writer import TreeWriter
from ..models import CompressionType, MemberKind, TarMember
from ..progress import NullProgress, Progress
from ..storage.checked_reads import FETCH_ATTEMPTS
from ..storage.random_access import RandomAccess, require_random_access
from .parallel import ordered_map
from .unpack import unpack

BLOCKS_AHEAD = 4  # runs of blocks fetched and decoded ahead of the tar parser
# Neighbouring blocks are fetched by one read (one GET from a store) while together they
# stay under both sizes: fewer requests, and memory still a few runs.
RUN_COMPRESSED_BYTES = 8 * 2**20
RUN_RAW_BYTES = 16 * 2**20
SPAN_MEMBERS = 4096  # members parsed from one run of tar bytes at most (memory stays bounded)
_TAR_BLOCK = 512


@dataclass(frozen=True, slots=True)
class ExtractResult:
    """``members`` written; ``blocks_read`` compressed blocks and ``compressed_bytes`` of
    chunks read to get them (an archive without an index: all of them)."""

    members: int
    blocks_read: int
    compressed_bytes: int
    indexed: bool


@dataclass(slots=True)
class _Span:
    """A run of tar bytes from a member's first header to the end of the last member's data:
    the members to parse from it and, for each, the name to write it under."""

    start: int
    end: int
    entries: list[IndexEntry] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


class BlockReader:
    """The tar stream's bytes by range, from the blocks that hold them, each checked before
    it is decoded; the block read last is kept, since neighbouring members share blocks."""

    def __init__(self, archive: RandomAccess, workers: int = 2) -> None:
        manifest = archive.manifest
        if (
            not manifest.blocks
            or manifest.compression is None
            or manifest.trailer_offset is None
            or manifest.uncompressed_size is None
        ):
            raise ManifestError(
                f"{archive.directory}: the manifest has no block index, so no member can be "
                "read alone"
            )
        check_block_index(
            manifest.blocks,
            manifest.uncompressed_size,
            manifest.trailer_offset,
            sum(chunk.size for chunk in manifest.chunks),
        )
        self._archive = archive
        self._codec = codec_for(manifest.compression)
        self._plain = manifest.compression is CompressionType.NONE
        self._raws = [raw for raw, _ in manifest.blocks] + [manifest.uncompressed_size]
        self._positions = [pos for _, pos in manifest.blocks] + [manifest.trailer_offset]
        self._digests = manifest.block_sha256
        self._chunks = manifest.chunks
        self._chunk_starts = list(accumulate((c.size for c in self._chunks), initial=0))
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="stc-extract")
        self._window = max(BLOCKS_AHEAD, workers)
        self._kept: tuple[int, bytes] | None = None
        self._verified_chunks: dict[int, bytes] = {}  # without block digests: the last chunk
        self.blocks_read = 0
        self.compressed_bytes = 0

    def read(self, start: int, end: int) -> Generator[memoryview, None, None]:
        """The tar bytes ``[start, end)``, in pieces (each valid until the next). Blocks are
        fetched, checked and decoded ahead in the pool (one at a time when only whole chunks
        can check them)."""
        if not 0 <= start <= end <= self._raws[-1]:
            raise ManifestError(f"the index points past the tar stream ({start}..{end})")
        if start == end:
            return
        first = bisect.bisect_right(self._raws, start) - 1
        last = bisect.bisect_left(self._raws, end) - 1
        kept = self._kept
        wanted = [b for b in range(first, last + 1) if kept is None or b != kept[0]]
        runs = (
            ordered_map(self._fetch_run, self._runs(wanted), pool=self._pool, window=self._window)
            if self._digests
            else ([self._fetch(block)] for block in wanted)
        )
        fetched = (decoded for run in runs for decoded in run)
        try:
            for block in range(first, last + 1):
                if kept is not None and block == kept[0]:
                    data = kept[1]
                else:
                    data, compressed = next(fetched)
                    self.blocks_read += 1
                    self.compressed_bytes += compressed
                    self._kept = (block, data)
                low = max(start, self._raws[block]) - self._raws[block]
                high = min(end, self._raws[block + 1]) - self._raws[block]
                yield memoryview(data)[low:high]
        finally:
            fetched.close()
            close = getattr(runs, "close", None)
            if close is not None:
                close()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _runs(self, blocks: list[int]) -> list[list[int]]:
        """Consecutive blocks grouped while a run stays under both run sizes."""
        runs: list[list[int]] = []
        for block in blocks:
            if runs and runs[-1][-1] == block - 1:
                first = runs[-1][0]
                compressed = self._positions[block + 1] - self._positions[first]
                raw = self._raws[block + 1] - self._raws[first]
                if compressed <= RUN_COMPRESSED_BYTES and raw <= RUN_RAW_BYTES:
                    runs[-1].append(block)
                    continue
            runs.append([block])
        return runs

    def _fetch_run(self, run: list[int]) -> list[tuple[bytes, int]]:
        """A run's compressed bytes in one read per chunk, read again (FETCH_ATTEMPTS in
        all) while a block does not match its SHA-256: a flipped bit on the way costs one
        more read, not the restore. Then each block is decoded (in the pool)."""
        base, end = self._positions[run[0]], self._positions[run[-1] + 1]
        read = 0
        for attempt in range(1, FETCH_ATTEMPTS + 1):
            compressed, damage = self._stream_bytes(base, end)  # cut short: read again too
            read += len(compressed)
            damage = damage or self._damaged_block(run, base, compressed)
            if damage is None:
                break
            if attempt == FETCH_ATTEMPTS:
                raise damage
        decoded = []
        for block in run:
            start, stop = self._positions[block] - base, self._positions[block + 1] - base
            decoded.append((self._decode(block, compressed[start:stop]), stop - start))
        # Bytes read again count too, with the run's first block.
        decoded[0] = (decoded[0][0], decoded[0][1] + read - (end - base))
        return decoded

    def _damaged_block(
        self, run: list[int], base: int, compressed: bytes
    ) -> ChecksumMismatchError | None:
        """The error for the first block of the run that does not match its SHA-256."""
        for block in run:
            start, end = self._positions[block], self._positions[block + 1]
            digest = hashlib.sha256(compressed[start - base : end - base]).hexdigest()
            if digest != self._digests[block]:
                return ChecksumMismatchError(
                    f"block {block} (stream bytes {start}..{end})",
                    f"sha256 {self._digests[block]}",
                    f"sha256 {digest}",
                )
        return None

    def _fetch(self, block: int) -> tuple[bytes, int]:
        """A block decoded, its whole chunks checked (an archive without block digests),
        and how many chunk bytes were read for it."""
        start, end = self._positions[block], self._positions[block + 1]
        compressed, read = self._from_verified_chunks(start, end)
        return self._decode(block, compressed), read

    def _decode(self, block: int, compressed: bytes) -> bytes:
        raw_size = self._raws[block + 1] - self._raws[block]
        data = compressed if self._plain else self._codec.decode_block(compressed, raw_size).data
        if len(data) != raw_size:
            raise ChecksumMismatchError(f"block {block}", f"{raw_size} bytes", f"{len(data)}")
        return data

    def _stream_bytes(self, start: int, end: int) -> tuple[bytes, ChecksumMismatchError | None]:
        """Compressed stream bytes ``[start, end)``, from the chunks that hold them; when a
        chunk gives fewer than asked, the bytes read so far and the error that names it."""
        pieces = []
        for index, low, high in self._chunk_ranges(start, end):
            chunk = self._chunks[index]
            pieces.append(self._read_chunk(index, low, high - low))
            if len(pieces[-1]) != high - low:
                short = ChecksumMismatchError(chunk.name, f"{chunk.size} bytes", "fewer bytes")
                return b"".join(pieces), short
        return b"".join(pieces), None

    def _from_verified_chunks(self, start: int, end: int) -> tuple[bytes, int]:
        """An archive without block digests: the whole chunks that hold the bytes, checked
        against their SHA-256 (the last one kept for the next block)."""
        pieces, read = [], 0
        for index, low, high in self._chunk_ranges(start, end):
            if index not in self._verified_chunks:
                chunk = self._chunks[index]
                for attempt in range(1, FETCH_ATTEMPTS + 1):  # as _fetch_run reads again
                    data = self._read_chunk(index, 0, chunk.size)
                    read += len(data)
                    digest = hashlib.sha256(data).hexdigest()
                    if len(data) == chunk.size and digest == chunk.checksum:
                        break
                    if attempt == FETCH_ATTEMPTS:
                        raise ChecksumMismatchError(
                            chunk.name, f"sha256 {chunk.checksum}", f"sha256 {digest}"
                        )
                self._verified_chunks = {index: data}
            pieces.append(self._verified_chunks[index][low:high])
        return b"".join(pieces), read

    def _chunk_ranges(self, start: int, end: int) -> Iterator[tuple[int, int, int]]:
        """(chunk index, start, end within it) of the stream bytes ``[start, end)``."""
        first = bisect.bisect_right(self._chunk_starts, start) - 1
        for index in range(first, len(self._chunks)):
            offset = self._chunk_starts[index]
            if offset >= end:
                return
            size = self._chunks[index].size
            yield index, max(start, offset) - offset, min(end, offset + size) - offset

    def _read_chunk(self, index: int, offset: int, length: int) -> bytes:
        try:
            return self._archive.read(self._chunks[index].name, offset, length)
        except FileNotFoundError:
            raise MissingChunkError(index, self._archive.directory) from None
        except OSError as exc:
            raise MissingChunkError(index, f"{self._archive.directory} ({exc})") from exc


def extract(
    prefix: str,
    members: Sequence[str],
    output_dir: str,
    *,
    wildcards: bool = False,
    compression: CompressionType | None = None,
    progress: Progress | None = None,
    same_owner: bool = False,
    same_permissions: bool = False,
    max_output_bytes: int | None = None,
    max_members: int | None = None,
    identities: Sequence[Identity] = (),
) -> ExtractResult:
    """Writes the selected members (a folder: its subtree) into ``output_dir``;
    ``compression`` is what the caller expects the archive to be. With ``identities``, the
    archive is an encrypted one, opened by one of them."""
    if not members:
        raise UsageError("name at least one member to extract (or unpack the whole archive)")
    selection = Selection(members, wildcards=wildcards)
    progress = progress or NullProgress()
    caps: dict[str, Any] = {
        "same_owner": same_owner,
        "same_permissions": same_permissions,
        "max_output_bytes": max_output_bytes,
        "max_members": max_members,
    }
    with require_random_access(prefix, identities) as archive:
        recorded = archive.manifest.compression
        if compression is not None and recorded is not None and compression is not recorded:
            raise CompressionMismatchError(compression.value, recorded.value)
        index = archive.member_index()
        if index is None:
            blocks = len(archive.manifest.blocks)
            return _extract_by_decoding(
                prefix, selection, output_dir, progress, blocks, caps, identities
            )
        reader = BlockReader(archive)
        writer: TreeWriter | None = None
        try:
            writer = TreeWriter(output_dir, deferred=True, **caps)
            progress.start(None)
            for span in _spans(selection, index):
                _extract_span(span, reader, writer, index.name, progress)
            selection.check_all_found()
            writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
                writer.close()
            raise
        finally:
            reader.close()
            progress.finish()
    return ExtractResult(writer.members_written, reader.blocks_read, reader.compressed_bytes, True)


def _extract_by_decoding(
    prefix: str,
    selection: Selection,
    output_dir: str,
    progress: Progress,
    blocks: int,
    caps: dict[str, Any],
    identities: Sequence[Identity] = (),
) -> ExtractResult:
    """An archive without an index: decoded whole, every chunk verified, the members the
    selection does not take skipped. (A hardlink whose target is skipped cannot be made:
    rebuild the index with ``stc index`` to get the target's content.)"""
    result = unpack(
        prefix,
        output_dir,
        progress=progress,
        select=selection.__contains__,
        identities=identities,
        **caps,
    )
    selection.check_all_found()
    return ExtractResult(result.members, blocks, result.compressed_bytes, False)


def _spans(selection: Selection, index: MemberIndex) -> Iterator[_Span]:
    """The selected members as runs of adjacent tar bytes, in tar order. A hardlink whose
    target is not selected is written as a file with the target's data (its own span)."""
    span: _Span | None = None
    for entry in selection.entries(index):
        source, name = entry, entry.name
        if entry.kind is MemberKind.HARDLINK and not selection.selects(entry.linkname):
            source = _link_target(index, entry)
        start, end = source.header_offset, _member_end(source)
        if span is not None and (start != span.end or len(span.entries) >= SPAN_MEMBERS):
            yield span
            span = None
        if span is None:
            span = _Span(start, start)
        span.end = end
        span.entries.append(source)
        span.names.append(name)
    if span is not None:
        yield span


def _link_target(index: MemberIndex, link: IndexEntry) -> IndexEntry:
    """The regular file a hardlink names: the last of that name before the link."""
    before = [
        e
        for e in index.find(link.linkname)
        if e.header_offset < link.header_offset and e.kind is MemberKind.FILE
    ]
    if not before:
        raise ManifestError(
            f"{index.name}: the hardlink {link.name!r} names {link.linkname!r}, which is not a "
            "regular file before it in the archive"
        )
    return before[-1]


def _member_end(entry: IndexEntry) -> int:
    return entry.data_offset + entry.size + -entry.size % _TAR_BLOCK


def _extract_span(
    span: _Span, reader: BlockReader, writer: TreeWriter, index_name: str, progress: Progress
) -> None:
    """Parses the span's tar bytes; each member must be the index entry expected there, and
    is renamed into place once whole and checked."""
    tar = TarReader()
    expected = iter(zip(span.entries, span.names, strict=True))
    current: tuple[IndexEntry, str, Any] | None = None
    for piece in reader.read(span.start, span.end):
        for event in tar.feed(piece):
            if isinstance(event, MemberStart):
                entry, name = next(expected)
                _check_header(event.member, span.start, entry, index_name)
                member = replace(event.member, name=name) if name != entry.name else event.member
                writer.start(member)
                current = (entry, name, hashlib.sha256() if entry.sha256 else None)
            elif isinstance(event, MemberData):
                assert current is not None
                if current[2] is not None:
                    current[2].update(event.data)
                writer.write(event.data)
                progress.advance(len(event.data))
            elif isinstance(event, MemberEnd):
                assert current is not None
                entry, name, digest = current
                if digest is not None and digest.digest() != entry.sha256:
                    raise ChecksumMismatchError(
                        f"{name} (its content against {index_name})",
                        f"sha256 {entry.sha256.hex()}",
                        f"sha256 {digest.hexdigest()}",
                    )
                writer.end(replace(event.member, name=name))
                writer.commit()
                progress.file(name, entry.size)
                current = None
    if next(expected, None) is not None or current is not None:
        raise ManifestError(f"{index_name}: a member's tar bytes end before its entry says")


def _check_header(member: TarMember, base: int, entry: IndexEntry, index_name: str) -> None:
    """The header found where the index points must describe the member it lists."""
    differs = entry_differences(entry, member, base + member.offset)
    if differs:
        raise ManifestError(
            f"{index_name}: the entry for {entry.name!r} disagrees with the tar header at "
            f"offset {entry.header_offset} ({', '.join(differs)}); rebuild it with stc index"
        )


class MemberReader(io.RawIOBase):
    """One regular file's content from an archive (``open_member``): its blocks read as it
    is read, at most a few blocks in memory; its SHA-256 checked at the end when the index
    records one."""

    def __init__(self, prefix: str, name: str, identities: Sequence[Identity] = ()) -> None:
        super().__init__()
        self._archive = require_random_access(prefix, identities)
        try:
            index = self._archive.member_index()
            if index is None:
                raise ManifestError(f"{prefix} has no member index: rebuild it with stc index")
            entry = _the_file(index, name)
            self._reader = BlockReader(self._archive)
        except BaseException:
            self._archive.close()
            raise
        self.entry = entry
        self._pieces = self._reader.read(entry.data_offset, entry.data_offset + entry.size)
        self._digest = hashlib.sha256()
        self._left = b""
        self._index_name = index.name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._left:
            piece = next(self._pieces, None)
            if piece is None:
                self._check_digest()
                return 0
            self._left = bytes(piece)
            self._digest.update(self._left)
        taken = self._left[: len(view)]
        view[: len(taken)] = taken
        self._left = self._left[len(taken) :]
        return len(taken)

    def close(self) -> None:
        if not self.closed:
            self._pieces.close()  # its runs in flight are dropped, not waited for
            self._reader.close()
            self._archive.close()
        super().close()

    def _check_digest(self) -> None:
        if self.entry.sha256 and self._digest.digest() != self.entry.sha256:
            raise ChecksumMismatchError(
                f"{self.entry.name} (its content against {self._index_name})",
                f"sha256 {self.entry.sha256.hex()}",
                f"sha256 {self._digest.hexdigest()}",
            )


def _the_file(index: MemberIndex, name: str) -> IndexEntry:
    """The last member of that name (as tar extracts the last); a hardlink reads its target."""
    found = index.find(clean_name(name))
    if not found:
        raise MemberNotFoundError([name])
    entry = found[-1]
    if entry.kind is MemberKind.HARDLINK:
        entry = _link_target(index, entry)
    if entry.kind is not MemberKind.FILE:
        raise UsageError(f"{name!r} is a {entry.kind.value}, not a regular file: it has no content")
    return entry
