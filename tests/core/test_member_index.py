"""The member index (``core/member_index.py``): what is written reads back the same, in pages;
lookups read only the pages that can hold a name; every damaged byte is refused."""

from __future__ import annotations

import gc
import hashlib
import io
import struct
import subprocess
import sys
import weakref
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streaming_tar_compressor._compiled import built
from streaming_tar_compressor.core import member_index
from streaming_tar_compressor.core.member_index import (
    FOOTER,
    KINDS,
    MAGIC,
    IndexEntry,
    IndexWriter,
    MemberIndex,
    Row,
    WrittenIndex,
    sort_key,
)
from streaming_tar_compressor.errors import ChecksumMismatchError, ManifestError
from streaming_tar_compressor.models import MemberKind, TarMember

parts = st.sampled_from(["a", "a-x", "b", "é", "x y", "\udcff", "z"])
names = st.lists(parts, min_size=1, max_size=4).map("/".join)


@st.composite
def entries(draw: st.DrawFn) -> list[IndexEntry]:
    made, offset = [], 0
    for name in draw(st.lists(names, max_size=40)):
        kind = draw(st.sampled_from(list(MemberKind)))
        size = draw(st.integers(0, 2**40)) if kind is MemberKind.FILE else 0
        header = draw(st.sampled_from([512, 1536, 70_000]))
        made.append(
            IndexEntry(
                name=name,
                kind=kind,
                header_offset=offset,
                data_offset=offset + header,
                size=size,
                mode=draw(st.integers(0, 0o7777)),
                mtime_ns=draw(st.integers(-(2**33), 2**33)) * 10**9,
                uid=draw(st.integers(0, 2**64 - 1)),  # past 2**63: the compiled slow path
                gid=draw(st.integers(0, 2**40)),
                uname=draw(st.sampled_from(["", "root", "ü"])),
                gname=draw(st.sampled_from(["", "staff"])),
                linkname=draw(names) if kind in (MemberKind.SYMLINK, MemberKind.HARDLINK) else "",
                devmajor=draw(st.integers(0, 255)),
                devminor=draw(st.integers(0, 255)),
                sha256=hashlib.sha256(name.encode("utf-8", "surrogateescape")).digest()
                if kind is MemberKind.FILE
                else b"",
            )
        )
        offset += header + size + 512
    return made


def row(entry: IndexEntry) -> Row:
    """The writer's row for an entry (whose mtime is in whole seconds, as a pack's are)."""
    member = TarMember(
        name=entry.name,
        kind=entry.kind,
        size=entry.size,
        mode=entry.mode,
        mtime=entry.mtime_ns // 10**9,
        uid=entry.uid,
        gid=entry.gid,
        uname=entry.uname,
        gname=entry.gname,
        linkname=entry.linkname,
        devmajor=entry.devmajor,
        devminor=entry.devminor,
    )
    return member, entry.header_offset, entry.data_offset, entry.sha256


def write(members: list[IndexEntry], batch: int = 1) -> tuple[bytes, WrittenIndex]:
    """The index of ``members``, handed to the writer ``batch`` rows at a time."""
    out = io.BytesIO()
    writer = IndexWriter(out)
    rows = [row(entry) for entry in members]
    for start in range(0, len(rows), batch):
        writer.add(rows[start : start + batch])
    written = writer.finish()
    return out.getvalue(), written


class Reads:
    """A ``read(offset, length)`` over bytes that remembers what was read."""

    def __init__(self, data: bytes) -> None:
        self.data, self.calls = data, []

    def __call__(self, offset: int, length: int) -> bytes:
        self.calls.append((offset, length))
        return self.data[offset : offset + length]


