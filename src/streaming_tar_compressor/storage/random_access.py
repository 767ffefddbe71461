"""An archive's files read by byte range, wherever they live: ``pread`` on a local folder,
ranged GETs from a store. What the member index and the extraction of a selection read, so
that one member costs a few small reads instead of the whole archive."""

from __future__ import annotations

import bisect
import contextlib
import io
import os
import threading
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from itertools import accumulate
from types import TracebackType

from ..core.manifest import Manifest
from ..core.member_index import DirectoryRef, MemberIndex
from ..encryption import Identity
from ..encryption.archive import key_needed, open_archive, refuse_plain_with_keys
from ..encryption.ranges import SealedReader
from ..encryption.stream import NONCE_SIZE
from ..errors import DecryptionError, ManifestError, MissingChunkError
from ..models import ChunkInfo
from .local import (
    manifest_path,
    open_regular_file,
    read_manifest_if_present,
    refuse_interrupted,
    split_prefix,
)
from .location import RemotePrefix, parse_prefix
from .remote import read_remote_manifest
from .store import Store, open_store

PAYLOAD = "(age payload)"  # the decrypted view's one chunk: the compressed stream inside


def open_random_access(prefix: str, identities: Sequence[Identity] = ()) -> RandomAccess | None:
    """The archive at ``prefix`` read by range; None when it has no manifest (another tool's
    parts: only a stream decode reads those). An interrupted pack is refused. An encrypted
    archive opened by one of ``identities`` is read as its decrypted view."""
    location = parse_prefix(prefix)
    if isinstance(location, RemotePrefix):
        store = open_store(location)
        manifest = read_remote_manifest(location, store)
        archive = RandomAccess(location.folder, manifest, store, location) if manifest else None
    else:
        manifest = read_manifest_if_present(location)
        archive = RandomAccess(split_prefix(location)[0], manifest) if manifest else None
    if manifest is not None:
        refuse_interrupted(manifest, prefix, " with stc pack … --resume (resume=True)")
    if archive is None or not identities:
        return archive
    try:
        refuse_plain_with_keys(archive.manifest, identities)
        return DecryptedArchive(archive, identities)
    except BaseException:
        archive.close()
        raise


def require_random_access(prefix: str, identities: Sequence[Identity] = ()) -> RandomAccess:
    """The archive read by range; ManifestError without a manifest. An encrypted archive
    needs one of ``identities`` (DecryptionError without)."""
    archive = open_random_access(prefix, identities)
    if archive is None:
        location = parse_prefix(prefix)
        where = location.url if isinstance(location, RemotePrefix) else manifest_path(location)
        raise ManifestError(f"{where} does not exist: this needs the archive's manifest")
    if archive.manifest.encryption is not None:  # not opened: no key was given
        archive.close()
        raise key_needed()
    return archive


