"""Chunks missing, duplicated, reordered, swapped with another archive's, cut, extended, extra.

With the manifest every chunk is checked in order, so the first chunk that is not the packed
one decides the error, and names it: MissingChunkError for a chunk that is not there,
ChecksumMismatchError for one that is wrong — never a tree silently made of another archive's
bytes. Without a manifest the chunk numbers are all there is: a gap is a missing chunk, and
what does not decode is a corrupt stream. The push API (chunks as ``(index, bytes)`` in any
order) holds to the same.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

import streaming_tar_compressor as stc
from streaming_tar_compressor import sync
from streaming_tar_compressor.models import CompressionType
from streaming_tar_compressor.pipeline.unpack import StreamUnpacker
from streaming_tar_compressor.storage import local
from tests.safety.corrupt_archives import (
    ALL_KINDS,
    COMPRESSED_KINDS,
    DECODE_ERRORS,
    Archive,
    ArchiveFactory,
    assert_nothing_false,
    assert_whole,
    write_parts,
)

pytestmark = pytest.mark.timeout(120)

# Two trees of the same shape and sizes, packed with the same settings.
OTHER_TREE = 2
SOME_KINDS = [CompressionType.GZIP, CompressionType.ZSTD, CompressionType.NONE]


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> ArchiveFactory:
    return ArchiveFactory(tmp_path_factory.mktemp("chunks"))


# -- what can happen to chunk files ---------------------------------------------------------------


@dataclass(frozen=True)
class Damage:
    """One thing done to the list of chunk contents (``None``: the file is gone)."""

    action: str
    first: int
    second: int = 0
    size: int = 0

    def apply(self, parts: list[bytes | None], other: Archive) -> None:
        count = len(parts)
        i, j = self.first % count, self.second % count
        if self.action == "delete":
            parts[i] = None
        elif self.action == "duplicate":  # one chunk copied over another
            parts[j] = parts[i]
        elif self.action == "swap":  # two chunks renamed into each other's place
            parts[i], parts[j] = parts[j], parts[i]
        elif self.action == "other":  # the same chunk of the other archive
            parts[i] = other.parts[i % len(other.parts)]
        elif self.action == "cut":
            parts[i] = (parts[i] or b"")[: self.size]
        elif self.action == "extend":
            parts[i] = (parts[i] or b"") + b"\x00" * (self.size + 1)


damages = st.builds(
    Damage,
    st.sampled_from(["delete", "duplicate", "swap", "other", "cut", "extend"]),
    st.integers(0, 20),
    st.integers(0, 20),
    st.integers(0, 1000),
)


def damaged_parts(archive: Archive, other: Archive, steps: list[Damage]) -> list[bytes | None]:
    parts: list[bytes | None] = list(archive.parts)
    for step in steps:
        step.apply(parts, other)
    return parts


def restore_files(
    archive: Archive, parts: list[bytes | None], work: Path, *, manifest: bool
) -> stc.UnpackResult | Exception:
    """``unpack`` of the archive's chunk files replaced by ``parts``."""
    prefix = archive.copy_to(work / "in")
    write_parts(prefix, parts)
    if not manifest:
        (work / "in" / "b.manifest.json").unlink()
    try:
        return sync.unpack(prefix, work / "out")
    except (stc.ChecksumMismatchError, stc.MissingChunkError, *DECODE_ERRORS) as error:
        return error


# -- with the manifest -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
@settings(max_examples=20, deadline=None)
@given(
    steps=st.lists(damages, min_size=1, max_size=3),
    read_size=st.sampled_from([local.READ_SIZE, 500]),
)
def test_the_first_chunk_that_is_not_the_packed_one_is_named(
    archives: ArchiveFactory, kind: CompressionType, steps: list[Damage], read_size: int
) -> None:
    archive, other = archives.get(kind), archives.get(kind, OTHER_TREE)
    parts = damaged_parts(archive, other, steps)
    work = archives.scratch()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(local, "READ_SIZE", read_size)
        result = restore_files(archive, parts, work, manifest=True)
    bad = [
        i for i, (now, packed) in enumerate(zip(parts, archive.parts, strict=True)) if now != packed
    ]
    if not bad:
        assert isinstance(result, stc.UnpackResult)
        assert_whole(work / "out", archive.expected)
    elif parts[bad[0]] is None:
        assert isinstance(result, stc.MissingChunkError)
        assert result.index == bad[0]
    else:
        assert isinstance(result, stc.ChecksumMismatchError)
        assert result.name == archive.names[bad[0]]
    assert_nothing_false(work / "out", archive.expected)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
