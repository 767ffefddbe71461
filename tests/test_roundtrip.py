"""unpack(pack(tree)) == tree for every codec, chunk size and block size."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streaming_tar_compressor as stc
from tests.helpers import build_tree, inode_groups, snapshot
from tests.strategies import file_trees

CODECS = list(stc.CompressionType)
SLOW = {stc.CompressionType.XZ, stc.CompressionType.BZIP2}


def parts_bytes(result: stc.PackResult) -> bytes:
    return b"".join(Path(c.path).read_bytes() for c in result.chunks)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.value)
def test_round_trip_restores_the_tree(make_tree, tmp_path, codec):
    tree = make_tree()
    result = stc.pack(
        [tree],
        tmp_path / "arc" / "backup",
        compression=codec,
        chunk_size=50_000,
        block_size=64 * 1024,
        workers=2,
    )
    assert len(result.chunks) > 1
    assert [c.index for c in result.chunks] == list(range(len(result.chunks)))
    out = tmp_path / "out"
    unpacked = stc.unpack(tmp_path / "arc" / "backup", out)
    assert unpacked.verified
    restored = out / tree.relative_to("/")
    assert snapshot(restored) == snapshot(tree)
    assert inode_groups(restored) == inode_groups(tree)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.value)
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    files=file_trees(),
    chunk_size=st.integers(200, 30_000),
    block_size=st.sampled_from([1, 511, 4096, 65536, None]),
)
def test_random_trees_round_trip(tmp_path_factory, codec, files, chunk_size, block_size):
    if codec in SLOW and block_size == 1:
        block_size = 4096
    base = tmp_path_factory.mktemp("rt")
    tree = build_tree(base / "src", files)
    result = stc.pack(
        [tree],
        base / "backup",
        compression=codec,
        chunk_size=chunk_size,
        block_size=block_size,
        workers=2,
    )
    assert all(c.size == chunk_size for c in result.chunks[:-1])
    stc.unpack(base / "backup", base / "out")
    assert snapshot(base / "out" / tree.relative_to("/")) == snapshot(tree)
    shutil.rmtree(base)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.value)
def test_any_chunk_size_gives_the_same_stream(make_tree, tmp_path, codec):
    tree = make_tree()
    streams = set()
    for i, chunk_size in enumerate([1000, 7777, 10**9]):
        result = stc.pack(
            [tree], tmp_path / f"p{i}", compression=codec, chunk_size=chunk_size, block_size=100_000
        )
        streams.add(parts_bytes(result))
        assert result.manifest.sha256 is not None
    assert len(streams) == 1


def test_mixed_sources_keep_their_names(make_tree, tmp_path):
    tree = make_tree()
    single = tmp_path / "single.txt"
    single.write_bytes(b"alone\n")
    stc.pack([str(tree) + "/", single], tmp_path / "b", compression="zstd")
    names = [m.name for m in stc.list_members(tmp_path / "b")]
    base = str(tree).lstrip("/")
    assert names[0] == base
    assert names[-1] == str(single).lstrip("/")
    assert f"{base}/sub/deeper/c.txt" in names
    assert names[1:-1] == sorted(names[1:-1], key=lambda n: n.split("/"))


def test_an_empty_directory_and_an_empty_file_round_trip(tmp_path):
    (tmp_path / "src" / "e").mkdir(parents=True)
    (tmp_path / "src" / "z").write_bytes(b"")
    for codec in CODECS:
        stc.pack([tmp_path / "src"], tmp_path / codec.value, compression=codec)
        stc.unpack(tmp_path / codec.value, tmp_path / f"out-{codec.value}")
        restored = tmp_path / f"out-{codec.value}" / (tmp_path / "src").relative_to("/")
        assert snapshot(restored) == snapshot(tmp_path / "src")


def test_packing_the_folder_that_holds_the_output_leaves_the_archive_out(make_tree, tmp_path):
    tree = make_tree()
    (tree / "old.part0000").write_bytes(b"not ours: a different prefix")
    result = stc.pack([tree], tree / "backup", compression="gzip", chunk_size=20_000)
    assert len(result.chunks) > 1
    names = {m.name.rsplit("/", 1)[-1] for m in stc.list_members(tree / "backup")}
    assert "old.part0000" in names
    assert not any(n.startswith(("backup.", ".backup.")) for n in names)
    stc.unpack(tree / "backup", tmp_path / "out")
    restored = tmp_path / "out" / tree.relative_to("/")
    assert (restored / "a.txt").read_bytes() == (tree / "a.txt").read_bytes()


def test_a_tree_deeper_than_the_recursion_limit_round_trips(tmp_path, monkeypatch):
    depth = sys.getrecursionlimit() + 100
    monkeypatch.chdir(tmp_path)  # relative names keep every path under PATH_MAX
    fd = os.open(".", os.O_RDONLY)
    for name in ["src"] + ["a"] * depth:
        os.mkdir(name, dir_fd=fd)
        next_fd = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = next_fd
    with open(os.open("bottom.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as out:
        out.write(b"deep\n")
    os.close(fd)
    try:
        stc.pack(["src"], "b", compression="lz4")
        names = [m.name for m in stc.list_members("b")]
        bottom = "src/" + "a/" * depth + "bottom.txt"
        assert names[-1] == bottom
        assert len(names) == depth + 2
        stc.unpack("b", "out")
        assert (Path("out") / bottom).read_bytes() == b"deep\n"
    finally:  # shutil.rmtree (pytest's clean-up of old runs) recurses and would fail on these
        subprocess.run(["rm", "-rf", "src", "out"], check=True)


class _FailAfterFirstFile(stc.NullProgress):
    def file(self, path: str, size: int) -> None:
        raise KeyboardInterrupt  # like Ctrl-C halfway through


def test_a_failed_forced_pack_keeps_the_old_archive_whole(make_tree, tmp_path):
    old_tree = make_tree()
    stc.pack([old_tree], tmp_path / "b", chunk_size=20_000)
    before = sorted(p.name for p in tmp_path.glob("b.*"))
    new_tree = make_tree({"other.bin": os.urandom(200_000)}, links=False)
    with pytest.raises(KeyboardInterrupt):
        stc.pack(
            [new_tree],
            tmp_path / "b",
            chunk_size=20_000,
            force=True,
            progress=_FailAfterFirstFile(),
        )
    assert sorted(p.name for p in tmp_path.glob("b.*")) == before
    assert not list(tmp_path.glob(".b.*"))
    assert stc.verify(tmp_path / "b", deep=True).ok


def test_a_forced_pack_replaces_every_old_chunk(make_tree, tmp_path):
    stc.pack(
        [make_tree({"big.bin": os.urandom(300_000)}, links=False)],
        tmp_path / "b",
        chunk_size=20_000,
    )
    small = make_tree({"s.txt": b"small"}, links=False)
    result = stc.pack([small], tmp_path / "b", chunk_size=20_000, force=True)
    assert sorted(p.name for p in tmp_path.glob("b.part*")) == [c.name for c in result.chunks]
    assert stc.verify(tmp_path / "b").ok


def test_listing_many_tiny_members_holds_few_of_them_at_once(tmp_path):
    header = tarfile.TarInfo("f").tobuf(tarfile.USTAR_FORMAT)
    members = bytearray()
    for i in range(60_000):  # same header, new name and checksum: fast to build
        block = bytearray(header)
        block[0:7] = b"f%06d" % i
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\0 " % sum(block)
        members += block
    stream = gzip.compress(bytes(members) + bytes(1024), compresslevel=9)
    (tmp_path / "many.part0000").write_bytes(stream)
    tracemalloc.start()
    count = sum(1 for _ in stc.list_members(tmp_path / "many"))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 60_000
    assert len(stream) < 2**20 < len(members)
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB while listing"
