"""The pack's walk: the compiled lstat of a folder's entries (``_native.lstat_names``) and the
compiled up-front scan (``_native.scan_tree``) say exactly what their Python twins say,
batches keep the sorted order, and member times are the whole seconds GNU tar stores."""

from __future__ import annotations

import errno
import os
import subprocess
import tarfile
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streaming_tar_compressor._compiled import built
from streaming_tar_compressor.errors import SourceError
from streaming_tar_compressor.fs import walk
from streaming_tar_compressor.fs.walk import (
    STAT_BATCH,
    Listed,
    SourceSummary,
    exclude_nothing,
    iter_entries,
    lstat_names_python,
    scan,
)
from streaming_tar_compressor.storage.local import archive_file_matcher
from tests.helpers import build_tree, tool, unavailable
from tests.strategies import file_trees

AS_ROOT = os.geteuid() == 0
FIELDS = (
    "st_mode",
    "st_ino",
    "st_dev",
    "st_nlink",
    "st_uid",
    "st_gid",
    "st_size",
    "st_mtime_ns",
    "st_ctime_ns",
)


@pytest.fixture
def native() -> ModuleType:
    if built is None:
        unavailable("the compiled module _native is not built (no C compiler or Python headers?)")
    return built


def comparable(listed: list[Listed]) -> list[tuple[object, ...]]:
    return [
        (found, readable)
        if isinstance(found, int)
        else (*(getattr(found, f) for f in FIELDS), readable)
        for found, readable in listed
    ]


ENTRY_NAMES = ["a", "b", "é", os.fsdecode(b"\xff-not-utf8"), "x y"]
entries = st.dictionaries(
    st.sampled_from(ENTRY_NAMES),
    st.tuples(
        st.sampled_from(["file", "dir", "symlink", "fifo", "hardlink"]),
        st.sampled_from([0o000, 0o400, 0o644, 0o711, 0o755]),
        # mtime in ns: before 1970, and after 2262 (past a 64-bit count of ns) too
        st.integers(-(2**40), 10**19 + 10**9),
    ),
    max_size=5,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=entries, missing=st.lists(st.sampled_from(["gone", "a", "é"]), max_size=2))
def test_lstat_names_says_what_its_python_twin_says(
    native: ModuleType,
    tmp_path_factory: pytest.TempPathFactory,
    entries: dict[str, tuple[str, int, int]],
    missing: list[str],
) -> None:
    folder = tmp_path_factory.mktemp("walk")
    for name, (kind, mode, mtime_ns) in entries.items():
        path = folder / name
        if kind == "file":
            path.write_bytes(b"x" * (mtime_ns % 100))
        elif kind == "dir":
            path.mkdir()
        elif kind == "symlink":
            path.symlink_to("target")
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            (folder / "linked").write_bytes(b"")
            os.link(folder / "linked", path)
        if kind != "symlink":
            os.utime(path, ns=(mtime_ns, mtime_ns))
            path.chmod(mode)
    names = sorted(entries) + [name for name in missing if name not in entries]
    for check_access in (True, False):
        compiled = native.lstat_names(str(folder), names, check_access)
        assert comparable(compiled) == comparable(
            lstat_names_python(str(folder), names, check_access)
        )
        assert len(compiled) == len(names)
    for name, (kind, _, _) in entries.items():
        if kind == "dir":
            (folder / name).chmod(0o700)  # so that the temporary folder can be removed


@pytest.mark.parametrize("mtime_ns", [10**19 + 5, 2**63 - 1, -1_500_000_001])
def test_times_past_a_64_bit_count_of_nanoseconds_stay_exact(
    native: ModuleType, tmp_path: Path, mtime_ns: int
) -> None:
    (tmp_path / "f").write_bytes(b"")
    os.utime(tmp_path / "f", ns=(mtime_ns, mtime_ns))
    ((found, _),) = native.lstat_names(str(tmp_path), ["f"], False)
    assert found.st_mtime_ns == os.lstat(tmp_path / "f").st_mtime_ns == mtime_ns


