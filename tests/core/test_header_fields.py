"""The compiled reading of a plain tar header (``_native.header_fields``) agrees with the
Python reading it stands in for, and leaves to it every header it cannot read the same way."""

from __future__ import annotations

import tarfile

from hypothesis import given, settings
from hypothesis import strategies as st

from streaming_tar_compressor.core import tar_reader
from streaming_tar_compressor.errors import CorruptStreamError
from tests.fs.test_ops import built_module

NUMERIC_FIELDS = [(100, 8), (108, 8), (116, 8), (124, 12), (136, 12), (148, 8)]
text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=120)


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    """Headers as tarfile writes them (ustar, GNU, pax's member block), then maybe damaged."""
    info = tarfile.TarInfo(draw(text) or "x")
    info.type = draw(st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE]))
    info.size = draw(st.integers(0, 2**33)) if info.type == tarfile.REGTYPE else 0
    info.mode = draw(st.integers(0, 0o7777))
    info.mtime = draw(st.integers(0, 2**33))
    info.uid, info.gid = draw(st.integers(0, 2**21)), draw(st.integers(0, 2**21))
    info.uname, info.gname = draw(text.filter(lambda t: len(t.encode()) < 32)), "g"
    info.linkname = draw(text) if info.type == tarfile.SYMTYPE else ""
    form = draw(st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
    try:
        block = bytearray(info.tobuf(form, "utf-8", "surrogateescape")[-512:])
    except ValueError:  # a name ustar cannot hold
        block = bytearray(tarfile.TarInfo("plain").tobuf(tarfile.USTAR_FORMAT)[:512])
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):  # damage a numeric field: junk, base-256, spaces
            start, length = draw(st.sampled_from(NUMERIC_FIELDS))
            position = start + draw(st.integers(0, length - 1))
            block[position] = draw(st.sampled_from([0x80, 0xFF, ord("8"), ord(" "), 0, ord("x")]))
        else:
            block[draw(st.integers(0, 511))] = draw(st.integers(0, 255))
    if draw(st.booleans()):  # a checksum that fits the damage: the fields alone must tell
        block[148:156] = b"%06o\x00 " % (sum(block[:148]) + sum(block[156:]) + 8 * 32)
    return bytes(block)


def python_reading(block: bytes) -> tuple[object, ...] | None:
    try:
        tar_reader._verify_checksum(block, 0)
        size = tar_reader._header_number(block[124:136], "size", 0)
        fields = tar_reader._header_fields(block, size, 0)
    except CorruptStreamError:
        return None
    return (
        size,
        fields.name,
        fields.linkname,
        fields.mode,
        fields.mtime,
        fields.uid,
        fields.gid,
        fields.uname,
        fields.gname,
    )


@settings(max_examples=600, deadline=None)
@given(block=headers())
def test_compiled_header_reading_matches_python(block):
    compiled = built_module().header_fields(block)
    expected = python_reading(block)
    base256 = any(block[start] & 0x80 for start, _ in NUMERIC_FIELDS)
    if compiled is None:
        # Only what Python refuses, or base-256 numbers it alone decodes.
        assert expected is None or base256
    else:
        size, name, linkname, mode, mtime, uid, gid, uname, gname = compiled
        read = (size, name, linkname, mode & 0o7777, float(mtime), uid, gid, uname, gname)
        assert read == expected
    if expected is not None and not base256:
        assert compiled is not None  # the fast path takes every plain header


def test_a_checksum_summed_over_signed_bytes_is_accepted():
    """Old tars summed signed chars; both readings accept either sum."""
    block = bytearray(tarfile.TarInfo("é-name").tobuf(tarfile.USTAR_FORMAT)[:512])
    signed = sum((b - 256 if b > 127 else b) for b in block[:148] + block[156:]) + 8 * 32
    block[148:156] = b"%06o\x00 " % signed
    assert python_reading(bytes(block)) is not None
    fields = built_module().header_fields(bytes(block))
    assert fields is not None and fields[1] == "é-name".encode()
