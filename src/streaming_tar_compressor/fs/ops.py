"""The file operations of an unpack, run in order: in C on a thread of their own when the
compiled module is there, else in Python right away.

TreeWriter decides every name, mode and check; what it hands over here is only system calls
on folder descriptors it holds. Made from Python, each call takes the GIL back, so a Python
writer thread convoys with the parsing thread (measured slower than inline); the C module
(``_native.c``) runs batches on a thread that never takes the GIL while the tar stream is
parsed on.

An operation is a tuple (cheap to build by the hundred thousand):

* ``(CREATE, dir_fd, name, data, mode, uid, gid, mtime_ns, member)``: a new file (O_EXCL,
  never through a symlink) with its content, mode, owner (uid -1: leave it) and mtime;
* ``(RENAME, dir_fd, src, dst, flags, mtime_ns, member)`` within one folder;
  ``UNLINK_SOURCE``: remove ``src`` if rename left it (two links to one file),
  ``SYMLINK_MTIME``: set the symlink ``dst``'s mtime; EISDIR unlinks ``src`` first;
* ``(CLOSE, fd)``: a folder descriptor no longer used, closed after what came before it;
* ``(WRITE, fd, data, member)``: the next piece of a file of several pieces, which the
  writer opened itself (its temp name; a file that arrives whole is one CREATE);
* ``(FINISH, fd, mode, uid, gid, mtime_ns, temp, parent, member)``: that file's mode, owner
  and mtime, then ``close(fd)`` (even when one of them failed); ``temp`` in the folder
  ``parent`` (path parts) is for the caller's clean-up, not read here;
* ``(FOLDER_FINISH, dir_fd, name, mode, uid, gid, mtime_ns, member)``: the folder ``name``
  (opened without following a symlink) gets its mode, owner and mtime, set last;
* ``(PLACE, dir_fd, name, data, mode, uid, gid, mtime_ns, temp, member)``: a file whose
  bytes were all checked, made as CREATE makes it but under its own name (no rename to pay);
  when the name is taken, under ``temp`` and renamed over it (RENAME's EISDIR included). A
  failure removes what the operation made, and only that: nothing is left to clean up.

``member`` names the archive member for messages. ``STC_PURE_PYTHON=1`` in the environment
turns the compiled module off (the test suite runs both ways).
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Any, TypeAlias

from .._compiled import built, native

CREATE, RENAME, CLOSE, WRITE, FINISH, FOLDER_FINISH, PLACE = 0, 1, 2, 3, 4, 5, 6
UNLINK_SOURCE, SYMLINK_MTIME = 1, 2
Op: TypeAlias = tuple[Any, ...]
Failure: TypeAlias = tuple[int, int]  # (index of the operation that failed, errno)
# A new file, never one already there, never through a symlink.
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Operations handed to the C thread at once, and the file content a batch holds at most (it is
# kept until the batch ran, so memory is this times BATCHES_IN_FLIGHT + 1, the one filling).
# Measured on 100,000 small files (6 alternating runs, medians, peak RSS): 256 ops and 1 MiB,
# two in flight 2.82 s, 103 MiB; 1024 ops and 4 MiB, two in flight 2.66 s, 126 MiB, one in
# flight 2.53 s, 118 MiB. Later, slower runs: 1 MiB 3.12 s, 2 MiB 2.96 s at 106-114 MiB, 4 MiB
# 2.90 s at 115-121 MiB: 2 MiB keeps the unpack of every bench corpus under 128 MiB. Those
# were with a Python thread around each batch, which had to take the GIL back. Since the C
# thread never takes it, two in flight pay (3 runs each, same corpus): 2.31-2.38 s against
# 2.47-2.73 s with one, 111-116 MiB; 512 ops and 1 MiB, two or four in flight, 2.37-2.49 s.
BATCH_OPS = 1024
BATCH_BYTES = 2 << 20
BATCHES_IN_FLIGHT = 2
# A piece of a file of several pieces smaller than this goes to the thread too; a larger one is
# written in place (holding whole decoded blocks for the thread measured slower).
THREAD_PIECE = 1 << 20


def run_ops_python(ops: list[Op]) -> Failure | None:
    """The reference for a batch of ``_native.OpThread``: the same calls, in the same order."""
    for index, op in enumerate(ops):
        try:
            _run_one(op)
        except OSError as exc:
            return index, exc.errno or errno.EIO
    return None


def _run_one(op: Op) -> None:
    kind = op[0]
    if kind == CREATE:
        _create(op[1], op[2], *op[3:8])
    elif kind == PLACE:
        _place(op)
    elif kind == RENAME:
        _rename(op)
    elif kind == WRITE:
        _write_all(op[1], op[2])
    elif kind == FINISH:
        _finish(op[1], *op[2:6])
    elif kind == FOLDER_FINISH:
        _finish(os.open(op[2], FOLDER_FLAGS, dir_fd=op[1]), *op[3:7])
    else:
        os.close(op[1])


def _create(
    dir_fd: int, name: str, data: bytes | memoryview, mode: int, uid: int, gid: int, mtime_ns: int
) -> None:
    _fill(os.open(name, NEW_FILE_FLAGS, 0o600, dir_fd=dir_fd), data, mode, uid, gid, mtime_ns)


def _place(op: Op) -> None:
    _, dir_fd, name, data, mode, uid, gid, mtime_ns, temp, _ = op
    content = (data, mode, uid, gid, mtime_ns)
    try:
        _create_or_remove(dir_fd, name, *content)
    except FileExistsError:  # only os.open says so: the name was taken, nothing was made
        _create_or_remove(dir_fd, temp, *content)
        try:
            os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise


def _create_or_remove(
    dir_fd: int, name: str, data: bytes | memoryview, mode: int, uid: int, gid: int, mtime_ns: int
) -> None:
    """As CREATE, but the file goes again when a step after its making fails or is
    interrupted (Ctrl-C lands here when the operations run in Python)."""
    fd = os.open(name, NEW_FILE_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        _fill(fd, data, mode, uid, gid, mtime_ns)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)
        raise


def _fill(fd: int, data: bytes | memoryview, mode: int, uid: int, gid: int, mtime_ns: int) -> None:
    """Content, then metadata; the descriptor is closed either way."""
    try:
        _write_all(fd, data)
    except BaseException:
        os.close(fd)
        raise
    _finish(fd, mode, uid, gid, mtime_ns)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _finish(fd: int, mode: int, uid: int, gid: int, mtime_ns: int) -> None:
    try:
        os.fchmod(fd, mode)
        if uid >= 0:
            os.fchown(fd, uid, gid)
        os.utime(fd, ns=(mtime_ns, mtime_ns))
    finally:
        os.close(fd)


def _rename(op: Op) -> None:
    _, dir_fd, src, dst, flags, mtime_ns, _ = op
    try:
        os.rename(src, dst, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except IsADirectoryError:
        os.unlink(src, dir_fd=dir_fd)
        raise
    if flags & UNLINK_SOURCE:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(src, dir_fd=dir_fd)
    if flags & SYMLINK_MTIME:
        os.utime(dst, ns=(mtime_ns, mtime_ns), dir_fd=dir_fd, follow_symlinks=False)


class OpFailed(Exception):
    """An operation failed: the writer turns it into a message that names the member."""

    def __init__(self, op: Op, error: int) -> None:
        super().__init__(op, error)
        self.op = op
        self.errno = error


class OpRunner:
    """Runs operations in the order they are added. With the C module, in batches on a thread
    of its own (``wait`` until all ran); without, each one at once. A failure is raised as
    OpFailed by the call that meets it; nothing after the failed operation runs, and
    ``abandon`` hands back what did not run so the caller can clean up after it: every
    operation added either runs or is handed back (a FINISH closes its descriptor either way)."""

    def __init__(self, *, compiled: bool | None = None) -> None:
        self._native = native if compiled is None else built if compiled else None
        if compiled and self._native is None:
            raise RuntimeError("the compiled module _native is not available")
        # The C thread keeps what was submitted and what did not run: a Ctrl-C that lands as
        # settle() returns cannot lose track of an operation.
        self._thread = self._native.OpThread() if self._native else None
        self._batch: list[Op] = []
        self._batch_bytes = 0
        self._failed: OpFailed | None = None
        self._unrun: list[Op] = []  # without the thread: the failed operation

    @property
    def compiled(self) -> bool:
        return self._native is not None

    def add(self, op: Op, size: int = 0) -> None:
        """Queue one operation (``size``: the bytes of content it holds)."""
        if self._failed is not None:
            self._batch.append(op)  # it never runs: abandon() hands it back, in order
            raise self._failed
        if self._thread is None:
            try:
                _run_one(op)
            except OSError as exc:
                self._failed = OpFailed(op, exc.errno or errno.EIO)
                self._unrun = [op]
                raise self._failed from exc
            return
        self._batch.append(op)
        self._batch_bytes += size
        if len(self._batch) >= BATCH_OPS or self._batch_bytes >= BATCH_BYTES:
            self._submit()

    def wait(self) -> None:
        """Every operation added so far has run (or raise the first failure)."""
        if self._failed is not None:
            raise self._failed
        if self._batch:
            self._submit()
        while self._thread is not None and self._thread.pending:
            self._settle()

    def abandon(self) -> list[Op]:
        """Finish what was queued and keep no thread; after a failure nothing more runs.
        Returns what did not run, in order: the failed operation first (it may have
        half-happened). An abort for another reason so keeps every whole file made so far,
        as a writer making the calls itself would have."""
        if self._failed is None:
            with contextlib.suppress(OpFailed):
                self.wait()
        self._failed = None  # reported already; what did not run is returned instead
        if self._thread is not None:
            self._thread.stop()
            self._unrun.extend(self._thread.close())
        self._unrun.extend(self._batch)
        self._batch = []
        self._thread = self._native = None  # what the caller still does runs at once
        unrun, self._unrun = self._unrun, []
        return unrun

    def _submit(self) -> None:
        assert self._thread is not None
        self._thread.submit(self._batch)  # if it raises, the batch stays to be handed back
        self._batch, self._batch_bytes = [], 0
        while self._thread.pending > BATCHES_IN_FLIGHT:
            self._settle()

    def _settle(self) -> None:
        """The oldest batch has run. Once one failed, the thread runs no later one; what
        did not run, the failed operation first, comes back from close() in abandon()."""
        assert self._thread is not None
        outcome = self._thread.settle()
        if outcome is not None and outcome[1]:  # errno 0: not run, after a failure
            self._failed = OpFailed(outcome[2], outcome[1])
            raise self._failed
