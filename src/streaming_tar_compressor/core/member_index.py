"""The member index (``PREFIX.index``, format ``stc-index/1``): every member's name, type,
offsets, size, metadata and content SHA-256, in pages read one at a time, so that one name
costs one page read, locally or by a ranged GET. (Each block's SHA-256 is in the manifest:
checkpoints keep it, and an unpack checks blocks without this file.)

Layout (integers little-endian)::

    MAGIC                 8 bytes
    pages                 zlib of columns, up to ENTRIES_PER_PAGE members each, in tar order
    directory             zlib of columns: whether names come in key order, and per page its
                          first ordinal, count, offset, length, SHA-256, first and last name
    footer                FOOTER: magic, the directory's offset, length and SHA-256

The same members give the same bytes, so a resumed pack's index is byte-identical. The
manifest pins the file's SHA-256 and the directory's place and SHA-256, and the directory
pins each page: each read is checked before it is used. Names are ordered by their tuple of
path components, the order of stc's sorted depth-first walk (``a/y`` before ``a-x``); lookups
bisect the pages' names when the whole index is in that order and read every page otherwise.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import operator
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple, Protocol

from zlib_ng import zlib_ng

from .._compiled import native
from ..errors import ChecksumMismatchError, ManifestError
from ..models import MemberKind, TarMember
from .manifest import IndexRef

MAGIC = b"STCINDX1"
FOOTER = struct.Struct("<8sQQ32s")  # magic, the directory's offset, length and SHA-256
SORTED = 1  # directory flag: every name is in key order
ENTRIES_PER_PAGE = 4096
# An entry page also ends once its names and link targets reach this many bytes, so that a
# page inflates to at most MAX_PAGE_BYTES (names are capped at 4,095 bytes, pax texts at 1 MiB).
PAGE_TEXT_BYTES = 2**20
MAX_PAGE_BYTES = 8 * 2**20
MAX_DIRECTORY_BYTES = 32 * 2**20
# Pages are deflated by zlib-ng (a dependency for gzip), whose level 1 made the columns of
# 100,000 small files at 0.080 µs and 11.2 bytes a member, where stdlib zlib's level 1 took
# 0.27 µs for 8.3 bytes: the writer runs beside the pack, on its cores. Readers inflate them
# with any zlib.
ZLIB_LEVEL = 1
KINDS = tuple(MemberKind)  # a member's kind is stored as its position here (FILE first)


class Output(Protocol):
    """Where an index is written: a file, or a pack's spool that reports its own errors."""

    def write(self, data: bytes, /) -> object: ...


Row = tuple[TarMember, int, int, bytes]
"""A member to index, where its first header and its data start in the tar stream, and its
content's SHA-256 (empty: none)."""
Page = tuple[int, bytes, bool, str, str]
"""A page's member count, its columns as the index stores them (``deflate``d), whether its
names are in key order, its first and last name."""


class IndexEntry(NamedTuple):
    """One member. ``header_offset`` is where its first header (pax or GNU long name
    included) starts in the tar stream, ``data_offset`` where its content starts; ``sha256``
    is the content's digest for a regular file, else empty. A tuple: a million of them are
    made in a second."""

    name: str
    kind: MemberKind
    header_offset: int
    data_offset: int
    size: int = 0
    mode: int = 0o644
    mtime_ns: int = 0
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    sha256: bytes = b""

    @property
    def mtime(self) -> float:
        """In seconds, as TarMember has it: whole when the header held whole seconds."""
        seconds, rest = divmod(self.mtime_ns, 1_000_000_000)
        return seconds if not rest else self.mtime_ns / 1e9

    def to_member(self) -> TarMember:
        """The member as the tar reader describes it (mtime in seconds)."""
        return TarMember(
            self.name,
            self.kind,
            self.size,
            self.mode,
            self.mtime,
            self.uid,
            self.gid,
            self.uname,
            self.gname,
            self.linkname,
            self.devmajor,
            self.devminor,
            self.header_offset,
        )


