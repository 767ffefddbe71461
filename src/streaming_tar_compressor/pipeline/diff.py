"""``stc diff``: what differs between an archive and the files it was packed from (or a tree
it was restored to), from the member index alone when it holds content digests.

The sources are walked as ``stc pack`` walks them, so their member names are the archive's;
with ``directory``, the tree under it is walked and its names taken relative to it. Both
sides come in walk order (each source's tree depth-first and sorted), so they are merged in
one pass, in bounded memory. A file whose type, size, mode and mtime agree is compared by
content: by its SHA-256 against the index's when the pack recorded digests, else against the
archive's bytes, read from the blocks that hold them.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace

from ..core.member_index import IndexEntry, MemberIndex, sort_key
from ..encryption import Identity
from ..errors import ManifestError, SourceError
from ..fs.walk import Exclude, SourceEntry, exclude_nothing, iter_entries, member_name
from ..models import MemberKind
from ..storage.local import archive_file_matcher
from ..storage.location import parse_prefix
from ..storage.random_access import RandomAccess, require_random_access
from .extract import BlockReader

READ_SIZE = 1 << 20
Key = tuple[int, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Difference:
    """``change`` is ``"new"`` (in the sources only), ``"missing"`` (in the archive only) or
    ``"changed"``, with the ``fields`` that differ: type, size, mode, mtime, link, content."""

    name: str
    change: str
    fields: tuple[str, ...] = ()


def diff(
    prefix: str,
    sources: Sequence[str] = (),
    *,
    directory: str | None = None,
    identities: Sequence[Identity] = (),
) -> Generator[Difference, None, None]:
    """The differences in walk order; none when the archive holds exactly the sources."""
    if bool(sources) == (directory is not None):
        raise SourceError("(none)", "give the sources as stc pack took them, or one directory")
    with require_random_access(prefix, identities) as archive:
        index = archive.member_index()
        if index is None:
            raise ManifestError(
                f"{prefix} has no member index: rebuild it with stc index, then diff again"
            )
        roots = [member_name(s) for s in sources] if directory is None else ["."]
        location = parse_prefix(prefix)
        exclude = archive_file_matcher(location) if isinstance(location, str) else exclude_nothing
        walked = _walked(list(sources), exclude) if directory is None else _under(directory)
        content = _Content(archive)
        try:
            if index.sorted:
                yield from _merge(index, walked, roots, content)
            else:
                yield from _by_name(index, walked, content)
        finally:
            content.close()


def _walked(sources: list[str], exclude: Exclude) -> Iterator[tuple[str, SourceEntry]]:
    """What ``stc pack`` would pack (the archive's own files left out, as it leaves them)."""
    for entry in iter_entries(sources, [], exclude):
        yield entry.member.name, entry


def _under(directory: str) -> Iterator[tuple[str, SourceEntry]]:
    """The tree under ``directory``, named relative to it (what was restored into it)."""
    if not os.path.isdir(directory):
        raise SourceError(directory, "not a directory")
    root = member_name(directory)
    cut = 0 if root == "." else len(root) + 1
    for entry in iter_entries([directory], []):
        if entry.member.name == root:
            continue
        member = entry.member
        linkname = member.linkname[cut:] if member.kind is MemberKind.HARDLINK else None
        renamed = replace(member, name=member.name[cut:], linkname=linkname or member.linkname)
        yield renamed.name, SourceEntry(renamed, entry.path, entry.stamp)


def _key(roots: list[str], name: str) -> Key:
    """Walk order: by source, then by path components."""
    for position, root in enumerate(roots):
        if root == "." or name == root or name.startswith(root + "/"):
            return position, sort_key(name)
    return len(roots), sort_key(name)


def _merge(
    index: MemberIndex,
    walked: Iterator[tuple[str, SourceEntry]],
    roots: list[str],
    content: _Content,
) -> Iterator[Difference]:
    archived = iter(index)
    entry = next(archived, None)
    source = next(walked, None)
    while entry is not None or source is not None:
        entry_key = _key(roots, entry.name) if entry is not None else None
        source_key = _key(roots, source[0]) if source is not None else None
        if source_key is None or (entry_key is not None and entry_key < source_key):
            assert entry is not None
            yield Difference(entry.name, "missing")
            entry = next(archived, None)
        elif entry_key is None or source_key < entry_key:
            assert source is not None
            if not _implied_parent(source[1], entry):
                yield Difference(source[0], "new")
            source = next(walked, None)
        else:
            assert entry is not None and source is not None
            fields = _differing(entry, source[1], content)
            if fields:
                yield Difference(entry.name, "changed", fields)
            entry, source = next(archived, None), next(walked, None)


def _by_name(
    index: MemberIndex, walked: Iterator[tuple[str, SourceEntry]], content: _Content
) -> Iterator[Difference]:
    """An index not in key order (sources packed out of order, or overlapping): its entries
    held by name, memory growing with the archive (the last of a name wins, as tar
    extracts). New and changed members come in walk order, then the missing ones."""
    archived = {entry.name: entry for entry in index}
    parents = {name[:at] for name in archived for at, char in enumerate(name) if char == "/"}
    for name, source in walked:
        entry = archived.pop(name, None)
        if entry is None:
            if not (source.member.kind is MemberKind.DIRECTORY and name in parents):
                yield Difference(name, "new")
            continue
        fields = _differing(entry, source, content)
        if fields:
            yield Difference(name, "changed", fields)
    for name in archived:
        yield Difference(name, "missing")


def _implied_parent(source: SourceEntry, entry: IndexEntry | None) -> bool:
    """A folder an extraction made only to hold the next member (``tmp`` of ``tmp/x/a``)."""
    return (
        entry is not None
        and source.member.kind is MemberKind.DIRECTORY
        and entry.name.startswith(source.member.name + "/")
    )


def _differing(entry: IndexEntry, source: SourceEntry, content: _Content) -> tuple[str, ...]:
    member = source.member
    if member.kind is not entry.kind:
        return ("type",)
    fields = []
    if member.kind is MemberKind.FILE and member.size != entry.size:
        fields.append("size")
    if stat.S_IMODE(member.mode) != stat.S_IMODE(entry.mode):
        fields.append("mode")
    if member.kind is not MemberKind.DIRECTORY and int(member.mtime) != entry.mtime_ns // 10**9:
        fields.append("mtime")
    if (
        member.kind in (MemberKind.SYMLINK, MemberKind.HARDLINK)
        and member.linkname != entry.linkname
    ):
        fields.append("link")
    if member.kind is MemberKind.FILE and "size" not in fields and not content.same(entry, source):
        fields.append("content")
    return tuple(fields)


class _Content:
    """Whether a file's bytes are those the archive holds for its member."""

    def __init__(self, archive: RandomAccess) -> None:
        self._archive = archive
        self._reader: BlockReader | None = None  # made on the first file without a digest

    def same(self, entry: IndexEntry, source: SourceEntry) -> bool:
        try:
            handle = open(source.path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise SourceError(source.path, exc.strerror or str(exc)) from exc
        with handle:
            if entry.sha256:
                digest = hashlib.sha256()
                while piece := handle.read(READ_SIZE):
                    digest.update(piece)
                return digest.digest() == entry.sha256
            if self._reader is None:
                self._reader = BlockReader(self._archive)
            end = entry.data_offset + entry.size
            for held in self._reader.read(entry.data_offset, end):
                if handle.read(len(held)) != held:
                    return False
            return handle.read(1) == b""

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
