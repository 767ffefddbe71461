"""Hostile archives: each one is refused or made harmless, through every way of unpacking.

The corpus is generated here (raw tar headers, or ``tarfile`` for published proofs of concept)
and run through ``stc unpack`` (chunk files with a manifest, and stdin), the async seed API, the
streaming receive API (pieces in order, and indexed chunks with a manifest) and its sync twin,
with gzip, xz, bzip2, zstd and uncompressed streams. Every run checks the same things: nothing
outside the output directory changed, no device, FIFO or setuid bit, no link out, no temporary
file left, and the package's own error naming the member and the rule. With a manifest,
finished files wait under temporary names until their chunk has verified, so the member that
trips a rule may differ: a case lists every member it may name.
"""

from __future__ import annotations

import asyncio
import bz2
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import stat
import subprocess
import sys
import tarfile
import tracemalloc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming_tar_compressor import (
    CompressionType,
    Manifest,
    StreamingTarCompressor,
    decompress_from_chunks,
    errors,
)
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.core.safety import MAX_NAME_BYTES, check_member
from streaming_tar_compressor.core.tar_reader import TarReader
from streaming_tar_compressor.errors import (
    CorruptStreamError,
    OutputError,
    StcError,
    TruncatedStreamError,
    UnsafeMemberError,
)
from streaming_tar_compressor.fs.writer import TreeWriter
from streaming_tar_compressor.models import ChunkInfo, MemberKind, TarMember

BLOCK = 512
MTIME = 1_700_000_000
# The output directory is three levels below the test's folder, so "../../.." still lands in
# the test's own folder, where every change is seen.
UP = "../../../outside"

# -- raw tar -----------------------------------------------------------------------------------


