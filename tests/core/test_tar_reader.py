"""TarReader against Python's tarfile and GNU tar: same members, any cut, clear errors."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import random
import subprocess
import tarfile
import tracemalloc
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming_tar_compressor.core.tar_reader import (
    MemberData,
    MemberEnd,
    MemberStart,
    TarEvent,
    TarReader,
)
from streaming_tar_compressor.errors import CorruptStreamError, TruncatedStreamError
from streaming_tar_compressor.models import MemberKind, TarMember
from tests.helpers import tool

FORMATS = [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]
FORMAT_IDS = ["pax", "gnu", "ustar"]

TYPE_OF_KIND = {
    MemberKind.FILE: tarfile.REGTYPE,
    MemberKind.DIRECTORY: tarfile.DIRTYPE,
    MemberKind.SYMLINK: tarfile.SYMTYPE,
    MemberKind.HARDLINK: tarfile.LNKTYPE,
    MemberKind.CHAR_DEVICE: tarfile.CHRTYPE,
    MemberKind.BLOCK_DEVICE: tarfile.BLKTYPE,
    MemberKind.FIFO: tarfile.FIFOTYPE,
}
KIND_OF_TYPE = {flag: kind for kind, flag in TYPE_OF_KIND.items()}
KIND_OF_TYPE |= {tarfile.AREGTYPE: MemberKind.FILE, tarfile.CONTTYPE: MemberKind.FILE}
END_OF_ARCHIVE = bytes(1024)

Members = list[tuple[TarMember, bytes]]


# --- helpers ------------------------------------------------------------------------------


def read(pieces: Iterable[bytes | memoryview]) -> tuple[list[TarEvent], TarReader]:
    """All events of the pieces fed in order, then finish()."""
    reader = TarReader()
    events: list[TarEvent] = []
    for piece in pieces:
        events += reader.feed(piece)
    events += reader.finish()
    return events, reader


def members_of(events: list[TarEvent]) -> Members:
    """Each member with its data, checking the Start, Data…, End shape and no empty data."""
    result: Members = []
    current: TarMember | None = None
    data: list[bytes] = []
    for event in events:
        if isinstance(event, MemberStart):
            assert current is None, "a member started before the previous one ended"
            current, data = event.member, []
        elif isinstance(event, MemberData):
            assert current is not None and len(event.data) > 0
            data.append(bytes(event.data))
        else:
            assert isinstance(event, MemberEnd) and event.member == current
            result.append((current, b"".join(data)))
            current = None
    assert current is None, "the events stop inside a member"
    return result


def our_members(archive: bytes) -> Members:
    return members_of(read([archive])[0])


def tarfile_members(archive: bytes) -> Members:
    """What tarfile reads, in our terms (links and directories carry no data, size 0)."""
    result: Members = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tf:
        for info in tf:
            file = tf.extractfile(info) if info.isreg() else None
            device = info.ischr() or info.isblk()
            member = TarMember(
                name=info.name,
                kind=KIND_OF_TYPE[info.type],
                size=info.size if info.isreg() else 0,
                mode=info.mode & 0o7777,
                mtime=info.mtime,
                uid=info.uid,
                gid=info.gid,
                uname=info.uname,
                gname=info.gname,
                linkname=info.linkname,
                devmajor=info.devmajor if device else 0,
                devminor=info.devminor if device else 0,
                offset=info.offset,
            )
            result.append((member, file.read() if file is not None else b""))
    return result


@dataclass
class Entry:
    """One member to write with tarfile."""

    name: str
    kind: MemberKind = MemberKind.FILE
    data: bytes = b""
    linkname: str = ""
    mode: int = 0o644
    mtime: float = 1_700_000_000
    uid: int = 1000
    gid: int = 1000
    uname: str = "user"
    gname: str = "group"
    devmajor: int = 0
    devminor: int = 0


def build(
    entries: Iterable[Entry], fmt: int, pax_headers: dict[str, str] | None = None
) -> tuple[bytes, int]:
    """The archive tarfile writes, and the offset of its end-of-archive marker.

    Entries the format cannot hold (a long name in ustar, a big uid) are left out, as the
    writer refuses them before writing anything.
    """
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, pax_headers=pax_headers) as tf:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type = TYPE_OF_KIND[entry.kind]
            info.size = len(entry.data)
            for field in ("linkname", "mode", "mtime", "uid", "gid", "uname", "gname"):
                setattr(info, field, getattr(entry, field))
            info.devmajor, info.devminor = entry.devmajor, entry.devminor
            try:
                tf.addfile(info, io.BytesIO(entry.data) if entry.kind is MemberKind.FILE else None)
            except ValueError:
                continue
        end = out.tell()
    return out.getvalue(), end


def header(
    name: str = "f", flag: bytes = tarfile.REGTYPE, size: int = 0, **fields: object
) -> bytes:
    """One ustar header block, whatever its typeflag and size say."""
    info = tarfile.TarInfo(name)
    info.type, info.size = flag, size
    for key, value in fields.items():
        setattr(info, key, value)
    return info.tobuf(tarfile.USTAR_FORMAT)


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def pax_record(key: str, value: bytes) -> bytes:
    """POSIX "%d %s=%s\\n", where %d counts the whole record, its own digits included."""
    body = b" " + key.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def with_checksum(block: bytes, *, signed: bool = False) -> bytes:
    """The block with its chksum field recomputed (POSIX: summed with the field as spaces)."""
    spaced = block[:148] + b" " * 8 + block[156:512]
    total = sum(b - 256 if signed and b > 127 else b for b in spaced)
    return spaced[:148] + b"%06o\x00 " % (total & 0o777777) + spaced[156:]


# --- agreement with tarfile ------------------------------------------------------------------

rng = random.Random(20240131)
LONG_DIR = "d" * 60 + "/" + "e" * 60  # a ustar prefix
TREE = [
    Entry("empty"),
    *(Entry(f"size-{n}", data=rng.randbytes(n)) for n in (1, 511, 512, 513, 1024, 100_000)),
    Entry("dir", MemberKind.DIRECTORY, mode=0o755),
    Entry("dir/private", data=b"secret", mode=0o600),
    Entry("dir/setuid", data=b"#!", mode=0o4755),
    Entry("dir/sticky", MemberKind.DIRECTORY, mode=0o1777),
    Entry("symlink", MemberKind.SYMLINK, linkname="dir/private"),
    Entry("hardlink", MemberKind.HARDLINK, linkname="size-1"),
    Entry(LONG_DIR + "/" + "f" * 90, data=b"ustar fits this one"),
    Entry("long/" + "n" * 150, data=b"more than 100 characters"),
    Entry("/".join(["deep" * 10] * 8), data=b"more than 255 characters"),
    Entry("long-link", MemberKind.SYMLINK, linkname="t" * 300),
    Entry("été/日本語.txt", data=b"non-ASCII"),
    Entry("newline\nand=equals", data=b"odd name"),
    Entry("big-uid", data=b"x", uid=2**30, gid=2**25),
    Entry("fraction", data=b"y", mtime=1_700_000_000.25),
    Entry("before-1970", data=b"z", mtime=-86_400),
    Entry("unicode-owner", uname="ünïcode", gname="gröup"),
    Entry("fifo", MemberKind.FIFO),
    Entry("tty", MemberKind.CHAR_DEVICE, devmajor=4, devminor=64),
    Entry("disk", MemberKind.BLOCK_DEVICE, devmajor=8, devminor=1),
]


@pytest.mark.parametrize("fmt", FORMATS, ids=FORMAT_IDS)
def test_members_and_data_match_tarfile(fmt: int) -> None:
    archive, _ = build(TREE, fmt)
    ours = our_members(archive)
    assert ours == tarfile_members(archive)
    names = {member.name for member, _ in ours}
    assert {"size-100000", LONG_DIR + "/" + "f" * 90, "tty"} <= names
    if fmt != tarfile.USTAR_FORMAT:
        assert {"long/" + "n" * 150, "before-1970", "big-uid"} <= names


def test_global_pax_values_apply_to_later_members_unless_overridden() -> None:
    entries = [Entry("plain", uname=""), Entry("own", uname="ünïcode")]
    archive, _ = build(entries, tarfile.PAX_FORMAT, pax_headers={"uname": "everyone"})
    ours = our_members(archive)
    assert ours == tarfile_members(archive)
    assert [member.uname for member, _ in ours] == ["everyone", "ünïcode"]


def test_an_empty_pax_value_deletes_the_global_one() -> None:
    global_records = pax_record("uname", b"everyone")
    member_records = pax_record("uname", b"")
    archive = (
        header("g", tarfile.XGLTYPE, len(global_records))
        + padded(global_records)
        + header("x", tarfile.XHDTYPE, len(member_records))
        + padded(member_records)
        + header("f", uname="from-header")
        + header("g2", uname="from-header")
        + END_OF_ARCHIVE
    )
    assert [member.uname for member, _ in our_members(archive)] == ["from-header", "everyone"]


def test_member_offsets_point_at_their_first_header() -> None:
    archive, _ = build([Entry("a" * 120, data=b"1"), Entry("b", data=b"2")], tarfile.PAX_FORMAT)
    (first, _), (second, _) = our_members(archive)
    assert archive[first.offset + 156 : first.offset + 157] == tarfile.XHDTYPE
    assert archive[second.offset : second.offset + 1] == b"b"


# Enough random trees to meet every kind and format, within the suite's time budget.
EXAMPLES = settings(max_examples=40, deadline=None)

_COMPONENT = st.text(alphabet="ab.é日 -", min_size=1, max_size=40)


@st.composite
def entries(draw: st.DrawFn) -> list[Entry]:
    """Random members of every kind, some with long names, big ids or odd times."""
    result: list[Entry] = []
    for _ in range(draw(st.integers(1, 6))):
        name = "/".join(draw(st.lists(_COMPONENT, min_size=1, max_size=8)))
        kind = draw(st.sampled_from(list(MemberKind)))
        size = draw(st.sampled_from([0, 1, 511, 512, 513, 3000, 100_000]))
        data = random.Random(draw(st.integers(0, 2**32))).randbytes(size)
        result.append(
            Entry(
                name,
                kind,
                data=data if kind is MemberKind.FILE else b"",
                linkname=draw(_COMPONENT)
                if kind in (MemberKind.SYMLINK, MemberKind.HARDLINK)
                else "",
                mode=draw(st.integers(0, 0o7777)),
                mtime=draw(
                    st.one_of(
                        st.integers(-(2**33), 2**33), st.integers(0, 2**34).map(lambda t: t / 8)
                    )
                ),
                uid=draw(st.integers(0, 2**32)),
                gid=draw(st.integers(0, 2**21)),
                uname=draw(st.text(alphabet="uï", max_size=40)),
                devmajor=draw(st.integers(0, 4095)),
                devminor=draw(st.integers(0, 4095)),
            )
        )
    return result


def cut(archive: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(p % (len(archive) + 1) for p in points), len(archive)]
    return [archive[a:b] for a, b in itertools.pairwise(bounds)]


@EXAMPLES
@given(entries(), st.sampled_from(FORMATS), st.lists(st.integers(0, 2**20), max_size=20))
def test_any_cut_of_the_stream_gives_the_same_members(
    tree: list[Entry], fmt: int, points: list[int]
) -> None:
    archive, _ = build(tree, fmt)
    whole = our_members(archive)
    assert whole == tarfile_members(archive)
    assert members_of(read(cut(archive, points))[0]) == whole
    if len(archive) <= 30_000:
        pieces = [memoryview(archive)[i : i + 1] for i in range(len(archive))]
        assert members_of(read(pieces)[0]) == whole


def test_bytearray_and_memoryview_pieces_are_accepted() -> None:
    archive, _ = build(TREE[:8], tarfile.PAX_FORMAT)
    expected = our_members(archive)
    assert members_of(read([bytearray(archive)])[0]) == expected
    assert members_of(read(cut(archive, [700, 5000]))[0]) == expected
    assert members_of(read([memoryview(archive)[:3000], memoryview(archive)[3000:]])[0]) == expected


def test_a_large_member_passes_through_as_few_slices() -> None:
    data = os.urandom(4 * 2**20)
    archive, _ = build([Entry("big", data=data)], tarfile.PAX_FORMAT)
    events, reader = read([archive])
    pieces = [event.data for event in events if isinstance(event, MemberData)]
    assert len(pieces) <= 3
    assert all(isinstance(piece, memoryview) for piece in pieces)
    assert b"".join(pieces) == data
    assert reader.at_end and reader.offset == len(archive)


# --- GNU tar -------------------------------------------------------------------------------


@pytest.fixture
def gnu_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    long_dir = root / ("d" * 60) / ("e" * 60)
    long_dir.mkdir(parents=True)
    (long_dir / ("f" * 90)).write_bytes(b"a name longer than 100 characters\n")
    (root / "big.bin").write_bytes(os.urandom(70_000))
    (root / "empty").write_bytes(b"")
    (root / "été.txt").write_bytes(b"non-ASCII\n")
    (root / "private").write_bytes(b"secret\n")
    os.chmod(root / "private", 0o600)
    os.symlink("big.bin", root / "symlink")
    os.link(root / "big.bin", root / "hardlink")
    (root / "empty-dir").mkdir()
    os.mkfifo(root / "fifo")
    return root


@pytest.mark.interop
@pytest.mark.parametrize("fmt", ["pax", "gnu", "ustar"])
def test_gnu_tar_archives_match_tarfile(gnu_tree: Path, fmt: str) -> None:
    tar = tool("tar")
    command = [tar, f"--format={fmt}", "--sort=name", "-cf", "-", "-C", str(gnu_tree), "."]
    archive = subprocess.run(command, capture_output=True, check=True).stdout
    ours = our_members(archive)
    assert ours == tarfile_members(archive)
    kinds = {member.name.rsplit("/", 1)[-1]: member.kind for member, _ in ours}
    assert kinds["f" * 90] is MemberKind.FILE
    assert kinds["hardlink"] is MemberKind.HARDLINK or kinds["big.bin"] is MemberKind.HARDLINK
    assert kinds["symlink"] is MemberKind.SYMLINK and kinds["fifo"] is MemberKind.FIFO


@pytest.mark.interop
@pytest.mark.parametrize("fmt", ["pax", "gnu"])
def test_gnu_sparse_members_are_refused_by_name(tmp_path: Path, fmt: str) -> None:
    tar = tool("tar")
    with open(tmp_path / "holes", "wb") as file:
        file.seek(2**20)
        file.write(b"end")
    command = [tar, "--sparse", f"--format={fmt}", "-cf", "-", "-C", str(tmp_path), "holes"]
    archive = subprocess.run(command, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        first = tf.next()
        if first is None or not first.issparse():
            pytest.skip("this file system reports no holes, so GNU tar wrote a plain file")
    with pytest.raises(CorruptStreamError, match=r"unsupported tar member type .*holes"):
        read([archive])


# --- ends and truncation -------------------------------------------------------------------


def small_archive() -> tuple[bytes, int]:
    tree = [
        Entry("a" * 120, data=b"x" * 700),
        Entry("dir", MemberKind.DIRECTORY),
        Entry("link", MemberKind.SYMLINK, linkname="l" * 120),
        Entry("empty"),
        Entry("last", data=b"y" * 513),
    ]
    return build(tree, fmt=tarfile.PAX_FORMAT)


def test_every_truncation_before_the_end_marker_is_reported() -> None:
    archive, end = small_archive()
    expected = our_members(archive)
    for stop in range(len(archive) + 1):
        prefix = archive[:stop]
        for pieces in ([prefix], cut(prefix, list(range(97, stop, 97)))):
            if stop < end + 512:
                with pytest.raises(TruncatedStreamError):
                    read(pieces)
            else:
                events, reader = read(pieces)
                assert members_of(events) == expected and reader.at_end


def test_truncation_messages_say_where() -> None:
    archive, _ = small_archive()
    with pytest.raises(TruncatedStreamError, match=r"inside the data of 'a{120}' \(600 of 700"):
        read([archive[: 1536 + 100]])
    with pytest.raises(TruncatedStreamError, match=r"inside the padding after 'a{120}'"):
        read([archive[: 1536 + 800]])
    with pytest.raises(TruncatedStreamError, match="inside the extended header at offset 0"):
        read([archive[:600]])
    with pytest.raises(
        TruncatedStreamError, match=r"inside the header at offset 2560 \(after member 'a{120}'\)"
    ):
        read([archive[:2600]])
    with pytest.raises(TruncatedStreamError, match=r"^tar stream is empty$"):
        read([b""])
    with pytest.raises(
        TruncatedStreamError, match=r"^tar stream ends without its end-of-archive marker$"
    ):
        read([header("f", size=3) + padded(b"abc")])


def test_a_lone_zero_block_ends_the_archive_and_the_rest_is_ignored() -> None:
    member = header("f", size=3) + padded(b"abc")
    for tail in (b"", bytes(100), header("ignored"), b"garbage" * 300):
        stream = member + bytes(512) + tail
        events, reader = read(cut(stream, [100, 1500]))
        assert [m.name for m, _ in members_of(events)] == ["f"]
        assert reader.at_end and reader.offset == len(stream)


def test_at_end_turns_true_with_the_second_zero_block() -> None:
    reader = TarReader()
    reader.feed(header("f") + bytes(512))
    assert not reader.at_end
    assert reader.feed(bytes(512)) == [] and reader.at_end
    assert reader.feed(b"\xff" * 10_000) == [] and reader.offset == 11_536
    assert reader.finish() == []


def test_the_reader_refuses_use_after_finish_or_an_error() -> None:
    reader = TarReader()
    reader.feed(header("f") + END_OF_ARCHIVE)
    reader.finish()
    with pytest.raises(RuntimeError):
        reader.feed(b"")
    with pytest.raises(RuntimeError):
        reader.finish()
    broken = TarReader()
    with pytest.raises(CorruptStreamError):
        broken.feed(b"not a tar header" * 32)
    with pytest.raises(RuntimeError):
        broken.feed(header("f"))


# --- corrupt headers -----------------------------------------------------------------------


def test_any_changed_header_byte_is_caught_naming_the_offset() -> None:
    archive, _ = build([Entry("a", data=b"1" * 600), Entry("b", data=b"2")], tarfile.USTAR_FORMAT)
    for start in (0, 1536):
        for pos in range(start, start + 512):
            damaged = bytearray(archive)
            damaged[pos] ^= 0x01
            with pytest.raises(CorruptStreamError, match=f"offset {start}"):
                read([bytes(damaged)])


def test_garbage_is_not_tar() -> None:
    with pytest.raises(CorruptStreamError, match="checksum"):
        read([b"<html>this is not a tar archive</html>\n" * 100])


def test_old_tars_signed_checksums_are_accepted() -> None:
    block = with_checksum(header("é"), signed=True)
    assert block != header("é")
    assert [m.name for m, _ in our_members(block + END_OF_ARCHIVE)] == ["é"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (slice(100, 108), b"0o644\x00\x00\x00"),
        (slice(124, 136), b"12 34567\x00\x00\x00\x00"),
        (slice(124, 136), b"+1\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
        (slice(136, 148), b"1_000\x00\x00\x00\x00\x00\x00\x00"),
    ],
)
def test_non_numeric_fields_are_corrupt(field: slice, value: bytes) -> None:
    block = bytearray(header("f"))
    block[field] = value
    with pytest.raises(CorruptStreamError, match="offset 0 has a non-numeric"):
        read([with_checksum(bytes(block)) + END_OF_ARCHIVE])


def base256(value: int, width: int = 12) -> bytes:
    """GNU base-256: two's complement with the top bit set (GNU tar manual)."""
    raw = value.to_bytes(width, "big", signed=True)
    return bytes([raw[0] | 0x80]) + raw[1:]


