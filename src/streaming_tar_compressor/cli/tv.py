"""``tar -tv`` lines for ``stc list``. What members share (a mode, an owner, a minute) is
formatted once: a listing of a million members is mostly these lines."""

from __future__ import annotations

import stat
import time
from typing import Protocol

from ..core.member_index import IndexEntry
from ..models import MemberKind

CACHED = 65_536  # texts kept per cache
KIND_CHARS = {
    MemberKind.FILE: "-",
    MemberKind.DIRECTORY: "d",
    MemberKind.SYMLINK: "l",
    MemberKind.HARDLINK: "h",
    MemberKind.CHAR_DEVICE: "c",
    MemberKind.BLOCK_DEVICE: "b",
    MemberKind.FIFO: "p",
}


class Listed(Protocol):
    """A TarMember, or an index entry (the same fields, read from the index)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> MemberKind: ...
    @property
    def size(self) -> int: ...
    @property
    def mode(self) -> int: ...
    @property
    def mtime(self) -> float: ...
    @property
    def uid(self) -> int: ...
    @property
    def gid(self) -> int: ...
    @property
    def uname(self) -> str: ...
    @property
    def gname(self) -> str: ...
    @property
    def linkname(self) -> str: ...


class TvLines:
    def __init__(self) -> None:
        # "-rw-r--r-- user/group" by (kind, mode, uname, uid, gname, gid); "2026-12-05 10:20"
        # by minute since the epoch.
        self._heads: dict[tuple[MemberKind, int, str, int, str, int], str] = {}
        self._minutes: dict[int, str] = {}

    def line(self, member: Listed) -> str:
        kind = member.kind
        key = (kind, member.mode, member.uname, member.uid, member.gname, member.gid)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= CACHED:
                self._heads.clear()
            mode = KIND_CHARS[kind] + stat.filemode(member.mode)[1:]
            head = self._heads[key] = f"{mode} {key[2] or key[3]}/{key[4] or key[5]}"
        if type(member) is IndexEntry:  # its mtime property costs more than the rest
            minute = member.mtime_ns // 60_000_000_000
        else:
            minute = int(member.mtime // 60)
        when = self._minutes.get(minute)
        if when is None:
            if len(self._minutes) >= CACHED:
                self._minutes.clear()  # a listing of many minutes: memory stays bounded
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(minute * 60))
            self._minutes[minute] = when
        line = f"{head} {member.size:>9} {when} {member.name}"
        if kind is MemberKind.FILE:
            return line
        if kind is MemberKind.DIRECTORY:
            return line + "/"
        if kind is MemberKind.SYMLINK:
            return f"{line} -> {member.linkname}"
        if kind is MemberKind.HARDLINK:
            return f"{line} link to {member.linkname}"
        return line
