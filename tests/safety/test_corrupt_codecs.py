"""The sans-IO stages alone on damaged input: only the package's errors, never a wrong result.

Each codec's streaming decoder (``feed``/``read``/``close``), its block decoder and stream check
(``decode_block``, ``check_stream``), and the tar reader get random bytes, every kind of cut,
bit flips and trailing bytes. A decoder may fail only with CorruptStreamError (its subclass
TruncatedStreamError for a cut); where the format checks its data, a flipped bit is refused
or changes nothing.
"""

from __future__ import annotations

import random
import tarfile
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming_tar_compressor.codecs import codec_for
from streaming_tar_compressor.codecs.base import BlockExtent, Codec
from streaming_tar_compressor.core.tar_reader import (
    MemberData,
    MemberEnd,
    MemberStart,
    TarEvent,
    TarReader,
)
from streaming_tar_compressor.errors import CorruptStreamError, TruncatedStreamError
from streaming_tar_compressor.models import CompressionType
from tests.safety.corrupt_archives import ALL_KINDS, COMPRESSED_KINDS, flip

pytestmark = pytest.mark.timeout(120)

FEW = settings(max_examples=60, deadline=None)
BLOCK_SIZE = 4096
# One gzip member, one xz stream: every cut short of the end is inside it.
SINGLE_MEMBER_KINDS = [CompressionType.GZIP, CompressionType.XZ]
# Codecs whose trailer describes the blocks (CRC-32 and size, xz index, zstd seek table).
INDEXED_KINDS = [CompressionType.GZIP, CompressionType.XZ, CompressionType.ZSTD]


@cache
def raw_blocks() -> tuple[bytes, ...]:
    """Text, incompressible bytes (stored blocks) and a short tail."""
    rng = random.Random(7)
    return (b"block of text\n" * 292, rng.randbytes(BLOCK_SIZE), bytes(BLOCK_SIZE), b"tail")


@cache
def framed(kind: CompressionType) -> tuple[bytes, tuple[bytes, ...], bytes]:
    """Header, each block's bytes and trailer of a stream of raw_blocks()."""
    encoder = codec_for(kind).new_encoder(codec_for(kind).default_level, BLOCK_SIZE)
    blocks = tuple(encoder.add_block(encoder.encode_block(block)) for block in raw_blocks())
    return encoder.header(), blocks, encoder.trailer()


def stream(kind: CompressionType) -> bytes:
    header, blocks, trailer = framed(kind)
    return header + b"".join(blocks) + trailer


def decode(codec: Codec, data: bytes, piece: int, read_size: int) -> bytes:
    """Feed ``data`` in pieces, reading after each as the pipeline does, then close."""
    decoder = codec.new_decoder()
    out = bytearray()
    for start in range(0, len(data), piece):
        decoder.feed(data[start : start + piece])
        while chunk := decoder.read(read_size):
            assert len(chunk) <= read_size
            out += chunk
    decoder.close()
    return bytes(out)


def decode_or_error(codec: Codec, data: bytes, piece: int, read_size: int) -> bytes | Exception:
    """The decoded bytes, or the CorruptStreamError; anything else fails the test."""
    try:
        return decode(codec, data, piece, read_size)
    except CorruptStreamError as error:
        return error


pieces = st.integers(1, 3000)
read_sizes = st.sampled_from([1, 7, 512, 65_536])


# -- streaming decoders ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
@FEW
@given(data=st.binary(max_size=600), piece=pieces, read_size=read_sizes)
def test_random_bytes_decode_or_are_corrupt(
    kind: CompressionType, data: bytes, piece: int, read_size: int
) -> None:
    result = decode_or_error(codec_for(kind), data, piece, read_size)
    if kind is CompressionType.NONE:
        assert result == data
    else:
        assert isinstance(result, CorruptStreamError)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