def open_index(data: bytes, written: WrittenIndex | None = None) -> tuple[MemberIndex, Reads]:
    reads = Reads(data)
    ref = written.directory if written is not None else None
    return MemberIndex(reads, len(data), directory=ref, name="a.index"), reads


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of three members, so that small archives have many."""
    monkeypatch.setattr(member_index, "ENTRIES_PER_PAGE", 3)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # small_pages only patches constants, the same for every example
@given(members=entries(), in_order=st.booleans(), batch=st.integers(1, 50))
def test_what_is_written_reads_back_and_lookups_find_every_name(
    small_pages: None, members: list[IndexEntry], in_order: bool, batch: int
) -> None:
    if in_order:
        members = sorted(members, key=lambda e: sort_key(e.name))
    data, written = write(members)
    assert (written.size, written.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert write(members, batch)[0] == data  # the same bytes however the rows come
    for index, _ in (open_index(data), open_index(data, written)):
        assert list(index) == members
        assert index.members == written.entries == len(members)
        for name in {e.name for e in members} | {"a", "nothing/here"}:
            assert index.find(name) == [e for e in members if e.name == name]
            below = [
                e for e in members if sort_key(e.name)[: len(sort_key(name))] == sort_key(name)
            ]
            assert index.under(name) == below
        if in_order:
            assert index.sorted


def test_a_name_in_a_sorted_index_costs_one_page_read(small_pages: None) -> None:
    members = [
        IndexEntry(name=f"d{i // 10:02d}/f{i % 10}", kind=MemberKind.FILE, header_offset=i * 1024,
                   data_offset=i * 1024 + 512, size=512, sha256=bytes(32))
        for i in range(300)
    ]  # fmt: skip
    data, written = write(members)
    index, reads = open_index(data, written)
    assert reads.calls == [(written.directory.offset, written.directory.length)]
    before = len(reads.calls)
    assert index.find("d17/f3") == [members[173]]
    assert len(reads.calls) == before + 1
    before = len(reads.calls)
    assert index.under("d17") == members[170:180]
    assert len(reads.calls) - before <= 1 + 10 // 3 + 1  # the pages that hold d17's ten
    before = len(reads.calls)
    assert index.find("d17") == [] and len(reads.calls) == before + 1


def test_an_index_out_of_order_is_read_whole_and_still_finds_every_name(small_pages: None) -> None:
    members = [
        IndexEntry(name=name, kind=MemberKind.FILE, header_offset=i, data_offset=i + 512)
        for i, name in enumerate(["b", "a", "c", "a/x", "b/y", "a"])
    ]
    data, _ = write(members)
    index, reads = open_index(data)
    assert not index.sorted
    assert index.find("a") == [members[1], members[5]]
    assert index.under("a") == [members[1], members[3], members[5]]
    pages = [call for call in reads.calls if call[0] != len(data) - FOOTER.size]
    assert len(pages) == 1 + 2 + 2  # the directory, then both pages for each lookup


def test_a_page_ends_early_when_its_names_are_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(member_index, "PAGE_TEXT_BYTES", 10_000)
    members = [
        IndexEntry(name=f"{i:04d}" + "n" * 4000, kind=MemberKind.DIRECTORY, header_offset=i,
                   data_offset=i)
        for i in range(7)
    ]  # fmt: skip
    data, _ = write(members)
    index, _ = open_index(data)
    assert [page.count for page in index.entry_pages] == [3, 3, 1]
    assert list(index) == members


@st.composite
def pages_of_rows(draw: st.DrawFn) -> list[Row]:
    """Rows as a pack or a tar reader makes them: pax mtimes may have fractions."""
    made: list[Row] = []
    for entry in draw(entries()):
        member, header, data, digest = row(entry)
        if draw(st.booleans()):
            mtime = draw(st.floats(-(2.0**33), 2.0**33, allow_nan=False))
            member = TarMember(member.name, member.kind, member.size, member.mode, mtime)
        made.append((member, header, data, digest))
    return made


@pytest.mark.skipif(built is None, reason="the compiled module is not built")
@settings(max_examples=200, deadline=None)
@given(rows=pages_of_rows(), max_rows=st.integers(1, 50), max_text=st.integers(1, 300))
def test_the_compiled_page_columns_equal_their_python_twin(
    rows: list[Row], max_rows: int, max_text: int
) -> None:
    if rows:
        expected = member_index.page_columns_python(rows, KINDS, max_rows, max_text)
        assert built is not None
        assert built.index_page(rows, KINDS, max_rows, max_text) == expected


long_names = st.text(alphabet="ab/-.é", max_size=12)


@pytest.mark.skipif(built is None, reason="the compiled module is not built")
@given(prefix=st.text(alphabet="ab/-.", max_size=40), first=long_names, second=long_names)
def test_the_compiled_order_check_agrees_with_sort_key(
    prefix: str, first: str, second: str
) -> None:
    """Names sharing a long prefix (as a tree's do), compared 8 bytes at a time."""
    assert built is not None
    rows = [(TarMember(prefix + name, MemberKind.FILE), 0, 512, b"") for name in (first, second)]
    in_order = built.index_page(rows, KINDS, 10, 10**6)[2]
    assert in_order == (sort_key(prefix + second) >= sort_key(prefix + first))


def built_pages(
    builder: member_index.PageBuilder, rows: list[Row], take_every: int
) -> list[member_index.Page]:
    """The pages of ``rows`` added one at a time, taken every ``take_every`` rows."""
    pages = []
    for number, one in enumerate(rows, 1):
        builder.add(*one)
        if number % take_every == 0:
            pages += builder.take()
    return pages + builder.finish()


def page_builders(
    max_rows: int, max_text: int, compress: Callable[[bytes], bytes] = bytes
) -> list[member_index.PageBuilder]:
    """Both twins; by default they keep a page's columns as they are (a copy)."""
    made: list[member_index.PageBuilder] = [
        member_index.PageBuilderPython(KINDS, max_rows, max_text, compress)
    ]
    if built is not None:
        made.append(built.PageBuilder(KINDS, max_rows, max_text, compress))
    return made


@settings(max_examples=200, deadline=None)
@given(
    rows=pages_of_rows(),
    max_rows=st.integers(1, 50),
    max_text=st.integers(1, 300),
    take_every=st.integers(1, 60),
)
def test_a_page_builder_seals_the_pages_page_columns_makes_of_the_same_rows(
    rows: list[Row], max_rows: int, max_text: int, take_every: int
) -> None:
    expected: list[member_index.Page] = []
    rest = rows
    while rest:
        count, columns, in_order = member_index.page_columns_python(rest, KINDS, max_rows, max_text)
        expected.append((count, columns, in_order, rest[0][0].name, rest[count - 1][0].name))
        rest = rest[count:]
    for builder in page_builders(max_rows, max_text):
        assert built_pages(builder, rows, take_every) == expected


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(members=entries(), batch=st.integers(1, 7))
def test_an_index_written_from_built_pages_is_the_index_written_from_rows(
    members: list[IndexEntry], batch: int, small_pages: None
) -> None:
    data, written = write(members, batch)
    pages_as_stored = page_builders(
        member_index.ENTRIES_PER_PAGE, member_index.PAGE_TEXT_BYTES, member_index.deflate
    )
    for builder in pages_as_stored:
        out = io.BytesIO()
        writer = IndexWriter(out)
        writer.add_pages(built_pages(builder, [row(entry) for entry in members], batch))
        finished = writer.finish()
        assert (out.getvalue(), finished) == (data, written)


def test_a_page_builder_that_failed_refuses_to_go_on() -> None:
    for builder in page_builders(10, 1000):
        builder.add(TarMember("a", MemberKind.FILE), 0, 512)
        with pytest.raises(ValueError, match="holds NUL"):
            builder.add(TarMember("b\0", MemberKind.FILE), 1024, 1536)  # compiled: here
            builder.finish()  # the twin: when it seals the page
        for call in (builder.take, builder.finish):
            with pytest.raises(RuntimeError, match="failed and is unusable"):
                call()
        with pytest.raises(RuntimeError, match="failed and is unusable"):
            builder.add(TarMember("c", MemberKind.FILE), 0, 512)


@pytest.mark.parametrize(("rows", "text"), [(0, 1000), (10, -1)])
def test_a_page_builder_needs_room_for_a_row(rows: int, text: int) -> None:
    makers: list[Callable[..., object]] = [member_index.PageBuilderPython]
    makers += [built.PageBuilder] if built is not None else []
    for make in makers:
        with pytest.raises(ValueError, match="at least one row"):
            make(KINDS, rows, text, bytes)


def test_a_page_builder_stores_what_compress_returns_and_only_bytes() -> None:
    one = (TarMember("a", MemberKind.FILE), 0, 512, b"")
    columns = member_index.page_columns_python([one], KINDS, 1, 1000)[1]
    for builder in page_builders(1, 1000, lambda columns: b"stored:" + columns):
        builder.add(*one)
        assert builder.take() == [(1, b"stored:" + columns, True, "a", "a")]
    for refused in page_builders(1, 1000, bytearray):  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="must return bytes"):
            refused.add(TarMember("a", MemberKind.FILE), 0, 512)
        with pytest.raises(RuntimeError, match="failed and is unusable"):
            refused.finish()


