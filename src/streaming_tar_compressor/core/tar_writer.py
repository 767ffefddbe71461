"""Pax tar headers and padding for a member stream; the caller streams the file data between.

The common header (ASCII names that fit, ordinary numbers) is packed here in one struct call,
byte for byte what ``tarfile`` writes for it but several times faster, which matters for many
small files; anything else goes to ``tarfile.TarInfo.tobuf`` (the stdlib's pax encoder, long
names and large numbers included). Data, padding and the end are ours, so file data is never
copied in 10 KiB pieces as ``TarFile.addfile`` does.
"""

from __future__ import annotations

import struct
import tarfile
from collections.abc import Callable
from typing import Protocol

from .._compiled import native
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


# POSIX ustar header: name mode uid gid size mtime chksum typeflag linkname magic version uname
# gname devmajor devminor prefix, then 12 bytes of padding to 512.
_USTAR = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s12x")
_CHECKSUM_FIELD = slice(148, 156)
_OCTAL_LIMIT_8 = 8**7  # largest value + 1 that 7 octal digits (an 8-byte field) hold
_OCTAL_LIMIT_12 = 8**11


# The header checksum's sum in C when compiled (sum() of 512 ints was ~3 µs a member).
_byte_sum: Callable[[bytearray], int] = native.byte_sum if native is not None else sum
_DEVICES = (MemberKind.CHAR_DEVICE, MemberKind.BLOCK_DEVICE)
# The whole plain header in one C call when compiled, read from the member's slots (devices
# aside, which a pack never writes): from Python ~5 µs a member, passing its fields ~1 µs.
_member_header: Callable[..., bytes | None] | None = (
    native.member_header if native is not None else None
)
_KINDS = tuple(MemberKind)
_KIND_FLAGS = b"".join(_TYPEFLAGS[kind] for kind in _KINDS)


class IndexPages(Protocol):
    """Where a writer adds each member it writes (core/member_index.py's PageBuilder)."""

    def add(self, member: TarMember, header_offset: int, data_offset: int, /) -> None: ...


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _python_header(member: TarMember, name: str, size: int, mtime: int) -> bytes | None:
    """The plain ustar header tarfile's pax encoder writes when it needs no pax record."""
    texts = (name, member.linkname, member.uname, member.gname)
    if not all(text.isascii() for text in texts):
        return None
    if len(name) > 100 or len(member.linkname) > 100:
        return None
    if len(member.uname) > 32 or len(member.gname) > 32:
        return None
    if not (0 <= member.uid < _OCTAL_LIMIT_8 and 0 <= member.gid < _OCTAL_LIMIT_8):
        return None
    if not (0 <= size < _OCTAL_LIMIT_12 and 0 <= mtime < _OCTAL_LIMIT_12):
        return None
    if not (0 <= member.devmajor < _OCTAL_LIMIT_8 and 0 <= member.devminor < _OCTAL_LIMIT_8):
        return None
    device = member.kind in _DEVICES
    block = bytearray(
        _USTAR.pack(
            name.encode(),
            _octal(member.mode & 0o7777, 8),
            _octal(member.uid, 8),
            _octal(member.gid, 8),
            _octal(size, 12),
            _octal(mtime, 12),
            b" " * 8,
            _TYPEFLAGS[member.kind],
            member.linkname.encode(),
            tarfile.POSIX_MAGIC[:6],
            tarfile.POSIX_MAGIC[6:],
            member.uname.encode(),
            member.gname.encode(),
            _octal(member.devmajor, 8) if device else b"",
            _octal(member.devminor, 8) if device else b"",
            b"",
        )
    )
    block[_CHECKSUM_FIELD] = b"%06o\0 " % _byte_sum(block)
    return bytes(block)


def padding(size: int) -> bytes:
    """Zeros that round a member's data up to the 512-byte tar block."""
    return bytes(-size % BLOCK)


class TarWriter:
    """Encodes headers in order and tracks the stream offset so ``finish`` can pad the record."""

    def __init__(self) -> None:
        self.offset = 0

    def header(self, member: TarMember, index: IndexPages | None = None) -> bytes:
        """The member's headers; ``index``, if given, gets the member, its headers at this
        writer's offset (compiled, in the same call as the header)."""
        size = member.size if member.kind is MemberKind.FILE else 0
        offset = self.offset
        encoded = None
        if _member_header is not None:
            encoded = _member_header(member, _KINDS, _KIND_FLAGS, offset, index)
        if encoded is None:
            # Whole seconds keep headers free of pax mtime records, as ustar readers expect.
            name = member.name + "/" if member.kind is MemberKind.DIRECTORY else member.name
            fast = _python_header(member, name, size, int(member.mtime))
            encoded = fast if fast is not None else self._pax_header(member)
            if index is not None:
                index.add(member, offset, offset + len(encoded))
        self.offset = offset + len(encoded) + size + -size % BLOCK  # data, padded
        return encoded

    def _pax_header(self, member: TarMember) -> bytes:
        info = tarfile.TarInfo(member.name)
        info.type = _TYPEFLAGS[member.kind]
        info.size = member.size if member.kind is MemberKind.FILE else 0
        info.mode = member.mode & 0o7777
        info.mtime = int(member.mtime)
        info.uid, info.gid = member.uid, member.gid
        info.uname, info.gname = member.uname, member.gname
        info.linkname = member.linkname
        info.devmajor, info.devminor = member.devmajor, member.devminor
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

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