class PageColumns(NamedTuple):
    """One page's members as columns, in IndexEntry's field order: what a listing formats
    without making an entry of each member (a million entries take 0.4 s)."""

    names: list[str]
    kinds: list[MemberKind]
    header_offsets: list[int]
    data_offsets: list[int]
    sizes: list[int]
    modes: list[int]
    mtimes_ns: list[int]
    uids: list[int]
    gids: list[int]
    unames: list[str]
    gnames: list[str]
    linknames: list[str]
    devmajors: list[int]
    devminors: list[int]
    sha256s: list[bytes]

    def entries(self) -> list[IndexEntry]:
        # tuple.__new__ over zipped columns: no Python frame per member (IndexEntry's own
        # __new__ is one), a third of the time a listing of entries takes.
        return list(map(tuple.__new__, repeat(IndexEntry), zip(*self, strict=True)))


def entry_differences(
    entry: IndexEntry, member: TarMember, header_offset: int, data_offset: int | None = None
) -> list[str]:
    """The fields in which the index entry and the member read from the tar stream (its
    first header at ``header_offset``, its data at ``data_offset`` when known) disagree."""
    found = entry._replace(
        name=member.name,
        kind=member.kind,
        header_offset=header_offset,
        data_offset=entry.data_offset if data_offset is None else data_offset,
        size=member.size if member.kind is MemberKind.FILE else 0,
        mode=member.mode,
        mtime_ns=nanoseconds(member.mtime),
        uid=member.uid,
        gid=member.gid,
        uname=member.uname,
        gname=member.gname,
        linkname=member.linkname,
        devmajor=member.devmajor,
        devminor=member.devminor,
    )
    return [f for f in IndexEntry._fields if getattr(found, f) != getattr(entry, f)]


@dataclass(frozen=True, slots=True)
class DirectoryRef:
    """Where the directory lies in the index file and its SHA-256 (what a manifest pins)."""

    offset: int
    length: int
    sha256: str


@dataclass(frozen=True, slots=True)
class WrittenIndex:
    size: int
    sha256: str
    directory: DirectoryRef
    entries: int

    def record(self, name: str, *, content_sha256: bool) -> IndexRef:
        """What a manifest says of this index, written as the file ``name``."""
        return IndexRef(
            name=name,
            size=self.size,
            sha256=self.sha256,
            members=self.entries,
            directory_offset=self.directory.offset,
            directory_length=self.directory.length,
            directory_sha256=self.directory.sha256,
            content_sha256=content_sha256,
        )


@dataclass(frozen=True, slots=True)
class _Page:
    first: int  # ordinal of its first member
    count: int
    offset: int
    length: int
    sha256: bytes
    first_name: str
    last_name: str


def sort_key(name: str) -> tuple[str, ...]:
    """The walk's order: by path components, so ``a/y`` comes before ``a-x``."""
    return tuple(name.split("/"))


class IndexWriter:
    """Writes an index to ``out`` as members arrive, a page at a time: memory is one page,
    whatever the archive's size. Pages are cut where the rows alone say (ENTRIES_PER_PAGE
    rows, or fewer with long texts), however the rows were handed in: the same members give
    the same bytes."""

    def __init__(self, out: Output) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self._offset = 0
        self._pages: list[_Page] = []
        self._rows: list[Row] = []  # not yet in a page
        self._entry_count = 0
        self._last_key: tuple[str, ...] | None = None
        self._sorted = True
        self._write(MAGIC)

    def add(self, rows: list[Row]) -> None:
        """The next members, in tar order."""
        self._rows += rows
        while len(self._rows) >= ENTRIES_PER_PAGE:
            self._flush_page()

    def add_pages(self, pages: list[Page]) -> None:
        """The next pages, as a ``page_builder()`` sealed them (after any rows, none pending)."""
        assert not self._rows, "pages follow whole pages of rows"
        for page in pages:
            self._write_page(page)

    def finish(self) -> WrittenIndex:
        """Writes the last pages, the directory and the footer."""
        while self._rows:
            self._flush_page()
        flags = SORTED if self._sorted else 0
        directory = deflate(_directory_columns(self._pages, flags))
        ref = DirectoryRef(self._offset, len(directory), hashlib.sha256(directory).hexdigest())
        self._write(directory)
        self._write(FOOTER.pack(MAGIC, ref.offset, ref.length, bytes.fromhex(ref.sha256)))
        return WrittenIndex(self._offset, self._hash.hexdigest(), ref, self._entry_count)

    def _flush_page(self) -> None:
        count, columns, in_order = _page_columns(
            self._rows, KINDS, ENTRIES_PER_PAGE, PAGE_TEXT_BYTES
        )
        first, last = self._rows[0][0].name, self._rows[count - 1][0].name
        del self._rows[:count]
        self._write_page((count, deflate(columns), in_order, first, last))

    def _write_page(self, page: Page) -> None:
        count, data, in_order, first, last = page
        if not in_order or (self._last_key is not None and sort_key(first) < self._last_key):
            self._sorted = False
        self._last_key = sort_key(last)
        digest = hashlib.sha256(data).digest()
        self._pages.append(
            _Page(self._entry_count, count, self._offset, len(data), digest, first, last)
        )
        self._write(data)
        self._entry_count += count

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._hash.update(data)
        self._offset += len(data)


