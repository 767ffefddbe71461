"""Chunks in an object store: the same objects as on disk, uploaded while the pack runs and
read with ranged GETs while the unpack runs.

Write order makes an archive exist only when it is whole: chunks first (several uploads in
flight), then checkpoints of the manifest that name only uploaded chunks, then the final
manifest, then the ``.sha256`` file. Every manifest write is conditional — create when
there is none, else replace only our own last version (If-Match on its ETag) — so two packs
to one prefix cannot both win; a lock object says a pack is running.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from itertools import accumulate, takewhile
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.manifest import Manifest
from ..errors import (
    ArchiveBusyError,
    ChecksumMismatchError,
    ManifestError,
    MissingChunkError,
    OutputError,
    StcError,
    TransientStoreError,
)
from ..models import ChunkInfo
from ..pipeline.parallel import ordered_map
from ..pipeline.threads import in_background
from .checked_reads import (
    FETCH_ATTEMPTS,
    CheckedPieces,
    CheckedRun,
    Unit,
    block_units,
    chunk_units,
    prefetch_units,
)
from .local import (
    INDEX_SUFFIX,
    MANIFEST_SUFFIX,
    MAX_MANIFEST_SIZE,
    numbered_part,
    refuse_interrupted,
    suffix_width_of,
)
from .location import RemotePrefix
from .pacer import Pacer, backoff
from .store import PART_SIZE, ObjectInfo, Store, iter_ranges, open_store

if TYPE_CHECKING:
    from .store import PutMode

# Chunk uploads in flight at most; fewer while the store throttles (see pacer.py). Each is
# tried UPLOAD_ATTEMPTS times within UPLOAD_RETRY_SECONDS before the pack fails.
UPLOADS_IN_FLIGHT = 4
UPLOAD_ATTEMPTS = 10
UPLOAD_RETRY_SECONDS = 180.0
# Chunks cut and not yet stored (uploading, or waiting for an uploader) take at most this much
# memory: enough for the pack to run ahead of a busy link through a stretch of big files, so
# that a later stretch of small files (slower to pack) overlaps the uploads before it.
UPLOAD_BUFFER = 64 * 2**20
# Chunks bigger than this stream into multipart uploads instead of being held whole.
STREAM_THRESHOLD = 16 * 2**20
STREAM_QUEUE_PIECES = 4  # pieces of a streamed chunk waiting for its uploader
STREAMS_IN_FLIGHT = 2  # streamed chunks uploading at once (each: PARTS_IN_FLIGHT parts)
# Ranged GETs of one chunk in flight while unpacking, and their size: 4 x 4 MiB of memory.
RANGE_SIZE = 4 * 2**20
RANGES_IN_FLIGHT = 4
# Chunks up to this size are hashed whole before use and fetched again on a mismatch; bigger
# ones stream. An unpack of an archive whose manifest records each block's SHA-256 checks
# block by block instead (storage/checked_reads.py), whatever the chunk size. Checked reads
# are fetched ahead: PIECES_AHEAD checked pieces (of up to RANGE_SIZE) wait while the next
# ones fill, PREFETCH_RANGES_IN_FLIGHT ranges at a time. Two: ranges in flight share the
# link, so more of them would spread it over two chunks and make each arrive later (measured in
# make bench-remote: 4.24-4.28 s with two, 4.34-4.41 s with four), while one would leave it
# idle between a range's end and the next one's first byte.
WHOLE_CHUNK_LIMIT = 16 * 2**20
PIECES_AHEAD = 2
PREFETCH_RANGES_IN_FLIGHT = 2
# A lock object older than this is a dead pack's (a live one refreshes it far more often).
LOCK_STALE_SECONDS = 30 * 60
LOCK_REFRESH_SECONDS = 5 * 60


def lock_key(name: str) -> str:
    return f".{name}.lock"


class RemoteLock:
    """``.NAME.lock`` created only if absent: a second pack to the prefix fails at once. A
    pack that dies leaves it; it is taken over when it was not refreshed for
    LOCK_STALE_SECONDS, or at once when its process on this machine is provably gone."""

    def __init__(self, store: Store, prefix: RemotePrefix) -> None:
        self._store, self._prefix = store, prefix
        self._key = lock_key(prefix.name)
        self._etag: str | None = None
        self._refreshed = 0.0
        self.took_over = False  # from a pack that died

    def __enter__(self) -> RemoteLock:
        body = self._body()
        try:
            self._etag = self._store.put(self._key, body, mode="create")
        except ArchiveBusyError:
            held = self._store.head(self._key)
            if held is not None and not self._stale(held):
                raise ArchiveBusyError(
                    f"another pack is writing to {self._prefix.url} (it holds "
                    f"{self._prefix.key(self._key)}, refreshed "
                    f"{int(time.time() - held.modified)} s ago); wait for it to end, or "
                    "stc unlock it if its pack died"
                ) from None
            mode: PutMode = {"e_tag": held.etag} if held and held.etag else "create"
            self._etag = self._store.put(self._key, body, mode=mode)
            self.took_over = True
        self._refreshed = time.monotonic()
        return self

    def refresh(self) -> None:
        """Keep the lock fresh during a long pack: called often, it writes at most once per
        LOCK_REFRESH_SECONDS. Losing the lock to another pack stops this one."""
        if time.monotonic() - self._refreshed < LOCK_REFRESH_SECONDS:
            return
        mode: PutMode = {"e_tag": self._etag} if self._etag else "overwrite"
        self._etag = self._store.put(self._key, self._body(), mode=mode)
        self._refreshed = time.monotonic()

    def __exit__(self, *exc_info: object) -> None:
        """Remove the lock if it is still ours; failing to leaves a lock that goes stale,
        never a failed pack."""
        with contextlib.suppress(StcError):
            held = self._store.head(self._key)
            if held is not None and held.etag == self._etag:
                self._store.delete(self._key)

    def _stale(self, held: ObjectInfo) -> bool:
        if time.time() - held.modified >= LOCK_STALE_SECONDS:
            return True
        try:
            return _holder_is_gone(json.loads(self._store.get(self._key) or b"{}"))
        except ValueError:
            return False

    @staticmethod
    def _body() -> bytes:
        return json.dumps({**_process_identity(os.getpid()), "time": time.time()}).encode()


def _process_identity(pid: int) -> dict[str, object]:
    """What tells this machine's processes apart, even in containers that share a host name:
    the kernel's boot id, the pid namespace, the pid and the process's start time."""

    def read(path: str) -> str:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return ""

    try:
        namespace = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        namespace = ""
    stat = read(f"/proc/{pid}/stat")
    fields = stat.rsplit(")", 1)[-1].split()
    return {
        "host": socket.gethostname(),
        "boot": read("/proc/sys/kernel/random/boot_id"),
        "pid_ns": namespace,
        "pid": pid,
        "started": fields[19] if len(fields) > 19 else "",  # stat field 22: starttime
    }


def _holder_is_gone(holder: object) -> bool:
    """True only when the lock's process provably no longer exists: same kernel and pid
    namespace as ours, and its pid runs no more, or now names a later process."""
    if not isinstance(holder, dict):
        return False
    here = _process_identity(os.getpid())
    if any(not holder.get(key) or holder.get(key) != here[key] for key in ("boot", "pid_ns")):
        return False
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    return not _running(pid) or _process_identity(pid)["started"] != holder.get("started")


def remove_lock(prefix: RemotePrefix, store: Store, *, force: bool = False) -> str | None:
    """Delete a dead pack's lock object; returns who held it and since when (None: no lock).
    A lock refreshed within LOCK_STALE_SECONDS whose process is not provably gone is kept
    unless ``force``: that pack may be running on another machine."""
    key = lock_key(prefix.name)
    held = store.head(key)
    if held is None:
        return None
    try:
        holder = json.loads(store.get(key) or b"{}")
    except ValueError:
        holder = {}
    holder = holder if isinstance(holder, dict) else {}
    age = int(time.time() - held.modified)
    who = f"process {holder.get('pid', '?')} on {holder.get('host') or '?'}"
    if not force and age < LOCK_STALE_SECONDS and not _holder_is_gone(holder):
        raise ArchiveBusyError(
            f"{prefix.key(key)} belongs to {who}, refreshed {age} s ago: that pack may still "
            "be running; if you know it is not, unlock with --force"
        )
    # Made ours first (If-Match on the version read), so that no pack starting meanwhile has
    # its uploads aborted; removed after, if still ours.
    try:
        mode: PutMode = {"e_tag": held.etag} if held.etag else "overwrite"
        ours = store.put(key, RemoteLock._body(), mode=mode)
    except ArchiveBusyError:
        raise ArchiveBusyError(
            f"{prefix.key(key)} changed meanwhile: another pack took it over"
        ) from None
    aborted = abort_dead_uploads(store, prefix)
    now = store.head(key)
    if now is not None and now.etag == ours:
        store.delete(key)
    unfinished = f"; {aborted} unfinished upload(s) of it aborted" if aborted else ""
    return f"{who}, last refreshed {age} s ago{unfinished}"


def abort_dead_uploads(store: Store, prefix: RemotePrefix) -> int:
    """Abort the multipart uploads a dead pack of this archive left (a streamed chunk, the
    index); how many. Called only once that pack's lock is ours or gone."""
    index = prefix.name + INDEX_SUFFIX
    return store.abort_uploads(
        prefix.name + ".", lambda key: key == index or numbered_part(prefix.name, key) is not None
    )