def raw(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def base256(value: int, width: int = 12) -> bytes:
    """GNU tar's binary number field: two's complement with the first byte's top bit set."""
    field = bytearray((value % (1 << (8 * width))).to_bytes(width, "big"))
    field[0] |= 0x80
    return bytes(field)


def header(
    name: bytes,
    kind: bytes = b"0",
    *,
    size: int | bytes = 0,
    linkname: bytes = b"",
    mode: int = 0o644,
    mtime: int | bytes = MTIME,
    uid: int | bytes = 0,
    devmajor: int = 0,
) -> bytes:
    """One ustar header block; a number given as bytes is written as is (base-256, garbage)."""

    def number(value: int | bytes, width: int) -> bytes:
        return value if isinstance(value, bytes) else b"%0*o\0" % (width - 1, value)

    block = bytearray(BLOCK)
    for offset, value in (
        (0, name),
        (100, number(mode, 8)),
        (108, number(uid, 8)),
        (116, number(0, 8)),
        (124, number(size, 12)),
        (136, number(mtime, 12)),
        (148, b" " * 8),
        (156, kind),
        (157, linkname),
        (257, b"ustar\x0000root"),
        (297, b"root"),
        (329, number(devmajor, 8)),
        (337, number(0, 8)),
    ):
        block[offset : offset + len(value)] = value
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def pax_records(records: dict[str, bytes]) -> bytes:
    """POSIX pax records, "%d %s=%s\\n", the length counting itself."""
    out = b""
    for key, value in records.items():
        body = b" " + key.encode() + b"=" + value + b"\n"
        length = len(body) + 1
        while length != len(body) + len(str(length)):
            length = len(body) + len(str(length))
        out += str(length).encode() + body
    return out


def pax(records: dict[str, bytes] | None = None, *, payload: bytes | None = None) -> bytes:
    data = pax_records(records or {}) if payload is None else payload
    return header(b"PaxHeader", b"x", size=len(data)) + padded(data)


def entry(
    name: str | bytes,
    data: bytes = b"",
    kind: bytes = b"0",
    linkname: str | bytes = b"",
    **fields: int | bytes,
) -> bytes:
    """A member; a name or link target too long for the header goes in a pax header."""
    name_bytes, link_bytes = raw(name), raw(linkname)
    records = {}
    if len(name_bytes) > 100:
        records["path"], name_bytes = name_bytes, b"name-in-pax"
    if len(link_bytes) > 100:
        records["linkpath"], link_bytes = link_bytes, b"target-in-pax"
    size = fields.pop("size", len(data))
    head = header(name_bytes, kind, size=size, linkname=link_bytes, **fields)
    return (pax(records) if records else b"") + head + padded(data)


def gnu_long_name(name: str, data: bytes) -> bytes:
    """GNU tar's way for long names: a 'L' pseudo-member holding the next member's name."""
    long_name = raw(name) + b"\0"
    return (
        header(b"././@LongLink", b"L", size=len(long_name))
        + padded(long_name)
        + entry("short", data)
    )


def symlink(name: str | bytes, target: str | bytes) -> bytes:
    return entry(name, kind=b"2", linkname=target)


def hardlink(name: str, target: str) -> bytes:
    return entry(name, kind=b"1", linkname=target)


def directory(name: str, mode: int = 0o755) -> bytes:
    return entry(name, kind=b"5", mode=mode)


def tar(*members: bytes) -> bytes:
    return b"".join(members) + bytes(2 * BLOCK)


# -- the folders of one test --------------------------------------------------------------------


class World:
    """The test's folder: the output directory, a sentinel folder beside it, the chunks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.out = root / "x" / "y" / "out"
        self.outside = root / "outside"
        self.arc = root / "arc"
        for folder in (self.out, self.outside / "sub", self.arc):
            folder.mkdir(parents=True)
        (self.outside / "victim.txt").write_bytes(b"precious\n")

    def entries(self, *, inside: bool) -> list[Path]:
        """Everything in the output directory, or everything else but the chunks."""
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(self.out if inside else self.root):
            here = Path(dirpath)
            if not inside:
                dirnames[:] = [d for d in dirnames if here / d not in (self.out, self.arc)]
            found.extend(here / name for name in dirnames + filenames)
        return found

    def fingerprint(self) -> dict[str, tuple[object, ...]]:
        """Every entry outside the output directory: kind, mode, mtime and bytes or target."""
        result: dict[str, tuple[object, ...]] = {}
        for path in self.entries(inside=False):
            st_ = path.lstat()
            if stat.S_ISLNK(st_.st_mode):
                detail: object = os.readlink(path)
            elif stat.S_ISREG(st_.st_mode):
                detail = path.read_bytes()
            else:
                detail = None
            result[str(path)] = (st_.st_mode, st_.st_mtime_ns, detail)
        return result

    def shared_inodes(self) -> set[tuple[int, int]]:
        """Inodes both inside and outside the output directory: hardlinks out."""
        outside = {(p.lstat().st_dev, p.lstat().st_ino) for p in self.entries(inside=False)}
        return {(p.lstat().st_dev, p.lstat().st_ino) for p in self.entries(inside=True)} & outside

    def links_out(self) -> set[Path]:
        """Symlinks in the output directory that resolve outside it."""
        out = os.path.realpath(self.out)
        return {
            path
            for path in self.entries(inside=True)
            if path.is_symlink() and os.path.commonpath([out, os.path.realpath(path)]) != out
        }

    def assert_nothing_special(self) -> None:
        for path in [*self.entries(inside=True), *self.entries(inside=False)]:
            mode = path.lstat().st_mode
            kind = stat.S_IFMT(mode)
            assert kind in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK), (path, oct(mode))
            if kind != stat.S_IFLNK:
                assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), (path, oct(mode))
            assert not path.name.startswith(".stc-"), f"temporary file left: {path}"


# -- entry points -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    error: type[BaseException] | None
    message: str


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def manifest_for(name: str, chunks: list[bytes], compression: CompressionType) -> Manifest:
    stream = b"".join(chunks)
    return Manifest(
        compression=compression,
        chunk_size=len(chunks[0]),
        chunks=tuple(
            ChunkInfo(i, f"{name}.part{i:04d}", len(c), hashlib.sha256(c).hexdigest())
            for i, c in enumerate(chunks)
        ),
        compressed_size=len(stream),
        sha256=hashlib.sha256(stream).hexdigest(),
    )


def write_parts(prefix: Path, chunks: list[bytes], manifest: Manifest | None) -> None:
    for index, chunk in enumerate(chunks):
        (prefix.parent / f"{prefix.name}.part{index:04d}").write_bytes(chunk)
    if manifest is not None:
        (prefix.parent / f"{prefix.name}.manifest.json").write_text(manifest.to_json())


def cli(argv: list[str]) -> Outcome:
    """``stc`` in this process; the error's class comes from ``--json``."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        code = main([*argv, "--json"])
    document = json.loads(stdout.getvalue())
    if code == 0:
        assert document["ok"]
        return Outcome(None, "")
    error = getattr(errors, document["type"])
    assert code == error.exit_code == document["exit_code"]
    return Outcome(error, document["error"])


def api(run: Callable[[], object]) -> Outcome:
    try:
        run()
    except StcError as exc:
        return Outcome(type(exc), str(exc))
    return Outcome(None, "")


def flags(caps: dict[str, int]) -> list[str]:
    """``max_output_bytes=5`` → ``--max-output-bytes 5``."""
    return [
        arg for key, value in caps.items() for arg in ("--" + key.replace("_", "-"), str(value))
    ]


def via_cli(prefix: Path, out: Path, archive: bytes, **caps: int) -> Outcome:
    """``stc unpack PREFIX``: gzip chunks of 256 bytes, each verified against the manifest."""
    chunks = chunked(gzip.compress(archive, mtime=0), 256)
    write_parts(prefix, chunks, manifest_for(prefix.name, chunks, CompressionType.GZIP))
    return cli(["unpack", str(prefix), "-C", str(out), *flags(caps)])


def via_cli_stdin(prefix: Path, out: Path, archive: bytes, **caps: int) -> Outcome:
    """``stc unpack -``: one xz stream on stdin, no manifest."""
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(lzma.compress(archive)))
    try:
        return cli(["unpack", "-", "-C", str(out), *flags(caps)])
    finally:
        sys.stdin = saved