def test_any_chunk_of_another_archive_is_a_checksum_mismatch(
    archives: ArchiveFactory, kind: CompressionType
) -> None:
    """Same settings, same tree shape, same sizes: only the SHA-256 tells the chunks apart."""
    archive, other = archives.get(kind), archives.get(kind, OTHER_TREE)
    assert len(other.parts) == len(archive.parts)
    for index in range(len(archive.parts)):
        parts: list[bytes | None] = list(archive.parts)
        parts[index] = other.parts[index]
        work = archives.scratch()
        result = restore_files(archive, parts, work, manifest=True)
        if other.parts[index] == archive.parts[index]:  # tar padding both archives share
            assert isinstance(result, stc.UnpackResult)
        else:
            assert isinstance(result, stc.ChecksumMismatchError)
            assert result.name == archive.names[index]
        assert_nothing_false(work / "out", archive.expected)


@pytest.mark.parametrize("kind", SOME_KINDS, ids=str)
def test_the_other_archives_manifest_with_these_chunks_is_a_checksum_mismatch(
    archives: ArchiveFactory, kind: CompressionType
) -> None:
    archive, other = archives.get(kind), archives.get(kind, OTHER_TREE)
    work = archives.scratch()
    prefix = archive.copy_to(work / "in")
    (work / "in" / "b.manifest.json").write_text(other.manifest.to_json())
    with pytest.raises(stc.ChecksumMismatchError, match=r"b\.part0000"):
        sync.unpack(prefix, work / "out")
    assert_nothing_false(work / "out", {})


@pytest.mark.parametrize("kind", SOME_KINDS, ids=str)
def test_an_extra_chunk_beside_the_manifest_is_ignored_by_unpack_and_reported_by_verify(
    archives: ArchiveFactory, kind: CompressionType
) -> None:
    """The manifest's list is authoritative: unpack reads what it lists; verify names the rest."""
    archive = archives.get(kind)
    work = archives.scratch()
    prefix = archive.copy_to(work / "in")
    extra = f"b.part{len(archive.parts):04d}"
    (work / "in" / extra).write_bytes(archive.parts[0])
    sync.unpack(prefix, work / "out")
    assert_whole(work / "out", archive.expected)
    report = sync.verify(prefix)
    assert report.problems == [f"{extra}: extra chunk, not in the manifest"]
    with pytest.raises(stc.ArchiveDamagedError, match=extra):
        report.raise_for_problems()


# -- without a manifest ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
@settings(max_examples=15, deadline=None)
@given(steps=st.lists(damages, min_size=1, max_size=3))
def test_damaged_chunks_without_a_manifest(
    archives: ArchiveFactory, kind: CompressionType, steps: list[Damage]
) -> None:
    """Nothing checks the bytes, but every failure is one of ours and leaves no temp file; a
    chunk missing before the last is a MissingChunkError naming it."""
    archive, other = archives.get(kind), archives.get(kind, OTHER_TREE)
    parts = damaged_parts(archive, other, steps)
    work = archives.scratch()
    result = restore_files(archive, parts, work, manifest=False)
    present = [i for i, part in enumerate(parts) if part is not None]
    gaps = [i for i in range(len(parts)) if parts[i] is None and i < max(present, default=-1)]
    if not present:
        assert isinstance(result, stc.MissingChunkError) and result.index == 0
    elif gaps:
        assert isinstance(result, stc.MissingChunkError) and result.index == gaps[0]
    elif parts == list(archive.parts):
        assert_whole(work / "out", archive.expected)
    else:
        assert isinstance(result, (stc.UnpackResult, *DECODE_ERRORS))
    assert not list((work / "out").rglob(".stc-*.tmp"))


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
@pytest.mark.parametrize("missing", ["first", "middle"])
def test_a_gap_in_the_chunk_numbers_is_a_missing_chunk(
    archives: ArchiveFactory, kind: CompressionType, missing: str
) -> None:
    """It used to be read past, as if the chunks after the gap came right after the one before."""
    archive = archives.get(kind)
    index = 0 if missing == "first" else len(archive.parts) // 2
    parts: list[bytes | None] = list(archive.parts)
    parts[index] = None
    work = archives.scratch()
    result = restore_files(archive, parts, work, manifest=False)
    assert isinstance(result, stc.MissingChunkError)
    assert result.index == index
    assert not (work / "out").exists()


@pytest.mark.parametrize("kind", COMPRESSED_KINDS, ids=str)
def test_a_missing_last_chunk_without_a_manifest_is_a_truncated_stream(
    archives: ArchiveFactory, kind: CompressionType
) -> None:
    archive = archives.get(kind)
    parts: list[bytes | None] = [*archive.parts[:-1], None]
    work = archives.scratch()
    result = restore_files(archive, parts, work, manifest=False)
    assert isinstance(result, stc.TruncatedStreamError)
    assert_nothing_false(work / "out", archive.expected)