@FEW
@given(head=st.integers(0, 40), garbage=st.binary(min_size=1, max_size=300), piece=pieces)
def test_a_valid_start_then_garbage_is_corrupt(
    kind: CompressionType, head: int, garbage: bytes, piece: int
) -> None:
    data = stream(kind)[:head] + garbage
    result = decode_or_error(codec_for(kind), data, piece, 65_536)
    assert isinstance(result, CorruptStreamError) or kind is CompressionType.NONE


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
@FEW
@given(fraction=st.floats(0, 1, exclude_max=True), piece=pieces, read_size=read_sizes)
def test_a_cut_stream_is_truncated_or_decodes_a_prefix(
    kind: CompressionType, fraction: float, piece: int, read_size: int
) -> None:
    """Cut anywhere: TruncatedStreamError, or (between whole frames or streams, which the
    format cannot tell from an end) exactly the data of the frames before the cut."""
    whole = stream(kind)
    data = whole[: int(fraction * len(whole))]
    result = decode_or_error(codec_for(kind), data, piece, read_size)
    if kind is CompressionType.NONE:
        assert result == data
    elif kind in SINGLE_MEMBER_KINDS or not data:
        assert isinstance(result, TruncatedStreamError)
    else:
        assert isinstance(result, TruncatedStreamError) or b"".join(raw_blocks()).startswith(result)


@pytest.mark.parametrize("kind", COMPRESSED_KINDS, ids=str)
@FEW
@given(position=st.integers(0), bit=st.integers(0, 7), piece=pieces)
def test_a_flipped_bit_is_corrupt_or_changes_nothing(
    kind: CompressionType, position: int, bit: int, piece: int
) -> None:
    """Every codec checks its data (CRC-32, xxHash, the index): a flip never decodes wrong."""
    whole = stream(kind)
    result = decode_or_error(codec_for(kind), flip(whole, position % len(whole), bit), piece, 512)
    assert isinstance(result, CorruptStreamError) or result == b"".join(raw_blocks())


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
def test_empty_input(kind: CompressionType) -> None:
    """Zero bytes are no stream, except for "none", whose empty stream the tar layer refuses."""
    result = decode_or_error(codec_for(kind), b"", 1, 512)
    if kind is CompressionType.NONE:
        assert result == b""
    else:
        assert isinstance(result, TruncatedStreamError)


# -- trailing bytes: the policy -------------------------------------------------------------------
# Garbage after a valid stream is CorruptStreamError for every codec (gzip -t: "trailing
# garbage"); zero padding only where the format or its reference tool allows it: after gzip
# (tar pads its output; gzip -t accepts it silently) and, in multiples of four, after xz
# (Stream Padding, xz-file-format 2.2). zstd, lz4 and bzip2 refuse zeros as their CLIs do.
# "none" has no framing: what follows the tar end-of-archive is the tar layer's to ignore.


def zero_padding_ok(kind: CompressionType, zeros: int) -> bool:
    return kind is CompressionType.GZIP or (kind is CompressionType.XZ and zeros % 4 == 0)


@pytest.mark.parametrize("kind", COMPRESSED_KINDS, ids=str)
@FEW
@given(junk=st.binary(min_size=1, max_size=200).filter(any), piece=pieces)
def test_garbage_after_a_valid_stream_is_corrupt(
    kind: CompressionType, junk: bytes, piece: int
) -> None:
    result = decode_or_error(codec_for(kind), stream(kind) + junk, piece, 65_536)
    assert isinstance(result, CorruptStreamError)


@pytest.mark.parametrize("kind", COMPRESSED_KINDS, ids=str)
@pytest.mark.parametrize("zeros", [1, 3, 4, 512])
def test_zero_padding_after_a_valid_stream(kind: CompressionType, zeros: int) -> None:
    result = decode_or_error(codec_for(kind), stream(kind) + bytes(zeros), 100, 65_536)
    if zero_padding_ok(kind, zeros):
        assert result == b"".join(raw_blocks())
    else:
        assert isinstance(result, CorruptStreamError)


# -- block decoders and the stream check (the parallel path) ---------------------------------------

block_numbers = st.integers(0, len(raw_blocks()) - 1)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
@FEW
@given(data=st.binary(max_size=300), raw_size=st.integers(0, 10_000))
def test_decode_block_refuses_garbage(kind: CompressionType, data: bytes, raw_size: int) -> None:
    codec = codec_for(kind)
    try:
        decoded = codec.decode_block(data, raw_size)
    except CorruptStreamError:
        return
    assert kind is CompressionType.NONE and decoded.data == data


