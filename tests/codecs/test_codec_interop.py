"""Our streams read by the ordinary tools and libraries; their streams read by our decoders."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import shlex
import subprocess
import tarfile
from pathlib import Path

import lz4.frame
import pytest
import zstandard

from streaming_tar_compressor.codecs import codec_for
from streaming_tar_compressor.models import CompressionType
from tests.codecs.codec_helpers import COMPRESSED_KINDS, cut, decode, encode
from tests.helpers import tool

pytestmark = pytest.mark.interop

# Each CLI's decompress-to-stdout command.
DECOMPRESS = {
    CompressionType.GZIP: ["gzip", "-dc"],
    CompressionType.BZIP2: ["bzip2", "-dc"],
    CompressionType.XZ: ["xz", "-dc"],
    CompressionType.ZSTD: ["zstd", "-dcq"],
    CompressionType.LZ4: ["lz4", "-dc"],
}
COMPRESS = {
    CompressionType.GZIP: ["gzip", "-c"],
    CompressionType.BZIP2: ["bzip2", "-c"],
    CompressionType.XZ: ["xz", "-c", "-T1"],
    CompressionType.ZSTD: ["zstd", "-cq"],
    CompressionType.LZ4: ["lz4", "-c"],
}


def run(argv: list[str], data: bytes) -> bytes:
    """Output of ``argv`` fed ``data``; the tool must exist (or the test skips) and succeed."""
    path = tool(argv[0])
    result = subprocess.run([path, *argv[1:]], input=data, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def sample_blocks() -> list[bytes]:
    rng = random.Random(11)
    text = bytes(rng.choices(b"tar stream data \n", k=150_000))
    return [text[:65536], rng.randbytes(40_000), text[65536:], b"tail"]


def sample_tar() -> bytes:
    """A small pax archive, the kind of stream the codecs carry."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for index in range(5):
            data = random.Random(index).randbytes(7000 * index)
            info = tarfile.TarInfo(f"dir/file{index}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("kind", COMPRESSED_KINDS)
def test_cli_decompresses_our_stream(kind: CompressionType) -> None:
    blocks = sample_blocks()
    codec = codec_for(kind)
    assert run(DECOMPRESS[kind], encode(codec, blocks)) == b"".join(blocks)
    assert run(DECOMPRESS[kind], encode(codec, [])) == b""


def test_gzip_t_and_pigz_accept_our_stream() -> None:
    blocks = sample_blocks()
    stream = encode(codec_for(CompressionType.GZIP), blocks)
    run(["gzip", "-t"], stream)
    assert run(["pigz", "-dc"], stream) == b"".join(blocks)


def test_xz_list_reads_our_index(tmp_path: Path) -> None:
    blocks = sample_blocks()
    stream = encode(codec_for(CompressionType.XZ), blocks)
    path = tmp_path / "stream.xz"
    path.write_bytes(stream)
    listing = subprocess.run([tool("xz"), "--robot", "-l", str(path)], capture_output=True)
    assert listing.returncode == 0, listing.stderr
    # xz --robot -l, "totals": streams, blocks, compressed size, uncompressed size, ...
    lines = listing.stdout.decode().splitlines()
    fields = next(line for line in lines if line.startswith("totals")).split("\t")
    assert fields[1:5] == ["1", str(len(blocks)), str(len(stream)), str(sum(map(len, blocks)))]


@pytest.mark.parametrize("kind", COMPRESSED_KINDS)
def test_gnu_tar_lists_our_stream(kind: CompressionType) -> None:
    archive = sample_tar()
    blocks = [archive[i : i + 4096] for i in range(0, len(archive), 4096)]
    stream = encode(codec_for(kind), blocks)
    listing = run(["tar", *shlex.split(codec_for(kind).tar_flag), "-tf", "-"], stream)
    assert listing.decode().split() == [f"dir/file{i}" for i in range(5)]


def test_python_libraries_read_our_streams() -> None:
    blocks = sample_blocks()
    expected = b"".join(blocks)
    assert gzip.decompress(encode(codec_for(CompressionType.GZIP), blocks)) == expected
    assert lzma.decompress(encode(codec_for(CompressionType.XZ), blocks)) == expected
    assert bz2.decompress(encode(codec_for(CompressionType.BZIP2), blocks)) == expected
    zstd_stream = encode(codec_for(CompressionType.ZSTD), blocks)
    reader = zstandard.ZstdDecompressor().stream_reader(zstd_stream, read_across_frames=True)
    assert reader.read() == expected
    lz4_stream = encode(codec_for(CompressionType.LZ4), blocks)
    first_frame = encode(codec_for(CompressionType.LZ4), blocks[:1])
    assert lz4.frame.decompress(lz4_stream[: len(first_frame)]) == blocks[0]


@pytest.mark.parametrize(
    ("kind", "mode"),
    [
        (CompressionType.GZIP, "r|gz"),
        (CompressionType.GZIP, "r|*"),
        (CompressionType.XZ, "r|xz"),
        (CompressionType.XZ, "r|*"),
    ],
)
def test_tarfile_stream_mode_reads_every_member(kind: CompressionType, mode: str) -> None:
    archive = sample_tar()
    blocks = [archive[i : i + 5000] for i in range(0, len(archive), 5000)]
    stream = encode(codec_for(kind), blocks)
    contents = {}
    with tarfile.open(fileobj=io.BytesIO(stream), mode=mode) as tar:
        for member in tar:
            reader = tar.extractfile(member)
            assert reader is not None
            contents[member.name] = reader.read()
    assert contents == {f"dir/file{i}": random.Random(i).randbytes(7000 * i) for i in range(5)}


@pytest.mark.parametrize("kind", COMPRESSED_KINDS)
def test_we_read_concatenated_cli_streams(kind: CompressionType) -> None:
    first = bytes(random.Random(1).choices(b"abc \n", k=300_000))
    second = random.Random(2).randbytes(100_000)
    stream = run(COMPRESS[kind], first) + run(COMPRESS[kind], second)
    codec = codec_for(kind)
    assert decode(codec, [stream]) == first + second
    points = random.Random(3).sample(range(len(stream)), 40)
    assert decode(codec, cut(stream, points), max_size=4096) == first + second


def test_we_read_pigz_output() -> None:
    data = bytes(random.Random(4).choices(b"pigz data\n", k=400_000))
    stream = run(["pigz", "-c", "-b", "128"], data)
    assert decode(codec_for(CompressionType.GZIP), [stream]) == data


def test_we_read_multiblock_xz_and_long_zstd_and_linked_lz4() -> None:
    data = bytes(random.Random(5).choices(b"0123456789abcdef\n", k=600_000))
    xz_stream = run(["xz", "-c", "-T2", "--block-size=100000"], data)
    assert decode(codec_for(CompressionType.XZ), [xz_stream]) == data
    zstd_stream = run(["zstd", "-cq", "-19"], data)
    assert decode(codec_for(CompressionType.ZSTD), [zstd_stream], max_size=1000) == data
    lz4_stream = run(["lz4", "-c", "-BD", "-B4"], data)
    assert decode(codec_for(CompressionType.LZ4), [lz4_stream], max_size=1000) == data
