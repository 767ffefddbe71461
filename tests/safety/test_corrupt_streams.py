"""Whole unpacks of damaged archives: the package's errors only, and nothing false left behind.

Damage: random bytes, a cut at any byte, a flipped bit, bytes after the end, nothing at all.
Paths: ``unpack_stream`` (no manifest), ``unpack`` of chunk files with the manifest (every
chunk verified), with ``verify_checksum=False``, and without a manifest, and the push API with
the serial and the parallel decoder. After every failure no temporary file is left, and every
file under its final name is what the intact archive restores there; with verification on,
a damaged chunk is reported as such, by name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streaming_tar_compressor as stc
from streaming_tar_compressor import sync
from streaming_tar_compressor.models import CompressionType
from streaming_tar_compressor.pipeline.unpack import StreamUnpacker
from streaming_tar_compressor.storage import local
from tests.safety.corrupt_archives import (
    ALL_KINDS,
    CHUNK_SIZE,
    COMPRESSED_KINDS,
    DECODE_ERRORS,
    Archive,
    ArchiveFactory,
    assert_nothing_false,
    assert_whole,
    cut,
    flip,
    write_parts,
)

pytestmark = pytest.mark.timeout(120)

FEW = settings(max_examples=15, deadline=None)
pieces = st.integers(1, 5000)
fractions = st.floats(0, 1, exclude_max=True)
bits = st.integers(0, 7)


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> ArchiveFactory:
    return ArchiveFactory(tmp_path_factory.mktemp("streams"))


def resplit(stream: bytes, count: int) -> list[bytes | None]:
    """A damaged stream cut into ``count`` chunk files as the packer cut the intact one;
    ``None`` for the files a shorter stream no longer reaches."""
    parts: list[bytes | None] = [
        stream[start : start + CHUNK_SIZE] for start in range(0, len(stream), CHUNK_SIZE)
    ]
    return parts + [None] * (count - len(parts))


def restore_stream(data: bytes, out: Path, piece: int) -> stc.UnpackResult | Exception:
    """unpack_stream's result, or the error it raised when it is one of DECODE_ERRORS."""
    try:
        return sync.unpack_stream(cut(data, piece), out)
    except DECODE_ERRORS as error:
        return error


def temp_files(out: Path) -> list[Path]:
    return list(out.rglob(".stc-*.tmp"))


# -- no manifest: unpack_stream ------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2000), piece=pieces)
def test_random_bytes_are_corrupt_or_an_empty_archive(
    archives: ArchiveFactory, data: bytes, piece: int
) -> None:
    out = archives.scratch()
    result = restore_stream(data, out, piece)
    if isinstance(result, stc.UnpackResult):
        # 512 zero bytes and more are a tar end-of-archive marker: an empty archive.
        assert result.members == 0 and len(data) >= 512 and not any(data[:512])
    assert not [path for path in out.rglob("*") if not path.is_dir()]


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
@FEW
@given(fraction=fractions, piece=pieces)
def test_a_stream_cut_anywhere_is_truncated_and_leaves_only_whole_files(
    archives: ArchiveFactory, kind: CompressionType, fraction: float, piece: int
) -> None:
    """Files appear only once all their bytes decoded; a cut that only drops what follows the
    tar end (the zstd seek table, tar's zero padding) restores the whole tree."""
    archive = archives.get(kind)
    data = archive.stream[: int(fraction * len(archive.stream))]
    out = archives.scratch()
    result = restore_stream(data, out, piece)
    if isinstance(result, stc.UnpackResult):
        assert_whole(out, archive.expected)
    elif kind is CompressionType.NONE and len(data) < 512:
        # Less than one tar header: nothing tells it from other bytes.
        assert isinstance(result, stc.CorruptStreamError)
    else:
        assert isinstance(result, stc.TruncatedStreamError), result
    assert_nothing_false(out, archive.expected)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
@FEW
@given(position=st.integers(0), bit=bits, piece=pieces)
def test_a_flipped_bit_without_checksums_is_refused_or_harmless(
    archives: ArchiveFactory, kind: CompressionType, position: int, bit: int, piece: int
) -> None:
    """Codecs check their data, so a flip is refused or changed nothing; with "none" only the
    tar header checksums are there, so file data may change (nothing verifies it: no manifest)."""
    archive = archives.get(kind)
    data = flip(archive.stream, position % len(archive.stream), bit)
    out = archives.scratch()
    result = restore_stream(data, out, piece)
    if isinstance(result, stc.UnpackResult) and kind is not CompressionType.NONE:
        assert_whole(out, archive.expected)
    assert not temp_files(out)


@pytest.mark.parametrize("kind", COMPRESSED_KINDS, ids=str)
@settings(max_examples=10, deadline=None)
@given(junk=st.binary(min_size=1, max_size=300).filter(any), piece=pieces)
def test_garbage_after_a_valid_stream_is_corrupt(
    archives: ArchiveFactory, kind: CompressionType, junk: bytes, piece: int
) -> None:
    archive = archives.get(kind)
    out = archives.scratch()
    result = restore_stream(archive.stream + junk, out, piece)
    assert isinstance(result, stc.CorruptStreamError)
    assert_nothing_false(out, archive.expected)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