@pytest.mark.parametrize("kind", COMPRESSED_KINDS, ids=str)
def test_an_extra_chunk_without_a_manifest_is_trailing_garbage(
    archives: ArchiveFactory, kind: CompressionType
) -> None:
    archive, other = archives.get(kind), archives.get(kind, OTHER_TREE)
    work = archives.scratch()
    prefix = archive.copy_to(work / "in")
    (work / "in" / "b.manifest.json").unlink()
    (work / "in" / f"b.part{len(archive.parts):04d}").write_bytes(other.parts[1])
    with pytest.raises(stc.CorruptStreamError):
        sync.unpack(prefix, work / "out")
    assert not list((work / "out").rglob(".stc-*.tmp"))


def test_two_files_with_the_same_chunk_number_are_refused(archives: ArchiveFactory) -> None:
    archive = archives.get(CompressionType.GZIP)
    work = archives.scratch()
    prefix = archive.copy_to(work / "in")
    (work / "in" / "b.manifest.json").unlink()
    (work / "in" / "b.part1").write_bytes(archive.parts[1])
    with pytest.raises(stc.UsageError, match=r"b\.part0001 and b\.part1|b\.part1 and b\.part0001"):
        sync.unpack(prefix, work / "out")
    assert not (work / "out").exists()


# -- the push API: (index, bytes) in any order ---------------------------------------------------


def push_chunks(
    archive: Archive, items: list[tuple[int, bytes]], out: Path, window: int
) -> stc.UnpackResult | Exception:
    unpacker = StreamUnpacker(str(out), manifest=archive.manifest, reorder_window=window)
    try:
        for item in items:
            unpacker.push(item)
        return unpacker.finish()
    except (stc.ChecksumMismatchError, stc.MissingChunkError, stc.UsageError) as error:
        unpacker.abort()
        return error


@pytest.mark.parametrize("kind", SOME_KINDS, ids=str)
@settings(max_examples=25, deadline=None)
@given(data=st.data(), window=st.integers(1, 4))
def test_pushed_chunks_in_any_order_with_duplicates_and_strays(
    archives: ArchiveFactory, kind: CompressionType, data: st.DataObject, window: int
) -> None:
    """Any mix of the archive's chunks (some twice, some never) and the other archive's: the
    whole tree, or one of the errors that name the chunk, and nothing false left."""
    archive, other = archives.get(kind), archives.get(kind, OTHER_TREE)
    count = len(archive.parts)
    source = st.tuples(st.integers(0, count - 1), st.sampled_from(["ours", "ours", "other"]))
    picks = data.draw(st.lists(source, min_size=1, max_size=2 * count), label="pushes")
    items = [(i, archive.parts[i] if which == "ours" else other.parts[i]) for i, which in picks]
    out = archives.scratch()
    result = push_chunks(archive, items, out, window)
    if isinstance(result, stc.UnpackResult):
        assert_whole(out, archive.expected)
        assert {i for i, _ in items} == set(range(count))
    else:
        assert isinstance(result, (stc.ChecksumMismatchError, stc.MissingChunkError))
    assert_nothing_false(out, archive.expected)


@pytest.mark.parametrize("kind", SOME_KINDS, ids=str)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_pushed_chunks_reordered_within_the_window_restore_the_tree(
    archives: ArchiveFactory, kind: CompressionType, data: st.DataObject
) -> None:
    archive = archives.get(kind)
    count = len(archive.parts)
    order = data.draw(st.permutations(range(count)), label="order")
    # The window a reorder needs: how far ahead of the next expected chunk any chunk arrives.
    seen: set[int] = set()
    window, next_index = 1, 0
    for index in order:
        window = max(window, index - next_index + 1)
        seen.add(index)
        while next_index in seen:
            next_index += 1
    items = [(i, archive.parts[i]) for i in order] + [(order[0], archive.parts[order[0]])]
    out = archives.scratch()
    result = push_chunks(archive, items, out, window)
    assert isinstance(result, stc.UnpackResult)
    assert_whole(out, archive.expected)


@pytest.mark.parametrize("kind", SOME_KINDS, ids=str)
def test_pushed_chunk_of_another_archive_names_the_chunk(
    archives: ArchiveFactory, kind: CompressionType
) -> None:
    archive, other = archives.get(kind), archives.get(kind, OTHER_TREE)
    items = [(i, archive.parts[i]) for i in range(len(archive.parts))]
    items[1] = (1, other.parts[1])
    out = archives.scratch()
    result = push_chunks(archive, items, out, 4)
    assert isinstance(result, stc.ChecksumMismatchError)
    assert result.name == archive.names[1]
    assert_nothing_false(out, archive.expected)
    # A differing second copy of a chunk already delivered is refused too.
    out = archives.scratch()
    items = [(0, archive.parts[0]), (0, other.parts[0])]
    result = push_chunks(archive, items, out, 4)
    assert isinstance(result, stc.ChecksumMismatchError)
    assert "chunk 0" in str(result)


