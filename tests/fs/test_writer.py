"""The file writer: containment against the real filesystem, deferred commits, metadata."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from streaming_tar_compressor.errors import OutputError, UnsafeMemberError
from streaming_tar_compressor.fs.writer import TreeWriter
from streaming_tar_compressor.models import MemberKind, TarMember


def put(writer: TreeWriter, member: TarMember, data: bytes = b"") -> None:
    writer.start(member)
    if data:
        writer.write(data)
    writer.end(member)


def file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[TarMember, bytes]:
    return TarMember(name=name, kind=MemberKind.FILE, size=len(data), mode=mode, mtime=1e9), data


def visible(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(
    ("member", "rule"),
    [
        (TarMember(name="/etc/passwd", kind=MemberKind.FILE), "absolute"),
        (TarMember(name="a/../../x", kind=MemberKind.FILE), r"\.\."),
        (TarMember(name="a\0b", kind=MemberKind.FILE), "NUL"),
        (TarMember(name="dev", kind=MemberKind.CHAR_DEVICE), "device"),
        (TarMember(name="fifo", kind=MemberKind.FIFO), "FIFO"),
        (TarMember(name="l", kind=MemberKind.SYMLINK, linkname="/etc"), "absolute"),
        (TarMember(name="a/l", kind=MemberKind.SYMLINK, linkname="../../x"), "outside"),
        (TarMember(name="h", kind=MemberKind.HARDLINK, linkname="/etc/passwd"), "absolute"),
        (TarMember(name="h", kind=MemberKind.HARDLINK, linkname="never-extracted"), "earlier"),
        (TarMember(name=".", kind=MemberKind.FILE), "directory"),
    ],
)
def test_unsafe_members_are_refused_naming_member_and_rule(tmp_path, member, rule):
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=False)
    with pytest.raises(UnsafeMemberError, match=rule) as info:
        put(writer, member)
    writer.close()
    assert info.value.member == member.name
    assert visible(out) == []
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_never_writes_through_a_symlink_from_the_archive(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    writer = TreeWriter(str(out), deferred=False)
    put(writer, TarMember(name="link", kind=MemberKind.SYMLINK, linkname="."))
    with pytest.raises(UnsafeMemberError, match="symlink"):
        put(writer, *file("link/x"))
    writer.close()
    assert (out / "link").is_symlink()
    assert visible(outside) == []


def test_never_writes_through_a_symlink_already_on_disk(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    os.symlink(outside, out / "evil")
    writer = TreeWriter(str(out), deferred=False)
    with pytest.raises(UnsafeMemberError):
        put(writer, *file("evil/payload"))
    writer.close()
    assert visible(outside) == []


def test_a_file_replaces_a_symlink_instead_of_following_it(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside.txt"
    out.mkdir()
    outside.write_bytes(b"keep")
    os.symlink(outside, out / "name")
    writer = TreeWriter(str(out), deferred=False)
    put(writer, *file("name", b"new"))
    writer.close()
    assert outside.read_bytes() == b"keep"
    assert not (out / "name").is_symlink()
    assert (out / "name").read_bytes() == b"new"


def test_deferred_files_stay_hidden_until_commit(tmp_path):
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=True)
    put(writer, *file("dir/f.txt", b"data"))
    writer.flush()  # the file operations may run on a thread of their own
    assert not (out / "dir" / "f.txt").exists()
    hidden = [p.name for p in (out / "dir").iterdir()]
    assert len(hidden) == 1 and hidden[0].startswith(".") and hidden[0].endswith(".tmp")
    writer.commit()
    writer.close()
    assert (out / "dir" / "f.txt").read_bytes() == b"data"
    assert visible(out) == ["dir", "dir/f.txt"]


def test_abort_removes_unverified_and_half_written_files(tmp_path):
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=True)
    put(writer, *file("done.txt", b"data"))
    member, _ = file("half.txt", b"xxxx")
    writer.start(member)
    writer.write(b"xx")
    writer.abort()
    writer.close()
    assert visible(out) == []


def test_modes_mtimes_and_directory_metadata_applied_last(tmp_path):
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=False)
    put(writer, TarMember(name="ro", kind=MemberKind.DIRECTORY, mode=0o555, mtime=1234567890))
    put(writer, *file("ro/f", b"abc", mode=0o4755))
    writer.close()
    assert stat.S_IMODE((out / "ro").stat().st_mode) == 0o555
    assert int((out / "ro").stat().st_mtime) == 1234567890
    assert stat.S_IMODE((out / "ro" / "f").stat().st_mode) == 0o755  # setuid dropped
    assert (out / "ro" / "f").stat().st_mtime == 1e9
    os.chmod(out / "ro", 0o755)


def test_hardlink_to_a_pending_file_shares_its_inode(tmp_path):
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=True)
    put(writer, *file("a", b"same"))
    put(writer, TarMember(name="b", kind=MemberKind.HARDLINK, linkname="a"))
    writer.commit()
    writer.close()
    assert (out / "a").stat().st_ino == (out / "b").stat().st_ino


@pytest.mark.parametrize(
    ("name", "target"),
    [("b", "a/a/a/../.."), ("d/s", "x/../../.."), ("d/s", "../.."), ("s", "..")],
)
def test_symlink_targets_that_could_leave_through_other_links_are_refused(tmp_path, name, target):
    writer = TreeWriter(str(tmp_path / "out"), deferred=False)
    put(writer, TarMember(name="a", kind=MemberKind.SYMLINK, linkname="."))
    with pytest.raises(UnsafeMemberError, match="symlink"):
        put(writer, TarMember(name=name, kind=MemberKind.SYMLINK, linkname=target))
    writer.close()


@pytest.mark.parametrize(("name", "target"), [("d/e/s", "../../x"), ("s", "./a/b"), ("d/s", "..")])
def test_ordinary_relative_symlinks_are_kept(tmp_path, name, target):
    writer = TreeWriter(str(tmp_path / "out"), deferred=False)
    put(writer, TarMember(name=name, kind=MemberKind.SYMLINK, linkname=target))
    writer.close()
    assert os.readlink(tmp_path / "out" / name) == target


def test_a_hardlink_may_not_copy_a_symlink_elsewhere(tmp_path):
    writer = TreeWriter(str(tmp_path / "out"), deferred=False)
    put(writer, TarMember(name="d1/d2/s", kind=MemberKind.SYMLINK, linkname="../x"))
    with pytest.raises(UnsafeMemberError, match="regular file"):
        put(writer, TarMember(name="h", kind=MemberKind.HARDLINK, linkname="d1/d2/s"))
    writer.close()
    assert not (tmp_path / "out" / "h").exists()


def test_a_hardlink_to_an_unverified_file_leaves_nothing_on_abort(tmp_path):
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=True)
    put(writer, *file("a", b"not yet verified"))
    put(writer, TarMember(name="b", kind=MemberKind.HARDLINK, linkname="a"))
    writer.abort()
    writer.close()
    assert visible(out) == []


def test_absurd_mtime_is_a_clean_error_without_a_temp_file(tmp_path):
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=False)
    member = TarMember(name="f", kind=MemberKind.FILE, size=1, mtime=1e300)
    writer.start(member)
    writer.write(b"x")
    with pytest.raises(OutputError):
        writer.end(member)
    writer.close()
    assert visible(out) == []


def test_long_utf8_names_extract(tmp_path):
    name = "\N{GRINNING FACE}" * 63  # 252 bytes: legal, but no room for a longer temp name
    writer = TreeWriter(str(tmp_path / "out"), deferred=True)
    put(writer, *file(name, b"x"))
    writer.commit()
    writer.close()
    assert (tmp_path / "out" / name).read_bytes() == b"x"


def test_a_commit_that_fails_partway_leaves_nothing_for_abort_to_miss(tmp_path):
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=True)
    put(writer, TarMember(name="d", kind=MemberKind.DIRECTORY, mode=0o755))
    put(writer, *file("a", b"1"))
    put(writer, *file("d", b"2"))  # a file over a folder: its rename fails
    put(writer, *file("z", b"3"))
    with pytest.raises(UnsafeMemberError, match="replace a directory"):
        writer.commit()
    writer.abort()
    writer.close()
    assert visible(out) == ["a", "d"]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


# -- checked input: whole files take their names at once ----------------------------------------


def symlink(name: str, target: str) -> TarMember:
    return TarMember(name=name, kind=MemberKind.SYMLINK, linkname=target, mtime=1e9)


def test_a_checked_whole_file_takes_its_name_before_any_commit(tmp_path):
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=True, checked_input=True)
    writer.whole(*file("dir/f.txt", b"data", mode=0o640))
    writer.flush()
    assert visible(out) == ["dir", "dir/f.txt"]  # no temp name, no commit needed
    found = (out / "dir" / "f.txt").stat()
    assert (stat.S_IMODE(found.st_mode), found.st_mtime) == (0o640, 1e9)
    writer.abort()  # what was checked stays: it is complete
    writer.close()
    assert (out / "dir" / "f.txt").read_bytes() == b"data"


def test_unchecked_whole_files_still_wait_for_their_commit(tmp_path):
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=True)
    writer.whole(*file("f.txt", b"data"))
    writer.flush()
    assert not (out / "f.txt").exists()
    writer.abort()
    writer.close()
    assert visible(out) == []


def test_a_checked_file_after_a_waiting_member_of_its_name_still_comes_last(tmp_path):
    """A symlink waits for its commit under a temp name; the file of the same name after it
    must not take the name first and then lose it to the symlink's rename."""
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=True, checked_input=True)
    put(writer, symlink("name", "elsewhere"))
    writer.whole(*file("name", b"later"))
    writer.commit()
    writer.close()
    assert not (out / "name").is_symlink() and (out / "name").read_bytes() == b"later"


