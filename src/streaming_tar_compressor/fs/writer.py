"""Member events → files under the output directory, never outside it, never half-written.

Containment is done against the real filesystem, not by ``realpath()``: every directory on the
way is opened relative to its parent's descriptor with ``O_NOFOLLOW``, so neither a symlink from
the archive nor one already on disk can redirect a write. Files are written under a temporary
name and renamed when complete; with ``deferred`` commits they stay temporary until the caller
says the bytes they came from have verified (``commit``), and ``abort`` removes them.

The system calls that create, fill and rename files go through an OpRunner (fs/ops.py): with
the compiled module they run in batches on a thread of their own, in order, while this thread
parses on. Every decision stays here; the writer waits for them before anything that depends
on them (a hardlink to a file, a commit, the end).
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
from ..errors import LimitExceededError, OutputError, StcError, UnsafeMemberError, UsageError
from ..models import MemberKind, TarMember
from .journal import is_journal_name
from .ops import (
    CLOSE,
    CREATE,
    FINISH,
    FOLDER_FINISH,
    FOLDER_FLAGS,
    NEW_FILE_FLAGS,
    PLACE,
    RENAME,
    SYMLINK_MTIME,
    THREAD_PIECE,
    UNLINK_SOURCE,
    WRITE,
    Op,
    OpFailed,
    OpRunner,
)

# Starts at a random number: a later process with the same pid (containers) never meets a
# leftover of an earlier one that no journal recorded.
_temp_counter = itertools.count(int.from_bytes(os.urandom(4), "big") << 16)
OPEN_DIRS_KEPT = 256  # folder descriptors kept open: a tree's working set, well below fd limits
_EARLIER_ONLY = "a hardlink must point to a regular file extracted earlier from this archive"
_NS_RANGE = range(-(2**63), 2**63)  # what a timespec holds
_ID_RANGE = range(2**32 - 1)  # uid_t and gid_t, less (uid_t)-1 which means "unchanged"


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


@dataclass(slots=True)
class _Writing:
    """The regular file between its start and end. A file whose content comes in one piece
    (most of a tree's) is created whole by one operation at its end; a longer one is opened
    here as its second piece comes: its pieces under THREAD_PIECE and its metadata go to the
    operations thread (WRITE, FINISH) so that the parser goes on meanwhile, larger pieces are
    written here. Its folder's descriptor is looked up again when needed: a commit in
    between may have closed the one it had."""

    pending: _Pending
    size: int
    data: bytes | None = None
    fd: int = -1


class TreeWriter:
    """Writes one archive's members; ``close`` applies directory modes and mtimes last.

    Permission bits are the stored ones less the umask (``same_permissions``: as stored),
    never with setuid, setgid or sticky. The output directory itself is the user's: a ``.``
    member never changes its mode, owner or times.
    ``max_output_bytes`` (file data) and ``max_members`` stop a bomb with LimitExceededError at
    the member that would pass them, before any of its bytes are written; None is no cap.
    ``resumed``: an interrupted run restored the ``members_before`` members before this one's
    first, so a hardlink may also name a regular file already on disk.
    ``checked_input``: every byte given was checked against the manifest before it came (a
    source that checks block by block), so nothing ``deferred`` waits for concerns it: a
    regular file given whole takes its own name as it is made, with no temporary name and no
    rename (a quarter of the system time of a tree of small files). A file of several
    pieces, a link or a symlink still waits.
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
        checked_input: bool = False,
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
        self._current: _Writing | None = None
        self._ops = OpRunner()
        # "a/b/name" of the renames queued and maybe not yet run: a folder walk through one
        # of these names waits for them, or it would not see the symlink or file it meets.
        # Only renames made outside a commit (which waits for its own) can stay queued.
        self._queued_renames: set[str] = set()
        self._track_renames = self._ops.compiled and not deferred
        self._places_whole_files = checked_input
        self._resumed = resumed
        self._links_to_disk: dict[str, str] = {}  # file on disk -> the hardlink made to it
        self._closed = False
        self.members_written = 0
        self._max_output_bytes, self._max_members = max_output_bytes, max_members
        # What started members declared so far; an interrupted run's members count toward
        # max_members, so resuming again and again cannot pass it (its bytes are not journaled).
        self._output_bytes, self._members = 0, members_before

    # -- events -----------------------------------------------------------------------------

    def start(self, member: TarMember) -> None:
        parts = self._admit(member)
        if member.kind is MemberKind.DIRECTORY:
            self._make_directory(member, parts)
            return
        pending = _Pending(
            parts[:-1],
            _temp_name(),
            parts[-1],
            member.name,
            regular=member.kind in (MemberKind.FILE, MemberKind.HARDLINK),
            symlink_mtime_ns=self._mtime_ns(member) if member.kind is MemberKind.SYMLINK else None,
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
                    self._current = _Writing(pending, member.size)
                    return
        except OSError as exc:
            raise OutputError(f"cannot create {member.name!r}: {exc}") from exc
        self._finished(pending)

    def _admit(self, member: TarMember) -> tuple[str, ...]:
        """The member's checked path parts, once it passed the name rules and the limits."""
        parts = check_member(member)
        if is_journal_name(parts):
            raise UnsafeMemberError(member.name, "the name is reserved for stc's unpack journal")
        if self._links_to_disk:
            self._refuse_a_linked_name("/".join(parts))
        self._count(member)
        return parts

    def whole(self, member: TarMember, data: bytes | memoryview) -> None:
        """``start``, ``write`` and ``end`` of a member whose data is all in ``data``: for a
        regular file, one operation (PLACE, or CREATE under a temp name) with no state kept in
        between (most of a tree's files)."""
        if member.kind is not MemberKind.FILE:
            self.start(member)
            self.end(member)  # no data: only regular files carry any
            return
        parts = self._admit(member)
        pending = _Pending(parts[:-1], _temp_name(), parts[-1], member.name, regular=True)
        parent_fd = self._open_dir(pending.parent, member.name, create=True)
        content = bytes(data)  # kept until the operation runs (the view's buffer is not)
        self._make_file(pending, parent_fd, content, member)

    def restore_directory(self, member: TarMember) -> None:
        """A directory an interrupted run restored: ``close`` still owes it its mode and mtime
        (it is made again if it went missing meanwhile)."""
        parts = check_member(member)
        self._open_dir(parts, member.name, create=True)
        if parts:
            self._directories[parts] = member

    def write(self, data: bytes | memoryview) -> None:
        current = self._current
        if current is None:
            return
        if current.fd < 0 and current.data is None and len(data) == current.size:
            current.data = bytes(data)  # the whole content: kept (the view's buffer is not)
            return
        if current.fd < 0:
            try:
                parent_fd = self._open_dir(
                    current.pending.parent, current.pending.name, create=False
                )
                current.fd = os.open(current.pending.temp, NEW_FILE_FLAGS, 0o600, dir_fd=parent_fd)
            except OSError as exc:
                raise OutputError(f"cannot write {current.pending.name!r}: {exc}") from exc
        if len(data) < THREAD_PIECE:
            self._run((WRITE, current.fd, _unchanging(data), current.pending.name), len(data))
            return
        # A large piece is written here, after what is queued: holding whole decoded blocks
        # for the thread measured slower (a 3 GB file: 3.4-3.6 s -> 3.9-4.2 s).
        self.flush()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(current.fd, view) :]
        except OSError as exc:
            raise OutputError(f"cannot write {current.pending.name!r}: {exc}") from exc

    def end(self, member: TarMember) -> None:
        current = self._current
        if current is None:
            return
        self._current = None
        pending = current.pending
        if current.fd >= 0:
            try:
                mode, uid, gid = safe_mode(member.mode, self._umask), *self._owner(member)
                mtime_ns = self._mtime_ns(member)
            except OutputError:
                with contextlib.suppress(StcError):
                    self.flush()  # its writes ran, or never will: the descriptor is ours again
                os.close(current.fd)
                self._discard(pending)
                raise
            # The runner owns the descriptor now: FINISH closes it, or abandon() hands it back.
            finish = (FINISH, current.fd, mode, uid, gid, mtime_ns, pending.temp, pending.parent)
            self._run((*finish, pending.name))
        else:
            data = current.data if current.data is not None else b""
            parent_fd = self._open_dir(pending.parent, pending.name, create=False)
            self._make_file(pending, parent_fd, data, member)
            return
        self._finished(pending)

    def _make_file(
        self, pending: _Pending, parent_fd: int, content: bytes, member: TarMember
    ) -> None:
        """A regular file whose content is all here, made by one operation: under its own
        name when its bytes were checked and no earlier member of that name waits for its
        rename (which would land after this file), else under its temp name until commit."""
        uid, gid = self._owner(member)
        mode, mtime_ns = safe_mode(member.mode, self._umask), self._mtime_ns(member)
        path = "/".join((*pending.parent, pending.final))
        if not self._places_whole_files or path in self._pending_files:
            op = (CREATE, parent_fd, pending.temp, content, mode, uid, gid, mtime_ns, member.name)
            self._run(op, len(content))
            self._finished(pending)
            return
        op = (PLACE, parent_fd, pending.final, content, mode, uid, gid, mtime_ns, pending.temp)
        self._run((*op, member.name), len(content))
        self.members_written += 1
        self._files.add(path)
        if self._ops.compiled:  # a walk through this name must wait until it exists
            self._queued_renames.add(path)

    # -- verification boundary ------------------------------------------------------------

    def commit(self) -> None:
        """The bytes behind every pending member have verified: give them their real names."""
        pending, self._pending = self._pending, []
        self._pending_files.clear()
        # Folder by folder (a stable sort keeps a name's later member last): each folder is
        # opened once. Order across names does not matter: hardlinks were made from temp names.
        ordered = sorted(pending, key=lambda item: item.parent)
        try:
            for item in ordered:
                self._rename(item)
            self.flush()
        except BaseException:
            # Some may still be temporary: abort() removes those (the others are gone).
            self._pending = ordered
            raise

    def abort(self) -> None:
        """Remove every temporary file: nothing unverified may look complete."""
        self._clean_up_after(self._ops.abandon())
        pending, self._pending = self._pending, []
        self._pending_files.clear()
        if self._current is not None:
            current, self._current = self._current, None
            if current.fd >= 0:
                os.close(current.fd)
            pending.append(current.pending)
        for item in pending:
            self._discard(item)

    def close(self) -> None:
        """Apply directory modes and mtimes, deepest first, once nothing more goes inside."""
        if self._closed:
            return
        self._closed = True
        try:
            # Deepest first (a parent may lose its x bit), siblings together (their parent
            # opened once), the calls on the operations thread.
            for parts in sorted(self._directories, key=lambda parts: (-len(parts), parts)):
                member = self._directories[parts]
                uid, gid = self._owner(member)
                parent_fd = self._open_dir(parts[:-1], member.name, create=False)
                mode, mtime_ns = safe_mode(member.mode, self._umask), self._mtime_ns(member)
                self._run(
                    (FOLDER_FINISH, parent_fd, parts[-1], mode, uid, gid, mtime_ns, member.name)
                )
            self.flush()
        except OSError as exc:
            raise OutputError(f"cannot set directory metadata: {exc}") from exc
        finally:
            self._clean_up_after(self._ops.abandon())
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

    def _owner(self, member: TarMember) -> tuple[int, int]:
        """The stored owner when restoring owners (root only), else (-1, -1): unchanged."""
        if not self._same_owner:
            return -1, -1
        if member.uid not in _ID_RANGE or member.gid not in _ID_RANGE:
            raise OutputError(
                f"cannot set the metadata of {member.name!r}: "
                f"owner {member.uid}:{member.gid} is out of range"
            )
        return member.uid, member.gid

    @staticmethod
    def _mtime_ns(member: TarMember) -> int:
        try:
            mtime_ns = int(member.mtime * 1e9)
        except (OverflowError, ValueError):
            mtime_ns = -1 - 2**63
        if mtime_ns not in _NS_RANGE:
            raise OutputError(
                f"cannot set the metadata of {member.name!r}: mtime {member.mtime} is out of range"
            )
        return mtime_ns

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
        flags = (UNLINK_SOURCE if item.hardlink else 0) | (
            SYMLINK_MTIME if item.symlink_mtime_ns is not None else 0
        )
        # rename() between two links to one file does nothing (POSIX), leaving the temp name:
        # so a hardlink's goes when the link was already there (a member given twice, or
        # extracted again by a resumed unpack).
        parent_fd = self._open_dir(item.parent, item.name, create=False)
        if self._track_renames:
            self._queued_renames.add("/".join((*item.parent, item.final)))
        self._run(
            (RENAME, parent_fd, item.temp, item.final, flags, item.symlink_mtime_ns or 0, item.name)
        )

    def _clean_up_after(self, unrun: list[Op]) -> None:
        """Operations that did not run (an abort, or the first of them failed): a file that a
        failed operation half-made, or whose rename or finish did not run, goes; a folder and
        a file not finished are closed (a FINISH that failed closed its file itself)."""
        for index, op in enumerate(unrun):
            with contextlib.suppress(OSError, StcError):
                if op[0] == CLOSE:
                    os.close(op[1])
                elif op[0] == FINISH:
                    if index:
                        os.close(op[1])
                    temp, parent, name = op[6:]
                    os.unlink(temp, dir_fd=self._open_dir(parent, name, create=False))
                elif op[0] in (CREATE, RENAME):  # a WRITE's file goes with its FINISH
                    os.unlink(op[2], dir_fd=op[1])
                # A PLACE removed what it made when it failed; one that did not run made none.

    def _run(self, op: Op, size: int = 0) -> None:
        try:
            self._ops.add(op, size)
        except OpFailed as failure:
            raise _failure_error(failure) from None

    def flush(self) -> None:
        """Every file operation so far has been made (they may run on a thread of their own)."""
        try:
            self._ops.wait()
        except OpFailed as failure:
            raise _failure_error(failure) from None
        self._queued_renames.clear()

    def _make_directory(self, member: TarMember, parts: tuple[str, ...]) -> None:
        self._open_dir(parts, member.name, create=True)
        if parts:  # () is the output directory: the user's, not the archive's
            self._directories[parts] = member
        self.members_written += 1

    def _link(self, member: TarMember, pending: _Pending) -> None:
        """A hardlink to a regular file extracted earlier — from its temporary name while that
        file still waits for verification, so nothing unverified is renamed early."""
        target = hardlink_parts(member)
        self.flush()  # the target may still be queued
        path = "/".join(target)
        if path not in self._files:
            if not self._restored_file(target, member):
                raise UnsafeMemberError(member.name, _EARLIER_ONLY)
            # A file on disk from before the resume point, as far as this run can tell; one the
            # run meets later was the interrupted run's, maybe cut short by the kill: refused.
            self._links_to_disk[path] = member.name
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

    def _refuse_a_linked_name(self, path: str) -> None:
        """A resumed run linked to the file on disk at ``path``, which the archive now gives
        again: that link pointed forward, which a fresh run refuses (and the file it shares
        may be one the interrupted run left cut short)."""
        link = self._links_to_disk.get(path)
        if link is not None:
            raise UnsafeMemberError(link, _EARLIER_ONLY)

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
        if self._queued_renames and any(
            "/".join(parts[:depth]) in self._queued_renames
            for depth in range(start + 1, len(parts) + 1)
        ):
            self.flush()
        try:
            for depth in range(start + 1, len(parts) + 1):
                if create:
                    if self._pending_files and "/".join(parts[:depth]) in self._pending_files:
                        # A file or link of that name waits for its rename: a folder made
                        # now would be refused then, with what went into it left behind.
                        raise OSError(errno.ENOTDIR, "a member of that name waits")
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(parts[depth - 1], 0o777, dir_fd=fd)
                fd = os.open(parts[depth - 1], FOLDER_FLAGS, dir_fd=fd)
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
            # Closed after the operations queued before, which may still use it.
            self._run((CLOSE, self._open_dirs.popitem(last=False)[1]))

    def _drop_cache(self) -> None:
        for fd in self._open_dirs.values():
            os.close(fd)
        self._open_dirs.clear()


def _failure_error(failure: OpFailed) -> StcError:
    """What a failed operation means, naming its member."""
    op, error = failure.op, OSError(failure.errno, os.strerror(failure.errno))
    if op[0] in (RENAME, PLACE) and failure.errno == errno.EISDIR:
        return UnsafeMemberError(op[-1], "it would replace a directory with a file or link")
    if op[0] in (CREATE, PLACE):
        return OutputError(f"cannot write {op[-1]!r}: {error}")
    if op[0] == RENAME:
        return OutputError(f"cannot rename {op[-1]!r} into place: {error}")
    if op[0] == WRITE:
        return OutputError(f"cannot write {op[-1]!r}: {error}")
    if op[0] in (FINISH, FOLDER_FINISH):
        return OutputError(f"cannot set the metadata of {op[-1]!r}: {error}")
    return OutputError(f"cannot close a folder of the output directory: {error}")


def _unchanging(data: bytes | memoryview) -> bytes | memoryview:
    """Content an operation may hold until it runs: bytes, or a view of bytes (a decoded
    block, which nothing changes), as they are; a view of anything else is copied."""
    if isinstance(data, bytes) or (isinstance(data, memoryview) and isinstance(data.obj, bytes)):
        return data
    return bytes(data)


def _temp_name() -> str:
    """Hidden, short and unique, so a half-written file never passes for the real one."""
    return f".stc-{_pid}-{next(_temp_counter)}.tmp"


def _note_pid() -> None:
    """The pid, read once: ``os.getpid`` is a system call, measured at ~3 µs of the ~40 per
    extracted file while other threads run here (the fork hook keeps a child's own)."""
    global _pid
    _pid = os.getpid()


_pid = os.getpid()
os.register_at_fork(after_in_child=_note_pid)


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