def via_seed(prefix: Path, out: Path, archive: bytes, **caps: int) -> Outcome:
    """``decompress_from_chunks(PREFIX, DIR)``: gzip parts without a manifest."""
    write_parts(prefix, chunked(gzip.compress(archive, mtime=0), 1000), None)
    return api(lambda: asyncio.run(decompress_from_chunks(prefix, out, **caps)))


def via_stream(prefix: Path, out: Path, archive: bytes, **caps: int) -> Outcome:
    """``StreamingTarCompressor().decompress_from_chunks``: bzip2 pieces of 100 bytes."""
    data = bz2.compress(archive)

    async def pieces() -> AsyncIterator[bytes]:
        for piece in chunked(data, 100):
            await asyncio.sleep(0)
            yield piece

    compressor = StreamingTarCompressor()
    return api(lambda: asyncio.run(compressor.decompress_from_chunks(pieces(), out, **caps)))


def via_indexed(prefix: Path, out: Path, archive: bytes, **caps: int) -> Outcome:
    """The same, given uncompressed ``(index, bytes)`` chunks of 700 bytes, each pair swapped,
    with their manifest: files wait for their chunk's SHA-256."""
    chunks = chunked(archive, 700)
    manifest = manifest_for(prefix.name, chunks, CompressionType.NONE)
    order = [i ^ 1 if i ^ 1 < len(chunks) else i for i in range(len(chunks))]

    async def items() -> AsyncIterator[tuple[int, bytes]]:
        for index in order:
            await asyncio.sleep(0)
            yield index, chunks[index]

    compressor = StreamingTarCompressor()
    return api(
        lambda: asyncio.run(
            compressor.decompress_from_chunks(items(), out, manifest=manifest, **caps)
        )
    )


def via_sync_chunks(prefix: Path, out: Path, archive: bytes, **caps: int) -> Outcome:
    """``StreamingTarCompressor().unpack_chunks``, the sync twin: zstd pieces of 300 bytes."""
    data = zstandard.ZstdCompressor().compress(archive)
    compressor = StreamingTarCompressor()
    return api(lambda: compressor.unpack_chunks(chunked(data, 300), out, **caps))


EntryPoint = Callable[..., Outcome]  # (prefix, out, archive, **caps)
ENTRY_POINTS: dict[str, EntryPoint] = {
    "cli": via_cli,
    "cli-stdin": via_cli_stdin,
    "seed": via_seed,
    "stream": via_stream,
    "indexed": via_indexed,
    "sync-chunks": via_sync_chunks,
}


# -- the corpus ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One hostile archive, what must happen to it, and what it may leave."""

    id: str
    build: Callable[[Path], bytes]  # the archive, given the sentinel folder (for absolute paths)
    error: type[StcError] | None = UnsafeMemberError  # None: it extracts, harmlessly
    rule: str = ""  # a regex the error message matches
    refused: tuple[str, ...] = ()  # the members the error may name
    prepare: Callable[[Path, Path], None] | None = None  # (out, outside) before extracting
    earlier: tuple[bytes, ...] = ()  # archives extracted into the same folder first, fine
    check: Callable[[Path], None] | None = None  # what the output directory must hold after


def fixed(*members: bytes) -> Callable[[Path], bytes]:
    archive = tar(*members)
    return lambda _outside: archive


def holds(name: str | bytes, data: bytes) -> Callable[[Path], None]:
    def check(out: Path) -> None:
        path = os.path.join(os.fsencode(out), raw(name))
        assert not os.path.islink(path)
        with open(path, "rb") as handle:
            assert handle.read() == data

    return check


def lacks(*names: str) -> Callable[[Path], None]:
    def check(out: Path) -> None:
        for name in names:
            assert not os.path.lexists(out / name), name

    return check


def modes(expected: dict[str, int]) -> Callable[[Path], None]:
    def check(out: Path) -> None:
        assert {name: stat.S_IMODE((out / name).lstat().st_mode) for name in expected} == expected

    return check


def link_to(name: str, target: bytes) -> Callable[[Path], None]:
    def check(out: Path) -> None:
        assert os.readlink(os.fsencode(out / name)) == target

    return check


def mtime(name: str, seconds: int) -> Callable[[Path], None]:
    def check(out: Path) -> None:
        assert (out / name).stat().st_mtime == seconds

    return check


def not_stamped_by_archive(out: Path) -> None:
    """The folder's mtime is when something was last made in it, not the archive's."""
    assert out.stat().st_mtime > MTIME + 10**7  # MTIME is in 2023


def both(first: Callable[[Path], None], second: Callable[[Path], None], out: Path) -> None:
    first(out)
    second(out)


def plant_symlink(name: str, to_outside: bool) -> Callable[[Path, Path], None]:
    """A link left in the output directory before extraction (by another tool or archive)."""

    def prepare(out: Path, outside: Path) -> None:
        os.symlink(outside if to_outside else UP, out / name)

    return prepare