def test_base256_numbers_are_read_and_absurd_sizes_refused() -> None:
    block = bytearray(header("f", mtime=0))
    block[136:148] = base256(-(2**33))
    block[108:116] = base256(2**40, 8)
    ((member, _),) = our_members(with_checksum(bytes(block)) + END_OF_ARCHIVE)
    assert (member.mtime, member.uid) == (-(2**33), 2**40)
    block[136:148] = base256(2**40)  # a file time no file system can hold
    with pytest.raises(CorruptStreamError, match="absurd mtime"):
        read([with_checksum(bytes(block)) + END_OF_ARCHIVE])
    block[136:148] = base256(0)
    for size, message in ((-1, "negative size"), (2**63, "absurd size")):
        block[124:136] = base256(size)
        with pytest.raises(CorruptStreamError, match=message):
            read([with_checksum(bytes(block)) + END_OF_ARCHIVE])


def test_v7_headers_are_read_without_magic_or_prefix() -> None:
    block = bytearray(header("v7-file", size=5, uname="gone"))
    block[257:500] = bytes(243)
    block[345:352] = b"ignored"  # not a prefix: v7 has no such field
    archive = with_checksum(bytes(block)) + padded(b"hello") + END_OF_ARCHIVE
    ((member, data),) = our_members(archive)
    assert (member.name, member.kind, member.uname, data) == (
        "v7-file",
        MemberKind.FILE,
        "",
        b"hello",
    )


