"""Sources → tar members in sorted order, with member names as GNU tar would store them.

``scan`` walks once up front to check every source is there and readable (so a bad source
fails before anything is written) and to learn the total size — in one compiled call per
source folder when it can; ``iter_entries`` walks again lazily, so memory does not grow with
the number of files.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol

from .._compiled import native
from ..core.tar_writer import BLOCK, header_size_bound
from ..errors import SourceError
from ..models import MemberKind, TarMember, make_member

Exclude = Callable[[str], bool]

# Names lstat'ed per call: a folder of a million names never holds a million results.
STAT_BATCH = 512


class EntryStat(Protocol):
    """What the walk reads of an lstat: an os.stat_result, or the compiled module's dir_stat."""

    @property
    def st_mode(self) -> int: ...
    @property
    def st_ino(self) -> int: ...
    @property
    def st_dev(self) -> int: ...
    @property
    def st_nlink(self) -> int: ...
    @property
    def st_uid(self) -> int: ...
    @property
    def st_gid(self) -> int: ...
    @property
    def st_size(self) -> int: ...
    @property
    def st_mtime_ns(self) -> int: ...
    @property
    def st_ctime_ns(self) -> int: ...


Listed = tuple[EntryStat | int, bool]
"""(lstat, readable) of a folder's entry, or (errno, False) when its lstat failed."""


def lstat_names_python(directory: str, names: list[str], check_access: bool) -> list[Listed]:
    """The Python twin of ``_native.lstat_names``: each name's lstat and, with
    ``check_access``, whether a file (or folder) can be read (and searched)."""
    found: list[Listed] = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except OSError as exc:
            found.append((exc.errno or 0, False))
            continue
        found.append((st, check_access and _readable(path, st.st_mode)))
    return found


_lstat_names: Callable[[str, list[str], bool], list[Listed]] = (
    native.lstat_names if native is not None else lstat_names_python
)


def _readable(path: str, mode: int) -> bool:
    if stat.S_ISDIR(mode):
        return os.access(path, os.R_OK | os.X_OK)
    return stat.S_ISREG(mode) and os.access(path, os.R_OK)