def test_a_missing_folder_fails_every_name_alike(native: ModuleType, tmp_path: Path) -> None:
    gone = str(tmp_path / "gone")
    assert native.lstat_names(gone, ["a", "b"], True) == [(errno.ENOENT, False)] * 2
    assert lstat_names_python(gone, ["a", "b"], True) == [(errno.ENOENT, False)] * 2


def test_folders_larger_than_a_batch_walk_in_sorted_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tree = Path("tree")
    tree.mkdir()
    names = [f"f{i:05d}" for i in range(STAT_BATCH * 2 + 7)]
    for name in reversed(names):
        (tree / name).write_bytes(name.encode())
    skipped: list[walk.SkippedSource] = []
    members = [e.member.name for e in iter_entries([str(tree)], skipped)]
    assert members == ["tree"] + [f"tree/{name}" for name in names]
    excluded = {str(tree / names[STAT_BATCH]), str(tree / names[-1])}
    kept = [e.member.name for e in iter_entries([str(tree)], skipped, excluded.__contains__)]
    assert len(kept) == len(members) - 2 and f"tree/{names[STAT_BATCH]}" not in kept
    assert scan([str(tree)], excluded.__contains__).files == len(kept)


def test_an_entry_that_vanishes_before_its_lstat_names_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("a", "b", "c"):
        (tree / name).write_bytes(b"data")
    real = walk._lstat_names

    def vanishing(directory: str, names: list[str], check_access: bool) -> list[Listed]:
        (tree / "b").unlink(missing_ok=True)  # between the listing and the lstat
        return real(directory, names, check_access)

    monkeypatch.setattr(walk, "_lstat_names", vanishing)
    monkeypatch.setattr(walk, "native", None)  # the scan in Python: the compiled one lists in C
    with pytest.raises(SourceError) as caught:
        scan([str(tree)])
    assert str(tree / "b") in str(caught.value) and "No such file" in str(caught.value)
    (tree / "b").write_bytes(b"data")
    with pytest.raises(SourceError) as caught:
        list(iter_entries([str(tree)], []))
    assert str(tree / "b") in str(caught.value) and "No such file" in str(caught.value)


@pytest.mark.parametrize(
    "mtime_ns", [1_700_000_000_999_999_999, -1_500_000_000, 0, 10_000_000_000 * 10**9 + 5]
)
def test_member_times_are_the_whole_seconds_gnu_tar_stores(tmp_path: Path, mtime_ns: int) -> None:
    """tv_sec, not int(st_mtime): the float rounds .999999999 up a second and truncates
    before 1970 toward zero."""
    source = tmp_path / "f"
    source.write_bytes(b"data")
    os.utime(source, ns=(mtime_ns, mtime_ns))
    (member,) = [e.member for e in iter_entries([str(source)], [])]
    assert member.mtime == mtime_ns // 10**9
    if mtime_ns >= 0 and mtime_ns < 8**11 * 10**9:  # what GNU tar's octal field holds
        archive = tmp_path / "gnu.tar"
        subprocess.run([tool("tar"), "-cf", str(archive), "-C", str(tmp_path), "f"], check=True)
        with tarfile.open(archive) as gnu:
            assert gnu.getmember("f").mtime == member.mtime


# Names the archive matcher of prefix "a" in the scanned folder excludes, and some it keeps.
ARCHIVE_NAMES = ["a.part0000", ".a.part0001.123.tmp", "a.manifest.json", "a.lock", "a.index"]
NEAR_NAMES = ["a.partial", "a.part", "ab.part0000", ".a", "a."]