def plant_file(name: str) -> Callable[[Path, Path], None]:
    def prepare(out: Path, _outside: Path) -> None:
        (out / name).write_bytes(b"already here\n")

    return prepare


def plant_hardlink(name: str) -> Callable[[Path, Path], None]:
    def prepare(out: Path, outside: Path) -> None:
        os.link(outside / "victim.txt", out / name)

    return prepare


def realpath_overflow(outside: Path) -> bytes:
    """CVE-2025-4517, the published proof of concept, aimed at the sentinel folder.

    Links ``a -> ddd…``, ``ddd…/b -> ddd…``, … make ``a/b/…/p`` expand past PATH_MAX, where
    ``os.path.realpath`` stops resolving; a link below them climbs back out unseen, and a
    hardlink through it then lets a regular member overwrite a file outside.
    """
    comp, steps, path = "d" * 247, "abcdefghijklmnop", ""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for step in steps:
            folder = tarfile.TarInfo(os.path.join(path, comp))
            folder.type = tarfile.DIRTYPE
            archive.addfile(folder)
            link = tarfile.TarInfo(os.path.join(path, step))
            link.type, link.linkname = tarfile.SYMTYPE, comp
            archive.addfile(link)
            path = os.path.join(path, comp)
        linkpath = os.path.join(*steps, "l" * 254)
        deep = tarfile.TarInfo(linkpath)
        deep.type, deep.linkname = tarfile.SYMTYPE, "../" * len(steps)
        archive.addfile(deep)
        escape = tarfile.TarInfo("escape")
        escape.type, escape.linkname = tarfile.SYMTYPE, f"{linkpath}/../{UP}"
        archive.addfile(escape)
        flag = tarfile.TarInfo("flaglink")
        flag.type, flag.linkname = tarfile.LNKTYPE, "escape/victim.txt"
        archive.addfile(flag)
        content = b"overwritten\n"
        overwrite = tarfile.TarInfo("flaglink")
        overwrite.size = len(content)
        archive.addfile(overwrite, io.BytesIO(content))
    return buffer.getvalue()