def test_gnu_headers_do_not_read_atime_as_a_prefix() -> None:
    block = bytearray(tarfile.TarInfo("short").tobuf(tarfile.GNU_FORMAT))
    block[345:357] = b"14567654321\x00"  # GNU: atime lives where ustar keeps its prefix
    ((member, _),) = our_members(with_checksum(bytes(block)) + END_OF_ARCHIVE)
    assert member.name == "short"


# --- member kinds --------------------------------------------------------------------------


def test_old_style_regular_files_ending_in_slash_are_directories() -> None:
    archive = (
        header("old/", tarfile.AREGTYPE)
        + header("new/", tarfile.REGTYPE, size=600)  # GNU tar skips its data blocks
        + padded(b"n" * 600)
        + header("next", size=1)
        + padded(b"!")
        + END_OF_ARCHIVE
    )
    assert [(m.name, m.kind, m.size, d) for m, d in our_members(archive)] == [
        ("old", MemberKind.DIRECTORY, 0, b""),
        ("new", MemberKind.DIRECTORY, 0, b""),
        ("next", MemberKind.FILE, 1, b"!"),
    ]


def test_links_and_directories_carry_no_data_whatever_their_size_says() -> None:
    archive = (
        header("link", tarfile.SYMTYPE, size=600, linkname="target")
        + header("dir", tarfile.DIRTYPE, size=600)
        + header("next", size=1)
        + padded(b"!")
        + END_OF_ARCHIVE
    )
    ours = our_members(archive)
    assert ours == tarfile_members(archive)
    assert [(m.name, m.size, d) for m, d in ours] == [
        ("link", 0, b""),
        ("dir", 0, b""),
        ("next", 1, b"!"),
    ]