@pytest.mark.parametrize("kind", COMPRESSED_KINDS, ids=str)
@FEW
@given(number=block_numbers, position=st.integers(0), bit=st.integers(0, 7))
def test_decode_block_and_check_stream_never_accept_wrong_data_for_a_flipped_bit(
    kind: CompressionType, number: int, position: int, bit: int
) -> None:
    """Each block's own check (xz CRC-32, zstd and lz4 xxHash, bzip2 CRC) refuses it at once;
    gzip has one CRC-32 for the stream, so only check_stream can, from the blocks' CRCs."""
    codec = codec_for(kind)
    header, blocks, trailer = framed(kind)
    damaged = flip(blocks[number], position % len(blocks[number]), bit)
    try:
        decoded = codec.decode_block(damaged, len(raw_blocks()[number]))
        if decoded.data != raw_blocks()[number]:
            assert kind is CompressionType.GZIP
            found = extents(kind)
            found[number] = BlockExtent(len(decoded.data), len(damaged), decoded.raw_crc32)
            with pytest.raises(CorruptStreamError):
                codec.check_stream(header, trailer, found)
    except CorruptStreamError:
        pass


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
@FEW
@given(number=block_numbers, keep=st.floats(0, 1, exclude_max=True), extra=st.binary(max_size=9))
def test_decode_block_refuses_cut_blocks_and_wrong_sizes(
    kind: CompressionType, number: int, keep: float, extra: bytes
) -> None:
    codec = codec_for(kind)
    data, raw = framed(kind)[1][number], raw_blocks()[number]
    with pytest.raises(CorruptStreamError):
        codec.decode_block(data[: int(keep * len(data))], len(raw))
    with pytest.raises(CorruptStreamError):
        codec.decode_block(data, len(raw) + 1)
    # Bytes after a block: refused, or (an empty deflate stored block after a gzip block)
    # decoding to the same data.
    try:
        assert codec.decode_block(data + extra, len(raw)).data == raw
    except CorruptStreamError:
        assert extra


def extents(kind: CompressionType) -> list[BlockExtent]:
    codec = codec_for(kind)
    blocks = framed(kind)[1]
    return [
        BlockExtent(len(raw), len(data), codec.decode_block(data, len(raw)).raw_crc32)
        for raw, data in zip(raw_blocks(), blocks, strict=True)
    ]


@pytest.mark.parametrize("kind", INDEXED_KINDS, ids=str)
@FEW
@given(position=st.integers(0), bit=st.integers(0, 7), keep=st.floats(0, 1, exclude_max=True))
def test_check_stream_refuses_any_flipped_or_cut_trailer(
    kind: CompressionType, position: int, bit: int, keep: float
) -> None:
    header, _, trailer = framed(kind)
    codec = codec_for(kind)
    codec.check_stream(header, trailer, extents(kind))
    with pytest.raises(CorruptStreamError):
        codec.check_stream(header, flip(trailer, position % len(trailer), bit), extents(kind))
    with pytest.raises(CorruptStreamError):
        codec.check_stream(header, trailer[: int(keep * len(trailer))], extents(kind))


@pytest.mark.parametrize("kind", ALL_KINDS, ids=str)
@FEW
@given(header=st.binary(max_size=40), trailer=st.binary(max_size=80), count=st.integers(0, 4))
def test_check_stream_refuses_garbage(
    kind: CompressionType, header: bytes, trailer: bytes, count: int
) -> None:
    blocks = extents(kind)[:count]
    try:
        codec_for(kind).check_stream(header, trailer, blocks)
    except CorruptStreamError:
        return
    # Only the codecs without header and trailer (lz4 and bzip2 with blocks, none) pass, and
    # only with nothing there.
    assert not header and not trailer
    assert kind in (CompressionType.LZ4, CompressionType.BZIP2, CompressionType.NONE)
    assert count or kind is CompressionType.NONE


# -- the tar reader -----------------------------------------------------------------------------


@cache
def tar_stream() -> bytes:
    """pax headers (long and non-ASCII names), a GNU long name, links, a folder, data."""
    rng = random.Random(3)
    members: list[tuple[tarfile.TarInfo, bytes, int]] = []
    for name, size in (("a.txt", 700), ("é/" + "x" * 150, 1500), ("empty", 0)):
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.uname = size, 1_700_000_000, "ü" * 40
        members.append((info, rng.randbytes(size), tarfile.PAX_FORMAT))
    for name, kind in (("dir", tarfile.DIRTYPE), ("link", tarfile.SYMTYPE)):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, "y" * 120 if kind == tarfile.SYMTYPE else ""
        members.append((info, b"", tarfile.PAX_FORMAT))
    info = tarfile.TarInfo("gnu/" + "g" * 120)
    info.size = 10
    members.append((info, b"gnu data!!", tarfile.GNU_FORMAT))
    blocks = [
        info.tobuf(form, "utf-8", "surrogateescape") + data + bytes(-len(data) % 512)
        for info, data, form in members
    ]
    return b"".join(blocks) + bytes(1024)


