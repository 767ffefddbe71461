"""An archive wherever it lives: a local prefix or an object-store URL, opened the same way
by every pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from ..core.manifest import Manifest
from ..core.member_index import Output
from ..errors import ChecksumMismatchError
from ..models import ChunkInfo
from .local import LocalChunkSource, read_manifest_if_present
from .location import RemotePrefix, parse_prefix
from .remote import RemoteChunkSource, read_remote_manifest
from .store import open_store


class ChunkSource(Protocol):
    """Where unpack, list and verify read chunks from."""

    name: str
    directory: str  # the folder or the store URL, for messages
    manifest: Manifest | None
    chunks: list[ChunkInfo]

    def read(self, chunk: ChunkInfo) -> Iterator[bytes | memoryview]: ...

    def damage(self, chunk: ChunkInfo) -> ChecksumMismatchError | None: ...

    def listed_parts(self) -> list[str] | None: ...

    def checked_from(self, first: int) -> bool:
        """Reads of the chunks from ``first`` on, in order, pass on only bytes already
        checked against the manifest."""
        ...


class ChunkSink(Protocol):
    """Where pack writes chunks, checkpoints and the manifest."""

    name: str
    directory: str

    def open_index(self) -> Output:
        """Where the member index is written while packing; ``write_manifest`` puts it in
        place (before the manifest), ``abort`` drops it."""
        ...

    def write(self, index: int, data: bytes | memoryview, name: str) -> None: ...

    def finish_chunk(self, info: ChunkInfo) -> ChunkInfo: ...

    def write_checkpoint(self, manifest: Manifest) -> None: ...

    def write_manifest(self, manifest: Manifest) -> None: ...

    def abort(self) -> None: ...


def open_source(prefix: str, *, by_block: bool = False) -> ChunkSource:
    """``by_block``: the chunks, read in order from the first, are checked block by block
    when the manifest allows it (an unpack starts on a block once it has arrived, and writes
    files under their names at once)."""
    location = parse_prefix(prefix)
    if isinstance(location, RemotePrefix):
        return RemoteChunkSource(location, by_block=by_block)
    return LocalChunkSource(location, by_block=by_block)


def read_manifest_at(prefix: str) -> Manifest | None:
    """The archive's manifest, local or remote; None when it has none."""
    location = parse_prefix(prefix)
    if isinstance(location, RemotePrefix):
        return read_remote_manifest(location, open_store(location))
    return read_manifest_if_present(location)


def read_head(prefix: str, size: int) -> bytes:
    """The first ``size`` bytes of the archive's stream (its first chunk's), to detect a codec."""
    source = open_source(prefix)
    head = b""
    for chunk in source.chunks:
        for piece in source.read(chunk):
            head += piece
            if len(head) >= size:
                return head[:size]
    return head
