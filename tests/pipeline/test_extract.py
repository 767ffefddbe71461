"""Extracting a selection (``stc unpack PREFIX MEMBER…``) and reading one member (``stc cat``)
by ranged reads: the same files a full unpack writes for those members, from only the blocks
that hold them, each checked before it is decoded; damage of any kind is a clear error and
leaves nothing that looks complete."""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streaming_tar_compressor as stc
from streaming_tar_compressor import aio
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.core.manifest import Manifest
from streaming_tar_compressor.core.member_index import IndexWriter, MemberIndex
from streaming_tar_compressor.core.selection import Selection
from streaming_tar_compressor.errors import (
    ChecksumMismatchError,
    ManifestError,
    MemberNotFoundError,
    UnsafeMemberError,
    UsageError,
)
from streaming_tar_compressor.models import ChunkInfo, CompressionType, MemberKind, TarMember
from streaming_tar_compressor.storage.checked_reads import FETCH_ATTEMPTS
from streaming_tar_compressor.storage.random_access import RandomAccess
from tests.helpers import build_tree, snapshot
from tests.strategies import file_trees

CODECS = ["gzip", "zstd", "xz", "lz4", "bzip2", "none"]


def pack_tree(root: Path, files: dict[str, bytes], codec: str = "zstd", **options: Any) -> Path:
    tree = build_tree(root / "tree", files)
    prefix = root / "out" / "a"
    settings_ = {"chunk_size": 9000, "block_size": 4096, **options}
    stc.pack([str(tree)], str(prefix), compression=codec, **settings_)
    return prefix


def member_names(prefix: Path) -> list[str]:
    return [m.name for m in stc.list_members(prefix)]


def restored(root: Path, selected: Selection | None = None) -> dict[str, tuple[object, ...]]:
    """The snapshot of what was selected (folders made only as parents are left out)."""
    found = snapshot(root)
    return {k: v for k, v in found.items() if selected is None or selected.selects(k)}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    files=file_trees(max_files=8, max_size=20_000),
    codec=st.sampled_from(CODECS),
    data=st.data(),
)
def test_a_selection_restores_what_a_full_unpack_restores_for_it(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes], codec: str, data: Any
) -> None:
    root = tmp_path_factory.mktemp("extract")
    prefix = pack_tree(root, files, codec)
    stc.unpack(prefix, root / "full")
    full = restored(root / "full")
    names = member_names(prefix)
    wanted = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    result = stc.extract(prefix, wanted, root / "part")
    selection = Selection(wanted)
    assert restored(root / "part", selection) == {
        k: v for k, v in full.items() if selection.selects(k)
    }
    assert result.indexed and result.members == sum(1 for n in names if selection.selects(n))
    alone = data.draw(st.sampled_from(names))
    stc.extract(prefix, [alone], root / "alone")
    one = Selection([alone])
    assert restored(root / "alone", one) == {k: v for k, v in full.items() if one.selects(k)}