def test_names_keep_root_and_dot_minus_the_trailing_slash() -> None:
    archive = b"".join(header(n, tarfile.DIRTYPE) for n in ("/", ".", "./", "a//")) + END_OF_ARCHIVE
    assert [m.name for m, _ in our_members(archive)] == ["/", ".", ".", "a"]


@pytest.mark.parametrize(("flag", "shown"), [(b"S", "GNU sparse file"), (b"V", "V"), (b"X", "X")])
def test_unsupported_types_are_refused_by_name(flag: bytes, shown: str) -> None:
    archive = header("odd-member", flag, size=10) + padded(b"0123456789") + END_OF_ARCHIVE
    with pytest.raises(
        CorruptStreamError, match=f"unsupported tar member type '{shown}' for 'odd-member'"
    ):
        read([archive])


# --- pax records ---------------------------------------------------------------------------


def pax_archive(records: bytes, flag: bytes = tarfile.XHDTYPE) -> bytes:
    return header("PaxHeader", flag, len(records)) + padded(records) + header("f") + END_OF_ARCHIVE


def test_pax_values_may_hold_newlines_and_equals() -> None:
    records = (
        pax_record("path", b"a\nb=c") + pax_record("comment", b"ignored") + pax_record("x.y", b"")
    )
    ((member, _),) = our_members(pax_archive(records))
    assert member.name == "a\nb=c"


