"""Disk full and permission errors: one clear error, and nothing left that looks complete.

After a failed pack, every chunk under its final name holds exactly the bytes an uninterrupted
pack writes there, no temp file is left and no manifest claims the archive (a replaced archive
stays as it was). After a failed unpack, every file under its final name holds the source's
bytes and no temp file is left. Faults are real where the machine allows (a 4 MiB tmpfs, as
root) and injected into the ``os`` calls everywhere, so every case runs on every machine.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor import sync
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.errors import OutputError, SourceError
from streaming_tar_compressor.fs import ops as file_ops
from streaming_tar_compressor.fs import walk
from streaming_tar_compressor.fs.journal import UnpackJournal
from streaming_tar_compressor.pipeline import pack as pack_pipeline
from tests.helpers import IN_CI, snapshot

CHUNK = 64 * 1024
BLOCK = 32 * 1024  # small blocks, so chunks are written while later sources are still read
AS_ROOT = os.geteuid() == 0


# -- injected faults --------------------------------------------------------------------------


def _error(code: int) -> OSError:
    """OSError picks the subclass the code calls for (EACCES: PermissionError)."""
    return OSError(code, f"{os.strerror(code)} (injected)")


class Faults:
    """Makes chosen ``os`` calls fail as a full disk or a refused permission would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch

    def fail(self, name: str, code: int, when: Callable[..., bool]) -> None:
        """``os.<name>`` raises ``code`` whenever ``when`` is true of its arguments."""
        real = getattr(os, name)

        def faulty(*args: Any, **kwargs: Any) -> Any:
            if when(*args, **kwargs):
                raise _error(code)
            return real(*args, **kwargs)

        self._monkeypatch.setattr(os, name, faulty)

    def disk_full_after(self, budget: int) -> None:
        """``os.write`` (the chunk sink's and the tree writer's) stores ``budget`` bytes, then
        fails with ENOSPC; the write that crosses the limit is partial, as the kernel's is."""
        real = os.write
        left = [budget]

        def write(fd: int, data: bytes | memoryview) -> int:
            if left[0] <= 0:
                raise _error(errno.ENOSPC)
            written = real(fd, memoryview(data)[: left[0]])
            left[0] -= written
            return written

        self._monkeypatch.setattr(os, "write", write)

    def deny_writes_in(self, directory: Path) -> None:
        """What a read-only ``directory`` does to a process that its permissions bind: the
        calls the sink and the tree writer create entries with fail with EACCES."""
        key = _identity(directory)

        def creates_inside(path: str, flags: int = 0, *_: Any, dir_fd: int | None = None) -> bool:
            return bool(flags & os.O_CREAT) and _parent_identity(path, dir_fd) == key

        def mkdir_inside(path: str, *_: Any, dir_fd: int | None = None) -> bool:
            return _parent_identity(path, dir_fd) == key

        self.fail("open", errno.EACCES, creates_inside)
        self.fail("mkdir", errno.EACCES, mkdir_inside)


