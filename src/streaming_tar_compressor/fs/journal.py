"""The unpack journal: how far an interrupted unpack got, so ``--resume`` can skip that part.

``OUT/.stc-unpack-<16 hex>.journal`` (the hex names the archive: the SHA-256 of its manifest)
holds JSON lines, each appended whole:

* a header naming the archive in full, with the pid of the run that began the journal;
* ``{"pid": …}`` from each run that resumed it. Temp files carry their run's pid, and a run
  is listed before it makes its first one, so a later run knows which leftovers to remove;
* after a verified chunk, ``{"position": …, "members": …, "dirs": […]}``: the tar offset of the
  first header of the first member not yet in place, how many members come before it, and the
  directories among them seen since the last record (their modes and mtimes are applied only
  when an unpack ends, so the run that ends must still apply them).

The unpacker writes a record only after the renames it vouches for, so a kill at any moment
leaves a journal that lags behind the tree, never one that runs ahead of it; a torn last line
(a kill mid-write) is ignored and cut off. A run makes the journal as it starts and removes it
when the unpack completes; it holds an exclusive ``flock`` on it, so two runs never share it.

Records are not fsync'd: the kernel keeps what a killed process wrote, and against a machine
crash an fsync'd journal would promise files whose data is not on disk either (extracted files
are not fsync'd, as with tar). So resume after a process dies, not after a power loss.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..core.manifest import Manifest
from ..errors import OutputError, UsageError
from ..models import MemberKind, TarMember

_FORMAT = "stc-unpack-journal"
_VERSION = 1
_JOURNAL_NAME = re.compile(r"\.stc-unpack-[0-9a-f]{16}\.journal")
_TEMP_NAME = re.compile(r"\.stc-(\d+)-\d+\.tmp")  # what fs/writer.py's _temp_name makes
_TAR_BLOCK = 512  # every tar header starts on a multiple of it
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC


def is_journal_name(parts: tuple[str, ...]) -> bool:
    """True for a path where an unpack journal lives: an archive member written there could
    plant a journal that makes a later ``--resume`` skip members."""
    return len(parts) == 1 and _JOURNAL_NAME.fullmatch(parts[0]) is not None


@dataclass(frozen=True, slots=True)
class ResumeState:
    """What interrupted runs left in place: every member before tar offset ``position``."""

    position: int
    members: int
    directories: tuple[TarMember, ...]  # the directory members among them, in stream order


class _Damaged(Exception):
    """Complete lines that are not a journal's (a torn last line is normal, not damage)."""


@dataclass(frozen=True, slots=True)
class _Contents:
    archive: str | None  # None: an empty journal
    pids: frozenset[int]
    state: ResumeState | None  # None: no member known to be in place
    length: int  # bytes of complete lines