class MemberIndex:
    """Reads an index through ``read(offset, length)``, a page at a time, checking each read
    against the SHA-256 that pins it. ``directory`` is the manifest's record of it; without
    one the footer is read first (``size`` bytes in all)."""

    def __init__(
        self,
        read: Callable[[int, int], bytes],
        size: int,
        *,
        directory: DirectoryRef | None = None,
        name: str = "index",
    ) -> None:
        self._read, self.name = read, name
        if size < len(MAGIC) + FOOTER.size:
            raise ManifestError(f"{name} is not an stc index: {size} bytes is too short")
        if directory is None:
            footer = self._read_exact(size - FOOTER.size, FOOTER.size)
            magic, offset, length, digest = FOOTER.unpack(footer)
            if magic != MAGIC:
                raise ManifestError(f"{name} is not an stc index (no {MAGIC!r} at its end)")
            directory = DirectoryRef(offset, length, digest.hex())
        end = size - FOOTER.size
        if not len(MAGIC) <= directory.offset <= directory.offset + directory.length <= end:
            raise ManifestError(f"{name}: its directory lies outside the file")
        if directory.length > MAX_DIRECTORY_BYTES:
            raise ManifestError(f"{name}: its directory is too large")
        raw = self._checked(directory.offset, directory.length, directory.sha256, "directory")
        flags, pages = _parse_directory(_inflate(raw, MAX_DIRECTORY_BYTES, name), name)
        self.entry_pages = pages
        self.members = _consecutive(pages, name)
        if any(p.offset + p.length > directory.offset for p in pages):
            raise ManifestError(f"{name}: a page lies outside the file")
        if any(p.length > MAX_PAGE_BYTES for p in pages):
            raise ManifestError(f"{name}: a page is too large")
        self.sorted = bool(flags & SORTED)
        self._first_keys = [sort_key(p.first_name) for p in self.entry_pages]
        self._last_keys = [sort_key(p.last_name) for p in self.entry_pages]
        bounds = [
            key for pair in zip(self._first_keys, self._last_keys, strict=True) for key in pair
        ]
        if self.sorted and bounds != sorted(bounds):
            raise ManifestError(f"{name}: its pages are not in the order it claims")

    def __iter__(self) -> Iterator[IndexEntry]:
        """Every member, in tar order."""
        for page in self.entry_pages:
            yield from self._columns(page).entries()

    def columns(self) -> Iterator[PageColumns]:
        """Every page's members as columns, in tar order."""
        for page in self.entry_pages:
            yield self._columns(page)

    def find(self, name: str) -> list[IndexEntry]:
        """The members named ``name`` (one, unless the archive holds it more than once)."""
        return [e for e in self._candidates(name, below=False) if e.name == name]

    def under(self, folder: str) -> list[IndexEntry]:
        """The members at or below ``folder``, in tar order."""
        key = sort_key(folder.rstrip("/"))
        found = self._candidates(folder.rstrip("/"), below=True)
        return [e for e in found if sort_key(e.name)[: len(key)] == key]

    def pages_holding(self, name: str, *, below: bool) -> range:
        """The pages that can hold ``name`` (and, ``below``, the names under it), as
        positions in ``entry_pages``: all of them when the index is not in key order."""
        if not self.sorted:
            return range(len(self.entry_pages))
        key = sort_key(name)
        start = stop = bisect.bisect_left(self._last_keys, key)
        while stop < len(self.entry_pages) and not _past(self._first_keys[stop], key, below):
            stop += 1
        return range(start, stop)

    def page(self, position: int) -> list[IndexEntry]:
        """The members of one page, read and checked."""
        return self._columns(self.entry_pages[position]).entries()

    def _candidates(self, name: str, *, below: bool) -> Iterator[IndexEntry]:
        for position in self.pages_holding(name, below=below):
            yield from self.page(position)

    def _columns(self, page: _Page) -> PageColumns:
        raw = self._checked(page.offset, page.length, page.sha256.hex(), "page")
        columns = _parse_columns(_inflate(raw, MAX_PAGE_BYTES, self.name), page.count, self.name)
        if columns.names[0] != page.first_name or columns.names[-1] != page.last_name:
            raise ManifestError(f"{self.name}: a page does not hold what its directory says")
        return columns

    def _checked(self, offset: int, length: int, sha256: str, what: str) -> bytes:
        data = self._read_exact(offset, length)
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise ChecksumMismatchError(
                f"{self.name} ({what} at byte {offset})", f"sha256 {sha256}", f"sha256 {digest}"
            )
        return data

    def _read_exact(self, offset: int, length: int) -> bytes:
        data = self._read(offset, length)
        if len(data) != length:
            raise ManifestError(f"{self.name} is cut short at byte {offset + len(data)}")
        return data