@pytest.mark.parametrize("kind", SOME_KINDS, ids=str)
def test_pushed_chunks_with_one_never_sent_name_it(
    archives: ArchiveFactory, kind: CompressionType
) -> None:
    archive = archives.get(kind)
    for missing in (0, len(archive.parts) - 1):
        items = [(i, archive.parts[i]) for i in range(len(archive.parts)) if i != missing]
        out = archives.scratch()
        result = push_chunks(archive, items, out, len(archive.parts))
        assert isinstance(result, stc.MissingChunkError)
        assert result.index == missing
        assert_nothing_false(out, archive.expected)


@pytest.mark.parametrize("kind", SOME_KINDS, ids=str)
def test_a_pushed_chunk_beyond_the_manifest_is_refused(
    archives: ArchiveFactory, kind: CompressionType
) -> None:
    """An index the manifest does not list is the caller's mistake: a UsageError naming it."""
    archive = archives.get(kind)
    count = len(archive.parts)
    items = [(i, archive.parts[i]) for i in range(count)]
    items.insert(1, (count, archive.parts[0]))
    out = archives.scratch()
    result = push_chunks(archive, items, out, 4)
    assert isinstance(result, stc.UsageError)
    assert f"chunk index {count} is out of range (the archive has {count} chunks)" in str(result)
    assert_nothing_false(out, archive.expected)


# -- blocks checked before they are decoded ------------------------------------------------------


@pytest.mark.parametrize("damaged_reads", [1, 3])
def test_a_bad_block_is_read_again_then_stops_the_unpack_before_any_of_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damaged_reads: int
) -> None:
    """With block digests, a local unpack checks each block before decoding it: a chunk
    read damaged once is read again and the unpack goes on; one damaged on every read stops
    it naming that chunk, leaving only files whose bytes all lie in the blocks before it,
    each whole under its own name (how many of them depends on how far the file operations
    got: the rest is left to --resume, which then finishes the tree)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    files = {f"f{i:03d}": bytes([i]) * 3000 for i in range(120)}  # ~430 kB of tar
    for name, data in files.items():
        (tree / name).write_bytes(data)
    packed = stc.pack(
        [tree], tmp_path / "a", compression="zstd", chunk_size=100_000, block_size=65536
    )
    chunks = packed.manifest.chunks
    middle = len(packed.manifest.blocks) // 2
    offset = packed.manifest.blocks[middle][1] + 10  # in a middle block
    joined = b"".join((tmp_path / c.name).read_bytes() for c in packed.manifest.chunks)
    stream = zstandard.ZstdDecompressor().stream_reader(joined, read_across_frames=True).read()
    with tarfile.open(fileobj=io.BytesIO(stream)) as archive:
        before = {
            Path(m.name).name
            for m in archive.getmembers()
            if m.isfile() and m.offset_data + m.size <= packed.manifest.blocks[middle][0]
        }
    starts = [sum(c.size for c in chunks[:i]) for i in range(len(chunks))]
    index = max(i for i, start in enumerate(starts) if start <= offset)
    victim, flipped = str(tmp_path / chunks[index].name), offset - starts[index]
    reads_left = [damaged_reads]  # reads of the damaged byte that see it flipped

    class DamagingReads(io.FileIO):
        """The victim chunk, its byte flipped in the next ``reads_left`` reads that cover it
        (however the reads of other blocks in it are ordered by the prefetch threads)."""

        def read(self, size: int = -1) -> bytes:
            start = self.tell()
            data = bytearray(super().read(size) or b"")
            if start <= flipped < start + len(data) and reads_left[0]:
                reads_left[0] -= 1
                data[flipped - start] ^= 1
            return bytes(data)

    opened = local.open_regular_file

    def damaging_open(path: str) -> io.FileIO:
        return DamagingReads(path) if path == victim else opened(path)

    monkeypatch.setattr(local, "open_regular_file", damaging_open)
    out = tmp_path / "out"
    restored = out / tree.relative_to("/")
    if damaged_reads == 1:
        stc.unpack(tmp_path / "a", out)
        assert {p.name: p.read_bytes() for p in restored.iterdir()} == files
        assert reads_left == [0], "the damaged byte was read"
        return
    with pytest.raises(stc.ChecksumMismatchError, match=chunks[index].name):
        stc.unpack(tmp_path / "a", out)
    # the folder itself may not be made yet: the operations may have got nowhere
    made = {p.name: p.read_bytes() for p in restored.iterdir()} if restored.exists() else {}
    assert set(made) <= before < set(files)  # no file of the block or after it
    assert all(files[name] == data for name, data in made.items())  # whole, no temp names
    reads_left[0] = 0  # the chunk reads well again: --resume finishes the tree
    stc.unpack(tmp_path / "a", out, resume=True)
    assert {p.name: p.read_bytes() for p in restored.iterdir()} == files