def test_binary_pax_names_survive_as_surrogates() -> None:
    records = pax_record("hdrcharset", b"BINARY") + pax_record("path", b"caf\xe9")
    ((member, _),) = our_members(pax_archive(records))
    assert member.name.encode("utf-8", "surrogateescape") == b"caf\xe9"


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        (b"5 a=b\n", "its length is wrong"),
        (b"7 a=b\nx", "its length is wrong"),
        (b"x a=b\n", "its length is not a number"),
        (b"+6 a=b\n", "its length is not a number"),
        (b"6 a=b\n ", "its length is not a number"),
        (b"99 a=b\n", "it runs past the end"),
        (b"5 ab\n", "it has no keyword=value"),
        (b"4 =\n", "it has no keyword=value"),
    ],
)
def test_bad_pax_records_are_corrupt(records: bytes, reason: str) -> None:
    with pytest.raises(
        CorruptStreamError, match=f"pax header at offset 0 has a bad record.*{reason}"
    ):
        read([pax_archive(records)])


@pytest.mark.parametrize(
    "record",
    [
        pax_record("size", b"-1"),
        pax_record("size", b"9" * 30),
        pax_record("uid", b"12a"),
        pax_record("mtime", b"1e9"),
        pax_record("mtime", b"nan"),
    ],
)
def test_bad_pax_numbers_are_corrupt(record: bytes) -> None:
    with pytest.raises(CorruptStreamError, match="pax header at offset 0 has a bad"):
        read([pax_archive(record)])