def _identity(path: Path | str, dir_fd: int | None = None) -> tuple[int, int] | None:
    try:
        st = os.stat(path, dir_fd=dir_fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _parent_identity(path: str, dir_fd: int | None) -> tuple[int, int] | None:
    path = os.fspath(path)
    if dir_fd is None or os.path.isabs(path):
        return _identity(os.path.dirname(os.path.abspath(path)))
    return _identity(os.path.dirname(path) or ".", dir_fd)


def _name_in(directory: Path, fd: int) -> str | None:
    """The name ``fd`` has in ``directory`` (None for the folder itself or elsewhere)."""
    st = os.fstat(fd)
    with os.scandir(directory) as entries:
        for entry in entries:
            if _identity(entry.path) == (st.st_dev, st.st_ino) and not entry.is_symlink():
                return entry.name
    return None


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Faults:
    """Injected faults reach only calls made from Python: the tree writer's file operations
    run in Python for these tests (the compiled ones meet the real full disk below, and
    tests/fs/test_ops.py checks that both report the same failures)."""
    monkeypatch.setattr(file_ops, "native", None)
    return Faults(monkeypatch)


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Makes a source file refuse to open for packing, as a chmod after the walk would (the
    walk checks access first, so this is the case that reaches the open; root bypasses it)."""

    def make(secret: str) -> None:
        def guarded_open(path: str, *args: Any, **kwargs: Any) -> Any:
            if path == secret:
                raise _error(errno.EACCES)
            return open(path, *args, **kwargs)

        monkeypatch.setattr(pack_pipeline, "open", guarded_open, raising=False)
        # The compiled read of small files opens in C, out of the patch's reach:
        # tests/pipeline/test_file_data.py checks that it reports errors the same way.
        monkeypatch.setattr(pack_pipeline, "_append_members", pack_pipeline.append_members_python)

    return make


@pytest.fixture
def read_only(faults: Faults) -> Iterator[Callable[[Path], None]]:
    """Makes a directory read-only: chmod where permissions bind, injected EACCES as root."""
    changed: list[Path] = []

    def make(directory: Path) -> None:
        if AS_ROOT:
            faults.deny_writes_in(directory)
        else:
            directory.chmod(0o555)
            changed.append(directory)

    yield make
    for directory in changed:
        directory.chmod(0o755)


# -- a real full disk -------------------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: real ENOSPC. Mounting needs root; without it the test skips, but under
    CI=true it fails (the injected variants run everywhere; CI must run these too)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    reason = None
    mount = shutil.which("mount")
    if not AS_ROOT or mount is None:
        reason = "mounting a 4 MiB tmpfs for a real ENOSPC needs root and mount(8)"
    else:
        done = subprocess.run(
            [mount, "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            reason = f"cannot mount a 4 MiB tmpfs: {done.stderr.strip()}"
    if reason is not None:
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def _fill_to(directory: Path, keep_free: int) -> None:
    """Takes all free space of ``directory``'s file system but ``keep_free`` bytes."""
    fs = os.statvfs(directory)
    (directory / "filler").write_bytes(bytes(fs.f_bavail * fs.f_frsize - keep_free))
    assert os.statvfs(directory).f_bavail * fs.f_frsize == keep_free


# -- trees, archives and what must hold after a failure ---------------------------------------


@pytest.fixture
def tree(make_tree: Callable[..., Path]) -> Path:
    """About 350 KB that does not compress: six 64 KiB chunks."""
    return make_tree(
        {
            "a.bin": os.urandom(100_000),
            "b.bin": os.urandom(100_000),
            "sub/c.bin": os.urandom(100_000),
            "sub/deeper/d.bin": os.urandom(50_000),
            "z.txt": b"last\n",
        }
    )


@pytest.fixture
def big_tree(make_tree: Callable[..., Path]) -> Path:
    """4.5 MiB that does not compress: more than the 4 MiB tmpfs holds."""
    return make_tree({f"f{i}.bin": os.urandom(3 * 2**19) for i in range(3)}, links=False)


def pack(sources: Path, prefix: Path, **options: Any) -> sync.PackResult:
    options = {"compression": "gzip", "chunk_size": CHUNK, "block_size": BLOCK, **options}
    return sync.pack(sources, prefix, **options)


def chunks_of(prefix: Path) -> list[bytes]:
    return [part.read_bytes() for part in sorted(prefix.parent.glob(prefix.name + ".part*"))]


@pytest.fixture
def reference(tree: Path, tmp_path: Path) -> list[bytes]:
    """The chunks an uninterrupted pack of ``tree`` writes."""
    pack(tree, tmp_path / "reference" / "r")
    return chunks_of(tmp_path / "reference" / "r")


def assert_pack_left_nothing_false(prefix: Path, reference: list[bytes]) -> list[str]:
    """Only whole chunks under their final names, no temp file, no manifest that says the
    archive is complete; returns the chunks' names."""
    names = sorted(os.listdir(prefix.parent))
    assert not [n for n in names if n.endswith(".tmp")], names
    manifest = prefix.parent / (prefix.name + ".manifest.json")
    assert not manifest.exists() or json.loads(manifest.read_bytes())["complete"] is False
    parts = [n for n in names if n.startswith(prefix.name + ".part")]
    for name in parts:
        index = int(name.rsplit(".part", 1)[1])
        assert (prefix.parent / name).read_bytes() == reference[index], name
    return parts


def assert_unpack_left_nothing_false(out: Path, tree: Path) -> list[str]:
    """Every file under its final name holds the source's bytes; no temp file (the resume
    journal may stay); returns the files' names."""
    restored = []
    for dirpath, _, filenames in os.walk(out):
        for name in filenames:
            path = Path(dirpath) / name
            if path.parent == out and name.startswith(".stc-unpack-") and name.endswith(".journal"):
                continue  # where a resumed unpack goes on: meant to stay
            assert not (name.startswith(".stc-") or name.endswith(".tmp")), path
            rel = path.relative_to(out / tree.relative_to("/"))
            if not path.is_symlink():
                assert path.read_bytes() == (tree / rel).read_bytes(), rel
            restored.append(str(rel))
    return restored


def snapshot_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


@pytest.fixture
def archive(tree: Path, tmp_path: Path) -> Path:
    prefix = tmp_path / "archive" / "b"
    pack(tree, prefix)
    return prefix


def on_chunk_temp(directory: Path, index: int) -> Callable[[int], bool]:
    """True for an fsync of chunk ``index``'s temp file."""
    return lambda fd: _name_in(directory, fd) == f".b.part{index}.tmp"


def on_final_temp(directory: Path, name: str) -> Callable[[int], bool]:
    """True for an fsync of the temp file of ``b.sha256`` or of the manifest that says the
    archive is complete (not of a checkpoint manifest an unfinished pack writes)."""

    def final(fd: int) -> bool:
        temp = _name_in(directory, fd)
        if temp is None or not (temp.startswith(f".b.{name}.") and temp.endswith(".tmp")):
            return False
        return name == "sha256" or json.loads((directory / temp).read_bytes())["complete"] is True

    return final


# -- pack -------------------------------------------------------------------------------------


def test_disk_full_while_writing_a_chunk(tree, reference, tmp_path, faults):
    prefix = tmp_path / "out" / "b"
    faults.disk_full_after(2 * CHUNK + 1000)
    with pytest.raises(OutputError, match=r"chunk 2 .*b\.part2\.tmp.*No space left") as caught:
        pack(tree, prefix)
    assert isinstance(caught.value.__cause__, OSError)
    assert assert_pack_left_nothing_false(prefix, reference) == ["b.part0000", "b.part0001"]


@pytest.mark.parametrize("call", ["fsync", "replace"])
def test_disk_full_while_finishing_a_chunk(tree, reference, tmp_path, faults, call):
    """fsync is where a delayed allocation (NFS, some file systems) reports a full disk."""
    prefix = tmp_path / "out" / "b"
    prefix.parent.mkdir()
    if call == "fsync":
        faults.fail("fsync", errno.ENOSPC, on_chunk_temp(prefix.parent, 1))
    else:
        faults.fail("replace", errno.ENOSPC, lambda src, dst: Path(dst).name == "b.part0001")
    with pytest.raises(OutputError, match=r"b\.part0001.*No space left"):
        pack(tree, prefix)
    assert assert_pack_left_nothing_false(prefix, reference) == ["b.part0000"]


@pytest.mark.parametrize("name", ["sha256", "manifest.json"])
def test_disk_full_while_writing_the_manifest(tree, reference, tmp_path, faults, name):
    prefix = tmp_path / "out" / "b"
    prefix.parent.mkdir()
    faults.fail("fsync", errno.ENOSPC, on_final_temp(prefix.parent, name))
    with pytest.raises(OutputError, match=rf"b\.{name}.*No space left"):
        pack(tree, prefix)
    assert len(assert_pack_left_nothing_false(prefix, reference)) == len(reference)


@pytest.mark.parametrize("fault", ["chunk write", "chunk fsync", "sha256 fsync", "manifest fsync"])
def test_a_forced_pack_that_fails_keeps_the_old_archive(make_tree, tree, tmp_path, faults, fault):
    prefix = tmp_path / "out" / "b"
    pack(make_tree({"old.txt": os.urandom(200_000)}, links=False), prefix)
    before = snapshot_files(prefix.parent)
    if fault == "chunk write":
        faults.disk_full_after(3 * CHUNK)
    elif fault == "chunk fsync":
        faults.fail("fsync", errno.ENOSPC, on_chunk_temp(prefix.parent, 4))
    else:
        name = fault.split()[0].replace("manifest", "manifest.json")
        faults.fail("fsync", errno.ENOSPC, on_final_temp(prefix.parent, name))
    with pytest.raises(OutputError, match="No space left"):
        pack(tree, prefix, force=True)
    assert snapshot_files(prefix.parent) == before


def test_pack_into_a_read_only_directory(tree, tmp_path, read_only):
    prefix = tmp_path / "out" / "b"
    prefix.parent.mkdir()
    read_only(prefix.parent)
    with pytest.raises(OutputError, match=rf"{prefix.parent}/\.b\..*Permission denied"):
        pack(tree, prefix)
    assert os.listdir(prefix.parent) == []


def test_pack_where_the_output_directory_cannot_be_made(tree, tmp_path, read_only):
    parent = tmp_path / "locked"
    parent.mkdir()
    read_only(parent)
    with pytest.raises(OutputError, match=r"locked/new.*Permission denied"):
        pack(tree, parent / "new" / "b")
    assert os.listdir(parent) == []


def test_an_unreadable_source_is_refused_before_anything_is_written(tree, tmp_path, monkeypatch):
    secret = tree / "sub" / "c.bin"
    if AS_ROOT:  # root reads anything: the walk's access check is told what a user would see
        monkeypatch.setattr(walk, "_lstat_names", walk.lstat_names_python)  # checks by os.access
        monkeypatch.setattr(walk, "native", None)  # and so does the scan in Python
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda path, mode: path != str(secret) and real_access(path, mode)
        )
    else:
        secret.chmod(0)
    prefix = tmp_path / "out" / "b"
    with pytest.raises(SourceError, match=r"c\.bin.*permission denied"):
        pack(tree, prefix)
    assert not prefix.parent.exists()