def read_tar(data: bytes, piece: int) -> list[TarEvent] | CorruptStreamError:
    """All events, or the CorruptStreamError; anything else fails the test."""
    reader = TarReader()
    events: list[TarEvent] = []
    try:
        for start in range(0, len(data), piece):
            events += [
                MemberData(bytes(event.data)) if isinstance(event, MemberData) else event
                for event in reader.feed(data[start : start + piece])
            ]
        events += reader.finish()
    except CorruptStreamError as error:
        return error
    return events


def test_the_sample_tar_stream_reads_whole() -> None:
    events = read_tar(tar_stream(), 512)
    assert not isinstance(events, Exception)
    names = [event.member.name for event in events if isinstance(event, MemberStart)]
    assert names == ["a.txt", "é/" + "x" * 150, "empty", "dir", "link", "gnu/" + "g" * 120]


@FEW
@given(data=st.binary(max_size=3000), piece=pieces)
def test_tar_reader_on_random_bytes(data: bytes, piece: int) -> None:
    result = read_tar(data, piece)
    if not isinstance(result, CorruptStreamError):
        # Only zero blocks (an empty archive) pass: random headers fail their checksum.
        assert result == [] and not any(data[:512]) and len(data) >= 512


@FEW
@given(fraction=st.floats(0, 1, exclude_max=True), piece=pieces)
def test_tar_reader_on_a_cut_stream(fraction: float, piece: int) -> None:
    whole = tar_stream()
    data = whole[: int(fraction * len(whole))]
    result = read_tar(data, piece)
    # Only a cut after the first zero block of the end-of-archive marker reads whole (as GNU
    # tar, which accepts a lone zero block); the last member's data ends the last non-zero byte.
    marker = -(-len(whole.rstrip(b"\x00")) // 512) * 512
    if len(data) >= marker + 512:
        assert isinstance(result, list)
        assert sum(isinstance(event, MemberStart) for event in result) == 6
    else:
        assert isinstance(result, TruncatedStreamError)


@FEW
@given(position=st.integers(0), bit=st.integers(0, 7), piece=pieces)
def test_tar_reader_on_a_flipped_bit(position: int, bit: int, piece: int) -> None:
    whole = tar_stream()
    result = read_tar(flip(whole, position % len(whole), bit), piece)
    assert isinstance(result, (list, CorruptStreamError))
    if isinstance(result, list):
        assert sum(isinstance(event, MemberEnd) for event in result) <= 6


@FEW
@given(
    position=st.integers(0),
    garbage=st.binary(min_size=1, max_size=64),
    piece=pieces,
)
def test_tar_reader_on_overwritten_bytes(position: int, garbage: bytes, piece: int) -> None:
    whole = tar_stream()
    at = position % len(whole)
    result = read_tar(whole[:at] + garbage + whole[at + len(garbage) :], piece)
    assert isinstance(result, (list, CorruptStreamError))


def pax_archive(records: bytes) -> bytes:
    """A pax extended header holding ``records`` as they are, then a one-byte file."""
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, len(records)
    member = tarfile.TarInfo("f")
    member.size = 1
    padding = bytes(-len(records) % 512)
    body = member.tobuf(tarfile.USTAR_FORMAT) + b"x" + bytes(511)
    return header.tobuf(tarfile.USTAR_FORMAT) + records + padding + body + bytes(1024)


def pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


@pytest.mark.parametrize("key", ["size", "uid", "gid"])
def test_pax_numbers_of_thousands_of_digits_are_corrupt(key: str) -> None:
    """int() raises ValueError past 4300 digits; it used to escape the reader."""
    result = read_tar(pax_archive(pax_record(key, b"9" * 5000)), 512)
    assert isinstance(result, CorruptStreamError)
    assert f"bad {key} value" in str(result)


def test_pax_numbers_with_thousands_of_leading_zeros_are_read() -> None:
    result = read_tar(pax_archive(pax_record("uid", b"0" * 5000 + b"42")), 512)
    assert isinstance(result, list)
    starts = [event.member for event in result if isinstance(event, MemberStart)]
    assert [(member.name, member.uid) for member in starts] == [("f", 42)]


def test_a_pax_record_length_of_thousands_of_digits_is_corrupt() -> None:
    result = read_tar(pax_archive(b"9" * 5000 + b" path=x\n"), 512)
    assert isinstance(result, CorruptStreamError)
    assert "runs past the end" in str(result)
