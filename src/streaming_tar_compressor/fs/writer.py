"""Member events → files under the output directory, never outside it, never half-written.

Containment is done against the real filesystem, not by ``realpath()``: every directory on the
way is opened relative to its parent's descriptor with ``O_NOFOLLOW``, so neither a symlink from
the archive nor one already on disk can redirect a write. Files are written under a temporary
name and renamed when complete; with ``deferred`` commits they stay temporary until the caller
says the bytes they came from have verified (``commit``), and ``abort`` removes them.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat
from collections import OrderedDict
from dataclasses import dataclass

from ..core.safety import check_member, hardlink_parts, safe_mode
from ..errors import LimitExceededError, OutputError, UnsafeMemberError, UsageError
from ..models import MemberKind, TarMember
from .journal import is_journal_name

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Starts at a random number: a later process with the same pid (containers) never meets a
# leftover of an earlier one that no journal recorded.
_temp_counter = itertools.count(int.from_bytes(os.urandom(4), "big") << 16)
OPEN_DIRS_KEPT = 256  # folder descriptors kept open: a tree's working set, well below fd limits


@dataclass(slots=True)
class _Pending:
    """A finished member still under its temporary name: only what renaming it needs, since
    a chunk of tiny files may leave a hundred thousand of these waiting for verification."""

    parent: tuple[str, ...]
    temp: str
    final: str
    name: str
    regular: bool  # a regular file (or a hardlink to one): what later hardlinks may name
    symlink_mtime_ns: int | None = None
    hardlink: bool = False


class TreeWriter:
    """Writes one archive's members; ``close`` applies directory modes and mtimes last.

    Permission bits are the stored ones less the umask (``same_permissions``: as stored),
    never with setuid, setgid or sticky. The output directory itself is the user's: a ``.``
    member never changes its mode, owner or times.
    ``max_output_bytes`` (file data) and ``max_members`` stop a bomb with LimitExceededError at
    the member that would pass them, before any of its bytes are written; None is no cap.
    ``resumed``: an interrupted run restored the ``members_before`` members before this one's
    first, so a hardlink may also name a regular file already on disk.
    """

    def __init__(
        self,
        output_dir: str,
        *,
        deferred: bool,
        same_owner: bool = False,
        same_permissions: bool = False,
        max_output_bytes: int | None = None,
        max_members: int | None = None,
        resumed: bool = False,
        members_before: int = 0,
    ) -> None:
        for limit, value in (("max_output_bytes", max_output_bytes), ("max_members", max_members)):
            if value is not None and value < 0:
                raise UsageError(f"{limit} must be at least 0, not {value}")
        try:
            os.makedirs(output_dir, exist_ok=True)
            self._root_fd = os.open(output_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise OutputError(f"cannot use {output_dir!r} as output directory: {exc}") from exc
        self.output_dir = output_dir
        self._deferred = deferred
        self._same_owner = same_owner and os.geteuid() == 0
        # Stored modes pass through the umask, as tar restores them for a user (and as every
        # program creates files): a careless archive leaves no world-writable folder behind.
        self._umask = 0 if same_permissions else current_umask()
        self._open_dirs: OrderedDict[tuple[str, ...], int] = OrderedDict()
        self._pending: list[_Pending] = []
        self._pending_files: dict[str, _Pending] = {}  # by "a/b/name"
        self._directories: dict[tuple[str, ...], TarMember] = {}
        self._files: set[str] = set()  # "a/b/name" of regular files: what hardlinks may name
        self._current: tuple[int, _Pending] | None = None
        self._resumed = resumed
        self._closed = False
        self.members_written = 0
        self._max_output_bytes, self._max_members = max_output_bytes, max_members
        # What started members declared so far; an interrupted run's members count toward
        # max_members, so resuming again and again cannot pass it (its bytes are not journaled).
        self._output_bytes, self._members = 0, members_before

    # -- events -----------------------------------------------------------------------------

    def start(self, member: TarMember) -> None:
        parts = check_member(member)
        if is_journal_name(parts):
            raise UnsafeMemberError(member.name, "the name is reserved for stc's unpack journal")
        self._count(member)
        if member.kind is MemberKind.DIRECTORY:
            self._make_directory(member, parts)
            return
        pending = _Pending(
            parts[:-1],
            _temp_name(),
            parts[-1],
            member.name,
            regular=member.kind in (MemberKind.FILE, MemberKind.HARDLINK),
            symlink_mtime_ns=_times_ns(member)[0] if member.kind is MemberKind.SYMLINK else None,
            hardlink=member.kind is MemberKind.HARDLINK,
        )
        try:
            if member.kind is MemberKind.HARDLINK:
                self._link(member, pending)
            else:
                parent_fd = self._open_dir(pending.parent, member.name, create=True)
                if member.kind is MemberKind.SYMLINK:
                    self._refuse_replacing_a_file(member, pending, parent_fd)
                    os.symlink(member.linkname, pending.temp, dir_fd=parent_fd)
                else:
                    fd = os.open(pending.temp, _NEW_FILE_FLAGS, 0o600, dir_fd=parent_fd)
                    self._current = (fd, pending)
                    return
        except OSError as exc:
            raise OutputError(f"cannot create {member.name!r}: {exc}") from exc
        self._finished(pending)

    def restore_directory(self, member: TarMember) -> None:
        """A directory an interrupted run restored: ``close`` still owes it its mode and mtime
        (it is made again if it went missing meanwhile)."""
        parts = check_member(member)
        self._open_dir(parts, member.name, create=True)
        if parts:
            self._directories[parts] = member

    def write(self, data: bytes | memoryview) -> None:
        if self._current is None:
            return
        fd = self._current[0]
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            raise OutputError(f"cannot write {self._current[1].name!r}: {exc}") from exc

    def end(self, member: TarMember) -> None:
        if self._current is None:
            return
        fd, pending = self._current
        self._current = None
        try:
            self._apply_metadata(fd, member)
        except OutputError:
            self._discard(pending)
            raise
        finally:
            os.close(fd)
        self._finished(pending)

    # -- verification boundary ------------------------------------------------------------

    def commit(self) -> None:
        """The bytes behind every pending member have verified: give them their real names."""
        pending, self._pending = self._pending, []
        self._pending_files.clear()
        # Folder by folder (a stable sort keeps a name's later member last): each folder is
        # opened once. Order across names does not matter: hardlinks were made from temp names.
        ordered = sorted(pending, key=lambda item: item.parent)
        for position, item in enumerate(ordered):
            try:
                self._rename(item)
            except BaseException:
                self._pending = ordered[position:]  # still temporary: abort() removes them
                raise

    def abort(self) -> None:
        """Remove every temporary file: nothing unverified may look complete."""
        pending, self._pending = self._pending, []
        self._pending_files.clear()
        if self._current is not None:
            fd, item = self._current
            self._current = None
            os.close(fd)
            pending.append(item)
        for item in pending:
            self._discard(item)

    def close(self) -> None:
        """Apply directory modes and mtimes, deepest first, once nothing more goes inside."""
        if self._closed:
            return
        self._closed = True
        try:
            # Deepest first (a parent may lose its x bit), siblings together (one open each).
            for parts in sorted(self._directories, key=lambda parts: (-len(parts), parts)):
                member = self._directories[parts]
                fd = os.open(
                    ".", _DIR_FLAGS, dir_fd=self._open_dir(parts, member.name, create=False)
                )
                try:
                    self._apply_metadata(fd, member)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise OutputError(f"cannot set directory metadata: {exc}") from exc
        finally:
            self._drop_cache()
            os.close(self._root_fd)

    # -- helpers ----------------------------------------------------------------------------

    def _count(self, member: TarMember) -> None:
        """Declared sizes are what the reader delivers (or it fails): a cap is checked before
        the member's file exists, so no file is ever cut short by one."""
        self._members += 1
        self._output_bytes += member.size  # 0 for everything but regular files
        if self._max_members is not None and self._members > self._max_members:
            raise LimitExceededError(member.name, "max_members", self._max_members)
        if self._max_output_bytes is not None and self._output_bytes > self._max_output_bytes:
            raise LimitExceededError(member.name, "max_output_bytes", self._max_output_bytes)

    def _refuse_replacing_a_file(
        self, member: TarMember, pending: _Pending, parent_fd: int
    ) -> None:
        """A symlink may replace a symlink, never a regular file (on disk, or one of this archive
        still waiting under a temporary name): a file that silently becomes a link redirects
        whatever later writes or links that name trusting it to be a file (another archive, a
        script)."""
        try:
            st = os.stat(pending.final, dir_fd=parent_fd, follow_symlinks=False)
            on_disk = stat.S_ISREG(st.st_mode)
        except FileNotFoundError:
            on_disk = False
        if on_disk or "/".join((*pending.parent, pending.final)) in self._files:
            raise UnsafeMemberError(member.name, "a symlink may not replace a regular file")

    def _apply_metadata(self, fd: int, member: TarMember) -> None:
        """Mode (special bits dropped), owner on request, and mtime, on an open descriptor."""
        try:
            os.fchmod(fd, safe_mode(member.mode, self._umask))
            if self._same_owner:
                os.fchown(fd, member.uid, member.gid)
            os.utime(fd, ns=_times_ns(member))
        except (OSError, OverflowError, ValueError) as exc:
            raise OutputError(f"cannot set the metadata of {member.name!r}: {exc}") from exc

    def _finished(self, pending: _Pending) -> None:
        self.members_written += 1
        path = "/".join((*pending.parent, pending.final))
        if pending.regular:
            self._files.add(path)
        else:
            self._files.discard(path)
        if self._deferred:
            self._pending.append(pending)
            self._pending_files[path] = pending
        else:
            self._rename(pending)

    def _discard(self, item: _Pending) -> None:
        with contextlib.suppress(OSError, UnsafeMemberError, OutputError):
            os.unlink(item.temp, dir_fd=self._open_dir(item.parent, item.name, create=False))

    def _rename(self, item: _Pending) -> None:
        parent_fd = self._open_dir(item.parent, item.name, create=False)
        try:
            os.rename(item.temp, item.final, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        except IsADirectoryError:
            os.unlink(item.temp, dir_fd=parent_fd)
            raise UnsafeMemberError(
                item.name, "it would replace a directory with a file or link"
            ) from None
        except OSError as exc:
            raise OutputError(f"cannot rename {item.name!r} into place: {exc}") from exc
        if item.hardlink:
            # rename() between two links to one file does nothing (POSIX), leaving the temp
            # name: so it goes when the link was already there (a member given twice, or
            # extracted again by a resumed unpack).
            with contextlib.suppress(FileNotFoundError):
                os.unlink(item.temp, dir_fd=parent_fd)
        if item.symlink_mtime_ns is not None:
            try:
                os.utime(
                    item.final,
                    ns=(item.symlink_mtime_ns, item.symlink_mtime_ns),
                    dir_fd=parent_fd,
                    follow_symlinks=False,
                )
            except (OSError, OverflowError, ValueError) as exc:
                raise OutputError(f"cannot set mtime of {item.name!r}: {exc}") from exc

    def _make_directory(self, member: TarMember, parts: tuple[str, ...]) -> None:
        self._open_dir(parts, member.name, create=True)
        if parts:  # () is the output directory: the user's, not the archive's
            self._directories[parts] = member
        self.members_written += 1

    def _link(self, member: TarMember, pending: _Pending) -> None:
        """A hardlink to a regular file extracted earlier — from its temporary name while that
        file still waits for verification, so nothing unverified is renamed early."""
        target = hardlink_parts(member)
        if "/".join(target) not in self._files and not self._restored_file(target, member):
            raise UnsafeMemberError(
                member.name,
                "a hardlink must point to a regular file extracted earlier from this archive",
            )
        waiting = self._pending_files.get("/".join(target))
        source_name = waiting.temp if waiting is not None else target[-1]
        # _open_dir's descriptors belong to its cache; own a copy so no later call closes it.
        target_fd = os.dup(self._open_dir(target[:-1], member.name, create=False))
        try:
            parent_fd = self._open_dir(pending.parent, member.name, create=True)
            os.link(
                source_name,
                pending.temp,
                src_dir_fd=target_fd,
                dst_dir_fd=parent_fd,
                follow_symlinks=False,
            )
        finally:
            os.close(target_fd)

    def _restored_file(self, target: tuple[str, ...], member: TarMember) -> bool:
        """On resume, a regular file on disk that this run has not seen (it was restored
        before the resume point), reached without following any symlink."""
        path = "/".join(target)
        if not self._resumed or path in self._pending_files or is_journal_name(target):
            return False
        try:
            parent_fd = self._open_dir(target[:-1], member.name, create=False)
            st = os.stat(target[-1], dir_fd=parent_fd, follow_symlinks=False)
        except (OSError, OutputError):
            return False
        return stat.S_ISREG(st.st_mode)

    def _open_dir(self, parts: tuple[str, ...], name: str, *, create: bool) -> int:
        """A descriptor of ``parts`` below the root, reached without following any symlink.

        Descriptors of recently used folders stay open (a small LRU), and a walk starts from
        the deepest open ancestor: extracting a tree then costs about one ``open`` per folder.
        A cached descriptor stays safe: no member can replace a folder (that is refused), so
        it always names a folder inside the output directory.
        """
        cached = self._open_dirs.get(parts)
        if cached is not None:
            self._open_dirs.move_to_end(parts)
            return cached
        start, fd = 0, self._root_fd
        for depth in range(len(parts) - 1, 0, -1):
            ancestor = self._open_dirs.get(parts[:depth])
            if ancestor is not None:
                start, fd = depth, ancestor
                break
        try:
            for depth in range(start + 1, len(parts) + 1):
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(parts[depth - 1], 0o777, dir_fd=fd)
                fd = os.open(parts[depth - 1], _DIR_FLAGS, dir_fd=fd)
                self._keep(parts[:depth], fd)  # folders on the way are kept too: siblings
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeMemberError(
                    name, "its path goes through a symlink or a non-directory"
                ) from exc
            raise OutputError(f"cannot create the folder of {name!r}: {exc}") from exc
        if not parts:
            fd = os.dup(self._root_fd)
            self._keep(parts, fd)
        return fd

    def _keep(self, parts: tuple[str, ...], fd: int) -> None:
        """Cache a folder's descriptor; the oldest goes when there are too many. The folders
        of the walk in progress are the newest, so none of them is closed under it."""
        self._open_dirs[parts] = fd
        self._open_dirs.move_to_end(parts)
        if len(self._open_dirs) > OPEN_DIRS_KEPT:
            os.close(self._open_dirs.popitem(last=False)[1])

    def _drop_cache(self) -> None:
        for fd in self._open_dirs.values():
            os.close(fd)
        self._open_dirs.clear()


def _times_ns(member: TarMember) -> tuple[int, int]:
    mtime_ns = int(member.mtime * 1e9)
    return mtime_ns, mtime_ns


def _temp_name() -> str:
    """Hidden, short and unique, so a half-written file never passes for the real one."""
    return f".stc-{os.getpid()}-{next(_temp_counter)}.tmp"


def current_umask() -> int:
    """The process umask, read without changing it: ``os.umask`` can only be read by setting
    it, and for that instant every other thread would create files with the wrong mode."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc (not Linux): the only way left
    os.umask(mask)
    return mask