def test_a_source_that_becomes_unreadable_midway(tree, reference, tmp_path, unreadable):
    """Readable when the walk checked it, refused when its turn comes (chmod meanwhile)."""
    secret = str(tree / "sub" / "deeper" / "d.bin")
    unreadable(secret)
    prefix = tmp_path / "out" / "b"
    with pytest.raises(SourceError, match=r"d\.bin.*Permission denied") as caught:
        pack(tree, prefix)
    assert caught.value.path == secret
    assert assert_pack_left_nothing_false(prefix, reference), "no chunk before the fault"


# -- unpack -----------------------------------------------------------------------------------


def test_disk_full_while_extracting_a_file(tree, archive, tmp_path, faults):
    out = tmp_path / "restored"
    faults.disk_full_after(320_000)  # a.bin, b.bin and sub/c.bin fit, d.bin does not
    with pytest.raises(OutputError, match=r"sub/deeper/d\.bin.*No space left"):
        sync.unpack(archive, out)
    assert "a.bin" in assert_unpack_left_nothing_false(out, tree)


def test_disk_full_while_renaming_an_extracted_file(tree, archive, tmp_path, faults):
    out = tmp_path / "restored"
    faults.fail("rename", errno.ENOSPC, lambda src, dst, **_: dst == "c.bin")
    with pytest.raises(OutputError, match=r"sub/c\.bin.*No space left"):
        sync.unpack(archive, out)
    assert "sub/c.bin" not in assert_unpack_left_nothing_false(out, tree)