DEEP = "/".join("abcdefghijklmnop") + "/" + "l" * 254
LONG_NAME = "d/" * 2100 + "f"
CASES = [
    # -- names --
    Case(
        "absolute-name",
        lambda outside: tar(entry(str(outside / "abs.txt"), b"pwned")),
        rule="absolute names are refused",
    ),
    Case(
        "CVE-2007-4559-classic-traversal",
        fixed(entry(f"{UP}/victim.txt", b"pwned")),
        rule=r"names with '\.\.'",
        refused=(f"{UP}/victim.txt",),
    ),
    Case(
        "dotdot-after-normalisation",
        fixed(entry("./a//./..//../../../outside/x", b"pwned")),
        rule=r"names with '\.\.'",
        refused=("./a//./..//../../../outside/x",),
    ),
    Case("dotdot-directory", fixed(directory("..")), rule=r"'\.\.'", refused=("..",)),
    Case(
        "dotdot-in-gnu-long-name",
        fixed(gnu_long_name(f"{UP}/{'L' * 110}", b"pwned")),
        rule=r"names with '\.\.'",
        refused=(f"{UP}/{'L' * 110}",),
    ),
    Case(
        "nul-in-pax-path",
        fixed(pax({"path": b"ok\0/../../x"}) + header(b"ok", size=0)),
        rule="NUL",
        refused=("ok\0/../../x",),
    ),
    Case(
        "nul-in-pax-linkpath",
        fixed(pax({"linkpath": b"t\0/../../x"}) + header(b"l", b"2")),
        rule="NUL",
        refused=("l",),
    ),
    Case(
        "name-longer-than-PATH_MAX",
        fixed(entry(LONG_NAME, b"x")),
        rule=f"longer than {MAX_NAME_BYTES} bytes",
        refused=(LONG_NAME,),
    ),
    Case(
        "pax-name-of-1-MiB-bomb",
        fixed(entry("a/" * 500_000 + "f", b"x")),
        rule=f"longer than {MAX_NAME_BYTES} bytes",
    ),
    Case(
        "invalid-utf8-name-kept-as-bytes",
        fixed(entry(b"caf\xe9/\xff\xfe.txt", b"raw bytes")),
        error=None,
        check=holds(b"caf\xe9/\xff\xfe.txt", b"raw bytes"),
    ),
    Case(
        "overlong-utf8-dots-are-just-bytes",
        fixed(entry(b"\xc0\xae\xc0\xae/x", b"inside")),
        error=None,
        check=holds(b"\xc0\xae\xc0\xae/x", b"inside"),
    ),
    Case(
        "invalid-utf8-symlink-target-kept",
        fixed(symlink("l", b"\xff\xfe")),
        error=None,
        check=link_to("l", b"\xff\xfe"),
    ),
    Case(
        "invalid-utf8-before-dotdot",
        fixed(entry(b"\xff/../../../../outside/x", b"pwned")),
        rule=r"'\.\.'",
    ),
    # -- symlinks --
    Case(
        "symlink-absolute",
        lambda outside: tar(symlink("l", str(outside))),
        rule="symlinks to absolute paths",
        refused=("l",),
    ),
    Case(
        "CVE-2025-45582-first-archive-symlink-out",
        fixed(symlink("x", UP)),
        rule="outside the output directory",
        refused=("x",),
    ),
    Case(
        "symlink-nested-climbs-out",
        fixed(directory("d"), directory("d/e"), symlink("d/e/l", "../../../x")),
        rule="outside the output directory",
        refused=("d/e/l",),
    ),
    Case(
        "symlink-chain-last-link-leaves",
        fixed(directory("d"), symlink("s1", "s2"), symlink("s2", "d/s3"), symlink("d/s3", UP)),
        rule="outside the output directory",
        refused=("d/s3",),
    ),
    Case(
        "a-links-to-dot-then-b-links-to-a-a-up-up",
        fixed(symlink("a", "."), symlink("b", "a/a/../.."), entry("b/pwned", b"x")),
        rule=r"'\.\.' only at its start",
        refused=("b",),
    ),
    Case(
        "a-links-to-dot-then-member-a-a-up-up",
        fixed(symlink("a", "."), entry("a/a/../../../../../outside/x", b"pwned")),
        rule=r"names with '\.\.'",
    ),
    Case(
        "write-through-symlink-to-dot",
        fixed(symlink("a", "."), entry("a/x", b"x")),
        rule="through a symlink|replace a directory",
        refused=("a/x", "a"),
    ),
    Case(
        "symlink-to-etc-then-x-passwd",
        lambda outside: tar(symlink("x", str(outside)), entry("x/victim.txt", b"pwned")),
        rule="symlinks to absolute paths",
        refused=("x",),
    ),
    Case(
        "write-through-an-inside-symlink",
        fixed(directory("sub"), symlink("x", "sub"), entry("x/passwd", b"x")),
        rule="through a symlink|replace a directory",
        refused=("x/passwd", "x"),
    ),
    Case(
        "CVE-2025-4138-realpath-sees-a-missing-link",
        # realpath() judges escape -> x/.. lexically while x is missing; then x -> . appears.
        fixed(symlink("escape", "x/.."), symlink("x", "."), entry("escape/pwned", b"x")),
        rule=r"'\.\.' only at its start",
        refused=("escape",),
    ),
    Case(
        "CVE-2025-4517-realpath-past-PATH_MAX",
        realpath_overflow,
        rule=r"through a symlink|replace a directory|'\.\.' only at its start",
        refused=(DEEP, "a", "escape"),
    ),
    Case(
        "pre-existing-symlink-to-outside-folder",
        fixed(entry("evil/payload", b"pwned")),
        rule="through a symlink",
        refused=("evil/payload",),
        prepare=plant_symlink("evil", to_outside=True),
    ),
    Case(
        "CVE-2025-45582-second-archive-through-planted-link",
        fixed(entry("x/victim.txt", b"pwned")),
        rule="through a symlink",
        refused=("x/victim.txt",),
        prepare=plant_symlink("x", to_outside=False),
    ),
    Case(
        "CVE-2025-45582-second-archive-through-earlier-link",
        fixed(entry("x/file", b"pwned")),
        rule="through a symlink",
        refused=("x/file",),
        earlier=(tar(directory("sub"), symlink("x", "sub")),),
    ),
    Case(
        "pre-existing-symlink-is-replaced-not-followed",
        fixed(entry("name", b"new")),
        error=None,
        prepare=plant_symlink("name", to_outside=True),
        check=holds("name", b"new"),
    ),
    Case(
        "pre-existing-hardlink-to-outside-is-replaced",
        fixed(entry("hl", b"new")),
        error=None,
        prepare=plant_hardlink("hl"),
        check=holds("hl", b"new"),
    ),
    # -- hardlinks --
    Case(
        "hardlink-absolute",
        lambda outside: tar(hardlink("h", str(outside / "victim.txt")), entry("h", b"pwned")),
        rule="absolute names",
        refused=("h",),
    ),
    Case(
        "hardlink-climbs-out",
        fixed(hardlink("h", f"{UP}/victim.txt"), entry("h", b"pwned")),
        rule=r"'\.\.'",
        refused=("h",),
    ),
    Case(
        "hardlink-through-symlinked-folder",
        fixed(directory("d"), entry("d/f", b"1"), symlink("s", "d"), hardlink("h", "s/f")),
        rule="regular file extracted earlier",
        refused=("h",),
    ),
    Case(
        "CVE-2025-4330-hardlink-to-a-symlink",
        fixed(entry("f", b"1"), symlink("s", "f"), hardlink("h", "s"), entry("h", b"pwned")),
        rule="regular file extracted earlier",
        refused=("h",),
    ),
    Case(
        "hardlink-to-a-symlink-pointing-out",
        fixed(symlink("s", UP), hardlink("h", "s")),
        rule="outside the output directory",
        refused=("s",),
    ),
    Case(
        "hardlink-to-a-file-already-on-disk",
        fixed(hardlink("h", "existing.txt"), entry("h", b"pwned")),
        rule="regular file extracted earlier",
        refused=("h",),
        prepare=plant_file("existing.txt"),
    ),
    Case(
        "CVE-2025-4435-stops-at-the-first-refusal",
        fixed(entry(f"{UP}/x", b"pwned"), entry("after.txt", b"x")),
        rule=r"'\.\.'",
        check=lacks("after.txt"),
    ),
    # -- special files and bits --
    Case(
        "char-device",
        fixed(entry("null", kind=b"3", devmajor=1)),
        rule="device",
        refused=("null",),
    ),
    Case(
        "block-device",
        fixed(entry("sda", kind=b"4", devmajor=8)),
        rule="device",
        refused=("sda",),
    ),
    Case("fifo", fixed(entry("pipe", kind=b"6")), rule="FIFO", refused=("pipe",)),
    Case(
        "unknown-type-is-not-created",
        fixed(entry("socket-ish", kind=b"V")),
        error=CorruptStreamError,
        rule="unsupported tar member type",
    ),
    Case(
        "setuid-setgid-sticky-dropped",
        fixed(
            entry("suid", b"#!/bin/sh\n", mode=0o6755),
            directory("sticky", mode=0o1777),
            directory("sgid", mode=0o2775),
            entry("sgid/f", b"x", mode=0o2644),
        ),
        error=None,
        check=modes({"suid": 0o755, "sticky": 0o755, "sgid": 0o755, "sgid/f": 0o644}),
    ),
    Case(
        "world-writable-modes-pass-through-the-umask",
        fixed(
            directory("open", mode=0o777),
            entry("open/f", b"x", mode=0o666),
            directory("private", mode=0o700),
            entry("private/key", b"k", mode=0o600),
        ),
        error=None,
        check=modes({"open": 0o755, "open/f": 0o644, "private": 0o700, "private/key": 0o600}),
    ),
    Case(
        "dot-member-leaves-the-output-directory-alone",
        fixed(
            directory(".", mode=0o777),
            directory("./", mode=0o777),
            entry("./f", b"x", mode=0o644),
        ),
        error=None,
        prepare=lambda out, _outside: out.chmod(0o700),
        check=lambda out: both(modes({".": 0o700, "f": 0o644}), not_stamped_by_archive, out),
    ),
    # -- one member replacing another --
    Case(
        "file-replaces-directory",
        fixed(directory("d"), entry("d", b"x")),
        rule="replace a directory",
        refused=("d",),
    ),
    Case(
        "symlink-replaces-directory",
        fixed(directory("d"), symlink("d", "e")),
        rule="replace a directory",
        refused=("d",),
    ),
    Case(
        "hardlink-replaces-directory",
        fixed(entry("f", b"1"), directory("d"), hardlink("d", "f")),
        rule="replace a directory",
        refused=("d",),
    ),
    Case(
        "directory-replaces-symlink",
        fixed(symlink("d", "e"), directory("d")),
        rule="through a symlink|replace a directory",
        refused=("d",),
    ),
    Case(
        "symlink-replaces-file",
        fixed(entry("f", b"1"), symlink("f", "g")),
        rule="a symlink may not replace a regular file",
        refused=("f",),
    ),
    Case(
        "symlink-replaces-hardlink",
        fixed(entry("f", b"1"), hardlink("h", "f"), symlink("h", "f")),
        rule="a symlink may not replace a regular file",
        refused=("h",),
    ),
    Case(
        "symlink-replaces-file-already-on-disk",
        fixed(symlink("f", "g")),
        rule="a symlink may not replace a regular file",
        refused=("f",),
        prepare=plant_file("f"),
    ),
    Case(
        "file-replaces-file-as-tar-r-appends",
        fixed(entry("f", b"old"), entry("f", b"new")),
        error=None,
        check=holds("f", b"new"),
    ),
    Case(
        "file-replaces-symlink-not-its-target",
        fixed(entry("t", b"target"), symlink("s", "t"), entry("s", b"new")),
        error=None,
        check=lambda out: both(holds("s", b"new"), holds("t", b"target"), out),
    ),
    # -- absurd numbers --
    Case(
        "negative-size-base256",
        fixed(entry("f", size=base256(-1))),
        error=CorruptStreamError,
        rule="negative size",
    ),
    Case(
        "huge-size-base256",
        fixed(entry("f", size=base256(2**80))),
        error=CorruptStreamError,
        rule="absurd size",
    ),
    Case(
        "huge-declared-size-without-data",
        fixed(entry("f", b"only this", size=base256(2**62))),
        error=TruncatedStreamError,
        rule="ends inside the data",
        check=lacks("f"),
    ),
    Case(
        "pax-size-larger-than-the-data",
        fixed(pax({"size": b"1000000"}) + entry("f", b"ten bytes!")),
        error=TruncatedStreamError,
        rule="ends inside the data",
        check=lacks("f"),
    ),
    Case(
        "pax-size-negative",
        fixed(pax({"size": b"-5"}) + entry("f", b"x")),
        error=CorruptStreamError,
        rule="bad size value",
    ),
    Case(
        "pax-size-past-off_t",
        fixed(pax({"size": b"9" * 30}) + entry("f", b"x")),
        error=CorruptStreamError,
        rule="bad size value",
    ),
    Case(
        "pax-record-longer-than-it-is",
        fixed(pax(payload=b"99 path=x\n") + entry("f", b"x")),
        error=CorruptStreamError,
        rule="runs past the end",
    ),
    Case(
        "pax-record-shorter-than-it-is",
        fixed(pax(payload=b"5 path=abc\n") + entry("f", b"x")),
        error=CorruptStreamError,
        rule="length is wrong",
    ),
    Case(
        "pax-record-length-of-5000-digits",
        fixed(pax(payload=b"9" * 5000 + b" path=x\n") + entry("f", b"x")),
        error=CorruptStreamError,
        rule="runs past the end",
    ),
    Case(
        "pax-header-claims-a-terabyte",
        fixed(header(b"PaxHeader", b"x", size=base256(2**40)) + entry("f", b"x")),
        error=CorruptStreamError,
        rule="claims 1099511627776 bytes",
    ),
    Case(
        "pax-mtime-out-of-range",
        fixed(pax({"mtime": b"9" * 20}) + entry("f", b"x")),
        error=CorruptStreamError,
        rule="absurd mtime",
    ),
    Case(
        "base256-mtime-out-of-range",
        fixed(entry("f", b"x", mtime=base256(2**70))),
        error=CorruptStreamError,
        rule="absurd mtime",
    ),
    Case(
        "pax-uid-past-off_t",
        fixed(pax({"uid": b"1" * 30}) + entry("f", b"x")),
        error=CorruptStreamError,
        rule="bad uid value",
    ),
    Case(
        "huge-base256-uid-is-ignored-without-same-owner",
        fixed(entry("f", b"x", uid=base256(2**60, 8))),
        error=None,
        check=holds("f", b"x"),
    ),
    Case(
        "base256-size-and-negative-mtime-are-read",
        fixed(entry("f", b"hello", size=base256(5), mtime=base256(-86_400))),
        error=None,
        check=lambda out: both(holds("f", b"hello"), mtime("f", -86_400), out),
    ),
    Case(
        "bad-header-checksum",
        fixed(entry("f", b"x")[:200] + b"!" + entry("f", b"x")[201:]),
        error=CorruptStreamError,
        rule="bad checksum",
    ),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_archive_is_refused_or_harmless(tmp_path: Path, case: Case, entry_point: str):
    world = World(tmp_path)
    unpack = ENTRY_POINTS[entry_point]
    if case.prepare is not None:
        case.prepare(world.out, world.outside)
    before, links_before = world.fingerprint(), world.links_out()
    inodes_before = world.shared_inodes()
    for number, earlier in enumerate(case.earlier):
        assert unpack(world.arc / f"earlier{number}", world.out, earlier) == Outcome(None, "")

    outcome = unpack(world.arc / "hostile", world.out, case.build(world.outside))

    assert world.fingerprint() == before, "something outside the output directory changed"
    assert world.links_out() <= links_before, "a symlink out of the output directory was made"
    assert world.shared_inodes() <= inodes_before, "a hardlink to a file outside was made"
    world.assert_nothing_special()
    if case.error is None:
        assert outcome == Outcome(None, "")
    else:
        assert outcome.error is not None and issubclass(outcome.error, case.error), outcome
        assert re.search(case.rule, outcome.message), outcome.message
        if case.refused:
            # Names over 300 characters are shown by their start and end only.
            named = [
                name
                for name in case.refused
                if f"member {name!r}:" in outcome.message
                or (len(name) > 300 and f"member {name[:150]!r}"[:-1] in outcome.message)
            ]
            assert named, outcome.message
    if case.check is not None:
        case.check(world.out)


def test_the_cli_refuses_in_one_line_with_exit_8(tmp_path: Path):
    world = World(tmp_path)
    write_parts(world.arc / "evil", [gzip.compress(tar(entry(f"{UP}/pwned", b"x")))], None)
    done = subprocess.run(
        [sys.executable, "-m", "streaming_tar_compressor", "unpack", str(world.arc / "evil")],
        capture_output=True,
        text=True,
        cwd=world.out,
        timeout=60,
    )
    assert done.returncode == UnsafeMemberError.exit_code == 8
    assert done.stderr.strip().splitlines() == [
        f"stc: error: refusing member '{UP}/pwned': names with '..' are refused"
    ]
    assert not (world.outside / "pwned").exists()


def test_a_huge_uid_is_a_clean_error_when_owners_are_restored(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("owners are restored only as root")
    world = World(tmp_path)
    archive = tar(pax({"uid": str(2**40).encode()}) + entry("f", b"x"))
    write_parts(world.arc / "uid", [gzip.compress(archive)], None)
    outcome = cli(["unpack", str(world.arc / "uid"), "-C", str(world.out), "--same-owner"])
    assert outcome.error is OutputError
    assert "metadata of 'f'" in outcome.message
    assert os.listdir(world.out) == []


# -- the rules one by one -----------------------------------------------------------------------


def put(writer: TreeWriter, member: TarMember, data: bytes = b"") -> None:
    writer.start(member)
    if data:
        writer.write(data)
    writer.end(member)


def file(name: str, data: bytes = b"x") -> TarMember:
    return TarMember(name=name, kind=MemberKind.FILE, size=len(data), mtime=MTIME)


def link(name: str, target: str) -> TarMember:
    return TarMember(name=name, kind=MemberKind.SYMLINK, linkname=target, mtime=MTIME)


@pytest.mark.parametrize("deferred", [False, True])
def test_a_symlink_may_not_replace_a_regular_file_even_one_still_unverified(tmp_path, deferred):
    writer = TreeWriter(str(tmp_path / "out"), deferred=deferred)
    put(writer, file("f", b"data"), b"data")
    with pytest.raises(UnsafeMemberError, match="may not replace a regular file") as info:
        put(writer, link("f", "elsewhere"))
    assert info.value.member == "f"
    writer.commit()
    writer.close()
    assert (tmp_path / "out" / "f").read_bytes() == b"data"
    assert os.listdir(tmp_path / "out") == ["f"]


@pytest.mark.parametrize("deferred", [False, True])
def test_a_symlink_may_replace_a_symlink(tmp_path, deferred):
    writer = TreeWriter(str(tmp_path / "out"), deferred=deferred)
    put(writer, link("s", "first"))
    put(writer, link("s", "second"))
    writer.commit()
    writer.close()
    assert os.readlink(tmp_path / "out" / "s") == "second"


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("a/" * 2047 + "a", True),  # 4095 bytes
        ("a/" * 2047 + "ab", False),
        ("\N{LATIN SMALL LETTER E WITH ACUTE}" * 2048, False),  # 2048 characters, 4096 bytes
        ("\udcff" * MAX_NAME_BYTES, True),  # raw bytes count one each
    ],
)
def test_name_length_is_counted_in_bytes_on_disk(name, accepted):
    member = TarMember(name=name, kind=MemberKind.FILE)
    if accepted:
        assert check_member(member)
    else:
        with pytest.raises(UnsafeMemberError, match="longer than 4095 bytes"):
            check_member(member)
    with pytest.raises(UnsafeMemberError, match="longer than 4095 bytes"):
        check_member(TarMember(name="s", kind=MemberKind.SYMLINK, linkname="t/" * 2048))


