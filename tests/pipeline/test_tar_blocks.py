"""The pack's tar thread: blocks are the tar stream cut at every ``block_size`` bytes, from any
resume point on; each carries the check of exactly the members whose header starts before its
end, and reports each file in the block its last byte is in."""

from __future__ import annotations

import gc
import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streaming_tar_compressor import _compiled
from streaming_tar_compressor._compiled import built
from streaming_tar_compressor.core.tar_writer import TarWriter
from streaming_tar_compressor.errors import SourceError
from streaming_tar_compressor.fs.walk import SourceEntry, iter_entries, member_name
from streaming_tar_compressor.models import MemberKind, TarMember
from streaming_tar_compressor.pipeline import pack
from streaming_tar_compressor.pipeline.checkpoint import SourceCheck
from streaming_tar_compressor.pipeline.pack import _tar_blocks, _TarBlock, _TarState

trees = st.dictionaries(
    st.sampled_from(["a", "b", "d/c", "d/e", "d/f/g", "long-" + "n" * 120, "é"]),
    st.integers(0, 3000),  # file sizes, past several reads of 700 bytes
    min_size=1,
    max_size=6,
)


def blocks_of(root: Path, block_size: int, start: int = 0) -> list[_TarBlock]:
    return list(_tar_blocks(iter_entries([str(root)], []), block_size, _TarState(start)))


def members_of(root: Path, stream: bytes) -> list[tuple[str, int, int, SourceCheck]]:
    """(path, header offset, end offset, the check of the members up to it) in stream order,
    the check computed as a resumed pack computes it."""
    with tarfile.open(fileobj=io.BytesIO(stream)) as archive:
        infos = list(archive)
    entries = list(iter_entries([str(root)], []))
    assert [info.name for info in infos] == [entry.member.name for entry in entries]
    digest = hashlib.sha256()
    found = []
    for count, (entry, info) in enumerate(zip(entries, infos, strict=True), 1):
        fingerprint = TarWriter().header(entry.member) + entry.stamp
        digest.update(b"%d\0" % len(fingerprint) + fingerprint)
        end = info.offset_data + -(-info.size // 512) * 512
        found.append((entry.path, info.offset, end, SourceCheck(count, digest.hexdigest())))
    return found


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tree=trees,
    block_size=st.integers(1, 4000),
    start_fraction=st.floats(0, 1),
    read_size=st.sampled_from([700, pack.READ_SIZE]),
    batch=st.sampled_from([1, 2, pack.BATCH_MEMBERS]),
)
def test_blocks_cut_the_stream_from_any_start(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    tree: dict[str, int],
    block_size: int,
    start_fraction: float,
    read_size: int,
    batch: int,
) -> None:
    monkeypatch.setattr(pack, "READ_SIZE", read_size)  # larger files are read in pieces
    monkeypatch.setattr(pack, "BATCH_MEMBERS", batch)  # members appended per call at most
    root = tmp_path_factory.mktemp("tree") / "t"
    for name, size in tree.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    stream = b"".join(block.data for block in blocks_of(root, 1 << 30))
    with tarfile.open(fileobj=io.BytesIO(stream)) as archive:
        files = {info.name: archive.extractfile(info).read() for info in archive if info.isfile()}
    top = member_name(str(root))
    assert files == {f"{top}/{name}": (root / name).read_bytes() for name in tree}
    assert len(stream) % 10240 == 0
    members = members_of(root, stream)

    start = int(start_fraction * (len(stream) - 1))
    blocks = blocks_of(root, block_size, start)
    assert b"".join(block.data for block in blocks) == stream[start:]
    assert all(len(block.data) == block_size for block in blocks[:-1])
    assert 0 < len(blocks[-1].data) <= block_size
    block_start = start
    for block in blocks:
        block_end = block_start + len(block.data)
        started = [check for _, offset, _, check in members if offset < block_end]
        assert block.sources == started[-1]
        ended_here = [path for path, _, end, _ in members if block_start < end <= block_end]
        assert [path for path, _ in block.files] == ended_here
        block_start = block_end


class _Pair(NamedTuple):
    member: TarMember
    offset: int


@pytest.mark.skipif(built is None, reason="the compiled module is not built")
def test_an_untracked_row_and_its_items_leave_the_cycle_collector() -> None:
    assert built is not None
    member = TarMember("a", MemberKind.FILE)
    row = (member, 0, 512, b"")
    assert gc.is_tracked(member) and gc.is_tracked(row)
    assert built.untracked(row) is row
    assert not gc.is_tracked(row) and not gc.is_tracked(member)
    with pytest.raises(TypeError, match="takes a tuple"):
        built.untracked([member])
    with pytest.raises(TypeError, match="takes a tuple"):  # a subclass may be in a cycle
        built.untracked(_Pair(member, 0))


def test_the_rows_and_file_records_in_flight_cost_the_cycle_collector_nothing(
    tmp_path: Path,
) -> None:
    """A tree's worth of them lives while its blocks are in flight: tracked, they cost a
    tree of small files 2 % of its pack in collections (untracked only when compiled)."""
    for name in ("a", "b", "d/c"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * 100)
    blocks = blocks_of(tmp_path, 1024)
    rows = [row for block in blocks for row in block.members]
    files = [done for block in blocks for done in block.files]
    assert len(rows) == 5 and len(files) == 5
    gc.collect()  # the collector untracks plain tuples of untracked items at its next pass
    assert not any(gc.is_tracked(done) for done in files)
    compiled = _compiled.native is not None
    assert [gc.is_tracked(row) or gc.is_tracked(row[0]) for row in rows] == [not compiled] * 5


def test_a_file_that_cannot_be_read_is_named_before_a_later_walk_error(tmp_path: Path) -> None:
    """Files wait in a batch while the walk goes on: an error of the walk after them waits
    for them, so the first problem in stream order is the one named."""
    root = tmp_path / "t"
    root.mkdir()
    for name in ("a", "b"):
        (root / name).write_bytes(b"x" * 100)

    def entries() -> Iterator[SourceEntry]:
        for entry in iter_entries([str(root)], []):
            yield entry
            if entry.path.endswith("/a"):
                (root / "a").unlink()  # gone before its batch is read
            if entry.path.endswith("/b"):
                raise SourceError(str(root / "c"), "No such file or directory")

    with pytest.raises(SourceError) as caught:
        list(_tar_blocks(entries(), 1 << 20, _TarState(0)))
    assert caught.value.path == str(root / "a")
