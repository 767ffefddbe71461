"""The compiled reading of a plain tar header (``_native.header_fields``) agrees with the
Python reading it stands in for, and leaves to it every header it cannot read the same way."""

from __future__ import annotations

import io
import itertools
import os
import tarfile

import pytest
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


NOT_UTF8 = os.fsdecode(b"n\xff\xfe")  # the bytes of a name that is not UTF-8


@st.composite
def archives(draw: st.DrawFn) -> bytes:
    """A tar stream of varied members: plain ones, pax and GNU long names, links, devices,
    a directory written as a regular file with a trailing slash, and one sized hardlink."""
    out = io.BytesIO()
    form = draw(st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
    # Names that are not UTF-8 are written as their bytes (surrogateescape), as GNU tar keeps them.
    with tarfile.open(fileobj=out, mode="w", format=form, errors="surrogateescape") as tar:
        for index in range(draw(st.integers(0, 12))):
            kind = draw(st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo", "dev"]))
            base = draw(st.sampled_from(["f", "ü", "x" * 120, NOT_UTF8]))
            info = tarfile.TarInfo(f"d{index % 3}/{base}{index}")
            info.uname = info.gname = draw(st.sampled_from(["", "root", "é", NOT_UTF8]))
            info.mtime = draw(st.integers(0, 2**33))
            data = b""
            if kind == "file":
                data = draw(st.binary(max_size=2000))
                info.size = len(data)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = draw(st.sampled_from(["d0/f0", f"d1/{NOT_UTF8}"]))
            else:
                info.type = tarfile.FIFOTYPE if kind == "fifo" else tarfile.CHRTYPE
                info.devmajor, info.devminor = 1, 3
            try:
                tar.addfile(info, io.BytesIO(data) if data else None)
            except ValueError:  # a name this format cannot hold
                continue
    stream = bytearray(out.getvalue())
    if draw(st.booleans()) and len(stream) > 1536:  # a regular-file header named like a folder
        stream[:0] = tarfile.TarInfo("folder/").tobuf(tarfile.USTAR_FORMAT)
    return bytes(stream)


def events_of(
    stream: bytes, cuts: list[int], *, whole_members: bool = False
) -> list[tuple[object, ...]]:
    """The reader's events, a WholeMember told as the start, data and end it stands for."""
    reader = tar_reader.TarReader(whole_members=whole_members)
    seen: list[tuple[object, ...]] = []
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    for start, end in itertools.pairwise(points):
        for event in reader.feed(stream[start:end]):
            if isinstance(event, tar_reader.MemberData):
                seen.append(("data", bytes(event.data)))
            elif isinstance(event, tar_reader.WholeMember):
                seen.append(("MemberStart", event.member))
                if event.data:
                    seen.append(("data", bytes(event.data)))
                seen.append(("MemberEnd", event.member))
            else:
                seen.append((type(event).__name__, event.member))
    reader.finish()
    return seen


@settings(max_examples=200, deadline=None)
@given(stream=archives(), cuts=st.lists(st.integers(0, 2**20), max_size=6))
def test_runs_read_in_one_call_give_the_events_of_the_header_by_header_path(stream, cuts):
    module = built_module()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tar_reader, "_compiled_fields", module.header_fields)
        patch.setattr(tar_reader, "_compiled_run", module.plain_members)
        fast = events_of(stream, cuts)
        whole = events_of(stream, cuts, whole_members=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tar_reader, "_compiled_fields", None)
        patch.setattr(tar_reader, "_compiled_run", None)
        slow = events_of(stream, cuts)
        slow_whole = events_of(stream, cuts, whole_members=True)
    assert fast == slow
    assert whole == slow  # runs give whole members; the header path still starts and ends
    assert slow_whole == slow


@given(data=st.binary(max_size=2048))
def test_the_compiled_byte_sum_is_pythons(data):
    """The pack's header checksum: the same number as sum() over the bytes."""
    assert built_module().byte_sum(data) == sum(data)
    assert built_module().byte_sum(bytearray(data)) == sum(data)