def test_a_name_that_cannot_be_bytes_is_refused():
    with pytest.raises(UnsafeMemberError, match="UTF-8 or raw bytes"):
        check_member(TarMember(name="\ud800", kind=MemberKind.FILE))


def test_memory_does_not_follow_declared_sizes():
    """A member declaring 4 EiB streams through; extended headers claiming a terabyte are
    refused before any buffer is made."""
    piece = bytes(2**20)
    reader = TarReader()
    tracemalloc.start()
    try:
        reader.feed(header(b"f", size=base256(2**62)))
        for _ in range(32):
            for event in reader.feed(piece):
                del event
        for flag in (b"x", b"L", b"g"):
            with pytest.raises(CorruptStreamError, match="claims"):
                TarReader().feed(header(b"h", flag, size=base256(2**40)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**18


NAMES = st.sampled_from(["a", "b", "d", "d/a", "d/b", "d/e", "d/e/a", "a/x", "b/x", "d/e/x"])
TARGET_STEPS = st.lists(st.sampled_from(["..", ".", "a", "b", "d", "e", "x"]), min_size=1)
MEMBERS = st.lists(
    st.one_of(
        st.tuples(st.just("symlink"), NAMES, TARGET_STEPS.map("/".join)),
        st.tuples(st.just("file"), NAMES, st.just("")),
        st.tuples(st.just("directory"), NAMES, st.just("")),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(members=MEMBERS, deferred=st.booleans())
def test_whatever_the_members_every_link_resolves_inside(tmp_path_factory, members, deferred):
    """The symlink rule's promise, through chains of links, links made later and folders
    made after links: every link the writer leaves resolves inside, and no write leaves."""
    world = World(tmp_path_factory.mktemp("property"))
    before = world.fingerprint()
    writer = TreeWriter(str(world.out), deferred=deferred)
    try:
        for kind, name, target in members:
            if kind == "symlink":
                put(writer, link(name, target))
            elif kind == "file":
                put(writer, file(name), b"x")
            else:
                put(writer, TarMember(name=name, kind=MemberKind.DIRECTORY, mode=0o755))
        writer.commit()
    except (UnsafeMemberError, OutputError):
        writer.abort()
    writer.close()
    assert world.links_out() == set()
    assert world.fingerprint() == before
