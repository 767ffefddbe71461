"""Codec detection from the first bytes, and the stated-codec cross-check."""

from __future__ import annotations

import io
import tarfile

import pytest

from streaming_tar_compressor.codecs import codec_for
from streaming_tar_compressor.core.detect import HEAD_SIZE, detect_compression, resolve_compression
from streaming_tar_compressor.errors import (
    CompressionMismatchError,
    CorruptStreamError,
    TruncatedStreamError,
)
from streaming_tar_compressor.models import CompressionType


def tar_bytes(fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        info = tarfile.TarInfo("file.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    return out.getvalue()


def v7_header() -> bytes:
    """An old (pre-POSIX) tar header: no "ustar" magic, only its checksum says it is tar."""
    header = bytearray(tar_bytes(tarfile.GNU_FORMAT)[:512])
    header[257:265] = bytes(8)
    header[148:156] = b" " * 8
    header[148:155] = b"%06o\x00" % sum(header)
    return bytes(header)


@pytest.mark.parametrize("kind", list(CompressionType))
def test_our_own_streams_are_detected(kind: CompressionType) -> None:
    codec = codec_for(kind)
    encoder = codec.new_encoder(codec.default_level, 2**16)
    archive = tar_bytes(tarfile.PAX_FORMAT)
    stream = encoder.header() + encoder.add_block(encoder.encode_block(archive))
    assert detect_compression(stream[:HEAD_SIZE]) is kind


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x1f\x8b\x08\x00", CompressionType.GZIP),
        (b"BZh91AY&SY", CompressionType.BZIP2),
        (b"BZh1", CompressionType.BZIP2),
        (b"\xfd7zXZ\x00\x00\x04", CompressionType.XZ),
        (b"\x28\xb5\x2f\xfd\x04\x00", CompressionType.ZSTD),
        (b"\x50\x2a\x4d\x18\x04\x00\x00\x00", CompressionType.ZSTD),
        (b"\x5e\x2a\x4d\x18", CompressionType.ZSTD),
        (b"\x04\x22\x4d\x18\x64\x40", CompressionType.LZ4),
        (tar_bytes(tarfile.PAX_FORMAT), CompressionType.NONE),
        (tar_bytes(tarfile.GNU_FORMAT), CompressionType.NONE),
        (v7_header(), CompressionType.NONE),
        (bytes(512), CompressionType.NONE),
    ],
)
def test_magic_numbers(head: bytes, kind: CompressionType) -> None:
    assert detect_compression(head[:HEAD_SIZE]) is kind


@pytest.mark.parametrize(
    "head",
    [
        b"hello world, this is plain text" * 20,
        b"BZh0" + bytes(508),
        b"PK\x03\x04" + bytes(600),
        bytes(511),
    ],
)
def test_garbage_is_corrupt(head: bytes) -> None:
    with pytest.raises(CorruptStreamError, match="not a compressed tar stream"):
        detect_compression(head)


def test_bad_tar_checksum_is_corrupt() -> None:
    header = bytearray(v7_header())
    header[0] ^= 1
    with pytest.raises(CorruptStreamError):
        detect_compression(bytes(header))


def test_empty_input_is_truncated() -> None:
    with pytest.raises(TruncatedStreamError, match="empty"):
        detect_compression(b"")


@pytest.mark.parametrize("head", [b"\x1f", b"BZh", b"\xfd7zX", b"\x28\xb5"])
def test_cut_magic_is_truncated(head: bytes) -> None:
    with pytest.raises(TruncatedStreamError):
        detect_compression(head)


def test_stated_codec_must_match() -> None:
    gzip_head = b"\x1f\x8b\x08\x00" + bytes(10)
    assert resolve_compression(None, gzip_head) is CompressionType.GZIP
    assert resolve_compression(CompressionType.GZIP, gzip_head) is CompressionType.GZIP
    with pytest.raises(CompressionMismatchError) as raised:
        resolve_compression(CompressionType.ZSTD, gzip_head)
    assert (raised.value.stated, raised.value.detected) == ("zstd", "gzip")