def test_disk_full_while_creating_a_directory(tree, archive, tmp_path, faults):
    out = tmp_path / "restored"
    faults.fail("mkdir", errno.ENOSPC, lambda path, *_, **__: path == "deeper")
    with pytest.raises(OutputError, match=r"sub/deeper.*No space left"):
        sync.unpack(archive, out)
    restored = assert_unpack_left_nothing_false(out, tree)
    assert not any(name.startswith("sub/deeper") for name in restored)


def test_unpack_into_a_read_only_directory(archive, tmp_path, read_only):
    out = tmp_path / "restored"
    out.mkdir()
    read_only(out)
    with pytest.raises(OutputError, match=r"cannot create the folder of .*Permission denied"):
        sync.unpack(archive, out)
    assert os.listdir(out) == []


def test_unpack_where_the_output_directory_cannot_be_made(archive, tmp_path, read_only):
    parent = tmp_path / "locked"
    parent.mkdir()
    read_only(parent)
    with pytest.raises(OutputError, match=r"locked/new.*Permission denied"):
        sync.unpack(archive, parent / "new")
    assert os.listdir(parent) == []


# -- a real full disk -------------------------------------------------------------------------


def test_real_disk_full_while_packing(big_tree, tmp_path, small_fs):
    pack(big_tree, tmp_path / "reference" / "r", compression="none")
    prefix = small_fs / "b"
    with pytest.raises(OutputError, match=r"chunk \d+ \(.*/\.b\.part\d+\.tmp\).*No space left"):
        pack(big_tree, prefix, compression="none")
    parts = assert_pack_left_nothing_false(prefix, chunks_of(tmp_path / "reference" / "r"))
    assert len(parts) > 40  # most of the 4 MiB hold whole chunks