def test_only_a_files_size_is_read_by_either_twin() -> None:
    """A folder's size means nothing (0 is stored): neither twin reads, nor refuses, it."""
    rows = [(TarMember("d", MemberKind.DIRECTORY, size=-5), 0, 512, b"")]
    expected = member_index.page_columns_python(rows, KINDS, 10, 1000)
    assert expected == member_index.page_columns_python(
        [(TarMember("d", MemberKind.DIRECTORY), 0, 512, b"")], KINDS, 10, 1000
    )
    if built is not None:
        assert built.index_page(rows, KINDS, 10, 1000) == expected
    for builder in page_builders(10, 1000):
        builder.add(*rows[0])
        assert builder.finish() == [(1, expected[1], True, "d", "d")]


@pytest.mark.skipif(built is None, reason="the compiled module is not built")
def test_a_page_builder_in_a_cycle_is_collected() -> None:
    """It holds any callable as compress: a cycle through it must not leak."""
    assert built is not None

    class Owner:
        def compress(self, columns: bytes) -> bytes:
            return bytes(columns)

    owner = Owner()
    owner.builder = built.PageBuilder(KINDS, 10, 1000, owner.compress)  # type: ignore[attr-defined]
    gone = weakref.ref(owner)
    del owner
    gc.collect()
    assert gone() is None


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"name": "a\0b"}, ValueError),
        ({"linkname": "x\0"}, ValueError),
        ({"mode": 2**32}, OverflowError),
        ({"uid": -1}, OverflowError),
        ({"uid": 2**64}, OverflowError),
        ({"gid": -(2**70)}, OverflowError),
        ({"mtime": 2**63}, OverflowError),
        ({"mtime": float("inf")}, OverflowError),
        ({"mtime": float("nan")}, OverflowError),
    ],
)
@pytest.mark.parametrize("compiled", [False, True])
def test_what_the_columns_cannot_hold_is_refused_by_both_twins(
    bad: dict[str, object], error: type[Exception], compiled: bool
) -> None:
    if compiled and built is None:
        pytest.skip("the compiled module is not built")
    fields: dict[str, object] = {"name": "a", "kind": MemberKind.FILE, **bad}
    member = TarMember(**fields)  # type: ignore[arg-type]
    page = built.index_page if compiled and built is not None else member_index.page_columns_python
    with pytest.raises(error):
        page([(member, 0, 512, b"")], KINDS, 10, 1000)
    with pytest.raises(ValueError, match="32 bytes or empty"):
        page([(TarMember("a", MemberKind.FILE), 0, 512, b"short")], KINDS, 10, 1000)


