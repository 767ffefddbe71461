"""Plain data shared by every layer: codec names, chunk records, tar members."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ._compiled import slot_maker
from .errors import UsageError


class CompressionType(str, enum.Enum):
    """The codecs of the format; the value is the name used in manifests and on the CLI."""

    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    LZ4 = "lz4"
    ZSTD = "zstd"
    NONE = "none"

    @classmethod
    def parse(cls, value: CompressionType | str) -> CompressionType:
        """Accept an instance or a name in any case ("GZIP", "gzip"), else a UsageError."""
        if isinstance(value, CompressionType):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            names = ", ".join(kind.value for kind in cls)
            raise UsageError(f"unknown compression {value!r}; choose one of {names}") from None


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    """One chunk of an archive: where it is, how big, and its SHA-256 hex."""

    index: int
    name: str
    size: int
    checksum: str
    path: str = ""

    @property
    def label(self) -> str:
        """How errors name the chunk: its file name, or its index when a seed manifest given
        without its prefix leaves it unnamed."""
        return self.name or f"chunk {self.index}"


class MemberKind(str, enum.Enum):
    """What a tar member is; the reader maps typeflags onto these."""

    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR_DEVICE = "char-device"
    BLOCK_DEVICE = "block-device"
    FIFO = "fifo"


@dataclass(frozen=True, slots=True)
class TarMember:
    """One member as the tar stream describes it (after pax/GNU long-name headers apply).

    ``name`` is the stored name without a trailing slash; ``linkname`` is the symlink target
    or, for a hardlink, the name of the member it links to. ``offset`` is where the member's
    first header (its pax header, if any) starts in the uncompressed tar stream.
    """

    name: str
    kind: MemberKind
    size: int = 0
    mode: int = 0o644
    mtime: float = 0
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    offset: int = 0


# TarMember(name, kind, size, mode, mtime, uid, gid, uname, gname, linkname, devmajor,
# devminor, offset), every field by position: the walk (pack) and the tar reader (unpack)
# make one for every file.
make_member = slot_maker(TarMember)