def exclude_nothing(path: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """A member to write and, for a regular file, the path to read its data from.

    ``stamp`` tells a file's data changed although its header did not (inode, mtime and ctime
    in ns; empty for other kinds): what a resumed pack checks the sources with.
    """

    member: TarMember
    path: str
    stamp: bytes = b""


@dataclass(frozen=True, slots=True)
class SourceSummary:
    files: int
    data_bytes: int
    tar_size_bound: int


@dataclass(frozen=True, slots=True)
class SkippedSource:
    path: str
    reason: str


def member_name(source: str) -> str:
    """What GNU tar stores for a source argument: relative, no leading '/' or '../'."""
    name = os.path.normpath(source)
    parts = [p for p in name.split("/") if p not in ("", "..")]
    return "/".join(parts) or "."


def scan(sources: Sequence[str], exclude: Exclude = exclude_nothing) -> SourceSummary:
    """Check every source exists and is readable; sum what the archive will hold."""
    if not sources:
        raise SourceError("(none)", "give at least one file or directory to pack")
    tally = _Tally()
    for source in sources:
        watch = _watch(exclude)
        if native is None or watch is False:
            tally.add_all(_walk(source, exclude, check_access=True))
        else:
            _scan_compiled(source, exclude, watch, tally)
    return SourceSummary(tally.files, tally.data, tally.bound + 20 * 512 * 2)


@dataclass(frozen=True, slots=True)
class NamesIn:
    """An exclude that matches (``matches``) only names beginning with one of ``starts``
    directly in ``directory``: the compiled scan asks it about those names alone."""

    directory: str
    starts: tuple[str, str]
    matches: Callable[[str], bool]

    def __call__(self, path: str) -> bool:
        return self.matches(path)


_Watch = tuple[int, int, tuple[bytes, bytes]] | None


def _watch(exclude: Exclude) -> _Watch | Literal[False]:
    """What scan_tree must leave to ``exclude``: nothing, the names of a NamesIn in its
    folder (nothing if it does not exist), or False: an exclude it cannot narrow down,
    walked in Python."""
    if exclude is exclude_nothing:
        return None
    if not isinstance(exclude, NamesIn):
        return False
    try:
        st = os.stat(exclude.directory)
    except OSError:
        return None  # no such folder: nothing in it to exclude
    starts = (os.fsencode(exclude.starts[0]), os.fsencode(exclude.starts[1]))
    return (st.st_dev, st.st_ino, starts)


class _Tally:
    """The sums of a scan: entries, data bytes and the tar size bound."""

    def __init__(self) -> None:
        self.files = self.data = self.bound = 0

    def add_all(self, walked: Iterator[Walked]) -> None:
        for path, name, st, readable in walked:
            self.add(path, name, st, readable)

    def add(self, path: str, name: str, st: EntryStat, readable: bool) -> None:
        mode = st.st_mode
        size = st.st_size if stat.S_ISREG(mode) else 0
        self.files += 1
        self.data += size
        link = len(os.fsencode(os.readlink(path))) if stat.S_ISLNK(mode) else 0
        name_length = len(name) if name.isascii() else len(os.fsencode(name))
        self.bound += header_size_bound(name_length, link) + size + -size % BLOCK
        if not readable and (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise SourceError(path, "permission denied")


def _scan_compiled(source: str, exclude: Exclude, watch: _Watch, tally: _Tally) -> None:
    """The source checked here and all below it by one compiled call (scan_tree) without
    the GIL; the entries it leaves (names the exclude may match, folders too deep) are walked
    in Python."""
    assert native is not None
    st, root_name = _source_root(source)
    if root_name != ".":
        tally.add(source, root_name, st, _readable(source, st.st_mode))
    if not stat.S_ISDIR(st.st_mode):
        return
    prefix = "" if root_name == "." else root_name + "/"
    files, data, bound, problem, deferred = native.scan_tree(
        source, len(os.fsencode(prefix)), watch
    )
    if problem is not None:
        path, error = problem
        raise SourceError(path, os.strerror(error) if error else "permission denied")
    tally.files += files
    tally.data += data
    tally.bound += bound
    root = source.rstrip("/") or "/"
    base = root if root == "/" else root + "/"
    for path in deferred:
        if not exclude(path):
            tally.add_all(_walk_from(path, prefix + path[len(base) :], exclude))


def _walk_from(path: str, name: str, exclude: Exclude) -> Iterator[Walked]:
    """An entry below a source, named ``name``, and all below it, access checked."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise SourceError(path, exc.strerror or str(exc)) from exc
    yield path, name, st, _readable(path, st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        yield from _walk_dir(path, name + "/", exclude, True)


def iter_entries(
    sources: Sequence[str], skipped: list[SkippedSource], exclude: Exclude = exclude_nothing
) -> Iterator[SourceEntry]:
    """Members in walk order; sockets and device nodes are left out and listed in ``skipped``."""
    seen_inodes: dict[tuple[int, int], str] = {}
    for source in sources:
        for path, name, st, _ in _walk(source, exclude, check_access=False):
            member = _member(path, name, st, seen_inodes)
            if member is None:
                skipped.append(SkippedSource(path, "not a file, directory or symlink"))
                continue
            stamp = b""
            if member.kind is MemberKind.FILE:
                stamp = b"%d %d %d" % (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
            yield SourceEntry(member, path, stamp)


Walked = tuple[str, str, EntryStat, bool]
"""(path, member name, lstat, readable: only known when the walk checks access)."""


def _source_root(source: str) -> tuple[os.stat_result, str]:
    """A source's lstat (a missing source is the error that names it) and its member name
    ("." for the folder a source like "." or "/" names: not a member of its own)."""
    try:
        return os.lstat(source), member_name(source)
    except OSError as exc:
        raise SourceError(source, exc.strerror or str(exc)) from exc


def _walk(source: str, exclude: Exclude, *, check_access: bool) -> Iterator[Walked]:
    """The source and, for a directory, all below it, sorted."""
    st, root_name = _source_root(source)
    if root_name != ".":
        yield source, root_name, st, check_access and _readable(source, st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        prefix = "" if root_name == "." else root_name + "/"
        yield from _walk_dir(source, prefix, exclude, check_access)


def _walk_dir(path: str, prefix: str, exclude: Exclude, check_access: bool) -> Iterator[Walked]:
    """Depth-first, sorted, with an explicit stack: trees deeper than Python's recursion limit
    are legal and must pack."""
    stack = [_children(path, prefix, exclude, check_access)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        yield entry
        child, name, st, _ = entry
        if stat.S_ISDIR(st.st_mode):
            stack.append(_children(child, name + "/", exclude, check_access))


def _children(path: str, prefix: str, exclude: Exclude, check_access: bool) -> Iterator[Walked]:
    """A folder's entries, sorted, lstat'ed STAT_BATCH at a time (in one call when compiled)."""
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        raise SourceError(path, exc.strerror or str(exc)) from exc
    base = path if path.endswith("/") else path + "/"  # os.path.join, without its cost
    for first in range(0, len(names), STAT_BATCH):
        kept = [
            (entry_name, child)
            for entry_name in names[first : first + STAT_BATCH]
            if not exclude(child := base + entry_name)
        ]
        listed = _lstat_names(path, [entry_name for entry_name, _ in kept], check_access)
        for (entry_name, child), (st, readable) in zip(kept, listed, strict=True):
            if isinstance(st, int):
                raise SourceError(child, os.strerror(st))
            yield child, prefix + entry_name, st, readable


def _member(
    path: str, name: str, st: EntryStat, seen_inodes: dict[tuple[int, int], str]
) -> TarMember | None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        kind, size, linkname = MemberKind.FILE, st.st_size, ""
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in seen_inodes:
                kind, size, linkname = MemberKind.HARDLINK, 0, seen_inodes[key]
            else:
                seen_inodes[key] = name
    elif stat.S_ISDIR(mode):
        kind, size, linkname = MemberKind.DIRECTORY, 0, ""
    elif stat.S_ISLNK(mode):
        try:
            linkname = os.readlink(path)
        except OSError as exc:
            raise SourceError(path, exc.strerror or str(exc)) from exc
        kind, size = MemberKind.SYMLINK, 0
    else:
        return None
    # Built once with its kind (dataclasses.replace() cost ~4 µs a file), by make_member.
    return make_member(
        name,
        kind,
        size,
        stat.S_IMODE(mode),
        st.st_mtime_ns // 1_000_000_000,  # tv_sec, as GNU tar stores it
        st.st_uid,
        st.st_gid,
        _user_name(st.st_uid),
        _group_name(st.st_gid),
        linkname,
        0,
        0,
        0,
    )


@lru_cache(maxsize=256)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@lru_cache(maxsize=256)
def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""