class RandomAccess:
    """An archive's manifest and its files by range, in ``directory`` (a folder, or a store
    through ``store``). Close it (or use it as a context manager) to close the local files
    it opened."""

    def __init__(
        self,
        directory: str,
        manifest: Manifest,
        store: Store | None = None,
        remote: RemotePrefix | None = None,
    ) -> None:
        self.directory, self.manifest = directory, manifest
        self._store, self._remote = store, remote
        self._files: dict[str, io.FileIO] = {}  # local files opened so far, by name
        self._opening = threading.Lock()  # blocks are read from several threads

    def read(self, name: str, offset: int, length: int) -> bytes:
        """``length`` bytes of the archive's file ``name`` from ``offset`` (fewer only at its
        end); OSError (FileNotFoundError when it is not there) as opening it raises it."""
        if self._store is not None:
            return bytes(self._store.get_range(name, offset, offset + length))
        stored_index = self.manifest.index_file
        if stored_index is None or name != stored_index.name:
            # A chunk is opened for each read: an extraction walks through thousands of them,
            # and holding each open would run out of descriptors.
            with open_regular_file(self._path(name)) as handle:
                return _pread(handle.fileno(), offset, length)
        return _pread(self._open(name).fileno(), offset, length)

    def member_index(self) -> MemberIndex | None:
        """The member index the manifest pins, read a page at a time and checked against it;
        None when the manifest records none or its file is gone (then the archive is read
        as one without an index)."""
        ref = self.manifest.index
        if ref is None or not self._index_file_present():
            return None
        directory = DirectoryRef(ref.directory_offset, ref.directory_length, ref.directory_sha256)
        try:
            index = MemberIndex(
                lambda offset, length: self.read(ref.name, offset, length),
                ref.size,
                directory=directory,
                name=self._label(ref.name),
            )
        except FileNotFoundError:
            return None
        if index.members != ref.members:
            raise ManifestError(
                f"{self._label(ref.name)} holds {index.members} members, the manifest says "
                f"{ref.members}: it belongs to another archive (rebuild it with stc index)"
            )
        return index

    def _index_file_present(self) -> bool:
        """Whether the index file is there (a local one: with the size the manifest says;
        a store's is found missing by its first read)."""
        stored = self.manifest.index_file
        if stored is None:
            return False
        if self._store is None:
            try:
                size = os.fstat(self._open(stored.name).fileno()).st_size
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise ManifestError(f"cannot read {self._label(stored.name)}: {exc}") from exc
            if size != stored.size:
                rebuild = " (rebuild it with stc index)" if self.manifest.encryption is None else ""
                raise ManifestError(
                    f"{self._label(stored.name)} is {size} bytes, the manifest says "
                    f"{stored.size}: it is damaged or belongs to another archive{rebuild}"
                )
        return True

    def read_stream(self, offset: int, length: int) -> bytes:
        """``length`` bytes of the stream the chunks hold, from ``offset`` (fewer only at its
        end); MissingChunkError names a chunk that is not there."""
        pieces, end = [], offset + length
        starts = self._chunk_starts
        first = max(0, bisect.bisect_right(starts, offset) - 1)
        for chunk, start in zip(self.manifest.chunks[first:], starts[first:], strict=True):
            low, high = max(offset, start), min(end, start + chunk.size)
            if low >= high:
                if start >= end:
                    break
                continue
            try:
                piece = self.read(chunk.name, low - start, high - low)
            except FileNotFoundError:
                raise MissingChunkError(chunk.index, self.directory) from None
            except OSError as exc:
                raise MissingChunkError(chunk.index, f"{self.directory} ({exc})") from exc
            pieces.append(piece)
            if len(piece) != high - low:
                break
        return b"".join(pieces)

    @cached_property
    def _chunk_starts(self) -> list[int]:
        return list(accumulate((chunk.size for chunk in self.manifest.chunks), initial=0))[:-1]

    def close(self) -> None:
        files, self._files = self._files, {}
        for handle in files.values():
            with contextlib.suppress(OSError):
                handle.close()

    def __enter__(self) -> RandomAccess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _label(self, name: str) -> str:
        return self._remote.key(name) if self._remote is not None else self._path(name)

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def _open(self, name: str) -> io.FileIO:
        """The local index file, opened once (every page is read from it); anything but a
        regular file is refused."""
        with self._opening:
            handle = self._files.get(name)
            if handle is None:
                handle = self._files[name] = open_regular_file(self._path(name))
            return handle


class DecryptedArchive(RandomAccess):
    """An encrypted archive as its key holder reads it by range: the manifest of the
    compressed stream inside (its one chunk, PAYLOAD, being that stream, read by opening the
    age chunks that hold each range) and the member index opened from its own age file."""

    def __init__(self, outer: RandomAccess, identities: Sequence[Identity]) -> None:
        public = outer.manifest
        assert public.encryption is not None
        head = outer.read_stream(0, public.encryption.header_length + NONCE_SIZE)
        opened = open_archive(public, head, identities)
        secret = opened.secret
        payload = ChunkInfo(index=0, name=PAYLOAD, size=secret.compressed_size, checksum="")
        sealed_index = secret.index
        manifest = replace(
            opened.inner(public),
            chunks=(payload,),
            index=sealed_index.ref if sealed_index is not None else None,
        )
        super().__init__(outer.directory, manifest, outer._store, outer._remote)
        self._outer = outer
        self._public = public
        self._payload = SealedReader(
            outer.read_stream,
            opened.file_key,
            opened.header_length,
            secret.compressed_size,
            opened.nonce,
        )
        self._index: SealedReader | None = None
        if sealed_index is not None:
            name, ref = sealed_index.ref.name, sealed_index.ref
            self._index = SealedReader(
                lambda offset, length: outer.read(name, offset, length),
                sealed_index.file_key,
                sealed_index.header_length,
                ref.size,
            )

    def read(self, name: str, offset: int, length: int) -> bytes:
        if name == PAYLOAD:
            return self._payload.read(offset, length)
        index = self.manifest.index
        if self._index is not None and index is not None and name == index.name:
            try:
                return self._index.read(offset, length)
            except DecryptionError as exc:  # the archive opened: this file is what is wrong
                raise ManifestError(
                    f"{self._label(name)} is damaged or belongs to another archive ({exc})"
                ) from None
        raise FileNotFoundError(name)

    def _index_file_present(self) -> bool:
        return self._outer._index_file_present()

    def close(self) -> None:
        self._outer.close()


def _pread(fd: int, offset: int, length: int) -> bytes:
    """``length`` bytes from ``offset``, fewer only at the end of the file."""
    pieces, done = [], 0
    while done < length:
        piece = os.pread(fd, length - done, offset + done)
        if not piece:
            break
        pieces.append(piece)
        done += len(piece)
    return b"".join(pieces)