def test_pax_sparse_keys_and_absurd_headers_are_refused() -> None:
    sparse = pax_record("GNU.sparse.major", b"1") + pax_record("GNU.sparse.minor", b"0")
    with pytest.raises(
        CorruptStreamError, match="unsupported tar member type 'GNU sparse file' for 'f'"
    ):
        read([pax_archive(sparse)])
    with pytest.raises(CorruptStreamError, match="claims 2097152 bytes"):
        read([header("PaxHeader", tarfile.XHDTYPE, 2**21)])
    with pytest.raises(CorruptStreamError, match="followed by the end of the archive"):
        read([header("PaxHeader", tarfile.XHDTYPE, 0) + END_OF_ARCHIVE])


# --- fuzzing -------------------------------------------------------------------------------


@EXAMPLES
@given(st.data())
def test_changed_headers_with_good_checksums_fail_only_as_corrupt(data: st.DataObject) -> None:
    archive, _ = build(TREE[10:16], tarfile.PAX_FORMAT)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        infos = tf.getmembers()
    info = data.draw(st.sampled_from(infos))
    damaged = bytearray(archive)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(info.offset, info.offset_data - 1))
        damaged[pos] = data.draw(
            st.sampled_from([0, 0x20, 0x30, 0x37, 0x38, 0x0A, 0x3D, 0x80, 0xFF])
        )
    for start in {info.offset, info.offset_data - 512}:
        damaged[start : start + 512] = with_checksum(bytes(damaged[start : start + 512]))
    with contextlib.suppress(CorruptStreamError):
        members_of(read(cut(bytes(damaged), [info.offset + 300]))[0])


@EXAMPLES
@given(st.binary(min_size=512, max_size=512), st.binary(max_size=1500))
def test_random_blocks_with_good_checksums_fail_only_as_corrupt(block: bytes, rest: bytes) -> None:
    with contextlib.suppress(CorruptStreamError):
        members_of(read([with_checksum(block) + rest])[0])


def test_unknown_pax_keywords_are_not_kept_so_memory_stays_flat() -> None:
    value = b"v" * 100_000
    stream = bytearray()
    for i in range(100):  # 100 consecutive headers, each with its own unknown keyword
        for flag in (tarfile.XGLTYPE, tarfile.XHDTYPE):
            records = pax_record(f"vendor.key{i}", value)
            stream += header("pax", flag, len(records)) + records + bytes(-len(records) % 512)
    stream += header("f") + END_OF_ARCHIVE
    tracemalloc.start()
    reader = TarReader()
    events: list[TarEvent] = []
    for offset in range(0, len(stream), 65_536):
        events += reader.feed(bytes(stream[offset : offset + 65_536]))
    events += reader.finish()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [e.member.name for e in events if isinstance(e, MemberStart)] == ["f"]
    assert peak < 3_000_000, f"{peak} bytes held for {len(stream)} bytes of pax headers"
