"""Which codec a stream uses, from its first bytes, so readers need not be told (DESIGN.md).

A stated codec is only a cross-check: the bytes decide, and a contradiction is an error rather
than a guess.
"""

from __future__ import annotations

from ..errors import CompressionMismatchError, CorruptStreamError, TruncatedStreamError
from ..models import CompressionType

# How many leading bytes callers should peek: one tar header, enough for every magic below.
HEAD_SIZE = 512

_MAGICS: tuple[tuple[bytes, CompressionType], ...] = (
    (b"\x1f\x8b", CompressionType.GZIP),  # RFC 1952 2.3.1: ID1 ID2
    (b"\xfd7zXZ\x00", CompressionType.XZ),  # xz-file-format 2.1.1.1
    (b"\x28\xb5\x2f\xfd", CompressionType.ZSTD),  # RFC 8878 3.1.1: 0xFD2FB528 LE
    (b"\x04\x22\x4d\x18", CompressionType.LZ4),  # lz4_Frame_format.md: 0x184D2204 LE
)
# bzip2: "BZh" and the block size digit 1-9 (bzip2's own format, as the CLI writes it).
_BZIP2_MAGIC, _BZIP2_LEVELS = b"BZh", b"123456789"
# RFC 8878 3.1.2 skippable frames (0x184D2A50..5F LE): a stream may open with one (e.g. a
# seekable-format table or pzstd's header); we write them only in zstd streams.
_SKIPPABLE_TAIL = b"\x2a\x4d\x18"
# POSIX ustar header: magic "ustar" at offset 257, checksum as octal text at 148..156.
_TAR_BLOCK = 512
_USTAR_MAGIC, _USTAR_OFFSET = b"ustar", 257
_CHKSUM_START, _CHKSUM_END = 148, 156


_AGE_MAGIC = b"age-encryption.org/"


def detect_compression(head: bytes) -> CompressionType:
    """The codec of a stream whose first ``HEAD_SIZE`` bytes (or all, if fewer) are ``head``."""
    if not head:
        raise TruncatedStreamError("empty input")
    for magic, kind in _MAGICS:
        if head.startswith(magic):
            return kind
    if head[:3] == _BZIP2_MAGIC and head[3:4] and head[3] in _BZIP2_LEVELS:
        return CompressionType.BZIP2
    if head[0] & 0xF0 == 0x50 and head[1:4] == _SKIPPABLE_TAIL:
        return CompressionType.ZSTD
    if _is_tar_header(head[:_TAR_BLOCK]):
        return CompressionType.NONE
    if _is_magic_prefix(head):
        raise TruncatedStreamError("input too short to tell its compression")
    if head.startswith(_AGE_MAGIC):
        raise CorruptStreamError(
            "this stream is age-encrypted: unpack it by its prefix with its key (-i) or "
            "passphrase, or decrypt it first (age -d)"
        )
    raise CorruptStreamError(
        "not a compressed tar stream: the first bytes match no gzip, bzip2, xz, zstd, lz4 or "
        "tar header"
    )


def resolve_compression(stated: CompressionType | None, head: bytes) -> CompressionType:
    """The detected codec, after checking it against the one the caller stated, if any."""
    detected = detect_compression(head)
    if stated is not None and stated != detected:
        raise CompressionMismatchError(stated.value, detected.value)
    return detected


def _is_tar_header(block: bytes) -> bool:
    """True for a ustar/pax/GNU header, an old v7 header with a valid checksum, or a zero block.

    A zero block is a tar end-of-archive marker: an archive of nothing starts with one.
    """
    if len(block) < _TAR_BLOCK:
        return False
    if block[_USTAR_OFFSET : _USTAR_OFFSET + len(_USTAR_MAGIC)] == _USTAR_MAGIC:
        return True
    if not any(block):
        return True
    field = block[_CHKSUM_START:_CHKSUM_END].strip(b" \x00")
    if not field or field.strip(b"01234567"):
        return False
    # POSIX: the checksum is the byte sum with the checksum field taken as eight spaces;
    # old tars summed signed chars, which readers (GNU tar, Python's tarfile) also accept.
    rest = block[:_CHKSUM_START] + b" " * 8 + block[_CHKSUM_END:]
    unsigned = sum(rest)
    signed = unsigned - 256 * sum(1 for byte in rest if byte > 127)
    return int(field, 8) in (unsigned, signed)


def _is_magic_prefix(head: bytes) -> bool:
    """True when ``head`` may be a magic cut short (a stream of a few bytes)."""
    magics = [magic for magic, _ in _MAGICS] + [_BZIP2_MAGIC]
    return any(magic.startswith(head) for magic in magics)
