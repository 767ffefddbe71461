"""Adaptive compression: a block that does not shrink is written in the codec's stored form."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import shlex
import struct
import subprocess
import tarfile
from typing import Literal

import lz4.frame
import pytest
import zstandard

from streaming_tar_compressor.codecs import _adaptive, codec_for
from streaming_tar_compressor.models import CompressionType
from tests.codecs.codec_helpers import ALL_KINDS, cut, decode, encode
from tests.helpers import tool

GZIP, XZ, ZSTD, LZ4 = (codec_for(CompressionType(name)) for name in ("gzip", "xz", "zstd", "lz4"))
STORING_KINDS = [
    CompressionType.GZIP,
    CompressionType.XZ,
    CompressionType.ZSTD,
    CompressionType.LZ4,
]
RNG = random.Random(17)
RANDOM = RNG.randbytes(200_000)
WORDS = [bytes(RNG.choices(b"abcdefghijklmnopqrstuvwxyz", k=RNG.randint(2, 9))) for _ in range(300)]
TEXT = b" ".join(RNG.choices(WORDS, k=40_000))[:200_000]


def deflate_stored(data: bytes) -> bytes | None:
    """The content of ``data`` if it is only deflate stored blocks ended by a full flush."""
    out, pos = bytearray(), 0
    while pos + 5 <= len(data):
        head, length, nlength = struct.unpack_from("<BHH", data, pos)
        if head != 0 or length ^ nlength != 0xFFFF:
            return None
        out += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if length == 0:
            return bytes(out) if pos == len(data) else None
    return None


def lzma2_controls(block: bytes) -> list[int]:
    """The control bytes of the LZMA2 chunks in an xz block of ours."""
    pos, controls = (block[0] + 1) * 4, []
    while block[pos]:
        controls.append(block[pos])
        if block[pos] >= 0x80:  # LZMA chunk: unpacked and packed sizes (+ properties)
            size = 6 + (block[pos] >= 0xC0) + struct.unpack_from(">H", block, pos + 3)[0]
        else:
            size = 4 + struct.unpack_from(">H", block, pos + 1)[0]
        pos += size
    return controls


def zstd_block_types(frame: bytes) -> list[int]:
    """RFC 8878 3.1.1: the Block_Type of every block in one frame."""
    descriptor = frame[4]
    single_segment, fcs_flag = descriptor >> 5 & 1, descriptor >> 6
    pos = 5 + (not single_segment) + (0, 1, 2, 4)[descriptor & 3]
    pos += ((1 if single_segment else 0), 2, 4, 8)[fcs_flag]
    types = []
    while True:
        header = int.from_bytes(frame[pos : pos + 3], "little")
        types.append(header >> 1 & 3)
        pos += 3 + (1 if header >> 1 & 3 == 1 else header >> 3)
        if header & 1:
            return types


def lz4_blocks_uncompressed(frame: bytes) -> list[bool]:
    """lz4_Frame_format.md: for every data block, whether its Block Size has the high bit."""
    flags = frame[4]
    pos = 7 + (8 if flags & 0x08 else 0) + (4 if flags & 0x01 else 0)
    stored = []
    while size := int.from_bytes(frame[pos : pos + 4], "little"):
        stored.append(bool(size & 0x80000000))
        pos += 4 + (size & 0x7FFFFFFF) + (4 if flags & 0x10 else 0)
    return stored


def assert_stored(kind: CompressionType, data: bytes, raw: bytes) -> None:
    """``data`` is ``raw`` in the codec's stored form, with its few bytes of framing."""
    if kind is CompressionType.GZIP:
        assert deflate_stored(data) == raw
        assert len(data) == len(raw) + 5 * -(-len(raw) // 65535) + 5
    elif kind is CompressionType.XZ:
        controls = lzma2_controls(data)
        assert controls == [1] + [2] * (len(controls) - 1)
        assert len(data) <= len(raw) + 3 * -(-len(raw) // 65536) + 1 + 28 + 3 + 4
    elif kind is CompressionType.ZSTD:
        assert set(zstd_block_types(data)) == {0}  # raw blocks
        assert zstandard.get_frame_parameters(data).has_checksum
        assert len(data) <= len(raw) + 3 * -(-len(raw) // 2**17) + 18 + 4
    else:
        assert all(lz4_blocks_uncompressed(data))
        assert lz4.frame.get_frame_info(data)["content_checksum"]
        assert len(data) <= len(raw) + 4 * -(-len(raw) // 2**22) + 19 + 4 + 4


@pytest.mark.parametrize("kind", STORING_KINDS)
@pytest.mark.parametrize("level", ["min", "default", "max"])
def test_random_block_is_stored(kind: CompressionType, level: str) -> None:
    codec = codec_for(kind)
    chosen = {"min": codec.min_level, "default": codec.default_level, "max": codec.max_level}
    encoder = codec.new_encoder(chosen[level], 2**20)
    data = encoder.encode_block(RANDOM).data
    assert_stored(kind, data, RANDOM)
    assert codec.decode_block(data, len(RANDOM)).data == RANDOM


@pytest.mark.parametrize("kind", STORING_KINDS)
def test_compressible_block_is_compressed_as_before(kind: CompressionType) -> None:
    codec = codec_for(kind)
    data = codec.new_encoder(codec.default_level, 2**20).encode_block(TEXT).data
    assert len(data) < len(TEXT) * 0.7
    if kind is CompressionType.ZSTD:
        same = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(TEXT)
        assert data == same
    if kind is CompressionType.LZ4:
        same = lz4.frame.compress(TEXT, content_checksum=True, store_size=True)
        assert data == same
    assert codec.decode_block(data, len(TEXT)).data == TEXT


def slice_starts(size: int) -> list[int]:
    return [i * (size - _adaptive.SLICE_SIZE) // (_adaptive.SLICES - 1) for i in range(16)]


def test_probe_slices_cover_the_block_evenly() -> None:
    block = RANDOM[:100_003]
    slices = _adaptive.sample(block)
    assert [bytes(piece) for piece in slices] == [
        block[start : start + _adaptive.SLICE_SIZE] for start in slice_starts(len(block))
    ]
    assert bytes(slices[0]) == block[: _adaptive.SLICE_SIZE]
    assert bytes(slices[-1]) == block[-_adaptive.SLICE_SIZE :]


@pytest.mark.parametrize("kind", STORING_KINDS)
def test_what_the_slices_miss_the_whole_block_check_sees(kind: CompressionType) -> None:
    """Zeros between two sampled slices: no slice shrinks, the whole block does by ~4 %."""
    block = bytearray(RNG.randbytes(256 * 1024))
    starts = slice_starts(len(block))
    start = starts[3] + _adaptive.SLICE_SIZE + 200
    block[start : start + 10_000] = bytes(10_000)
    assert start + 10_000 < starts[4]
    codec = codec_for(kind)
    data = codec.new_encoder(codec.default_level, 2**20).encode_block(bytes(block)).data
    assert len(data) < len(block) - 9000
    assert codec.decode_block(data, len(block)).data == block


def test_block_that_did_not_shrink_falls_back_to_stored() -> None:
    # Too small to probe; zlib-ng level 1 codes random bytes with fixed Huffman codes (+5 %).
    block = RNG.randbytes(10_000)
    data = GZIP.new_encoder(1, 2**20).encode_block(block).data
    assert deflate_stored(data) == block


def test_bzip2_has_no_stored_form_and_none_is_the_identity() -> None:
    bzip2 = codec_for(CompressionType.BZIP2)
    assert bzip2.new_encoder(9, 2**20).encode_block(RANDOM).data == bz2.compress(RANDOM, 9)
    none = codec_for(CompressionType.NONE)
    assert none.new_encoder(0, 2**20).encode_block(RANDOM).data == RANDOM


def mixed_blocks() -> list[bytes]:
    """Stored (random), compressed (text), short (compressed in full) and mixed blocks."""
    return [RANDOM[:100_000], TEXT[:100_000], RANDOM[100_000:], b"short", TEXT[:40_000] + RANDOM]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_streams_mixing_stored_and_compressed_blocks_decode(kind: CompressionType) -> None:
    codec = codec_for(kind)
    blocks = mixed_blocks()
    stream = encode(codec, blocks, block_size=2**20)
    points = random.Random(2).sample(range(len(stream)), 30)
    assert decode(codec, cut(stream, points), max_size=50_000) == b"".join(blocks)


DECOMPRESS = {
    CompressionType.GZIP: [["gzip", "-dc"], ["pigz", "-dc"]],
    CompressionType.XZ: [["xz", "-dc"]],
    CompressionType.ZSTD: [["zstd", "-dcq"]],
    CompressionType.LZ4: [["lz4", "-dc"]],
}
TEST = {
    CompressionType.GZIP: ["gzip", "-t"],
    CompressionType.XZ: ["xz", "-t"],
    CompressionType.ZSTD: ["zstd", "-tq"],
    CompressionType.LZ4: ["lz4", "-t"],
}


def run(argv: list[str], data: bytes) -> bytes:
    result = subprocess.run([tool(argv[0]), *argv[1:]], input=data, capture_output=True)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


@pytest.mark.interop
@pytest.mark.parametrize("kind", STORING_KINDS)
def test_clis_read_streams_mixing_stored_and_compressed_blocks(kind: CompressionType) -> None:
    blocks = mixed_blocks()
    stream = encode(codec_for(kind), blocks, block_size=2**20)
    for argv in DECOMPRESS[kind]:
        assert run(argv, stream) == b"".join(blocks), argv
    run(TEST[kind], stream)


def tar_with_big_members() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (
            ("random.bin", RANDOM),
            ("text.txt", TEXT),
            ("tail.bin", RANDOM[:70_000]),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def tar_blocks() -> list[bytes]:
    archive = tar_with_big_members()
    return [archive[i : i + 80_000] for i in range(0, len(archive), 80_000)]


EXPECTED_MEMBERS = {"random.bin": RANDOM, "text.txt": TEXT, "tail.bin": RANDOM[:70_000]}


@pytest.mark.interop
@pytest.mark.parametrize("kind", STORING_KINDS)
def test_gnu_tar_reads_stored_blocks(kind: CompressionType) -> None:
    codec = codec_for(kind)
    stream = encode(codec, tar_blocks(), block_size=80_000)
    listing = run(["tar", *shlex.split(codec.tar_flag), "-tf", "-"], stream)
    assert listing.decode().split() == list(EXPECTED_MEMBERS)


@pytest.mark.parametrize(
    ("kind", "mode"),
    [
        (CompressionType.GZIP, "r|gz"),
        (CompressionType.GZIP, "r|*"),
        (CompressionType.XZ, "r|xz"),
        (CompressionType.XZ, "r|*"),
    ],
)
def test_python_tarfile_reads_stored_blocks(
    kind: CompressionType, mode: Literal["r|gz", "r|xz", "r|*"]
) -> None:
    blocks = tar_blocks()
    stream = encode(codec_for(kind), blocks, block_size=80_000)
    contents = {}
    with tarfile.open(fileobj=io.BytesIO(stream), mode=mode) as tar:
        for member in tar:
            reader = tar.extractfile(member)
            assert reader is not None
            contents[member.name] = reader.read()
    assert contents == EXPECTED_MEMBERS


def test_python_libraries_read_stored_blocks() -> None:
    blocks = mixed_blocks()
    expected = b"".join(blocks)
    assert gzip.decompress(encode(GZIP, blocks, block_size=2**20)) == expected
    assert lzma.decompress(encode(XZ, blocks, block_size=2**20)) == expected
    zstd_stream = encode(ZSTD, blocks, block_size=2**20)
    reader = zstandard.ZstdDecompressor().stream_reader(zstd_stream, read_across_frames=True)
    assert reader.read() == expected
    stored_frame = LZ4.new_encoder(0, 2**20).encode_block(blocks[0]).data
    assert lz4.frame.decompress(stored_frame) == blocks[0]