def python_scan(
    monkeypatch: pytest.MonkeyPatch, sources: list[str], exclude: walk.Exclude
) -> SourceSummary:
    with monkeypatch.context() as patch:
        patch.setattr(walk, "native", None)
        return scan(sources, exclude)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    files=file_trees(max_files=10, max_size=3000),
    archive_in=st.sampled_from(["tree", "tree/sub", "elsewhere"]),
    extra=st.lists(st.sampled_from(ARCHIVE_NAMES + NEAR_NAMES), max_size=4, unique=True),
    folder_named=st.booleans(),
    spelling=st.sampled_from(["tree", "tree/", "abs", "tree/sub", "dot", "link/"]),
)
def test_the_compiled_scan_sums_what_its_python_twin_sums(
    native: ModuleType,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, bytes],
    archive_in: str,
    extra: list[str],
    folder_named: bool,
    spelling: str,
) -> None:
    """Archive files (and near misses) in the folder the output goes to, a folder with an
    archive file's name (left to the exclude, which keeps it and all below it), symlinks,
    hardlinks and names as sources are spelt (a symlink to a folder with a slash: the
    folder): the same sums."""
    top = tmp_path_factory.mktemp("scan")
    build_tree(top / "tree", files)
    (top / "tree" / "sub").mkdir(exist_ok=True)
    (top / "elsewhere").mkdir()
    for name in extra:
        (top / archive_in / name).write_bytes(b"chunk" * 100)
    if folder_named:
        (top / archive_in / "a.part9999").mkdir(exist_ok=True)
        (top / archive_in / "a.part9999" / "inside").write_bytes(b"kept")
    (top / "link").symlink_to("tree")
    monkeypatch.chdir(top / "tree" if spelling == "dot" else top)
    monkeypatch.setattr(walk, "native", native)  # compiled, also when the suite runs without
    source = {"abs": str(top / "tree"), "dot": "."}.get(spelling, spelling)
    for exclude in (archive_file_matcher(str(top / archive_in / "a")), exclude_nothing):
        assert scan([source], exclude) == python_scan(monkeypatch, [source], exclude)


def test_folders_deeper_than_the_compiled_walk_holds_are_left_to_python(
    native: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deepest = tmp_path / "tree"
    for level in range(140):  # past SCAN_DEPTH (128) levels
        deepest = deepest / f"d{level}"
        (deepest.parent / f"f{level}").parent.mkdir(parents=True, exist_ok=True)
        (deepest.parent / f"f{level}").write_bytes(b"x" * level)
    deepest.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(walk, "native", native)
    _, _, _, problem, deferred = native.scan_tree("tree", len(b"tree/"), None)
    assert problem is None and len(deferred) == 1 and deferred[0].count("/") == 128
    assert scan(["tree"]) == python_scan(monkeypatch, ["tree"], exclude_nothing)
    assert scan(["tree"]).files == 1 + 140 + 140


def test_the_compiled_scan_names_the_folder_it_cannot_walk(
    native: ModuleType, tmp_path: Path
) -> None:
    (tmp_path / "file").write_bytes(b"")
    for name, error in (("gone", errno.ENOENT), ("file", errno.ENOTDIR)):
        path = str(tmp_path / name)
        assert native.scan_tree(path, 0, None) == (0, 0, 0, (path, error), [])


def test_an_unreadable_entry_stops_the_compiled_scan(
    native: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "secret").write_bytes(b"s")
    (tree / "sub" / "secret").chmod(0)
    monkeypatch.setattr(walk, "native", native)
    if AS_ROOT:  # root reads anything, and both scans say so
        assert scan([str(tree)]) == python_scan(monkeypatch, [str(tree)], exclude_nothing)
        assert scan([str(tree)]).files == 3
        return
    with pytest.raises(SourceError, match=r"sub/secret.*permission denied"):
        scan([str(tree)])
    (tree / "sub").chmod(0o600)  # listed, not searchable
    try:
        with pytest.raises(SourceError, match=r"tree/sub'?: permission denied"):
            scan([str(tree)])
    finally:
        (tree / "sub").chmod(0o700)
