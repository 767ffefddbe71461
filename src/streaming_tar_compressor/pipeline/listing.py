"""list: the members of an archive, from its member index when it has one (no chunk is
read: they may all be gone), else decoded as a stream without writing anything."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator, Sequence
from typing import cast

from ..core.member_index import IndexEntry, MemberIndex, PageColumns
from ..core.selection import Selection
from ..core.tar_reader import MemberStart
from ..encryption import Identity
from ..errors import CompressionMismatchError
from ..models import CompressionType, TarMember
from ..storage.archive import open_source
from ..storage.random_access import open_random_access
from .decode import TarStreamDecoder
from .unpack import open_encrypted


def list_members(
    prefix: str,
    *,
    compression: CompressionType | None = None,
    members: Sequence[str] = (),
    wildcards: bool = False,
    identities: Sequence[Identity] = (),
) -> Generator[TarMember, None, None]:
    """Yields each member in stream order; with ``members`` (names or, with ``wildcards``,
    patterns), only those they select, then MemberNotFoundError for any that selected none.
    An encrypted archive (which has no member index yet) is decrypted with ``identities``
    and decoded."""
    for member in listed(
        prefix, compression=compression, members=members, wildcards=wildcards, identities=identities
    ):
        yield member.to_member() if isinstance(member, IndexEntry) else member


def listed(
    prefix: str,
    *,
    compression: CompressionType | None = None,
    members: Sequence[str] = (),
    wildcards: bool = False,
    identities: Sequence[Identity] = (),
) -> Iterator[IndexEntry | TarMember]:
    """As ``list_members``, with the index's entries as they are read (what ``stc list``
    prints: a TarMember each would cost a third of its time)."""
    found = _listed(prefix, compression, members, wildcards, identities, pages=False)
    return cast("Iterator[IndexEntry | TarMember]", found)  # no pages asked for, none come


def listed_batches(
    prefix: str,
    *,
    compression: CompressionType | None = None,
    members: Sequence[str] = (),
    wildcards: bool = False,
    size: int = 4096,
    identities: Sequence[Identity] = (),
) -> Iterator[PageColumns | list[IndexEntry | TarMember]]:
    """``listed`` in batches: with nothing selected from an index, its pages as columns
    (formatted without an entry per member: a listing of a million members in two thirds
    of the time), else lists of up to ``size`` members."""
    batch: list[IndexEntry | TarMember] = []
    for item in _listed(prefix, compression, members, wildcards, identities, pages=True):
        if isinstance(item, PageColumns):
            yield item
            continue
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _listed(
    prefix: str,
    compression: CompressionType | None,
    members: Sequence[str],
    wildcards: bool,
    identities: Sequence[Identity],
    *,
    pages: bool,
) -> Generator[PageColumns | IndexEntry | TarMember, None, None]:
    """``listed``; with ``pages``, an index's pages as columns when nothing is selected."""
    selection = Selection(members, wildcards=wildcards) if members else None
    with _member_index(prefix, compression, identities) as index:
        if index is not None and selection is not None:
            yield from selection.entries(index)
        elif index is not None:
            yield from index.columns() if pages else index
    if index is None:
        for member in _decoded_members(prefix, compression, identities):
            if selection is None or member.name in selection:
                yield member
    if selection is not None:
        selection.check_all_found()


@contextlib.contextmanager
def _member_index(
    prefix: str, compression: CompressionType | None, identities: Sequence[Identity]
) -> Iterator[MemberIndex | None]:
    """The archive's member index, open while in use; None when it has none."""
    archive = open_random_access(prefix, identities)
    if archive is None:
        yield None
        return
    with archive:
        index = archive.member_index()
        if index is not None:
            recorded = archive.manifest.compression
            if compression is not None and recorded is not None and compression is not recorded:
                raise CompressionMismatchError(compression.value, recorded.value)
        yield index


def _decoded_members(
    prefix: str, compression: CompressionType | None, identities: Sequence[Identity] = ()
) -> Iterator[TarMember]:
    """Each member as soon as its header has been decoded (decrypted first, if need be: age
    gives out only what it authenticated)."""
    source = open_source(prefix)
    manifest = source.manifest
    opened = open_encrypted(source, identities)
    decryptor = opened.decryptor() if opened is not None else None
    stated = compression or (manifest.compression if manifest is not None else None)
    decoder = TarStreamDecoder(stated)
    for chunk in source.chunks:
        for piece in source.read(chunk):
            data = decryptor.feed(piece) if decryptor is not None else piece
            for event in decoder.events(data):
                if isinstance(event, MemberStart):
                    yield event.member
    if decryptor is not None:
        for event in decoder.events(decryptor.finish()):
            if isinstance(event, MemberStart):
                yield event.member
    for event in decoder.finish():
        if isinstance(event, MemberStart):
            yield event.member
