"""Resuming an unpack: after a kill -9 at any moment, ``--resume`` restores the same tree,
skips what was already in place, and reads nothing before the block it restarts at.

The crash tests run the real CLI in a subprocess that dies by SIGKILL at a chosen call (a
data write, a rename of a verified file, half-way through a journal record) or when the
test kills it from outside; the kill points come from a seeded RNG, so every run is the same.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from streaming_tar_compressor import errors as stc_errors
from streaming_tar_compressor import sync
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.core.manifest import Manifest
from streaming_tar_compressor.encryption import X25519Identity
from streaming_tar_compressor.errors import (
    ChecksumMismatchError,
    MissingChunkError,
    OutputError,
    UnsafeMemberError,
    UsageError,
)
from streaming_tar_compressor.fs import ops as file_ops
from streaming_tar_compressor.fs.journal import UnpackJournal
from streaming_tar_compressor.fs.writer import TreeWriter
from streaming_tar_compressor.models import ChunkInfo, CompressionType, MemberKind, TarMember
from streaming_tar_compressor.pipeline.decode import block_holding, start_point
from streaming_tar_compressor.pipeline.unpack import open_encrypted
from streaming_tar_compressor.progress import NullProgress
from streaming_tar_compressor.storage.archive import open_source
from tests.helpers import build_tree, inode_groups, snapshot

CHUNK = 256 * 1024
BLOCK = 64 * 1024
CODECS = ["gzip", "zstd", "xz", "none"]

# Runs the CLI, dying by SIGKILL at the Nth call of a kind: "data" (a write of file data),
# "rename" (a verified file taking its name), "journal" (a journal line: half of it lands,
# as when the process dies inside the write), or "slow" (never dies; renames take 5 ms, so
# the test can kill it from outside at a moment of its choosing).
KILLER = """
import os, signal, sys, time
kind, target = sys.argv[1], int(sys.argv[2])
write, rename, seen = os.write, os.rename, [0]
def is_journal(fd):
    return os.readlink(f"/proc/self/fd/{fd}").endswith(".journal")
def due():
    seen[0] += 1
    return seen[0] == target