# -- damage ------------------------------------------------------------------------------------


def sample() -> tuple[bytes, WrittenIndex]:
    members = [
        IndexEntry(name=f"f{i:03d}", kind=MemberKind.FILE, header_offset=i * 1024,
                   data_offset=i * 1024 + 512, size=100, sha256=bytes([i]) * 32)
        for i in range(10)
    ]  # fmt: skip
    return write(members)


def flipped(data: bytes, at: int) -> bytes:
    spoiled = bytearray(data)
    spoiled[at] ^= 0x40
    return bytes(spoiled)


def test_every_flipped_byte_is_refused(small_pages: None) -> None:
    data, _ = sample()
    # The leading magic is for people and file(1): readers go by the footer (or the
    # manifest's record of the directory), and stc verify checks the whole file's SHA-256.
    for at in range(len(MAGIC), len(data)):
        spoiled = flipped(data, at)
        with pytest.raises((ManifestError, ChecksumMismatchError)):
            index, _ = open_index(spoiled)
            list(index)


def test_a_damaged_page_names_the_index_and_the_byte(small_pages: None) -> None:
    data, written = sample()
    index, _ = open_index(flipped(data, len(MAGIC) + 3), written)
    with pytest.raises(ChecksumMismatchError, match=r"a\.index \(page at byte 8\) is damaged"):
        index.find("f001")


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda data: data[:-1], "not an stc index"),
        (lambda data: data[:20], "too short"),
        (
            lambda data: b"NOTINDEX" + data[8 : -FOOTER.size] + b"\0" * FOOTER.size,
            "not an stc index",
        ),
    ],
)
def test_a_cut_or_foreign_file_is_not_an_index(
    spoil: Callable[[bytes], bytes], message: str
) -> None:
    data, _ = sample()
    with pytest.raises(ManifestError, match=message):
        open_index(spoil(data))


def forged(directory_columns: bytes, pages: bytes = b"") -> bytes:
    """An index whose directory is ``directory_columns`` (its SHA-256 matching)."""
    directory = zlib.compress(directory_columns)
    offset = len(MAGIC) + len(pages)
    footer = FOOTER.pack(MAGIC, offset, len(directory), hashlib.sha256(directory).digest())
    return MAGIC + pages + directory + footer