def _past(first_key: tuple[str, ...], key: tuple[str, ...], below: bool) -> bool:
    """A page whose first name is this holds nothing equal to ``key`` (or, ``below``, under
    it): sorted pages after it do not either."""
    return first_key > key and not (below and first_key[: len(key)] == key)


def _consecutive(pages: list[_Page], name: str) -> int:
    """The pages' members follow each other from 0; returns how many there are."""
    count = 0
    for page in pages:
        if page.first != count or page.count < 1:
            raise ManifestError(f"{name}: its pages do not follow each other")
        count += page.count
    return count


def _inflate(data: bytes, limit: int, name: str) -> bytes:
    """A page or the directory, refused past ``limit`` bytes (a zlib bomb stays small)."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, limit)
    except zlib.error as exc:
        raise ManifestError(f"{name}: a page or its directory does not inflate: {exc}") from None
    if inflater.unconsumed_tail or inflater.unused_data or not inflater.eof:
        raise ManifestError(f"{name}: a page or its directory is damaged or too large")
    return raw


# -- columns -----------------------------------------------------------------------------------


def _numbers(typecode: str, values: Sequence[int]) -> bytes:
    column = array(typecode, values)
    if sys.byteorder == "big":
        column.byteswap()
    return column.tobytes()


def _texts(values: Sequence[str]) -> bytes:
    """NUL-separated: no name, link target or owner name stc reads or writes holds one."""
    joined = "\0".join(values)
    if joined.count("\0") != max(0, len(values) - 1):
        raise ValueError(f"a text holds NUL: {next(v for v in values if chr(0) in v)!r}")
    encoded = joined.encode("utf-8", "surrogateescape")
    return struct.pack("<I", len(encoded)) + encoded


def page_columns_python(
    rows: list[Row], kinds: tuple[MemberKind, ...], max_rows: int, max_text: int
) -> tuple[int, bytes, bool]:
    """The columns of the page that starts with ``rows[0]``: ``max_rows`` rows, or fewer
    once their texts reach ``max_text`` bytes. Returns how many rows it took, the columns,
    and whether its names are in key order. (The Python twin of ``_native.index_page``.)"""
    count = text = 0
    for member, *_ in rows[:max_rows]:
        count += 1
        texts = (member.name, member.linkname, member.uname, member.gname)
        text += sum(len(t.encode("utf-8", "surrogateescape")) for t in texts)
        if text >= max_text:
            break
    page = rows[:count]
    if any(len(row[3]) not in (0, 32) for row in page):
        raise ValueError("a content digest must be 32 bytes or empty")
    members = [row[0] for row in page]
    files = [m.kind is MemberKind.FILE for m in members]
    # "/" mapped below every other character: string order is then the order of sort_key.
    keys = [m.name.replace("/", "\0") for m in members]
    columns = b"".join(
        (
            struct.pack("<I", count),
            bytes(kinds.index(m.kind) for m in members),
            _numbers("Q", [row[1] for row in page]),
            _numbers("Q", [row[2] - row[1] for row in page]),
            _numbers("Q", [m.size if file else 0 for m, file in zip(members, files, strict=True)]),
            _numbers("I", [m.mode for m in members]),
            _numbers("q", [nanoseconds(m.mtime) for m in members]),
            _numbers("Q", [m.uid for m in members]),
            _numbers("Q", [m.gid for m in members]),
            _numbers("I", [m.devmajor for m in members]),
            _numbers("I", [m.devminor for m in members]),
            bytes(1 if row[3] else 0 for row in page),
            b"".join(row[3] for row in page),  # only the rows that have one
            _texts([m.name for m in members]),
            _texts([m.linkname for m in members]),
            _texts([m.uname for m in members]),
            _texts([m.gname for m in members]),
        )
    )
    return count, columns, keys == sorted(keys)


def nanoseconds(seconds: float) -> int:
    """A member's mtime in ns: exact for whole seconds, floored for a pax header's fraction."""
    if isinstance(seconds, int):
        return seconds * 1_000_000_000
    if not math.isfinite(seconds):
        raise OverflowError("mtime is too large for the index")
    return math.floor(seconds * 1e9)


_page_columns: Callable[[list[Row], tuple[MemberKind, ...], int, int], tuple[int, bytes, bool]]
_page_columns = native.index_page if native is not None else page_columns_python


class PageBuilder(Protocol):
    """Builds pages a row at a time, each sealed as soon as ``page_columns_python`` would
    end it, so the same rows give the same pages however they are handed in."""

    def add(
        self, member: TarMember, header_offset: int, data_offset: int, digest: bytes = b"", /
    ) -> None: ...
    def take(self) -> list[Page]: ...
    def finish(self) -> list[Page]: ...


class PageBuilderPython:
    """The Python twin of ``_native.PageBuilder``. It finds a row the columns cannot hold
    when it seals the row's page, where the compiled one does as the row is added; either
    refuses every call after."""

    def __init__(
        self,
        kinds: tuple[MemberKind, ...],
        max_rows: int,
        max_text: int,
        compress: Callable[[bytes], bytes],
    ) -> None:
        if max_rows < 1 or max_text < 0:
            raise ValueError("a page holds at least one row, and texts")
        self._kinds, self._max_rows, self._max_text = kinds, max_rows, max_text
        self._compress = compress
        self._rows: list[Row] = []
        self._text = 0
        self._sealed: list[Page] = []
        self._broken = False

    def add(
        self, member: TarMember, header_offset: int, data_offset: int, digest: bytes = b"", /
    ) -> None:
        with self._usable():
            texts = (member.name, member.linkname, member.uname, member.gname)
            self._text += sum(len(t.encode("utf-8", "surrogateescape")) for t in texts)
            self._rows.append((member, header_offset, data_offset, digest))
            if len(self._rows) >= self._max_rows or self._text >= self._max_text:
                self._seal()

    def take(self) -> list[Page]:
        with self._usable():
            sealed, self._sealed = self._sealed, []
            return sealed

    def finish(self) -> list[Page]:
        with self._usable():
            if self._rows:
                self._seal()
            return self.take()

    @contextmanager
    def _usable(self) -> Iterator[None]:
        if self._broken:
            raise RuntimeError("this PageBuilder failed and is unusable")
        try:
            yield
        except BaseException:
            self._broken = True
            raise

    def _seal(self) -> None:
        count, columns, in_order = page_columns_python(
            self._rows, self._kinds, self._max_rows, self._max_text
        )
        assert count == len(self._rows), "a page is sealed where page_columns_python ends it"
        first, last = self._rows[0][0].name, self._rows[-1][0].name
        stored = self._compress(columns)
        if type(stored) is not bytes:
            raise TypeError("compress must return bytes")
        self._sealed.append((count, stored, in_order, first, last))
        self._rows, self._text = [], 0


def page_builder() -> PageBuilder:
    """A builder of this index's pages, deflated as they are sealed: compiled when the
    module is (a pack's tar thread adds each member as it writes its header: ~0.16 µs, where
    reading the members back for a page later cost 0.3 µs and kept them alive meanwhile)."""
    if native is not None:
        built: PageBuilder = native.PageBuilder(KINDS, ENTRIES_PER_PAGE, PAGE_TEXT_BYTES, deflate)
        return built
    return PageBuilderPython(KINDS, ENTRIES_PER_PAGE, PAGE_TEXT_BYTES, deflate)


def deflate(columns: bytes) -> bytes:
    """A page's or the directory's columns as the index stores them."""
    return zlib_ng.compress(columns, level=ZLIB_LEVEL)


def _directory_columns(pages: Sequence[_Page], flags: int) -> bytes:
    return b"".join(
        (
            struct.pack("<II", len(pages), flags),
            _numbers("Q", [p.first for p in pages]),
            _numbers("Q", [p.count for p in pages]),
            _numbers("Q", [p.offset for p in pages]),
            _numbers("Q", [p.length for p in pages]),
            b"".join(p.sha256 for p in pages),
            _texts([p.first_name for p in pages]),
            _texts([p.last_name for p in pages]),
        )
    )


class _Columns:
    """Reads columns in the order they were written; any overrun is a damaged index."""

    def __init__(self, data: bytes, name: str) -> None:
        self._data, self._at, self._name = memoryview(data), 0, name

    def take(self, size: int) -> memoryview:
        end = self._at + size
        if size < 0 or end > len(self._data):
            raise ManifestError(f"{self._name}: a page or its directory is cut short")
        piece, self._at = self._data[self._at : end], end
        return piece

    def numbers(self, typecode: str, count: int) -> list[int]:
        column = array(typecode)
        column.frombytes(self.take(count * column.itemsize))
        if sys.byteorder == "big":
            column.byteswap()
        return column.tolist()

    def texts(self, count: int) -> list[str]:
        (length,) = struct.unpack("<I", self.take(4))
        texts = bytes(self.take(length)).decode("utf-8", "surrogateescape").split("\0")
        if len(texts) != max(1, count):
            raise ManifestError(f"{self._name}: a page holds {len(texts)} texts for {count}")
        return texts[:count]

    def end(self) -> None:
        if self._at != len(self._data):
            raise ManifestError(f"{self._name}: a page or its directory has bytes left over")


def _parse_columns(data: bytes, expected: int, name: str) -> PageColumns:
    columns = _Columns(data, name)
    (count,) = struct.unpack("<I", columns.take(4))
    if count != expected:
        raise ManifestError(f"{name}: a page holds {count} members, its directory says {expected}")
    kinds = bytes(columns.take(count))
    if max(kinds, default=0) >= len(KINDS):
        raise ManifestError(f"{name}: a member of an unknown type")
    header, delta, size = (columns.numbers("Q", count) for _ in range(3))
    mode = columns.numbers("I", count)
    mtime = columns.numbers("q", count)
    uid, gid = columns.numbers("Q", count), columns.numbers("Q", count)
    major, minor = columns.numbers("I", count), columns.numbers("I", count)
    has_digest = bytes(columns.take(count))
    if max(has_digest, default=0) > 1:
        raise ManifestError(f"{name}: a page's digest flags are damaged")
    digests = iter(_digests(bytes(columns.take(32 * sum(has_digest)))))
    names, links, unames, gnames = (columns.texts(count) for _ in range(4))
    columns.end()
    return PageColumns(
        names,
        list(map(KINDS.__getitem__, kinds)),
        header,
        list(map(operator.add, header, delta)),
        size,
        mode,
        mtime,
        uid,
        gid,
        unames,
        gnames,
        links,
        major,
        minor,
        [next(digests) if has else b"" for has in has_digest] if any(has_digest) else [b""] * count,
    )


def _digests(data: bytes) -> list[bytes]:
    return [data[at : at + 32] for at in range(0, len(data), 32)]


def _parse_directory(data: bytes, name: str) -> tuple[int, list[_Page]]:
    """The directory's flags and its pages."""
    columns = _Columns(data, name)
    count, flags = struct.unpack("<II", columns.take(8))
    first, counts, offsets, lengths = (columns.numbers("Q", count) for _ in range(4))
    digests = bytes(columns.take(32 * count))
    first_names, last_names = columns.texts(count), columns.texts(count)
    columns.end()
    return flags, [
        _Page(
            first[i],
            counts[i],
            offsets[i],
            lengths[i],
            digests[32 * i : 32 * i + 32],
            first_names[i],
            last_names[i],
        )
        for i in range(count)
    ]