@pytest.mark.parametrize("zeros", [3, 4, 1024])
def test_zero_padding_after_a_valid_stream(
    archives: ArchiveFactory, kind: CompressionType, zeros: int
) -> None:
    """gzip accepts zeros (as gzip -t does), xz multiples of four (Stream Padding), and after
    "none" the tar layer ignores what follows its end; zstd, lz4 and bzip2 refuse them."""
    archive = archives.get(kind)
    out = archives.scratch()
    result = restore_stream(archive.stream + bytes(zeros), out, 700)
    accepted = kind in (CompressionType.GZIP, CompressionType.NONE) or (
        kind is CompressionType.XZ and zeros % 4 == 0
    )
    if accepted:
        assert isinstance(result, stc.UnpackResult)
        assert_whole(out, archive.expected)
    else:
        assert isinstance(result, stc.CorruptStreamError)


def test_no_bytes_at_all_is_a_truncated_stream(tmp_path: Path) -> None:
    for nothing in ([], [b""], [b"", b""]):
        with pytest.raises(stc.TruncatedStreamError, match="empty"):
            sync.unpack_stream(nothing, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("kind", COMPRESSED_KINDS, ids=str)
def test_a_stated_codec_that_contradicts_the_bytes_is_refused(
    archives: ArchiveFactory, kind: CompressionType
) -> None:
    with pytest.raises(stc.CompressionMismatchError):
        sync.unpack_stream([archives.get(kind).stream], archives.scratch(), compression="none")


# -- chunk files with the manifest: every chunk verified ---------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
@settings(max_examples=20, deadline=None)
@given(data=st.data(), bit=bits, read_size=st.sampled_from([local.READ_SIZE, 500]))
def test_a_flipped_bit_in_a_chunk_is_a_checksum_mismatch_naming_it(
    archives: ArchiveFactory, kind: CompressionType, data: st.DataObject, bit: int, read_size: int
) -> None:
    """Also when chunks are read in pieces smaller than a chunk (500 bytes), so decoding
    reaches the damage before the chunk's SHA-256 is complete: that used to be reported as a
    corrupt stream or an unsafe member, not as the damaged chunk."""
    archive = archives.get(kind)
    index = data.draw(st.integers(0, len(archive.parts) - 1), label="chunk")
    position = data.draw(st.integers(0, len(archive.parts[index]) - 1), label="position")
    parts: list[bytes | None] = list(archive.parts)
    parts[index] = flip(archive.parts[index], position, bit)
    work = archives.scratch()
    prefix = archive.copy_to(work / "in")
    write_parts(prefix, parts)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(local, "READ_SIZE", read_size)
        with pytest.raises(stc.ChecksumMismatchError) as info:
            sync.unpack(prefix, work / "out")
    assert info.value.name == archive.names[index]
    assert archive.names[index] in str(info.value)
    assert_nothing_false(work / "out", archive.expected)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
@FEW
@given(fraction=fractions)
def test_a_cut_archive_names_the_short_or_missing_chunk(
    archives: ArchiveFactory, kind: CompressionType, fraction: float
) -> None:
    archive = archives.get(kind)
    length = int(fraction * len(archive.stream))
    parts = resplit(archive.stream[:length], len(archive.parts))
    first_bad = length // CHUNK_SIZE
    work = archives.scratch()
    prefix = archive.copy_to(work / "in")
    write_parts(prefix, parts)
    if length % CHUNK_SIZE:
        with pytest.raises(stc.ChecksumMismatchError) as info:
            sync.unpack(prefix, work / "out")
        assert info.value.name == archive.names[first_bad]
    else:
        with pytest.raises(stc.MissingChunkError) as missing:
            sync.unpack(prefix, work / "out")
        assert missing.value.index == first_bad
    assert_nothing_false(work / "out", archive.expected)


@pytest.mark.parametrize("kind", [CompressionType.GZIP, CompressionType.NONE], ids=str)
@settings(max_examples=10, deadline=None)
@given(data=st.data(), junk=st.binary(min_size=1, max_size=50))
def test_bytes_added_to_a_chunk_name_that_chunk(
    archives: ArchiveFactory, kind: CompressionType, data: st.DataObject, junk: bytes
) -> None:
    """Bytes added to the last chunk used to be reported as "the whole stream"; the check now
    stops at the first byte past a chunk's size, whichever chunk it is."""
    archive = archives.get(kind)
    index = data.draw(st.integers(0, len(archive.parts) - 1), label="chunk")
    parts: list[bytes | None] = list(archive.parts)
    parts[index] = archive.parts[index] + junk
    work = archives.scratch()
    prefix = archive.copy_to(work / "in")
    write_parts(prefix, parts)
    with pytest.raises(stc.ChecksumMismatchError, match="more than") as info:
        sync.unpack(prefix, work / "out")
    assert info.value.name == archive.names[index]
    assert_nothing_false(work / "out", archive.expected)


@pytest.mark.parametrize("kind", [CompressionType.GZIP, CompressionType.ZSTD], ids=str)
def test_an_empty_chunk_file_is_a_checksum_mismatch(
    archives: ArchiveFactory, kind: CompressionType
) -> None:
    archive = archives.get(kind)
    work = archives.scratch()
    prefix = archive.copy_to(work / "in")
    write_parts(prefix, [b""])
    with pytest.raises(stc.ChecksumMismatchError, match="got 0 bytes") as info:
        sync.unpack(prefix, work / "out")
    assert info.value.name == archive.names[0]
    assert_nothing_false(work / "out", archive.expected)


# -- unchecked: verify_checksum=False, or no manifest --------------------------------------------


def push_all(
    archive: Archive, stream: bytes, out: Path, *, workers: int, piece: int
) -> stc.UnpackResult | Exception:
    """The push API without checksums, with the serial (1) or parallel (2) block decoder."""
    unpacker = StreamUnpacker(
        str(out), manifest=archive.manifest, verify_checksum=False, workers=workers
    )
    try:
        for part in cut(stream, piece):
            unpacker.push(part)
        return unpacker.finish()
    except DECODE_ERRORS as error:
        unpacker.abort()
        return error


@pytest.mark.parametrize("kind", COMPRESSED_KINDS, ids=str)
@FEW
@given(position=st.integers(0), bit=bits, piece=pieces, workers=st.sampled_from([1, 2]))
def test_unchecked_flipped_bit_is_refused_or_harmless(
    archives: ArchiveFactory,
    kind: CompressionType,
    position: int,
    bit: int,
    piece: int,
    workers: int,
) -> None:
    archive = archives.get(kind)
    data = flip(archive.stream, position % len(archive.stream), bit)
    out = archives.scratch()
    result = push_all(archive, data, out, workers=workers, piece=piece)
    if isinstance(result, stc.UnpackResult):
        assert_whole(out, archive.expected)
    assert not temp_files(out)


@pytest.mark.parametrize("kind", COMPRESSED_KINDS, ids=str)
@FEW
@given(
    fraction=fractions,
    junk=st.binary(max_size=20),
    piece=pieces,
    workers=st.sampled_from([1, 2]),
)
def test_unchecked_cut_or_extended_stream_is_corrupt(
    archives: ArchiveFactory,
    kind: CompressionType,
    fraction: float,
    junk: bytes,
    piece: int,
    workers: int,
) -> None:
    """The manifest's sizes no longer match: the parallel decoder's block splitter says so (a
    longer stream used to be a ManifestError), the serial decoder finds the cut or the garbage
    (it cannot see a zstd seek table cut off: the tree is whole then)."""
    archive = archives.get(kind)
    stream = archive.stream
    data = stream[: int(fraction * len(stream))] if not junk else stream + b"\xff" + junk
    out = archives.scratch()
    result = push_all(archive, data, out, workers=workers, piece=piece)
    if isinstance(result, stc.UnpackResult):
        assert (kind, workers, junk) == (CompressionType.ZSTD, 1, b"")
        assert_whole(out, archive.expected)
    else:
        assert isinstance(result, stc.CorruptStreamError)
    assert_nothing_false(out, archive.expected)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
@FEW
@given(
    position=st.integers(0),
    bit=bits,
    cut_there=st.booleans(),
    without_manifest=st.booleans(),
)
def test_unpack_of_unchecked_chunk_files(
    archives: ArchiveFactory,
    kind: CompressionType,
    position: int,
    bit: int,
    cut_there: bool,
    without_manifest: bool,
) -> None:
    """``unpack(verify_checksum=False)``, or chunk files without their manifest, flipped or
    cut: the codec and tar layers refuse it, or (a flip they cannot see, a cut of what follows
    the tar end) the tree is whole."""
    archive = archives.get(kind)
    at = position % len(archive.stream)
    damaged = archive.stream[:at] if cut_there else flip(archive.stream, at, bit)
    work = archives.scratch()
    prefix = archive.copy_to(work / "in")
    write_parts(prefix, resplit(damaged, len(archive.parts)))
    if without_manifest:
        (work / "in" / "b.manifest.json").unlink()
    try:
        sync.unpack(prefix, work / "out", verify_checksum=False)
    except (*DECODE_ERRORS, stc.MissingChunkError):  # a cut may leave whole chunks out
        assert not temp_files(work / "out")
    else:
        if cut_there or kind is not CompressionType.NONE:
            assert_whole(work / "out", archive.expected)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
def test_an_empty_chunk_file_without_manifest_is_a_truncated_stream(
    archives: ArchiveFactory, kind: CompressionType
) -> None:
    archive = archives.get(kind)
    work = archives.scratch()
    prefix = archive.copy_to(work / "in")
    (work / "in" / "b.manifest.json").unlink()
    for part in (work / "in").glob("b.part*"):
        part.unlink()
    (work / "in" / "b.part0000").write_bytes(b"")
    with pytest.raises(stc.TruncatedStreamError, match="empty"):
        sync.unpack(prefix, work / "out")
    assert not list((work / "out").iterdir())