class RecordedReads:
    """RandomAccess.read as it is, every call recorded: which file, where, how much."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, int, int]] = []
        real = RandomAccess.read

        def read(archive: RandomAccess, name: str, offset: int, length: int) -> bytes:
            self.calls.append((name, offset, length))
            return real(archive, name, offset, length)

        monkeypatch.setattr(RandomAccess, "read", read)


def test_one_member_costs_the_blocks_that_hold_it_and_one_index_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {f"d{i:02d}/f{j:02d}": os.urandom(3000) for i in range(20) for j in range(20)}
    prefix = pack_tree(tmp_path, files, "gzip", chunk_size=50_000, block_size=16384)
    manifest = stc.read_manifest(prefix)
    root = str(tmp_path / "tree").lstrip("/")
    name = f"{root}/d07/f13"
    entry = next(m for m in stc.list_members(prefix, [name]))
    reads = RecordedReads(monkeypatch)
    result = stc.extract(prefix, [name], tmp_path / "one")
    assert (tmp_path / "one" / name).read_bytes() == files["d07/f13"]
    raws = [raw for raw, _ in manifest.blocks]
    end = entry.offset + 512 + 3000 + (-3000 % 512)
    holding = set(range(bisect.bisect_right(raws, entry.offset) - 1, bisect.bisect_left(raws, end)))
    assert result.blocks_read == len(holding) <= 2
    ends = [pos for _, pos in manifest.blocks[1:]] + [manifest.trailer_offset]
    expected_bytes = sum(ends[b] - manifest.blocks[b][1] for b in holding)
    chunk_reads = [c for c in reads.calls if ".part" in c[0]]
    assert sum(length for _, _, length in chunk_reads) == result.compressed_bytes == expected_bytes
    index_reads = [c for c in reads.calls if c[0] == "a.index"]
    assert len(index_reads) == 2  # the directory, then the one page that holds the name
    assert sum(length for *_, length in index_reads) <= 256 * 1024


@pytest.mark.parametrize("damage", ["flipped", "short"])
@pytest.mark.parametrize("digests", [True, False])
def test_a_read_that_arrives_damaged_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digests: bool, damage: str
) -> None:
    """A flipped bit or a read cut short on the way (a store's ranged GET) costs one more
    read, counted in compressed_bytes; damage that stays is the error after FETCH_ATTEMPTS
    reads. Blocks are checked by their SHA-256, or (an archive without block digests) by
    their whole chunk's."""
    files = {f"f{i}": os.urandom(2000) for i in range(30)}
    prefix = pack_tree(tmp_path, files, "zstd", chunk_size=20_000, block_size=8192)
    if not digests:
        path = prefix.with_name("a.manifest.json")
        path.write_text(path.read_text().replace('"block_sha256"', '"block_sha256_dropped"'))
    assert bool(stc.read_manifest(prefix).block_sha256) is digests
    name = str(tmp_path / "tree" / "f17").lstrip("/")
    real, calls = RandomAccess.read, []
    damaged = {"reads": 1}

    def read(archive: RandomAccess, part: str, offset: int, length: int) -> bytes:
        data = real(archive, part, offset, length)
        if ".part" in part:
            if damaged["reads"]:
                damaged["reads"] -= 1
                data = data[:-1] if damage == "short" else bytes([data[0] ^ 1]) + data[1:]
            calls.append((part, offset, length, len(data)))
        return data

    monkeypatch.setattr(RandomAccess, "read", read)
    result = stc.extract(prefix, [name], tmp_path / "x")
    assert (tmp_path / "x" / name).read_bytes() == files["f17"]
    assert [call[:3] for call in calls].count(calls[0][:3]) == 2  # the same read again
    assert result.compressed_bytes == sum(got for *_, got in calls)
    calls.clear()
    damaged["reads"] = 10**6
    with pytest.raises(ChecksumMismatchError):
        stc.extract(prefix, [name], tmp_path / "y")
    assert calls.count(calls[0]) == FETCH_ATTEMPTS
    assert leftovers(tmp_path / "y") == []


def test_a_hardlink_whose_target_is_not_selected_gets_its_content(tmp_path: Path) -> None:
    prefix = pack_tree(tmp_path, {"a/target": b"shared bytes\n" * 100, "b/other": b"x"})
    root = str(tmp_path / "tree").lstrip("/")
    link = f"{root}/hardlink-to-first"  # build_tree links the first file
    stc.extract(prefix, [link], tmp_path / "x")
    assert (tmp_path / "x" / link).read_bytes() == b"shared bytes\n" * 100
    assert not (tmp_path / "x" / root / "a" / "target").exists()
    with stc.open_member(prefix, link) as handle:
        assert handle.read() == b"shared bytes\n" * 100


def test_cat_reads_one_file_and_refuses_what_has_no_content(tmp_path: Path) -> None:
    big = os.urandom(100_000)
    prefix = pack_tree(tmp_path, {"big": big, "d/small": b"s"}, content_digests=True)
    root = str(tmp_path / "tree").lstrip("/")
    out = io.BytesIO()
    with stc.open_member(prefix, f"{root}/big") as handle:
        while piece := handle.read(7000):
            out.write(piece)
    assert out.getvalue() == big
    with pytest.raises(UsageError, match="is a symlink"):
        stc.open_member(prefix, f"{root}/symlink-to-first")
    with pytest.raises(MemberNotFoundError):
        stc.open_member(prefix, f"{root}/nothing")
    captured = io.BytesIO()
    wrapper = io.TextIOWrapper(captured)
    with redirect_stdout(wrapper):
        assert main(["cat", str(prefix), f"{root}/d/small"]) == 0
        wrapper.flush()
    assert captured.getvalue() == b"s"


def rewrite_index(prefix: Path, change: Any) -> None:
    """A new index whose rows ``change`` edits, pinned in the manifest as a pack pins one."""
    directory = prefix.parent
    manifest = stc.read_manifest(prefix)
    assert manifest.index is not None
    data = (directory / manifest.index.name).read_bytes()
    index = MemberIndex(lambda at, size: data[at : at + size], len(data))
    rows = [change((e.to_member(), e.header_offset, e.data_offset, e.sha256)) for e in index]
    out = io.BytesIO()
    writer = IndexWriter(out)
    writer.add(rows)
    written = writer.finish()
    (directory / manifest.index.name).write_bytes(out.getvalue())
    document = json.loads(manifest.to_json())
    document["index"].update(
        size=written.size,
        sha256=written.sha256,
        members=written.entries,
        directory={
            "offset": written.directory.offset,
            "length": written.directory.length,
            "sha256": written.directory.sha256,
        },
    )
    (directory / "a.manifest.json").write_text(json.dumps(document))
    assert Manifest.from_json(json.dumps(document)).index is not None


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_damage_is_an_error_and_leaves_no_file_that_looks_complete(tmp_path: Path) -> None:
    big = os.urandom(50_000)
    prefix = pack_tree(tmp_path, {"big": big, "z": b"z" * 10}, "zstd", content_digests=True)
    root = str(tmp_path / "tree").lstrip("/")
    manifest = stc.read_manifest(prefix)
    # A flipped byte in a block that holds "big": its SHA-256 no longer matches.
    entry = next(m for m in stc.list_members(prefix, [f"{root}/big"]))
    raws = [raw for raw, _ in manifest.blocks]
    block = bisect.bisect_right(raws, entry.offset + 512 + 20_000) - 1
    position = manifest.blocks[block][1] + 5
    chunk = bisect.bisect_right([i * 9000 for i in range(len(manifest.chunks))], position) - 1
    part = prefix.parent / manifest.chunks[chunk].name
    good = part.read_bytes()
    at = position - chunk * 9000
    part.write_bytes(good[:at] + bytes([good[at] ^ 1]) + good[at + 1 :])
    with pytest.raises(ChecksumMismatchError, match=f"block {block}"):
        stc.extract(prefix, [f"{root}/big"], tmp_path / "x")
    assert leftovers(tmp_path / "x") == []
    with (
        pytest.raises(ChecksumMismatchError, match=f"block {block}"),
        stc.open_member(prefix, f"{root}/big") as handle,
    ):
        handle.read()
    part.write_bytes(good)
    kept = [prefix.parent / "a.index", prefix.parent / "a.manifest.json"]
    originals = {path: path.read_bytes() for path in kept}

    # An index entry that disagrees with the tar header it points at.
    def wrong_mode(row: Any) -> Any:
        member = row[0]
        return (replace(member, mode=0o777) if member.name.endswith("/big") else member, *row[1:])

    rewrite_index(prefix, wrong_mode)
    with pytest.raises(ManifestError, match=r"disagrees with the tar header.*mode"):
        stc.extract(prefix, [f"{root}/big"], tmp_path / "y")
    assert leftovers(tmp_path / "y") == []
    # A content digest that does not match what the blocks hold.
    for path, data in originals.items():
        path.write_bytes(data)
    rewrite_index(
        prefix,
        lambda row: (*row[:3], hashlib.sha256(b"other").digest() if row[3] else row[3]),
    )
    with pytest.raises(ChecksumMismatchError, match="its content"):
        stc.extract(prefix, [f"{root}/big"], tmp_path / "w")
    assert leftovers(tmp_path / "w") == []


def test_a_damaged_or_foreign_index_is_refused(tmp_path: Path) -> None:
    prefix = pack_tree(tmp_path, {f"f{i}": b"x" * i for i in range(30)})
    root = str(tmp_path / "tree").lstrip("/")
    index_file = prefix.parent / "a.index"
    good = index_file.read_bytes()
    index_file.write_bytes(good[:20] + bytes([good[20] ^ 4]) + good[21:])
    with pytest.raises(ChecksumMismatchError, match=r"a\.index"):
        stc.extract(prefix, [f"{root}/f3"], tmp_path / "x")
    other = pack_tree(tmp_path / "o", {"g": b"g"})
    index_file.write_bytes((other.parent / "a.index").read_bytes())
    with pytest.raises((ManifestError, ChecksumMismatchError)):
        stc.extract(prefix, [f"{root}/f3"], tmp_path / "x")
    assert leftovers(tmp_path / "x") == []


def forged_archive(directory: Path, names: list[str]) -> Path:
    """An uncompressed archive (tarfile's members, our manifest) whose member index agrees
    with its tar headers, whatever they name: what an attacker controlling both would ship."""
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 7
            archive.addfile(info, io.BytesIO(b"payload"))
    tar = stream.getvalue()
    rows = []
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        for info in archive.getmembers():
            member = TarMember(info.name, MemberKind.FILE, info.size, info.mode, info.mtime)
            rows.append((member, info.offset, info.offset_data, b""))
    out = io.BytesIO()
    writer = IndexWriter(out)
    writer.add(rows)
    written = writer.finish()
    directory.mkdir(parents=True)
    (directory / "h.part0000").write_bytes(tar)
    (directory / "h.index").write_bytes(out.getvalue())
    digest = hashlib.sha256(tar).hexdigest()
    manifest = Manifest(
        compression=CompressionType.NONE,
        chunk_size=len(tar),
        chunks=(ChunkInfo(0, "h.part0000", len(tar), digest),),
        block_size=len(tar),
        compressed_size=len(tar),
        uncompressed_size=len(tar),
        sha256=digest,
        blocks=((0, 0),),
        block_sha256=(digest,),
        trailer_offset=len(tar),
        index=written.record("h.index", content_sha256=False),
    )
    (directory / "h.manifest.json").write_text(manifest.to_json())
    return directory / "h"


@pytest.mark.parametrize("hostile", ["../evil", "/etc/evil", "a/../../evil"])
def test_hostile_names_in_a_consistent_index_are_refused_by_the_writer(
    tmp_path: Path, hostile: str
) -> None:
    prefix = forged_archive(tmp_path / "in", ["fine", hostile])
    assert next(m.name for m in stc.list_members(prefix)) == "fine"
    with pytest.raises(UnsafeMemberError):
        stc.extract(prefix, ["*"], tmp_path / "out", wildcards=True)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out" / "evil").exists()
    assert [p.name for p in leftovers(tmp_path / "out")] in ([], ["fine"])


def test_without_an_index_a_selection_is_decoded_and_skipped(tmp_path: Path) -> None:
    prefix = pack_tree(tmp_path, {"a/x": b"1" * 500, "b/y": b"2" * 500})
    root = str(tmp_path / "tree").lstrip("/")
    (prefix.parent / "a.index").unlink()
    result = stc.extract(prefix, [f"{root}/b"], tmp_path / "x")
    assert not result.indexed
    assert (tmp_path / "x" / root / "b" / "y").read_bytes() == b"2" * 500
    assert not (tmp_path / "x" / root / "a").exists()
    with pytest.raises(MemberNotFoundError):
        stc.extract(prefix, [f"{root}/missing"], tmp_path / "y")


def test_the_cli_extracts_members_and_refuses_what_a_selection_cannot_do(tmp_path: Path) -> None:
    prefix = pack_tree(tmp_path, {"a/x": b"1", "a/y": b"2", "b": b"3"})
    root = str(tmp_path / "tree").lstrip("/")
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["unpack", str(prefix), "-C", str(tmp_path / "x"), "--wildcards", "*/a/?",
                     "--json"])  # fmt: skip
    assert code == 0
    document = json.loads(out.getvalue())
    assert document["members"] == 2 and document["indexed"] is True
    assert sorted(p.name for p in (tmp_path / "x" / root / "a").iterdir()) == ["x", "y"]
    with redirect_stdout(io.StringIO()):
        assert main(["unpack", str(prefix), f"{root}/b", "--resume", "-C", "y"]) == 2
        assert main(["unpack", str(prefix), f"{root}/zz", "-C", str(tmp_path / "z")]) == 2


