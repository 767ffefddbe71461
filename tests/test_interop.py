"""Conformance with the outside world: GNU tar, the codec CLIs, split, sha256sum, tarfile."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import streaming_tar_compressor as stc
from tests.helpers import inode_groups, snapshot, tool

CT = stc.CompressionType
TAR_FLAGS = {
    CT.GZIP: ["-z"],
    CT.BZIP2: ["-j"],
    CT.XZ: ["-J"],
    CT.ZSTD: ["--zstd"],
    CT.LZ4: ["-I", "lz4"],
    CT.NONE: [],
}
CLI_TEST = {
    CT.GZIP: ["gzip", "-t"],
    CT.BZIP2: ["bzip2", "-t"],
    CT.XZ: ["xz", "-t"],
    CT.ZSTD: ["zstd", "-t"],
    CT.LZ4: ["lz4", "-t"],
}
CLI_COMPRESS = {
    CT.GZIP: ["gzip", "-c"],
    CT.BZIP2: ["bzip2", "-c"],
    CT.XZ: ["xz", "-c"],
    CT.ZSTD: ["zstd", "-q", "-c"],
    CT.LZ4: ["lz4", "-q", "-c"],
}
# Readers of DESIGN.md's table that take the whole stream in Python's tarfile stream mode.
TARFILE_STREAM_MODES = {CT.GZIP: "r|gz", CT.XZ: "r|xz", CT.NONE: "r|*"}
CODECS = list(CT)
CHUNK = 40_000


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, check=True, capture_output=True, **kwargs)  # type: ignore[call-overload]


@pytest.fixture
def archive(make_tree, tmp_path):
    def make(codec: CT) -> tuple[Path, stc.PackResult, Path]:
        tree = make_tree()
        result = stc.pack(
            [tree],
            tmp_path / "arc" / "backup",
            compression=codec,
            chunk_size=CHUNK,
            block_size=100_000,
        )
        return tree, result, tmp_path / "arc"

    return make


def stream_of(result: stc.PackResult) -> bytes:
    return b"".join(Path(c.path).read_bytes() for c in result.chunks)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.value)
def test_gnu_tar_restores_cat_of_the_parts(archive, tmp_path, codec):
    tar = tool("tar")
    if codec is not CT.NONE:
        tool(CLI_TEST.get(codec, ["lz4"])[0])
    tree, result, folder = archive(codec)
    out = tmp_path / "gnu"
    out.mkdir()
    command = f"cat backup.part* | {tar} {' '.join(TAR_FLAGS[codec])} -xf - -C {out}"
    assert result.manifest.restore_command.startswith("cat backup.part* | tar")
    subprocess.run(command, shell=True, check=True, cwd=folder, capture_output=True)
    restored = out / tree.relative_to("/")
    assert snapshot(restored) == snapshot(tree)
    assert inode_groups(restored) == inode_groups(tree)


@pytest.mark.parametrize("codec", [c for c in CODECS if c is not CT.NONE], ids=lambda c: c.value)
def test_codec_cli_tests_the_stream(archive, tmp_path, codec):
    command = CLI_TEST[codec]
    tool(command[0])
    _, result, _ = archive(codec)
    whole = tmp_path / "whole"
    whole.write_bytes(stream_of(result))
    run([*command, str(whole)])


def test_pigz_reads_the_gzip_stream(archive):
    pigz = tool("pigz")
    _, result, _ = archive(CT.GZIP)
    restored = run([pigz, "-dc"], input=stream_of(result)).stdout
    with tarfile.open(fileobj=io.BytesIO(restored)) as archive_file:
        names = archive_file.getnames()
    assert names == [
        m.name for m in stc.list_members(Path(result.chunks[0].path).parent / "backup")
    ]


@pytest.mark.parametrize("codec", list(TARFILE_STREAM_MODES), ids=lambda c: c.value)
def test_python_tarfile_stream_mode_reads_every_member(archive, codec):
    tree, result, _ = archive(codec)
    expected = [m.name for m in stc.list_members(Path(result.chunks[0].path).parent / "backup")]
    with tarfile.open(fileobj=io.BytesIO(stream_of(result)), mode=TARFILE_STREAM_MODES[codec]) as t:
        names = [m.name for m in t]
    assert names == expected
    assert len(names) == len(snapshot(tree)) + 1


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.value)
def test_chunks_are_byte_identical_to_split(archive, tmp_path, codec):
    split = tool("split")
    _, result, _ = archive(codec)
    theirs = tmp_path / "split"
    theirs.mkdir()
    run(
        [split, "-b", str(CHUNK), "-d", "-a", "4", "-", str(theirs / "backup.part")],
        input=stream_of(result),
    )
    assert sorted(os.listdir(theirs)) == [c.name for c in result.chunks]
    for chunk in result.chunks:
        assert (theirs / chunk.name).read_bytes() == Path(chunk.path).read_bytes()


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.value)
def test_sha256sum_checks_every_chunk_and_the_index(archive, codec):
    sha256sum = tool("sha256sum")
    _, result, folder = archive(codec)
    checked = run([sha256sum, "-c", "backup.sha256"], cwd=folder).stdout.decode()
    assert checked.count(": OK") == len(result.chunks) + 1
    assert "backup.index: OK" in checked
    whole = run([sha256sum], input=stream_of(result)).stdout.split()[0].decode()
    assert whole == result.manifest.sha256


def test_sha256sum_notices_a_damaged_chunk(archive):
    sha256sum = tool("sha256sum")
    _, result, folder = archive(CT.GZIP)
    path = Path(result.chunks[0].path)
    path.write_bytes(b"X" + path.read_bytes()[1:])
    failed = subprocess.run([sha256sum, "-c", "backup.sha256"], cwd=folder, capture_output=True)
    assert failed.returncode != 0
    assert b"backup.part0000: FAILED" in failed.stdout


def gnu_tar_stream(tree: Path) -> bytes:
    tar = tool("tar")
    return run([tar, "--format=pax", "-cf", "-", "-C", str(tree.parent), tree.name]).stdout


@pytest.mark.parametrize("codec", [c for c in CODECS if c is not CT.NONE], ids=lambda c: c.value)
def test_unpacks_multi_member_streams_split_by_other_tools(make_tree, tmp_path, codec):
    """`tar | CODEC | split` made of several members/streams/frames, no manifest."""
    tree = make_tree()
    compress = CLI_COMPRESS[codec]
    tool(compress[0])
    split = tool("split")
    tar_bytes = gnu_tar_stream(tree)
    third = len(tar_bytes) // 3
    pieces = [tar_bytes[:third], tar_bytes[third : 2 * third], tar_bytes[2 * third :]]
    stream = b"".join(run(compress, input=piece).stdout for piece in pieces)
    parts = tmp_path / "parts"
    parts.mkdir()
    run([split, "-b", "30000", "-d", "-a", "4", "-", str(parts / "foreign.part")], input=stream)
    result = stc.unpack(parts / "foreign", tmp_path / "out")
    assert not result.verified
    assert result.compression is codec
    assert snapshot(tmp_path / "out" / tree.name) == snapshot(tree)


def test_unpacks_pigz_output(make_tree, tmp_path):
    pigz = tool("pigz")
    tree = make_tree()
    stream = run([pigz, "-c", "-p", "2", "-b", "32"], input=gnu_tar_stream(tree)).stdout
    stc.unpack_stream([stream], tmp_path / "out")
    assert snapshot(tmp_path / "out" / tree.name) == snapshot(tree)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.value)
def test_cli_unpacks_from_stdin(archive, tmp_path, codec):
    tree, _, folder = archive(codec)
    out = tmp_path / "stdin-out"
    command = f"cat backup.part* | {sys.executable} -m streaming_tar_compressor unpack - -C {out}"
    done = subprocess.run(command, shell=True, cwd=folder, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert b"not verified" in done.stderr
    assert snapshot(out / tree.relative_to("/")) == snapshot(tree)