def dying_write(fd, data):
    if kind == "data" and not is_journal(fd) and due():
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "journal" and is_journal(fd) and due():
        write(fd, bytes(data)[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return write(fd, data)
def dying_rename(*args, **kwargs):
    if kind == "rename" and due():
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "slow":
        time.sleep(0.005)
    return rename(*args, **kwargs)
os.write, os.rename = dying_write, dying_rename
from streaming_tar_compressor.cli.main import main
sys.exit(main(sys.argv[3:]))
"""


# -- the tree, its archives, and what must hold after a resume --------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 4 MB that does not compress, in nested folders with modes, links both ways."""
    rng = random.Random(20240501)
    sizes = [0, 700, 9_000, 70_000, 150_000]
    files = {f"d{i % 4}/s{i % 3}/f{i:02d}.bin": rng.randbytes(rng.choice(sizes)) for i in range(90)}
    root = build_tree(tmp_path_factory.mktemp("resume") / "src", files)
    (root / "ro-dir").mkdir()
    (root / "ro-dir" / "inside").write_bytes(b"kept\n")
    os.chmod(root / "ro-dir", 0o555)
    os.chmod(root / "d1", 0o750)
    # Its target is restored early, the link late: after a resume it names a file on disk.
    os.link(root / "d0/s0/f00.bin", root / "zz-late-hardlink")
    for path in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        os.utime(path, (1_600_000_000, 1_600_000_000))
    return root


@pytest.fixture(scope="module")
def archives(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The tree packed once per codec: 64 KiB blocks, 256 KiB chunks (many of both)."""
    made: dict[str, Path] = {}

    def archive(codec: str) -> Path:
        if codec not in made:
            prefix = tmp_path_factory.mktemp(codec) / "b"
            sync.pack(tree, prefix, compression=codec, chunk_size=CHUNK, block_size=BLOCK)
            made[codec] = prefix
        return made[codec]

    return archive


def copied(prefix: Path, directory: Path) -> Path:
    """A copy of the archive that a test may damage."""
    directory.mkdir()
    for path in prefix.parent.glob(prefix.name + ".*"):
        (directory / path.name).write_bytes(path.read_bytes())
    return directory / prefix.name


def journal_lines(out: Path) -> list[dict[str, Any]]:
    """The journal's complete lines ([] when none was written yet)."""
    journals = list(out.glob(".stc-unpack-*.journal"))
    if not journals:
        return []
    data = journals[0].read_bytes()
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines()]


def members_in_place(out: Path) -> int:
    return max((line["members"] for line in journal_lines(out) if "members" in line), default=0)


def position_in_journal(out: Path) -> int:
    return max((line["position"] for line in journal_lines(out) if "position" in line), default=0)


def leftovers(out: Path) -> list[str]:
    """Anything of ours in the output directory: temp files, the journal."""
    return [
        os.path.join(dirpath, name)
        for dirpath, dirnames, filenames in os.walk(out)
        for name in dirnames + filenames
        if name.startswith(".stc-")
    ]


def cut_short(out: Path, tree: Path) -> bool:
    """A restored regular file holds less than its original."""
    restored = out / tree.relative_to("/")
    return any(
        path.stat().st_size < (tree / path.relative_to(restored)).stat().st_size
        for path in restored.rglob("*")
        if path.is_file() and not path.is_symlink() and not path.name.startswith(".stc-")
    )


def assert_restored(out: Path, tree: Path) -> None:
    restored = out / tree.relative_to("/")
    assert snapshot(restored) == snapshot(tree)
    assert inode_groups(restored) == inode_groups(tree)
    assert leftovers(out) == []


def resume_and_check(prefix: Path, out: Path, tree: Path) -> int:
    """Resume in this process; it must skip exactly what the journal vouches for and read only
    the chunks from the one that holds its start block. Returns the members skipped."""
    skipped, position = members_in_place(out), position_in_journal(out)
    manifest = sync.read_manifest(prefix)
    first = start_point(manifest, position).chunk if position else 0
    result = sync.unpack(prefix, out, resume=True)
    assert (result.resumed, result.skipped_members) == (skipped > 0, skipped)
    assert result.compressed_bytes == sum(c.size for c in manifest.chunks[first:])
    assert_restored(out, tree)
    return skipped


def run_killer(kind: str, target: int, *args: str) -> subprocess.Popen[bytes]:
    """Data writes and renames of extracted files are counted (or slowed) in Python, so for
    those kinds the tree writer makes its calls in Python; a torn journal record kills the
    compiled writer (when built) at its commits."""
    env = dict(os.environ)
    if kind != "journal":
        env["STC_PURE_PYTHON"] = "1"
    return subprocess.Popen(
        [sys.executable, "-c", KILLER, kind, str(target), *args, "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def killed_unpack(prefix: Path, out: Path, kind: str, target: int, *extra: str) -> int:
    """Runs the unpack until it dies at the chosen call; returns its pid."""
    done = run_killer(kind, target, "unpack", str(prefix), "-C", str(out), *extra)
    _, err = done.communicate(timeout=120)
    assert done.returncode == -signal.SIGKILL, err.decode()
    return done.pid


def call_counts(prefix: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many data writes and renames a whole unpack makes: the range kill points come from."""
    counts = {"data": 0, "rename": 0}
    write, rename = os.write, os.rename

    def counting_write(fd: int, data: bytes) -> int:
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(".journal"):
            counts["data"] += 1
        return write(fd, data)

    def counting_rename(*args: Any, **kwargs: Any) -> None:
        counts["rename"] += 1
        rename(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(file_ops, "native", None)  # as run_killer's "data" and "rename" kinds
        patch.setattr(os, "write", counting_write)
        patch.setattr(os, "rename", counting_rename)
        sync.unpack(prefix, out)
    return counts


# -- crash tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_kill_anywhere_then_resume_restores_the_tree(codec, tree, archives, tmp_path, monkeypatch):
    prefix = archives(codec)
    counts = call_counts(prefix, tmp_path / "count", monkeypatch)
    rng = random.Random(f"kill points {codec}")
    data, renames = counts["data"], counts["rename"]
    kill_points = {
        "first": ("data", 1),  # the very first file, most likely before any record
        "late": ("data", rng.randrange(data // 2, data)),  # a file cut short under its temp name
        "rename": ("rename", rng.randrange(renames // 3, renames)),  # a commit cut in half
        "torn": ("journal", rng.randrange(3, 5)),  # half a journal record written
    }
    skipped = {}
    for name, (kind, target) in kill_points.items():
        out = tmp_path / name
        pid = killed_unpack(prefix, out, kind, target)
        if kind == "data":
            # The journal named the run before its first temp file, whatever the moment.
            assert journal_lines(out)[0]["pid"] == pid
            # The file being written died half-made: under its temp name (a file of several
            # pieces), or, placed at once from checked bytes, under its own name.
            assert any(f"/.stc-{pid}-" in path for path in leftovers(out)) or cut_short(out, tree)
        skipped[name] = resume_and_check(prefix, out, tree)
    assert all(skipped[name] > 0 for name in ("late", "rename", "torn")), skipped


@pytest.mark.parametrize("codec", ["gzip", "xz"])
def test_killed_from_outside_after_a_few_commits(codec, tree, archives, tmp_path):
    """An asynchronous kill: whatever the process was doing when the signal came."""
    prefix = archives(codec)
    rng = random.Random(f"outside {codec}")
    for attempt in range(2):
        out = tmp_path / f"out{attempt}"
        records = rng.randrange(2, 6)
        process = run_killer("slow", 0, "unpack", str(prefix), "-C", str(out))
        deadline = time.monotonic() + 60
        while len(journal_lines(out)) < records and process.poll() is None:
            assert time.monotonic() < deadline, "the unpack made no progress"
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
        assert process.returncode == -signal.SIGKILL, "the unpack ended before the kill"
        resume_and_check(prefix, out, tree)


def test_a_killed_resume_resumes_again(tree, archives, tmp_path, monkeypatch):
    """Two kills in a row: the second run's temp files (its own pid) go too."""
    prefix = archives("zstd")
    out = tmp_path / "out"
    killed_unpack(prefix, out, "data", 20)
    first = members_in_place(out)
    killed_unpack(prefix, out, "data", 25, "--resume")
    assert len([line for line in journal_lines(out) if "pid" in line]) == 2, "two runs listed"
    assert members_in_place(out) > first
    assert leftovers(out)
    command = ["unpack", str(prefix), "-C", str(out), "--resume", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "streaming_tar_compressor", *command],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["resumed"] and report["skipped_members"] >= first
    assert_restored(out, tree)


# -- resume reads nothing before its start block ----------------------------------------------


class StopAfter(NullProgress):
    """Interrupts an unpack (as Ctrl-C would) once ``files`` members are finished."""

    def __init__(self, files: int) -> None:
        self._left = files

    def file(self, path: str, size: int) -> None:
        self._left -= 1
        if not self._left:
            raise KeyboardInterrupt


def interrupted(prefix: Path, out: Path, files: int) -> Manifest:
    with pytest.raises(KeyboardInterrupt):
        sync.unpack(prefix, out, progress=StopAfter(files))
    return sync.read_manifest(prefix)


@pytest.mark.parametrize("codec", ["gzip", "xz"])
def test_resume_does_not_read_the_chunks_before_its_block(codec, tree, archives, tmp_path):
    prefix = copied(archives(codec), tmp_path / "archive")
    out = tmp_path / "out"
    manifest = interrupted(prefix, out, files=80)
    start = start_point(manifest, position_in_journal(out))
    assert start.chunk >= 2 and start.lead > 0, "the test needs a start in mid-archive"
    for chunk in manifest.chunks[: start.chunk]:
        (prefix.parent / chunk.name).unlink()
    result = sync.unpack(prefix, out, resume=True)
    assert result.resumed
    assert_restored(out, tree)
    with pytest.raises(MissingChunkError):  # a full unpack needs the chunks deleted above
        sync.unpack(prefix, tmp_path / "full")


def test_resume_still_verifies_every_chunk_it_reads(tree, archives, tmp_path):
    """The first chunk is hashed whole, though decoding starts inside it; later ones too."""
    prefix = copied(archives("gzip"), tmp_path / "archive")
    for case, in_first_chunk in [("before-the-block", True), ("next-chunk", False)]:
        out = tmp_path / case
        manifest = interrupted(prefix, out, files=80)
        start = start_point(manifest, position_in_journal(out))
        index, offset = (start.chunk, start.lead - 1) if in_first_chunk else (start.chunk + 1, 100)
        victim = prefix.parent / manifest.chunks[index].name
        good = victim.read_bytes()
        victim.write_bytes(good[:offset] + bytes([good[offset] ^ 1]) + good[offset + 1 :])
        with pytest.raises(ChecksumMismatchError, match=manifest.chunks[index].name):
            sync.unpack(prefix, out, resume=True)
        victim.write_bytes(good)
        resume_and_check(prefix, out, tree)  # the journal survived the failure


def test_without_resume_everything_is_restored_again(tree, archives, tmp_path):
    prefix = archives("zstd")
    out = tmp_path / "out"
    interrupted(prefix, out, files=40)
    result = sync.unpack(prefix, out)
    assert (result.resumed, result.skipped_members) == (False, 0)
    assert result.members == len(list(sync.list_members(prefix)))
    assert_restored(out, tree)


def test_resume_with_nothing_to_resume_is_a_plain_unpack(tree, archives, tmp_path):
    result = sync.unpack(archives("gzip"), tmp_path / "out", resume=True)
    assert (result.resumed, result.skipped_members) == (False, 0)
    assert_restored(tmp_path / "out", tree)


def test_the_journal_of_another_archive_is_refused(tree, archives, tmp_path):
    out = tmp_path / "out"
    interrupted(archives("gzip"), out, files=40)
    (theirs,) = out.glob(".stc-unpack-*.journal")
    ours = UnpackJournal(str(out), sync.read_manifest(archives("zstd"))).name
    theirs.rename(out / ours)
    with pytest.raises(UsageError, match="journal of another archive"):
        sync.unpack(archives("zstd"), out, resume=True)
    result = sync.unpack(archives("zstd"), out)  # without --resume: start over
    assert not result.resumed
    assert_restored(out, tree)


def test_a_second_run_into_the_same_directory_is_refused(archives, tmp_path):
    out = tmp_path / "out"
    interrupted(archives("gzip"), out, files=40)
    (journal,) = out.glob(".stc-unpack-*.journal")
    with open(journal, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(OutputError, match="another stc unpack of this archive"):
            sync.unpack(archives("gzip"), out, resume=True)


# -- encrypted archives -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sealed(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, X25519Identity]:
    """The tree packed age-encrypted (zstd), its key beside it in key.txt."""
    identity = X25519Identity.generate()
    prefix = tmp_path_factory.mktemp("sealed") / "b"
    (prefix.parent / "key.txt").write_text(f"{identity}\n")
    sync.pack(
        tree,
        prefix,
        compression="zstd",
        chunk_size=CHUNK,
        block_size=BLOCK,
        recipients=[identity.recipient],
    )
    return prefix, identity


def sealed_start(prefix: Path, identity: X25519Identity, position: int) -> tuple[int, int, int]:
    """Where a resume at tar offset ``position`` must read from, worked out here from the age
    format: (chunk, byte in it) that start the 64 KiB age chunk holding the start block, and
    how many bytes of compressed stream there are from that age chunk on."""
    source = open_source(str(prefix))
    opened = open_encrypted(source, [identity])
    assert opened is not None and source.manifest is not None
    inner = opened.inner(source.manifest)
    compressed = inner.blocks[block_holding(inner, position)][1]
    sealed_at = opened.header_length + 16 + compressed // 65536 * (65536 + 16)
    assert inner.compressed_size is not None
    return (
        sealed_at // CHUNK,
        sealed_at % CHUNK,
        inner.compressed_size - compressed // 65536 * 65536,
    )


@pytest.mark.parametrize("kind", ["data", "journal"])
def test_an_encrypted_unpack_killed_anywhere_resumes(
    kind, tree, sealed, archives, tmp_path, monkeypatch
):
    prefix, identity = sealed
    key = str(prefix.parent / "key.txt")
    counts = call_counts(archives("zstd"), tmp_path / "count", monkeypatch)  # the same files
    target = random.Random(f"sealed {kind}").randrange(counts["data"] // 2, counts["data"])
    out = tmp_path / "out"
    killed_unpack(prefix, out, kind, target if kind == "data" else 4, "-i", key)
    skipped, position = members_in_place(out), position_in_journal(out)
    assert skipped > 0
    _, _, decrypted = sealed_start(prefix, identity, position)
    result = sync.unpack(prefix, out, resume=True, identities=[key])
    assert (result.resumed, result.skipped_members) == (True, skipped)
    assert result.compressed_bytes == decrypted  # from the age chunk of its start block on
    assert_restored(out, tree)


def sealed_interrupted(
    sealed: tuple[Path, X25519Identity], tmp_path: Path, files: int
) -> tuple[Path, Path, int, int]:
    """A copy of the sealed archive whose unpack into ``out`` stopped after ``files``
    members: (copy, out, and where its resume reads from: chunk, byte in it)."""
    prefix, identity = sealed
    copy = copied(prefix, tmp_path / "archive")
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        sync.unpack(copy, out, progress=StopAfter(files), identities=[identity])
    chunk, lead, _ = sealed_start(copy, identity, position_in_journal(out))
    return copy, out, chunk, lead


def test_an_encrypted_resume_reads_no_chunk_before_its_age_chunk(tree, sealed, tmp_path):
    identity = sealed[1]
    copy, out, chunk, lead = sealed_interrupted(sealed, tmp_path, 80)
    assert chunk >= 2 and lead > 0, "the test needs a start in mid-archive"
    manifest = sync.read_manifest(copy)
    for gone in manifest.chunks[1:chunk]:  # the first holds the age header
        (copy.parent / gone.name).unlink()
    with pytest.raises(stc_errors.DecryptionError):
        sync.unpack(copy, out, resume=True)  # no key
    result = sync.unpack(copy, out, resume=True, identities=[identity])
    assert result.resumed
    assert_restored(out, tree)
    with pytest.raises(MissingChunkError):  # a full unpack needs the chunks deleted above
        sync.unpack(copy, tmp_path / "full", identities=[identity])


def test_a_damaged_age_chunk_after_the_resume_point_stops_it(tree, sealed, tmp_path):
    identity = sealed[1]
    copy, out, chunk, _ = sealed_interrupted(sealed, tmp_path, 60)
    manifest = sync.read_manifest(copy)
    victim = copy.parent / manifest.chunks[chunk + 1].name
    good = victim.read_bytes()
    victim.write_bytes(good[:500] + bytes([good[500] ^ 1]) + good[501:])
    with pytest.raises((stc_errors.DecryptionError, ChecksumMismatchError)):
        sync.unpack(copy, out, resume=True, identities=[identity])
    victim.write_bytes(good)
    assert sync.unpack(copy, out, resume=True, identities=[identity]).resumed
    assert_restored(out, tree)


# -- what cannot be resumed --------------------------------------------------------------------


def test_resume_needs_a_verified_manifest_with_a_block_index(archives, tmp_path, capsys):
    prefix = archives("gzip")
    with pytest.raises(UsageError, match="drop --no-verify"):
        sync.unpack(prefix, tmp_path / "o", verify_checksum=False, resume=True)
    copy = copied(prefix, tmp_path / "copy")
    (copy.parent / "b.manifest.json").unlink()
    with pytest.raises(UsageError, match=r"needs .*b\.manifest\.json"):
        sync.unpack(copy, tmp_path / "o", resume=True)
    blockless = replace(sync.read_manifest(prefix), blocks=(), block_sha256=(), trailer_offset=None)
    (copy.parent / "b.manifest.json").write_text(blockless.to_json())
    with pytest.raises(UsageError, match="block index"):
        sync.unpack(copy, tmp_path / "o", resume=True)
    assert main(["unpack", "-", "-C", str(tmp_path / "o"), "--resume", "-q"]) == 2
    assert "--resume needs an archive prefix" in capsys.readouterr().err


# -- the writer's part ------------------------------------------------------------------------


def test_no_member_may_take_a_journal_name(tmp_path):
    writer = TreeWriter(str(tmp_path / "out"), deferred=False)
    planted = TarMember(name=".stc-unpack-0123456789abcdef.journal", kind=MemberKind.FILE)
    with pytest.raises(UnsafeMemberError, match="reserved"):
        writer.start(planted)
    writer.close()
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize("resumed", [True, False])
def test_a_hardlink_may_name_a_file_on_disk_only_when_resuming(tmp_path, resumed):
    out = tmp_path / "out"
    (out / "d").mkdir(parents=True)
    (out / "d" / "early").write_bytes(b"restored before the kill\n")
    os.symlink("early", out / "d" / "alias")
    writer = TreeWriter(str(out), deferred=True, resumed=resumed)
    link = TarMember(name="late", kind=MemberKind.HARDLINK, linkname="d/early")
    if resumed:
        writer.start(link)
        writer.commit()
        assert os.path.samefile(out / "late", out / "d" / "early")
    else:
        with pytest.raises(UnsafeMemberError, match="extracted earlier"):
            writer.start(link)
    via_symlink = TarMember(name="bad", kind=MemberKind.HARDLINK, linkname="d/alias")
    with pytest.raises(UnsafeMemberError):  # a symlink on disk is never a link target
        writer.start(via_symlink)
    writer.close()


def test_a_hardlink_extracted_again_leaves_no_temp_name(tmp_path):
    """rename() between two links to one file does nothing: the temp name must still go."""
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=True)
    target = TarMember(name="t", kind=MemberKind.FILE, size=3)
    writer.start(target)
    writer.write(b"abc")
    writer.end(target)
    for _ in range(2):
        writer.start(TarMember(name="h", kind=MemberKind.HARDLINK, linkname="t"))
        writer.commit()
    writer.close()
    assert sorted(os.listdir(out)) == ["h", "t"]


# -- the journal alone ------------------------------------------------------------------------


def tiny_manifest(size: int = 10 * 512) -> Manifest:
    chunk = ChunkInfo(index=0, name="x.part0000", size=size, checksum="0" * 64)
    return Manifest(
        compression=CompressionType.NONE,
        chunk_size=size,
        chunks=(chunk,),
        uncompressed_size=size,
        blocks=((0, 0),),
        trailer_offset=size,
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[UnpackJournal]:
    journal = UnpackJournal(str(tmp_path), tiny_manifest())
    yield journal
    journal.close()


def reopened(journal: UnpackJournal, tmp_path: Path, *, resume: bool = True) -> Any:
    journal.close()
    again = UnpackJournal(str(tmp_path), tiny_manifest())
    try:
        return again.open(resume=resume)
    finally:
        again.close()


def test_records_round_trip_with_directories(journal, tmp_path):
    assert journal.open(resume=True) is None  # nothing there yet
    journal.record(512, 1, [])  # no journal made yet: nothing to write to
    assert not (tmp_path / journal.name).exists()
    journal.begin()
    odd = TarMember(name="d\udcff/e", kind=MemberKind.DIRECTORY, mode=0o750, mtime=1.5, uid=7)
    journal.record(1024, 3, [odd])
    journal.record(1024, 3, [])  # nothing new: no line
    journal.record(2048, 5, [])
    assert len((tmp_path / journal.name).read_bytes().splitlines()) == 3
    state = reopened(journal, tmp_path)
    assert (state.position, state.members, state.directories) == (2048, 5, (odd,))


def test_a_torn_last_line_is_ignored_and_cut_off(journal, tmp_path):
    journal.begin()
    journal.record(1024, 3, [])
    path = tmp_path / journal.name
    whole = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(b'{"position":2048,"memb')
    state = reopened(journal, tmp_path)
    assert (state.position, state.members) == (1024, 3)
    lines = path.read_bytes().splitlines()
    assert path.read_bytes().startswith(whole) and json.loads(lines[-1]) == {"pid": os.getpid()}


@pytest.mark.parametrize("content", [b"", b'{"format":"stc-unp'])
def test_an_empty_or_torn_header_is_no_journal(journal, tmp_path, content):
    (tmp_path / journal.name).write_bytes(content)
    assert journal.open(resume=True) is None
    header = json.loads((tmp_path / journal.name).read_bytes())
    assert header["format"] == "stc-unpack-journal" and header["pid"] == os.getpid()


def test_a_damaged_journal_is_an_error_only_when_resuming(journal, tmp_path):
    journal.begin()
    journal.record(1024, 3, [])
    with open(tmp_path / journal.name, "ab") as handle:
        handle.write(b"not json\n")
    with pytest.raises(UsageError, match=r"damaged .*line 3"):
        reopened(journal, tmp_path)
    assert reopened(journal, tmp_path, resume=False) is None  # a plain unpack starts over
    assert len((tmp_path / journal.name).read_bytes().splitlines()) == 1


def test_a_position_past_the_archive_is_refused(journal, tmp_path):
    journal.begin()
    journal.record(10 * 512, 3, [])
    with pytest.raises(UsageError, match="past the archive's end"):
        reopened(journal, tmp_path)


def test_a_foreign_journal_is_refused(journal, tmp_path):
    journal.begin()
    journal.record(1024, 3, [])
    other = UnpackJournal(str(tmp_path), tiny_manifest(20 * 512))
    (tmp_path / journal.name).rename(tmp_path / other.name)
    journal.close()
    with pytest.raises(UsageError, match="another archive"):
        other.open(resume=True)
    other.close()


def test_only_the_temp_files_of_the_journals_runs_are_removed(journal, tmp_path):
    journal.begin()
    journal.record(1024, 3, [])
    mine, stranger = f".stc-{os.getpid()}-7.tmp", ".stc-999999999-7.tmp"
    (tmp_path / "a" / "b").mkdir(parents=True)
    for folder in (tmp_path, tmp_path / "a" / "b"):
        (folder / mine).write_bytes(b"half")
        (folder / stranger).write_bytes(b"someone else's")
    os.symlink("b", tmp_path / "a" / f".stc-{os.getpid()}-8.tmp")  # a temp symlink to a folder
    (tmp_path / "a" / f".stc-{os.getpid()}-9.tmp").mkdir()  # a real folder: not a temp file
    reopened(journal, tmp_path)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob(".stc-*"))
    assert left == sorted(
        [
            stranger,
            f"a/.stc-{os.getpid()}-9.tmp",
            f"a/b/{stranger}",
            journal.name,
        ]
    )


def test_remove_deletes_and_close_keeps(journal, tmp_path):
    journal.begin()
    journal.record(1024, 3, [])
    journal.close()
    assert (tmp_path / journal.name).exists()
    again = UnpackJournal(str(tmp_path), tiny_manifest())
    again.open(resume=True)
    again.remove()
    assert not (tmp_path / journal.name).exists()