def test_a_folder_through_a_file_just_placed_is_refused(tmp_path):
    """A placed file may still be queued: a walk through its name waits for it, and meets a
    file."""
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=True, checked_input=True)
    writer.whole(*file("f", b"x"))
    with pytest.raises(UnsafeMemberError, match="non-directory"):
        writer.whole(*file("f/inner", b"y"))
    writer.abort()
    writer.close()
    assert (out / "f").read_bytes() == b"x"


@pytest.mark.parametrize("checked", [False, True])
def test_a_folder_through_a_name_that_waits_is_refused_at_once(tmp_path, checked):
    """``a`` waits under a temp name: a folder ``a`` made for ``a/b`` would be refused at
    the commit anyway, with ``a/`` and (placed at once) ``a/b`` left behind."""
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=True, checked_input=checked)
    put(writer, symlink("a", "elsewhere"))
    with pytest.raises(UnsafeMemberError, match="non-directory"):
        writer.whole(*file("a/b", b"x"))
    writer.abort()
    writer.close()
    assert visible(out) == []


def test_a_resumed_link_to_a_file_the_archive_gives_again_is_refused(tmp_path):
    """On resume a hardlink may name a file on disk; if the archive then gives that file
    again, the link pointed forward (refused by a fresh run) at what may be a file the killed
    run left cut short."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "t").write_bytes(b"cu")  # the interrupted run's, cut short
    writer = TreeWriter(str(out), deferred=True, checked_input=True, resumed=True)
    put(writer, TarMember(name="h", kind=MemberKind.HARDLINK, linkname="t", mtime=1e9))
    with pytest.raises(UnsafeMemberError, match=r"'h'.*earlier"):
        writer.whole(*file("t", b"course"))
    writer.abort()
    writer.close()
    assert not (out / "h").exists()  # still under its temp name: gone with the abort
