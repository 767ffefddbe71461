"""list: the members of an archive, decoded as a stream without writing anything."""

from __future__ import annotations

from collections.abc import Iterator

from ..core.tar_reader import MemberStart
from ..models import CompressionType, TarMember
from ..storage.archive import open_source
from .decode import TarStreamDecoder


def list_members(prefix: str, *, compression: CompressionType | None = None) -> Iterator[TarMember]:
    """Yields each member as soon as its header has been decoded."""
    source = open_source(prefix)
    manifest = source.manifest
    stated = compression or (manifest.compression if manifest is not None else None)
    decoder = TarStreamDecoder(stated)
    for chunk in source.chunks:
        for piece in source.read(chunk):
            for event in decoder.events(piece):
                if isinstance(event, MemberStart):
                    yield event.member
    for event in decoder.finish():
        if isinstance(event, MemberStart):
            yield event.member