def test_the_asyncio_api_extracts_and_reads_a_member(tmp_path: Path) -> None:
    prefix = pack_tree(tmp_path, {"a/x": b"1" * 5000, "b": b"2"})
    root = str(tmp_path / "tree").lstrip("/")

    async def run() -> tuple[int, bytes]:
        result = await aio.extract(prefix, [f"{root}/a"], tmp_path / "x")
        async with await aio.open_member(prefix, f"{root}/a/x") as member:
            content = b""
            while piece := await member.read(1000):
                content += piece
        return result.members, content

    members, content = asyncio.run(run())
    assert members == 2 and content == b"1" * 5000
    assert (tmp_path / "x" / root / "a" / "x").read_bytes() == b"1" * 5000


def test_neighbouring_blocks_are_read_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = os.urandom(200_000)
    prefix = pack_tree(tmp_path, {"big": big}, "zstd", chunk_size=4 * 2**20, block_size=16384)
    name = f"{str(tmp_path / 'tree').lstrip('/')}/big"
    reads = RecordedReads(monkeypatch)
    result = stc.extract(prefix, [name], tmp_path / "x")
    assert (tmp_path / "x" / name).read_bytes() == big
    assert result.blocks_read >= 12
    assert [c[0] for c in reads.calls if ".part" in c[0]] == ["a.part0000"]  # one read