def test_real_disk_full_at_the_manifest(tree, reference, small_fs):
    """Room for all a finished pack leaves there but one page: every chunk fits, the last of
    the files that describe them does not."""
    pack(tree, small_fs / "whole")
    fs = os.statvfs(small_fs)
    needed = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
    for path in small_fs.iterdir():
        path.unlink()
    _fill_to(small_fs, needed - fs.f_frsize)
    prefix = small_fs / "b"
    with pytest.raises(OutputError, match=r"b\.(sha256|manifest\.json).*No space left"):
        pack(tree, prefix)
    assert len(assert_pack_left_nothing_false(prefix, reference)) == len(reference)


def test_real_disk_full_while_unpacking(big_tree, tmp_path, small_fs):
    prefix = tmp_path / "archive" / "b"
    pack(big_tree, prefix, compression="none")
    with pytest.raises(OutputError, match=r"f2\.bin.*No space left"):
        sync.unpack(prefix, small_fs / "out")
    assert sorted(assert_unpack_left_nothing_false(small_fs / "out", big_tree)) == [
        "f0.bin",
        "f1.bin",
    ]


def test_real_disk_full_through_the_cli(big_tree, small_fs):
    command = ["pack", str(big_tree), "-o", str(small_fs / "b"), "-c", "none", "-q"]
    done = subprocess.run(
        [sys.executable, "-m", "streaming_tar_compressor", *command, "--chunk-size", "64K"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 10, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("stc: error: cannot write chunk ")
    assert "No space left on device" in done.stderr


# -- the command line -------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main([*args, "-q"])
    return code, capsys.readouterr().err


def assert_one_line(err: str, *words: str) -> None:
    assert err.count("\n") == 1 and err.startswith("stc: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


def test_cli_pack_disk_full(tree, tmp_path, faults, capsys):
    faults.disk_full_after(CHUNK + 10)
    code, err = run_cli(capsys, "pack", str(tree), "-o", str(tmp_path / "b"), "--chunk-size", "64K")
    assert code == 10
    assert_one_line(err, "chunk 1", "b.part1.tmp", "No space left on device")
    options = "-c gzip -l 6 --chunk-size 64K --block-size 4M"
    resume = f"stc pack {tree} -o {tmp_path / 'b'} {options} --resume"
    assert err.rstrip().endswith(f"; to go on from there: {resume}")


def test_cli_pack_unreadable_source(tree, tmp_path, unreadable, capsys):
    secret = str(tree / "a.bin")
    unreadable(secret)
    code, err = run_cli(capsys, "pack", str(tree), "-o", str(tmp_path / "b"))
    assert code == 3
    assert_one_line(err, secret, "Permission denied")


def test_cli_unpack_disk_full(archive, tmp_path, faults, capsys):
    faults.disk_full_after(150_000)
    code, err = run_cli(capsys, "unpack", str(archive), "-C", str(tmp_path / "restored"))
    assert code == 10
    assert_one_line(err, "b.bin", "No space left on device")
    assert err.rstrip().endswith(
        f"; to go on from there: stc unpack {archive} -C {tmp_path / 'restored'} --resume"
    )


def test_cli_unpack_read_only_output(archive, tmp_path, read_only, capsys):
    out = tmp_path / "restored"
    out.mkdir()
    read_only(out)
    code, err = run_cli(capsys, "unpack", str(archive), "-C", str(out))
    assert code == 10
    assert_one_line(err, "cannot create the folder of", "Permission denied")


@pytest.mark.timeout(30)
def test_a_fifo_in_place_of_a_chunk_or_manifest_is_an_error_not_a_hang(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"data" * 1000)
    stc.pack([src], tmp_path / "a" / "b", compression="gzip")
    part = tmp_path / "a" / "b.part0000"
    part.unlink()
    os.mkfifo(part)
    with pytest.raises(stc.MissingChunkError, match="not a regular file"):
        stc.unpack(tmp_path / "a" / "b", tmp_path / "out")
    manifest = tmp_path / "a" / "b.manifest.json"
    manifest.unlink()
    os.mkfifo(manifest)
    with pytest.raises(stc.ManifestError, match="not a regular file"):
        stc.unpack(tmp_path / "a" / "b", tmp_path / "out")


# -- what a fault leaves can be resumed -------------------------------------------------------


def test_a_pack_stopped_by_a_full_disk_resumes_to_the_same_chunks(
    tree, reference, tmp_path, faults, monkeypatch
):
    prefix = tmp_path / "out" / "b"
    faults.disk_full_after(3 * CHUNK + 1000)
    with pytest.raises(OutputError, match="No space left"):
        pack(tree, prefix)
    monkeypatch.undo()  # the disk has room again
    result = pack(tree, prefix, resume=True)
    assert result.resumed_chunks >= 2
    assert chunks_of(prefix) == reference


def test_an_unpack_stopped_by_a_full_disk_resumes(tree, archive, tmp_path, faults, monkeypatch):
    """The disk fills once the journal says a member is in place, whenever the decoding threads
    got that far: a fixed byte budget would stop the run before or after the first record,
    depending on how far decoding had run ahead of the chunk checks."""
    out = tmp_path / "out"
    in_place: list[int] = []
    journal_record = UnpackJournal.record

    def record(journal: UnpackJournal, position: int, members: int, *rest: Any) -> None:
        journal_record(journal, position, members, *rest)
        if members:
            in_place.append(members)

    monkeypatch.setattr(UnpackJournal, "record", record)
    # Two decoding workers hold at most four 32 KiB blocks: file writes lag the chunk checks by
    # at most that, so some of the 350 KB are still to be written after the first record.
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    faults.fail("write", errno.ENOSPC, lambda *_: bool(in_place))
    with pytest.raises(OutputError, match="No space left"):
        sync.unpack(archive, out)
    monkeypatch.undo()
    result = sync.unpack(archive, out, resume=True)
    assert result.resumed
    assert 0 < in_place[0] <= result.skipped_members
    assert snapshot(out / tree.relative_to("/")) == snapshot(tree)
