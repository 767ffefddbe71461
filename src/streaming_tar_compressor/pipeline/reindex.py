"""``stc index``: the member index of an archive that has none (packed before there was one,
or whose index was lost or damaged), rebuilt by decoding the stream once.

Every chunk is checked against the manifest as it is read, and the whole stream at the end;
only then does the index take its name, and the manifest (rewritten atomically, on a store
only over the version read) pins it. The rows come from the tar headers as decoded, with
each file's content SHA-256 when asked for.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..core.manifest import IndexRef, Manifest
from ..core.member_index import ENTRIES_PER_PAGE, IndexWriter, Output, Row
from ..core.tar_reader import MemberData, MemberEnd, MemberStart, TarEvent
from ..core.verifier import StreamVerifier
from ..encryption.archive import refuse_encrypted
from ..errors import (
    ChecksumMismatchError,
    CompressionMismatchError,
    CorruptStreamError,
    ManifestError,
)
from ..models import MemberKind
from ..progress import NullProgress, Progress
from ..storage.archive import ChunkSource, open_source
from ..storage.local import (
    INDEX_SUFFIX,
    IndexFile,
    PrefixLock,
    atomic_write,
    manifest_path,
    refuse_interrupted,
    sha256sum_path,
)
from ..storage.location import RemotePrefix, parse_prefix
from ..storage.remote import IndexSpool
from ..storage.store import open_store

if TYPE_CHECKING:
    from ..storage.store import PutMode
from .decode import TarStreamDecoder


def rebuild_index(
    prefix: str, *, content_digests: bool = False, progress: Progress | None = None
) -> Manifest:
    """Writes ``PREFIX.index`` from the decoded stream and returns the manifest that pins it.
    A local prefix is locked meanwhile, as a pack locks it: a pack to it waits for none of
    this, it fails at once (and a pack in progress makes this fail)."""
    location = parse_prefix(prefix)
    if isinstance(location, RemotePrefix):
        return _rebuild(prefix, content_digests, progress)
    with PrefixLock(location):
        return _rebuild(prefix, content_digests, progress)


def _rebuild(prefix: str, content_digests: bool, progress: Progress | None) -> Manifest:
    progress = progress or NullProgress()
    source = open_source(prefix)
    manifest = source.manifest
    if manifest is None:
        raise ManifestError(
            f"{prefix} has no manifest: an index is pinned by one (stc pack writes both)"
        )
    refuse_interrupted(manifest, prefix, " with stc pack … --resume (resume=True)")
    refuse_encrypted(manifest, "an index")
    location = parse_prefix(prefix)
    name = source.name + INDEX_SUFFIX
    output: IndexFile | IndexSpool = (
        IndexSpool()
        if isinstance(location, RemotePrefix)
        else IndexFile(f"{location}{INDEX_SUFFIX}")
    )
    try:
        progress.start(sum(chunk.size for chunk in manifest.chunks))
        ref = _index_stream(source, manifest, output, name, content_digests, progress)
        updated = replace(manifest, index=ref)
        if isinstance(location, RemotePrefix):
            assert isinstance(output, IndexSpool)
            _store_remote(location, output, updated)
        else:
            assert isinstance(output, IndexFile)
            _store_local(location, output, updated)
        return updated
    except BaseException:
        output.discard()
        raise
    finally:
        progress.finish()


class _Rows:
    """Tar events → index rows, each file's content hashed as its data passes."""

    def __init__(self, writer: IndexWriter, content_digests: bool) -> None:
        self._writer = writer
        self._digests = content_digests
        self._rows: list[Row] = []
        self._open: tuple[MemberStart, Any] | None = None

    def __call__(self, event: TarEvent) -> None:
        if isinstance(event, MemberStart):
            self._open = (event, hashlib.sha256() if self._digests else None)
        elif isinstance(event, MemberData):
            assert self._open is not None
            if self._open[1] is not None:
                self._open[1].update(event.data)
        elif isinstance(event, MemberEnd):
            assert self._open is not None
            start, digest = self._open
            member = start.member
            is_file = member.kind is MemberKind.FILE
            content = digest.digest() if digest is not None and is_file else b""
            self._rows.append((member, member.offset, start.data_offset, content))
            self._open = None
            if len(self._rows) >= ENTRIES_PER_PAGE:
                self.flush()

    def flush(self) -> None:
        self._writer.add(self._rows)
        self._rows = []


def _index_stream(
    source: ChunkSource,
    manifest: Manifest,
    output: Output,
    name: str,
    content_digests: bool,
    progress: Progress,
) -> IndexRef:
    writer = IndexWriter(output)
    rows = _Rows(writer, content_digests)
    decoder = TarStreamDecoder(manifest.compression)
    verifier = StreamVerifier(manifest.chunks, manifest.sha256, source.directory)
    for chunk in manifest.chunks:
        size = 0
        try:
            for piece in source.read(chunk):
                size += len(piece)
                if size > chunk.size:  # else its extra bytes would count as the next chunk's
                    raise ChecksumMismatchError(
                        chunk.name, f"{chunk.size} bytes", f"more than {chunk.size} bytes"
                    )
                verifier.feed(piece)
                progress.advance(len(piece))
                for event in decoder.events(piece):
                    rows(event)
        except (CorruptStreamError, CompressionMismatchError) as exc:
            # Decoded before its last byte was hashed: a damaged chunk shows here first.
            damage = source.damage(chunk)
            if damage is not None:
                raise damage from exc
            raise
    verifier.finish()  # every chunk came whole, and the whole stream matches
    for event in decoder.finish():
        rows(event)
    rows.flush()
    return writer.finish().record(name, content_sha256=content_digests)


def _store_local(prefix: str, output: IndexFile, manifest: Manifest) -> None:
    """The index into place, then the .sha256 file, then the manifest that pins it."""
    output.commit()
    atomic_write(sha256sum_path(prefix), manifest.sha256sum_text().encode())
    atomic_write(manifest_path(prefix), manifest.to_json().encode())


def _store_remote(prefix: RemotePrefix, output: IndexSpool, manifest: Manifest) -> None:
    """The same objects as a pack writes; the manifest only over the version read."""
    store = open_store(prefix)
    key = prefix.name + ".manifest.json"
    current = store.head(key)
    if current is None:
        raise ManifestError(f"{prefix.key(key)} went away while its index was rebuilt")
    assert manifest.index is not None
    output.upload(store, manifest.index.name, manifest.index.sha256)
    output.discard()
    store.put(prefix.name + ".sha256", manifest.sha256sum_text().encode())
    mode: PutMode = {"e_tag": current.etag} if current.etag else "overwrite"
    store.put(key, manifest.to_json().encode(), mode=mode)
