"""An archive's files read by byte range, wherever they live: ``pread`` on a local folder,
ranged GETs from a store. What the member index and the extraction of a selection read, so
that one member costs a few small reads instead of the whole archive."""

from __future__ import annotations

import contextlib
import io
import os
import threading
from types import TracebackType

from ..core.manifest import Manifest
from ..core.member_index import DirectoryRef, MemberIndex
from ..encryption.archive import refuse_encrypted
from ..errors import ManifestError
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


def open_random_access(prefix: str) -> RandomAccess | None:
    """The archive at ``prefix`` read by range; None when it has no manifest (another tool's
    parts: only a stream decode reads those). An interrupted pack is refused."""
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
    return archive


def require_random_access(prefix: str, *, encrypted: bool = False) -> RandomAccess:
    """The archive read by range; ManifestError without a manifest. An encrypted one only
    when the caller says it handles it (``encrypted``)."""
    archive = open_random_access(prefix)
    if archive is None:
        location = parse_prefix(prefix)
        where = location.url if isinstance(location, RemotePrefix) else manifest_path(location)
        raise ManifestError(f"{where} does not exist: this needs the archive's manifest")
    if not encrypted:
        try:
            refuse_encrypted(archive.manifest, "reading members by range (cat, diff)")
        except BaseException:
            archive.close()
            raise
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
        if self.manifest.index is None or name != self.manifest.index.name:
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
        if ref is None:
            return None
        if self._store is None:
            try:
                size = os.fstat(self._open(ref.name).fileno()).st_size
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise ManifestError(f"cannot read {self._label(ref.name)}: {exc}") from exc
            if size != ref.size:
                raise ManifestError(
                    f"{self._label(ref.name)} is {size} bytes, the manifest says {ref.size}: "
                    "it is damaged or belongs to another archive (rebuild it with stc index)"
                )
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
