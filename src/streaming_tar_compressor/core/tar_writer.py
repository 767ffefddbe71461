"""Pax tar headers and padding for a member stream; the caller streams the file data between.

Headers come from ``tarfile.TarInfo.tobuf`` (the stdlib's pax encoder, long names and large
numbers included); everything else — data, padding, the end — is ours, so file data is never
copied in 10 KiB pieces as ``TarFile.addfile`` does.
"""

from __future__ import annotations

import tarfile

from ..models import MemberKind, TarMember

BLOCK = 512
# GNU tar's default blocking factor 20: archives are a multiple of 10240 bytes.
RECORD = 20 * BLOCK

_TYPEFLAGS = {
    MemberKind.FILE: tarfile.REGTYPE,
    MemberKind.DIRECTORY: tarfile.DIRTYPE,
    MemberKind.SYMLINK: tarfile.SYMTYPE,
    MemberKind.HARDLINK: tarfile.LNKTYPE,
    MemberKind.CHAR_DEVICE: tarfile.CHRTYPE,
    MemberKind.BLOCK_DEVICE: tarfile.BLKTYPE,
    MemberKind.FIFO: tarfile.FIFOTYPE,
}


def padding(size: int) -> bytes:
    """Zeros that round a member's data up to the 512-byte tar block."""
    return bytes(-size % BLOCK)


class TarWriter:
    """Encodes headers in order and tracks the stream offset so ``finish`` can pad the record."""

    def __init__(self) -> None:
        self.offset = 0

    def header(self, member: TarMember) -> bytes:
        info = tarfile.TarInfo(member.name)
        info.type = _TYPEFLAGS[member.kind]
        info.size = member.size if member.kind is MemberKind.FILE else 0
        info.mode = member.mode & 0o7777
        # Whole seconds keep headers free of pax mtime records, as ustar readers expect.
        info.mtime = int(member.mtime)
        info.uid, info.gid = member.uid, member.gid
        info.uname, info.gname = member.uname, member.gname
        info.linkname = member.linkname
        info.devmajor, info.devminor = member.devmajor, member.devminor
        encoded = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        self.offset += len(encoded) + info.size + len(padding(info.size))
        return encoded

    def finish(self) -> bytes:
        """Two zero blocks end the archive; zeros up to the next full record follow, as GNU tar."""
        end = 2 * BLOCK
        end += -(self.offset + end) % RECORD
        self.offset += end
        return bytes(end)


def header_size_bound(name_length: int, link_length: int = 0) -> int:
    """Upper bound of the header bytes one member takes, used to bound the archive's size."""
    pax_records = 3 * BLOCK + 2 * (name_length + link_length)
    return BLOCK + pax_records