class _StreamedUpload:
    """One chunk uploaded while it is cut (multipart), fed through a small bounded queue: a
    slow upload stops the pack, and memory does not follow the chunk size."""

    def __init__(self, pool: ThreadPoolExecutor, store: Store, name: str) -> None:
        self._feed: queue.Queue[object] = queue.Queue(maxsize=STREAM_QUEUE_PIECES)
        self.future = pool.submit(store.put_stream, name, self._pieces())

    def send(self, data: bytes | memoryview) -> None:
        self._put(bytes(data))

    def end(self) -> None:
        self._put(_END)

    def abort(self) -> None:
        """Make the uploader stop (its multipart upload is aborted) without blocking."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._feed.get_nowait()
        with contextlib.suppress(queue.Full):
            self._feed.put_nowait(_ABORT)

    def _pieces(self) -> Iterator[bytes]:
        while True:
            item = self._feed.get()
            if item is _END:
                return
            if item is _ABORT:
                raise OutputError("the pack stopped before this chunk was whole")
            assert isinstance(item, bytes)
            yield item

    def _put(self, item: object) -> None:
        while True:
            try:
                self._feed.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.future.done():  # the uploader failed: its error ends the pack
                    self.future.result()
                    raise OutputError("the upload of a chunk ended before the chunk did") from None


_END, _ABORT = object(), object()


class IndexSpool:
    """The member index spooled to a local temp file while packing (memory stays one index
    page), uploaded once the chunks are, before the manifest."""

    def __init__(self) -> None:
        try:
            self._file = tempfile.TemporaryFile(prefix="stc-index-")  # noqa: SIM115
        except OSError as exc:
            raise OutputError(f"cannot spool the member index: {exc}") from exc
        self.size = 0

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            raise OutputError(
                f"cannot spool the member index to {tempfile.gettempdir()}: {exc}"
            ) from exc
        self.size += len(data)

    def upload(self, store: Store, key: str, sha256: str) -> None:
        """One PUT when it fits one part, else a multipart upload; either keeps its SHA-256
        with the object (verify checks it without a download)."""
        try:
            self._file.seek(0)
            if self.size <= PART_SIZE:
                store.put(key, self._file.read(), sha256=sha256)
            else:
                pieces = iter(partial(self._file.read, PART_SIZE), b"")
                store.put_stream(key, pieces, sha256=sha256)
        except OSError as exc:
            raise OutputError(f"cannot read back the spooled member index: {exc}") from exc

    def discard(self) -> None:
        self._file.close()


class RemoteChunkSink:
    """Uploads each chunk as it is cut, ``UPLOADS_IN_FLIGHT`` at a time, holding at most
    UPLOAD_BUFFER of chunks not yet stored (a slow link slows the pack; nothing piles up), and
    writes the manifest only over chunks already stored. Chunks over STREAM_THRESHOLD are not
    held in memory: each streams into a multipart upload."""

    def __init__(
        self,
        prefix: RemotePrefix,
        store: Store,
        *,
        force: bool,
        lock: RemoteLock,
        chunk_size: int,
        resumed_chunks: int | None = None,
    ) -> None:
        """``resumed_chunks``: continue the checkpoint that lists that many stored chunks."""
        self.prefix, self.name, self.directory = prefix, prefix.name, prefix.folder
        self._store, self._lock = store, lock
        self._manifest_key = prefix.name + MANIFEST_SUFFIX
        self.aborted_uploads = 0  # multipart uploads a dead pack left, aborted at the start
        existing = store.head(self._manifest_key)
        self._old_parts = [info.key for info in _parts(store, prefix.name)]
        # Manifest writes replace only the version we know: the checkpoint we continue, or none.
        self._manifest_etag: str | None = None
        if resumed_chunks is not None and existing is not None:
            self._manifest_etag = existing.etag
        elif existing is not None or self._old_parts:
            if not force:
                raise OutputError(
                    f"{prefix.url} already has an archive; choose another prefix, or replace "
                    "it (force=True; --force on the command line)"
                )
            # Replacing: the old archive stops existing before any chunk of it is overwritten.
            store.delete(self._manifest_key)
            store.delete(prefix.name + ".sha256")
            store.delete(prefix.name + INDEX_SUFFIX)
        if lock.took_over or existing is not None or self._old_parts:
            # A pack before this one (its lock is ours now) may have died mid-upload.
            self.aborted_uploads = abort_dead_uploads(store, prefix)
        self._pool = ThreadPoolExecutor(UPLOADS_IN_FLIGHT, thread_name_prefix="stc-upload")
        self.pacer = Pacer(UPLOADS_IN_FLIGHT)
        self._stopping = threading.Event()  # abort(): uploads waiting to retry give up
        self._uploads: deque[tuple[ChunkInfo, Future[str | None]]] = deque()
        self._uploaded = resumed_chunks or 0  # chunks 0 … this-1 are stored
        self._chunk_size_hint = 0  # the first chunk grows its buffer; later ones get it whole
        self._streaming = chunk_size > STREAM_THRESHOLD
        self._stream: _StreamedUpload | None = None
        self._buffer = bytearray()  # the chunk being cut, allocated once at its full size
        self._filled = 0
        # Checkpoints not yet written, oldest first: each waits for the chunks it names.
        self._checkpoints: deque[Manifest] = deque()
        self._index: IndexSpool | None = None

    def open_index(self) -> IndexSpool:
        self._index = IndexSpool()
        return self._index

    def write(self, index: int, data: bytes | memoryview, name: str) -> None:
        self._lock.refresh()  # a clock check; a PUT every LOCK_REFRESH_SECONDS
        while self._uploads and self._uploads[0][1].done():
            self._settle_oldest()  # and write the checkpoint these chunks complete, if any
        if self._streaming:
            if self._stream is None:
                self._start_stream(name)
            assert self._stream is not None
            self._filled += len(data)
            self._stream.send(data)
            return
        end = self._filled + len(data)
        if not self._buffer and self._chunk_size_hint:
            self._buffer = bytearray(self._chunk_size_hint)
        if end > len(self._buffer):  # the first chunk: grows as it comes
            self._buffer.extend(bytes(end - len(self._buffer)))
        self._buffer[self._filled : end] = data
        self._filled = end

    def finish_chunk(self, info: ChunkInfo) -> ChunkInfo:
        """Queue the chunk for an uploader; wait first while the chunks not yet stored and
        this one would pass UPLOAD_BUFFER (the next chunk's buffer counts too)."""
        if self._streaming:
            return self._finish_stream(info)
        self._chunk_size_hint = max(self._chunk_size_hint, self._filled)
        while self._uploads and self._held() + self._filled + self._chunk_size_hint > UPLOAD_BUFFER:
            self._settle_oldest()
        data = memoryview(self._buffer)[: self._filled]
        self._buffer, self._filled = bytearray(), 0
        if len(data) != info.size:
            raise OutputError(f"chunk {info.name} is not what was cut")
        upload = self._pool.submit(self._upload, info, data)
        self._uploads.append((info, upload))
        return replace(info, path=self.prefix.key(info.name))

    def write_checkpoint(self, manifest: Manifest) -> None:
        """Written once every chunk it lists is stored (unless a newer one is by then)."""
        self._checkpoints.append(manifest)
        while self._uploads and self._uploads[0][1].done():
            self._settle_oldest()
        self._write_checkpoint_if_covered()

    def write_manifest(self, manifest: Manifest) -> None:
        while self._uploads:
            self._settle_oldest()
        index, self._index = self._index, None
        if index is not None:
            try:
                stored = manifest.index_file
                if stored is not None:
                    index.upload(self._store, stored.name, stored.sha256)
            finally:
                index.discard()
        self._put_manifest(manifest)  # conditional: a pack that lost writes nothing more
        self._store.put(self.name + ".sha256", manifest.sha256sum_text().encode())
        listed = {chunk.name for chunk in manifest.chunks}
        for stale in self._old_parts:
            if stale not in listed:
                self._store.delete(stale)
        self._pool.shutdown(wait=True)

    def abort(self) -> None:
        """Stop: uploads not started are dropped, those waiting to retry give up, those
        running end; what is stored stays (a checkpoint names only stored chunks), and no
        manifest claims the archive."""
        self._stopping.set()
        self.pacer.stop()
        if self._index is not None:
            self._index.discard()
            self._index = None
        if self._stream is not None:
            self._stream.abort()
            self._stream = None
        for _, future in self._uploads:
            future.cancel()
        self._uploads.clear()
        self._pool.shutdown(wait=True)

    def _start_stream(self, name: str) -> None:
        """STREAMS_IN_FLIGHT streamed chunks at most: the one before may still be finishing
        its last parts while this one's first part fills, so the link does not wait."""
        while len(self._uploads) >= STREAMS_IN_FLIGHT:
            self._settle_oldest()
        self._stream = _StreamedUpload(self._pool, self._store, name)
        self._filled = 0

    def _finish_stream(self, info: ChunkInfo) -> ChunkInfo:
        if self._stream is None:  # an empty chunk
            self._start_stream(info.name)
        assert self._stream is not None
        stream, self._stream = self._stream, None
        if self._filled != info.size:
            stream.abort()
            raise OutputError(f"chunk {info.name} is not what was cut")
        stream.end()
        self._uploads.append((info, stream.future))
        return replace(info, path=self.prefix.key(info.name))

    def _upload(self, info: ChunkInfo, data: memoryview) -> str | None:
        """One chunk, retried with back-off while the store's answer may change; every
        answer that says to slow down leaves fewer uploads in flight."""
        started: float | None = None  # the retry budget counts from the first try
        attempt = 0
        while True:
            attempt += 1
            with self.pacer.slot():
                if self._stopping.is_set():
                    raise OutputError(f"the pack stopped before {info.name} was stored")
                started = time.monotonic() if started is None else started
                try:
                    etag = self._store.put(info.name, data, sha256=info.checksum, retry=False)
                    self.pacer.succeeded()
                    return etag
                except TransientStoreError as exc:
                    if exc.throttled:
                        self.pacer.throttled()
                    spent = time.monotonic() - started
                    if attempt == UPLOAD_ATTEMPTS or spent > UPLOAD_RETRY_SECONDS:
                        raise TransientStoreError(
                            f"{exc} (tried {attempt} times in {spent:.0f} s)",
                            throttled=exc.throttled,
                        ) from exc
            self._stopping.wait(backoff(attempt))

    def _held(self) -> int:
        """Bytes of the chunks cut and not yet known to be stored."""
        return sum(info.size for info, _ in self._uploads)

    def _settle_oldest(self) -> None:
        info, future = self._uploads.popleft()
        future.result()  # an upload's error ends the pack here
        self._uploaded = info.index + 1
        self._write_checkpoint_if_covered()

    def _write_checkpoint_if_covered(self) -> None:
        """Write the newest checkpoint whose chunks are all stored (older ones are covered by
        it). Keeping every waiting one matters while the pack runs ahead of the uploads: the
        newest always names a chunk still queued, and would never be written on its own."""
        covered: Manifest | None = None
        while self._checkpoints and self._checkpoints[0].total_chunks <= self._uploaded:
            covered = self._checkpoints.popleft()
        if covered is not None:
            self._put_manifest(covered)

    def _put_manifest(self, manifest: Manifest) -> None:
        mode: PutMode = {"e_tag": self._manifest_etag} if self._manifest_etag else "create"
        self._manifest_etag = self._store.put(
            self._manifest_key, manifest.to_json().encode(), mode=mode
        )


class RemoteChunkSource:
    """Reads an archive's chunks from a store: the manifest first (no LIST needed, so a plain
    web server serves it), then each chunk by ranged GETs, several in flight."""

    def __init__(
        self, prefix: RemotePrefix, store: Store | None = None, *, by_block: bool = False
    ) -> None:
        """``by_block``: reads in order from the first chunk (an unpack) are checked block by
        block when the manifest allows it; other reads chunk by chunk."""
        self.prefix, self.name, self.directory = prefix, prefix.name, prefix.folder
        self._store = store or open_store(prefix)
        self._by_block = by_block
        self._checked = CheckedRun()  # fetched ahead of the reads
        self._units: list[Unit] | None = None  # the blocks an unpack's reads are checked by
        self.manifest = read_remote_manifest(prefix, self._store)
        refuse_interrupted(self.manifest, prefix.url, ", or pack again with --force")
        if self.manifest is not None:
            self.chunks: list[ChunkInfo] = list(self.manifest.chunks)
            self._units = block_units(self.manifest, self.chunks) if by_block else None
            return
        if prefix.read_only:
            raise ManifestError(
                f"{prefix.url}{MANIFEST_SUFFIX} is missing, and a web server cannot list the "
                "parts without it"
            )
        if self._store.head(lock_key(prefix.name)) is not None:
            raise ManifestError(
                f"{prefix.url} has no manifest and a pack is writing to it now "
                f"({lock_key(prefix.name)}): wait for it, or unpack with --follow"
            )
        parts = _parts(self._store, prefix.name)
        if not parts:
            raise MissingChunkError(
                0, f"{prefix.url} (neither {self.name}{MANIFEST_SUFFIX} nor {self.name}.part* "
                f"exists in {prefix.folder})", "check the prefix"
            )  # fmt: skip
        self.chunks = [
            ChunkInfo(index=i, name=info.key, size=info.size, checksum="")
            for i, info in enumerate(parts)
        ]
        for chunk, info in zip(self.chunks, parts, strict=True):
            if numbered_part(self.name, info.key) != chunk.index:
                raise MissingChunkError(chunk.index, prefix.folder)

    def read(self, chunk: ChunkInfo) -> Iterator[bytes | memoryview]:
        """The chunk in ranges of RANGE_SIZE, RANGES_IN_FLIGHT fetched at once. In an
        unpack's in-order read from the first chunk with block digests, every block; else a
        chunk of up to WHOLE_CHUNK_LIMIT with a known SHA-256: checked before any of it is
        passed on and fetched again (FETCH_ATTEMPTS in all) when its bytes do not match, so a
        flipped bit on the way costs a download, not the unpack."""
        in_block_run = self._units is not None and (
            chunk.index == 0 or self._checked.next_is(chunk)
        )
        if in_block_run or _checkable(chunk):
            return self._checked.read(chunk, self._checked_run)
        return read_ranges(self._store, self.prefix, chunk, chunk.size)

    def _checked_run(self, chunk: ChunkInfo) -> tuple[list[ChunkInfo], CheckedPieces]:
        """Checked pieces from ``chunk`` on, fetched ahead on a thread: to the end, block by
        block, when this is an unpack from the first chunk and the manifest records block
        digests; else over the chunks that follow it and can be held whole, chunk by chunk."""
        offsets = list(accumulate((c.size for c in self.chunks), initial=0))
        units = self._units if chunk.index == 0 else None
        if units is not None:
            run = self.chunks
        else:
            run = [chunk, *takewhile(_checkable, self.chunks[chunk.index + 1 :])]
        starts = offsets[chunk.index : chunk.index + len(run)]
        units = units if units is not None else chunk_units(run, starts)
        pieces = prefetch_checked(self._store, self.prefix, run, starts, units, self._by_block)
        return run, in_background(pieces, depth=PIECES_AHEAD, name="stc-prefetch")

    def checked_from(self, first: int) -> bool:
        """Reads of the chunks from ``first`` on, in order, pass on only checked bytes."""
        if first == 0 and self._units is not None:
            return True
        checkable = self.manifest is not None and all(map(_checkable, self.chunks[first:]))
        return self._by_block and checkable

    def damage(self, chunk: ChunkInfo) -> ChecksumMismatchError | None:
        """What is wrong with the stored chunk against the manifest, if anything."""
        info = self._store.head(chunk.name)
        if info is None:
            return None
        if info.size != chunk.size:
            return ChecksumMismatchError(chunk.name, f"{chunk.size} bytes", f"{info.size} bytes")
        digest = self.stored_sha256(chunk)
        if digest != chunk.checksum:
            return ChecksumMismatchError(chunk.name, f"sha256 {chunk.checksum}", f"sha256 {digest}")
        return None

    def stored_sha256(self, chunk: ChunkInfo) -> str:
        """The SHA-256 of the chunk's stored bytes: one plain download, not the unpack's read
        (no fetching again on a mismatch, nothing fetched ahead)."""
        digest = hashlib.sha256()
        for piece in read_ranges(self._store, self.prefix, chunk, chunk.size):
            digest.update(piece)
        return digest.hexdigest()

    @property
    def requests(self) -> int:
        """Requests made to the store so far."""
        return self._store.requests

    def stat(self, chunk: ChunkInfo) -> ObjectInfo | None:
        """The stored object's size and SHA-256 (one request); None when it is missing."""
        return self._store.head(chunk.name)

    def listed_parts(self) -> list[str] | None:
        """Names of the ``NAME.part*`` objects, or None where the store cannot list."""
        if self.prefix.read_only:
            return None
        return [info.key for info in _parts(self._store, self.name)]


def _checkable(chunk: ChunkInfo) -> bool:
    """A chunk small enough to hold whole whose SHA-256 the manifest gives."""
    return bool(chunk.checksum) and 0 <= chunk.size <= WHOLE_CHUNK_LIMIT


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _fetch_span(store: Store, prefix: RemotePrefix, span: tuple[ChunkInfo, int, int]) -> memoryview:
    """Bytes ``start:end`` of a chunk; a missing object or a short answer is an error."""
    chunk, start, end = span
    try:
        data = store.get_range(chunk.name, start, end)
    except FileNotFoundError:
        raise MissingChunkError(chunk.index, prefix.folder) from None
    if len(data) != end - start:
        raise ChecksumMismatchError(
            chunk.name, f"{chunk.size} bytes", f"a short read at byte {start + len(data)}"
        )
    return data


def read_ranges(
    store: Store, prefix: RemotePrefix, chunk: ChunkInfo, size: int
) -> Iterator[memoryview]:
    """``size`` bytes of a chunk in ranges of RANGE_SIZE, RANGES_IN_FLIGHT fetched at once."""
    spans = ((chunk, start, end) for start, end in iter_ranges(size, RANGE_SIZE))
    with ThreadPoolExecutor(RANGES_IN_FLIGHT, thread_name_prefix="stc-get") as pool:
        yield from ordered_map(
            partial(_fetch_span, store, prefix), spans, pool=pool, window=RANGES_IN_FLIGHT
        )


def fetch_checked(
    store: Store, prefix: RemotePrefix, chunk: ChunkInfo, size: int, attempts: int = FETCH_ATTEMPTS
) -> tuple[bytearray, str]:
    """The chunk whole and its SHA-256, downloaded again (``attempts`` in all) while that
    does not match the manifest's: a flipped bit on the way costs a download."""
    data = bytearray(size)
    for _ in range(attempts):
        filled = 0
        for piece in read_ranges(store, prefix, chunk, size):
            data[filled : filled + len(piece)] = piece
            filled += len(piece)
        digest = hashlib.sha256(data).hexdigest()
        if digest == chunk.checksum:
            break
    return data, digest


def prefetch_checked(
    store: Store,
    prefix: RemotePrefix,
    chunks: list[ChunkInfo],
    offsets: list[int],
    units: list[Unit],
    strict: bool,
) -> Iterator[tuple[int, memoryview]]:
    """The chunks' bytes as checked pieces, in order (checked_reads.prefetch_units). Ranges
    stay in flight across chunk boundaries, so the link does not idle between one chunk's
    last range and the next one's first request. It must not hold the source that starts
    it: the source's end is what stops it."""
    spans = (
        (chunk, start, end)
        for chunk in chunks
        for start, end in iter_ranges(chunk.size, RANGE_SIZE)
    )
    fetch = partial(_fetch_span, store, prefix)
    with (
        ThreadPoolExecutor(PREFETCH_RANGES_IN_FLIGHT, thread_name_prefix="stc-get") as pool,
        contextlib.closing(
            ordered_map(fetch, spans, pool=pool, window=PREFETCH_RANGES_IN_FLIGHT)
        ) as ranges,
    ):
        yield from prefetch_units(
            ranges, units, chunks, offsets, fetch, FETCH_ATTEMPTS, strict=strict
        )


def checkpoint_reader(
    prefix: RemotePrefix, store: Store
) -> Callable[[ChunkInfo], Iterator[bytes | memoryview]]:
    """Reads a checkpoint's chunks back from the store, as a resumed pack must."""
    return lambda chunk: read_ranges(store, prefix, chunk, chunk.size)


def read_remote_manifest(prefix: RemotePrefix, store: Store) -> Manifest | None:
    """The archive's manifest from the store, chunks named as on disk; None if it has none."""
    key = prefix.name + MANIFEST_SUFFIX
    info = store.head(key)
    if info is None:
        if not prefix.read_only:
            store.list()  # a missing bucket answers HEAD as a missing key: LIST tells them apart
        return None
    if info.size > MAX_MANIFEST_SIZE:
        raise ManifestError(f"{prefix.key(key)} is larger than {MAX_MANIFEST_SIZE >> 20} MiB")
    text = store.get(key)
    if text is None:
        return None
    manifest = Manifest.from_json(text, source=prefix.key(key))
    if all(chunk.name for chunk in manifest.chunks):
        return manifest
    parts = [] if prefix.read_only else [info.key for info in _parts(store, prefix.name)]
    return manifest.with_chunk_names(prefix.name, suffix_width_of(prefix.name, parts))


def _parts(store: Store, name: str) -> list[ObjectInfo]:
    """``NAME.part<digits>`` objects of the folder, in chunk order."""
    numbered = [
        (n, info) for info in store.list() if (n := numbered_part(name, info.key)) is not None
    ]
    return [info for _, info in sorted(numbered, key=lambda item: item[0])]
