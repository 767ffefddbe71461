"""Following a pack that is still running elsewhere: chunks as its checkpoints name them.

A pack to a store writes a checkpoint manifest after chunks are stored, and the final one
last; each lists chunks with their SHA-256. The follower polls the manifest (one HEAD per
poll, a GET when it changed), with back-off, and hands out every chunk it names, downloaded
whole and checked against that SHA-256 first, in order, until the final manifest says the
archive is complete. The whole stream's SHA-256 is checked at the end. Nothing arriving for
``timeout`` seconds is an error, as is an archive that changes under the follower.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator

from ..core.manifest import Manifest
from ..errors import ChecksumMismatchError, ManifestError, MissingChunkError, UsageError
from ..models import ChunkInfo
from .local import MANIFEST_SUFFIX
from .location import RemotePrefix
from .remote import fetch_checked, read_remote_manifest
from .store import Store, open_store

FIRST_POLL_SECONDS = 0.5
MAX_POLL_SECONDS = 15.0
DEFAULT_FOLLOW_TIMEOUT = 600.0  # seconds without a new chunk before giving up
MAX_FOLLOWED_CHUNK = 64 * 2**20  # held whole (two at a time) to be checked before use


class FollowingSource:
    """Chunks of an archive that may still be being packed, verified, in order."""

    def __init__(
        self,
        prefix: RemotePrefix,
        *,
        timeout: float = DEFAULT_FOLLOW_TIMEOUT,
        store: Store | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.prefix = prefix
        self._store = store or open_store(prefix)
        if not 0 < timeout < float("inf"):
            raise UsageError(f"the follow timeout must be a number of seconds, not {timeout}")
        self._timeout = timeout
        self._sleep = sleep
        self._seen: tuple[object, ...] | None = None  # the manifest version last read

    def chunks(self) -> Iterator[tuple[ChunkInfo, bytearray]]:
        """Each chunk with its bytes, checked against the manifest's SHA-256 before use."""
        done: list[ChunkInfo] = []
        stream = hashlib.sha256()
        while True:
            latest = self._wait_for_news(len(done))
            listed = list(latest.chunks)
            if listed[: len(done)] != done:
                raise ManifestError(
                    f"{self.prefix.url} changed while it was followed (packed again with "
                    "--force?): its chunks are not the ones already unpacked"
                )
            for chunk in listed[len(done) :]:
                data = self._fetch(chunk)
                stream.update(data)
                done.append(chunk)
                yield chunk, data
            if latest.complete:
                if latest.sha256 is not None and stream.hexdigest() != latest.sha256:
                    raise ChecksumMismatchError(
                        "the whole stream", latest.sha256, stream.hexdigest()
                    )
                return

    def _wait_for_news(self, known: int) -> Manifest:
        """The manifest once it names more than ``known`` chunks or says the pack is done."""
        started, pause = time.monotonic(), FIRST_POLL_SECONDS
        key = self.prefix.name + MANIFEST_SUFFIX
        while True:
            info = self._store.head(key)
            # Not every web server sends an ETag: size and time tell a new version too.
            version = (info.etag, info.size, info.modified) if info is not None else None
            if version is not None and version != self._seen:
                manifest = read_remote_manifest(self.prefix, self._store)
                if manifest is not None:
                    self._seen = version
                    if manifest.complete or manifest.total_chunks > known:
                        return manifest
            waited = time.monotonic() - started
            if waited >= self._timeout:
                raise MissingChunkError(
                    known,
                    self.prefix.folder,
                    f"nothing new for {waited:.0f} s while following the pack (did it stop? "
                    "once it is resumed and complete, unpack again)",
                )
            self._sleep(min(pause, max(0.0, self._timeout - waited)))
            pause = min(MAX_POLL_SECONDS, pause * 1.5)

    def _fetch(self, chunk: ChunkInfo) -> bytearray:
        if chunk.size > MAX_FOLLOWED_CHUNK:
            raise UsageError(
                f"--follow checks each chunk whole before using it, and {chunk.name} has "
                f"{chunk.size} bytes (at most {MAX_FOLLOWED_CHUNK >> 20} MiB): unpack without "
                "--follow once the pack is complete"
            )
        data, digest = fetch_checked(self._store, self.prefix, chunk, chunk.size)
        if digest != chunk.checksum:
            raise ChecksumMismatchError(chunk.name, f"sha256 {chunk.checksum}", f"sha256 {digest}")
        return data