FEW_DESCRIPTORS = """
import resource, sys
import streaming_tar_compressor as stc
resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
stc.extract(sys.argv[1], [sys.argv[2]], sys.argv[3])
"""


def test_a_member_over_hundreds_of_chunks_needs_few_descriptors(tmp_path: Path) -> None:
    big = os.urandom(300_000)
    prefix = pack_tree(tmp_path, {"big": big}, "none", chunk_size=1000, block_size=4096)
    assert len(stc.read_manifest(prefix).chunks) > 250
    name = f"/{str(tmp_path / 'tree').lstrip('/')}/big"  # a leading / names the same member
    done = subprocess.run(
        [sys.executable, "-c", FEW_DESCRIPTORS, str(prefix), name, str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "x" / name.lstrip("/")).read_bytes() == big
    with stc.open_member(prefix, f"./{name.lstrip('/')}") as handle:
        assert handle.read() == big


def test_a_block_index_no_pack_writes_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    prefix = pack_tree(tmp_path, {"a": b"a" * 100})
    manifest = prefix.parent / "a.manifest.json"
    document = json.loads(manifest.read_text())
    document["blocks"][0][0] = 5  # the first block must start the tar stream
    manifest.write_text(json.dumps(document))
    with pytest.raises(ManifestError, match="block offsets"):
        stc.extract(prefix, [f"{str(tmp_path / 'tree').lstrip('/')}/a"], tmp_path / "x")
    assert leftovers(tmp_path / "x") == []