def test_a_page_that_inflates_without_end_is_refused() -> None:
    bomb = zlib.compress(bytes(64 * 2**20))  # 64 KiB that inflate to 64 MiB
    page = member_index._Page(0, 1, len(MAGIC), len(bomb), hashlib.sha256(bomb).digest(), "a", "a")
    index, _ = open_index(forged(member_index._directory_columns([page], 0), bomb))
    with pytest.raises(ManifestError, match="damaged or too large"):
        index.find("a")


def test_a_directory_that_claims_an_order_it_does_not_have_is_refused() -> None:
    pages = [
        member_index._Page(0, 1, 8, 1, bytes(32), "b", "b"),
        member_index._Page(1, 1, 8, 1, bytes(32), "a", "a"),
    ]
    with pytest.raises(ManifestError, match="not in the order it claims"):
        open_index(forged(member_index._directory_columns(pages, member_index.SORTED), b"xx"))


def test_pages_that_skip_members_are_refused() -> None:
    pages = [member_index._Page(1, 1, 8, 1, bytes(32), "a", "a")]
    with pytest.raises(ManifestError, match="do not follow each other"):
        open_index(forged(member_index._directory_columns(pages, 0), b"x"))


def test_a_page_that_holds_other_members_than_its_directory_says(small_pages: None) -> None:
    data, written = sample()
    index, _ = open_index(data, written)
    page = index.entry_pages[1]
    raw = data[page.offset : page.offset + page.length]
    columns = zlib.decompress(raw)
    count = struct.unpack("<I", columns[:4])[0]
    assert count == 3
    liar = member_index._Page(0, 3, len(MAGIC), len(raw), page.sha256, "f000", "f002")
    fake, _ = open_index(forged(member_index._directory_columns([liar], 0), raw))
    with pytest.raises(ManifestError, match="does not hold what its directory says"):
        list(fake)


def test_bytes_after_a_pages_zlib_stream_are_refused() -> None:
    entry = IndexEntry(name="a", kind=MemberKind.FILE, header_offset=0, data_offset=512)
    _, columns, _ = member_index.page_columns_python([row(entry)], KINDS, 10, 10_000)
    page_bytes = zlib.compress(columns) + b"tail"
    digest = hashlib.sha256(page_bytes).digest()
    page = member_index._Page(0, 1, len(MAGIC), len(page_bytes), digest, "a", "a")
    index, _ = open_index(forged(member_index._directory_columns([page], 0), page_bytes))
    with pytest.raises(ManifestError, match="damaged or too large"):
        index.find("a")


MILLION = """
import os, sys
from streaming_tar_compressor.core.member_index import ENTRIES_PER_PAGE, IndexWriter, MemberIndex
from streaming_tar_compressor.models import MemberKind, TarMember

count, path = 1_000_000, sys.argv[1]
with open(path, "wb") as out:
    writer = IndexWriter(out)
    for first in range(0, count, ENTRIES_PER_PAGE):
        writer.add([
            (TarMember(f"d{i // 1000:04d}/f{i % 1000:04d}", MemberKind.FILE, i),
             i * 1024, i * 1024 + 512, b"")
            for i in range(first, min(count, first + ENTRIES_PER_PAGE))
        ])
    written = writer.finish()
with open(path, "rb") as handle:
    index = MemberIndex(lambda at, size: os.pread(handle.fileno(), size, at), written.size)
    assert index.members == count and index.sorted
    assert index.find("d0765/f0432")[0].size == 765_432
    assert [e.name for e in index.under("d0999")][-1] == "d0999/f0999"
    assert sum(1 for _ in index) == count
# VmHWM, not ru_maxrss: that counts the pages of the (large) test process that forked this.
with open("/proc/self/status") as status:
    peak = next(line for line in status if line.startswith("VmHWM")).split()[1]
print(written.size, peak)
"""


def test_a_million_members_are_written_and_read_in_bounded_memory(tmp_path: Path) -> None:
    """The writer holds one page, the reader reads one at a time: a million members fit in
    the RSS of a bare interpreter and a few pages (holding them all would take ~300 MB)."""
    done = subprocess.run(
        [sys.executable, "-c", MILLION, str(tmp_path / "a.index")],
        capture_output=True,
        text=True,
        check=True,
    )
    size, peak_kib = map(int, done.stdout.split())
    assert size / 1_000_000 < 32
    assert peak_kib < 96 * 1024, f"peak RSS {peak_kib} KiB"