class UnpackJournal:
    """The journal of one archive's unpack into one output directory."""

    def __init__(self, output_dir: str, manifest: Manifest, tar_size: int | None = None) -> None:
        """Named by ``manifest`` (as stored: an encrypted archive's public one, so that what
        has no key finds the journal too); ``tar_size`` when the manifest does not say it."""
        self._output_dir = output_dir
        self._archive = hashlib.sha256(manifest.to_json().encode()).hexdigest()
        self._size = tar_size or manifest.uncompressed_size or 0
        self.name = f".stc-unpack-{self._archive[:16]}.journal"
        self.path = os.path.join(output_dir, self.name)
        self._dir_fd: int | None = None
        self._fd: int | None = None
        self._last = (0, 0)  # (position, members) of the last record

    def open(self, *, resume: bool) -> ResumeState | None:
        """Take over the journal earlier runs left, if any: remove their temp files, and with
        ``resume`` return how far they got (None: nothing to skip). Otherwise start afresh."""
        try:
            self._dir_fd = os.open(self._output_dir, _DIR_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise OutputError(f"cannot open {self._output_dir!r}: {exc}") from exc
        self._fd = self._open_existing()
        if self._fd is None:
            return None
        try:
            contents = _parse(_read_all(self._fd))
        except _Damaged as exc:
            if resume:
                raise UsageError(
                    f"{self.path} is damaged ({exc}); unpack without --resume to start over"
                ) from None
            contents = _Contents(None, frozenset(), None, 0)
        except OSError as exc:
            raise OutputError(f"cannot read {self.path}: {exc}") from exc
        ours = contents.archive == self._archive
        if resume and contents.archive is not None and not ours:
            raise UsageError(
                f"{self.path} is the unpack journal of another archive; "
                "unpack without --resume to start over"
            )
        if ours:
            _remove_temps(self._dir_fd, contents.pids)
        state = contents.state if resume and ours else None
        if state is not None and state.position >= self._size:
            raise UsageError(
                f"{self.path} is damaged (position {state.position} is past the archive's end); "
                "unpack without --resume to start over"
            )
        self._truncate(contents.length if state is not None else 0)
        if state is None:
            self._append(self._header())
        else:
            self._append({"pid": os.getpid()})
            self._last = (state.position, state.members)
        return state

    def begin(self) -> None:
        """Before this run's first temp file, once the output directory exists: the journal
        names the run. If it cannot be made, the unpack goes on without one (an unwritable
        directory is then reported by the writer, naming the member it could not write)."""
        if self._fd is not None:
            return
        with contextlib.suppress(OSError):
            if self._dir_fd is None:
                self._dir_fd = os.open(self._output_dir, _DIR_FLAGS)
            self._fd = os.open(
                self.name, _FILE_FLAGS | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=self._dir_fd
            )
        if self._fd is not None:
            self._lock(self._fd)
            self._append(self._header())

    def record(self, position: int, members: int, directories: Sequence[TarMember]) -> None:
        """The ``members`` members before tar offset ``position`` are in place (call it only
        after their renames); ``directories`` are the ones among them not yet recorded."""
        if self._fd is None or ((position, members) == self._last and not directories):
            return
        dirs = [[d.name, d.mode, d.mtime, d.uid, d.gid] for d in directories]
        self._append({"position": position, "members": members, "dirs": dirs})
        self._last = (position, members)

    def remove(self) -> None:
        """The unpack completed: nothing is left to resume."""
        if self._fd is not None:
            try:
                os.unlink(self.name, dir_fd=self._dir_fd)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise OutputError(f"cannot remove {self.path}: {exc}") from exc
        self.close()

    def close(self) -> None:
        """Keep the journal for a later ``--resume``; release its lock."""
        for fd in (self._fd, self._dir_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._dir_fd = None

    def _header(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "archive": self._archive,
            "pid": os.getpid(),
        }

    def _open_existing(self) -> int | None:
        """The journal earlier runs left, locked; None when there is none."""
        try:
            fd = os.open(self.name, _FILE_FLAGS, dir_fd=self._dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise OutputError(f"cannot open {self.path}: {exc}") from exc
        self._lock(fd)
        return fd

    def _lock(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self._fd = None
            raise OutputError(
                f"another stc unpack of this archive into {self._output_dir} is running "
                f"(it holds {self.path}); wait for it to end"
            ) from None

    def _truncate(self, length: int) -> None:
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, length)
        except OSError as exc:
            raise OutputError(f"cannot write the unpack journal {self.path}: {exc}") from exc

    def _append(self, line: dict[str, Any]) -> None:
        assert self._fd is not None
        view = memoryview((json.dumps(line, separators=(",", ":")) + "\n").encode())
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise OutputError(f"cannot write the unpack journal {self.path}: {exc}") from exc


def _read_all(fd: int) -> bytes:
    pieces = []
    while piece := os.read(fd, 1 << 20):
        pieces.append(piece)
    return b"".join(pieces)


def _parse(data: bytes) -> _Contents:
    end = data.rfind(b"\n") + 1  # what follows the last newline is a torn line: ignored
    lines = data[:end].split(b"\n")[:-1]
    if not lines:
        return _Contents(None, frozenset(), None, 0)
    header = _object(lines[0], 1)
    if header.get("format") != _FORMAT or header.get("version") != _VERSION:
        raise _Damaged("line 1 is not the header of a version 1 stc unpack journal")
    archive = _field(header, "archive", str, 1)
    pids = {_number(header, "pid", 1)}
    position = members = 0
    directories: list[TarMember] = []
    for number, line in enumerate(lines[1:], 2):
        record = _object(line, number)
        if "pid" in record:
            pids.add(_number(record, "pid", number))
            continue
        position = _number(record, "position", number)
        members = _number(record, "members", number)
        if position % _TAR_BLOCK:
            raise _Damaged(f"line {number}: position {position} is not a tar header's")
        for item in _field(record, "dirs", list, number):
            directories.append(_directory(item, number))
    state = ResumeState(position, members, tuple(directories)) if position else None
    return _Contents(archive, frozenset(pids), state, end)


def _object(line: bytes, number: int) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        raise _Damaged(f"line {number} is not JSON") from None
    if not isinstance(value, dict):
        raise _Damaged(f"line {number} is not a JSON object")
    return value


def _field(record: dict[str, Any], key: str, kind: type, number: int) -> Any:
    value = record.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _Damaged(f"line {number}: {key!r} is not a {kind.__name__}")
    return value


def _number(record: dict[str, Any], key: str, number: int) -> int:
    value: int = _field(record, key, int, number)
    if value < 0:
        raise _Damaged(f"line {number}: {key!r} is negative")
    return value


def _directory(item: Any, number: int) -> TarMember:
    """``[name, mode, mtime, uid, gid]``; the writer checks the name as it checks members'."""
    fields = ("name", "mode", "mtime", "uid", "gid")
    if not isinstance(item, list) or len(item) != len(fields):
        raise _Damaged(f"line {number}: a directory is not [name, mode, mtime, uid, gid]")
    record = dict(zip(fields, item, strict=True))
    mtime = record["mtime"]
    if isinstance(mtime, bool) or not isinstance(mtime, (int, float)) or not math.isfinite(mtime):
        raise _Damaged(f"line {number}: a directory's mtime is not a number")
    return TarMember(
        name=_field(record, "name", str, number),
        kind=MemberKind.DIRECTORY,
        mode=_number(record, "mode", number),
        mtime=float(mtime),
        uid=_number(record, "uid", number),
        gid=_number(record, "gid", number),
    )


def _remove_temps(dir_fd: int, pids: frozenset[int]) -> None:
    """Temp files the journal's runs left (a member cut short, or whole but not verified):
    nothing would ever rename them, and a later run with the same pid would trip over them."""
    for _, dirnames, filenames, fd in os.fwalk(".", dir_fd=dir_fd):
        for name in dirnames + filenames:  # a temp symlink to a folder is listed as a folder
            match = _TEMP_NAME.fullmatch(name)
            if match is None or int(match.group(1)) not in pids:
                continue
            try:
                os.unlink(name, dir_fd=fd)
            except (FileNotFoundError, IsADirectoryError):
                pass  # gone already, or a real folder of that name: not a temp file of ours
            except OSError as exc:
                raise OutputError(f"cannot remove the stale temp file {name!r}: {exc}") from exc
