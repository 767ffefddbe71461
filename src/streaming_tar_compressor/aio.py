"""The asyncio API, with the seed's names; the only module that imports asyncio.

Every blocking or CPU-bound step (file I/O, hashing, codecs, tar) runs in a worker thread of a
one-thread executor owned by the call, so a running pack or unpack never stalls the event loop.
The loop and the worker hand each other one step at a time, with one step of read-ahead:
a slow consumer slows the producer, and nothing piles up. When the call ends — finished,
failed, cancelled or abandoned — the worker is stopped at its next checkpoint, cleaned up and
joined, so no thread outlives the call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import io
import itertools
import json
import os
import threading
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from . import sync
from .core.manifest import Manifest
from .encryption import IdentitySpec, RecipientSpec, identities_from, recipients_from
from .errors import ManifestError, StcError
from .models import ChunkInfo, CompressionType, TarMember
from .pipeline.diff import Difference
from .pipeline.extract import ExtractResult
from .pipeline.pack import DEFAULT_CHUNK_SIZE
from .pipeline.unpack import DEFAULT_REORDER_WINDOW, StreamUnpacker, UnpackResult
from .progress import NullProgress, Progress
from .storage.follow import DEFAULT_FOLLOW_TIMEOUT
from .storage.local import MANIFEST_SUFFIX, READ_SIZE, read_manifest_file
from .sync import StrPath

T = TypeVar("T")
CHECK_INTERVAL = 0.05  # seconds a worker waits on the loop before it checks for cancellation
ProgressCallback = Callable[[str, int], Any]  # plain function or coroutine function
ChunkItem = bytes | bytearray | memoryview | tuple[int, bytes]
ManifestLike = Manifest | dict[str, Any] | StrPath


class _Cancelled(StcError):
    """Raised inside the worker thread to stop it; never reaches the caller."""


class LoopBridge:
    """The worker's Progress: forwards per-file callbacks to the loop, and is its stop switch.

    Plain callbacks are queued on the loop in order (cheap, no waiting); coroutine callbacks
    are awaited on the loop while the worker waits, so a slow callback slows the work. A
    byte-level ``progress`` object is called directly from the worker thread, as the sync API
    calls it: keep it thread-safe and quick.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        callback: ProgressCallback | None = None,
        progress: Progress | None = None,
    ) -> None:
        self._loop = loop
        self._callback = callback
        self._progress = progress or NullProgress()
        self._awaits = callback is not None and _is_coroutine_function(callback)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._stray: set[asyncio.Future[Any]] = set()

    def cancel(self) -> None:
        self._stop.set()

    def start(self, total_bytes: int | None) -> None:
        self._checkpoint()
        self._progress.start(total_bytes)

    def advance(self, done_bytes: int) -> None:
        self._checkpoint()
        self._progress.advance(done_bytes)

    def file(self, path: str, size: int) -> None:
        self._checkpoint()
        self._progress.file(path, size)
        if self._callback is None:
            return
        if self._awaits:
            call = asyncio.run_coroutine_threadsafe(self._callback(path, size), self._loop)
            while True:  # never wait blindly: the loop may be waiting for this very thread
                try:
                    call.result(timeout=CHECK_INTERVAL)
                    break
                except concurrent.futures.TimeoutError:
                    if self._stop.is_set():
                        call.cancel()
                        raise _Cancelled("stopped") from None
        else:
            self._loop.call_soon_threadsafe(self._call_plain, path, size)

    def finish(self) -> None:
        self._progress.finish()

    def raise_callback_error(self) -> None:
        """A plain callback's exception, even one raised after the worker's last checkpoint."""
        if self._error is not None:
            raise self._error

    def _checkpoint(self) -> None:
        if self._stop.is_set():
            raise _Cancelled("stopped")
        if self._error is not None:
            raise self._error

    def _call_plain(self, path: str, size: int) -> None:
        assert self._callback is not None
        try:
            result = self._callback(path, size)
            if inspect.isawaitable(result):  # a plain function that returned a coroutine
                task = asyncio.ensure_future(result)
                self._stray.add(task)
                task.add_done_callback(self._stray.discard)
        except Exception as exc:  # the worker raises it at its next checkpoint
            self._error = self._error or exc


def _is_coroutine_function(function: object) -> bool:
    call = getattr(function, "__call__", None)  # noqa: B004 - async __call__ objects too
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)


class _Worker:
    """One worker thread for one call; every step awaited with cancellation handled."""

    def __init__(self, bridge: LoopBridge) -> None:
        self._bridge = bridge
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="stc-aio")

    def submit(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return self._loop.run_in_executor(self._executor, function, *args)

    async def result(self, future: asyncio.Future[T]) -> T:
        """Await a step; if the caller is cancelled, stop the worker and wait for it first."""
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self._bridge.cancel()
            await self.settle(future)
            raise

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return await self.result(self.submit(function, *args))

    async def settle(self, future: asyncio.Future[Any] | None) -> None:
        """Wait for a step we no longer want (its outcome is dropped), however often the caller
        is cancelled meanwhile: leaving early would leave the thread running."""
        if future is None:
            return
        interrupted = False
        while not future.done():
            try:
                await asyncio.wait([future])
            except asyncio.CancelledError:
                interrupted = True
                self._bridge.cancel()
        if not future.cancelled():
            future.exception()
        if interrupted:
            raise asyncio.CancelledError

    def close(self) -> None:
        self._executor.shutdown(wait=True)


async def compress_with_chunks(
    sources: StrPath | Sequence[StrPath],
    output_prefix: StrPath,
    compression: CompressionType | str = CompressionType.GZIP,
    chunk_size: int | str | None = None,
    progress_callback: ProgressCallback | None = None,
    *,
    level: int | None = None,
    block_size: int | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    force: bool = False,
    resume: bool = False,
    content_digests: bool = False,
    recipients: Sequence[RecipientSpec] = (),
    passphrase: str | None = None,
) -> list[ChunkInfo]:
    """Packs sources into ``PREFIX.part0000``… plus manifest and index; returns the chunk
    records. ``content_digests``, ``recipients`` and ``passphrase``: as ``sync.pack``.

    ``chunk_size``: bytes, or ``"auto"``; None is 50 MiB for a local prefix and ``"auto"``
    for a store URL (``sync.pack``)."""
    result = await _off_the_loop(
        progress_callback,
        progress,
        lambda bridge: sync.pack(
            sources,
            output_prefix,
            compression=compression,
            level=level,
            chunk_size=chunk_size,
            block_size=block_size,
            workers=workers,
            progress=bridge,
            force=force,
            resume=resume,
            content_digests=content_digests,
            recipients=recipients,
            passphrase=passphrase,
        ),
    )
    return result.chunks


async def decompress_from_chunks(
    input_prefix: StrPath,
    output_dir: StrPath,
    compression: CompressionType | str | None = None,
    verify_checksum: bool = True,
    progress_callback: ProgressCallback | None = None,
    *,
    progress: Progress | None = None,
    max_output_bytes: int | None = None,
    max_members: int | None = None,
    same_permissions: bool = False,
    resume: bool = False,
    follow: bool = False,
    follow_timeout: float = DEFAULT_FOLLOW_TIMEOUT,
    identities: Sequence[IdentitySpec] = (),
    passphrase: str | None = None,
) -> UnpackResult:
    """Restores ``PREFIX.part*`` into ``output_dir`` (created if missing), chunk by chunk.
    An encrypted archive opens with ``identities`` or ``passphrase`` (as ``sync.unpack``).

    ``max_output_bytes`` and ``max_members`` (None: no cap) stop a decompression bomb with
    LimitExceededError before the member that would pass them is written. ``resume`` skips
    what an interrupted unpack into ``output_dir`` restored. Permission bits are the stored
    ones less the umask, unless ``same_permissions`` (``tar -p``). ``follow`` restores from a
    store URL while another machine is still packing to it (``sync.unpack``).
    """
    return await _off_the_loop(
        progress_callback,
        progress,
        lambda bridge: sync.unpack(
            input_prefix,
            output_dir,
            compression=compression,
            verify_checksum=verify_checksum,
            progress=bridge,
            max_output_bytes=max_output_bytes,
            max_members=max_members,
            same_permissions=same_permissions,
            resume=resume,
            follow=follow,
            follow_timeout=follow_timeout,
            identities=identities,
            passphrase=passphrase,
        ),
    )


async def _off_the_loop(
    callback: ProgressCallback | None,
    progress: Progress | None,
    work: Callable[[LoopBridge], T],
) -> T:
    """Runs one whole sync call in the call's own worker thread, reporting through a bridge."""
    bridge = LoopBridge(asyncio.get_running_loop(), callback, progress)
    worker = _Worker(bridge)
    try:
        result = await worker.run(work, bridge)
    finally:
        worker.close()
    bridge.raise_callback_error()
    return result


LIST_BATCH = 1024  # members fetched by the worker thread per await of list_members


async def list_members(
    prefix: StrPath,
    members: Sequence[str] = (),
    *,
    compression: CompressionType | str | None = None,
    wildcards: bool = False,
    identities: Sequence[IdentitySpec] = (),
    passphrase: str | None = None,
) -> AsyncIterator[TarMember]:
    """Async twin of ``sync.list_members``: read off the loop, LIST_BATCH members a step."""
    listed = _made_on_first_step(
        lambda: sync.list_members(
            prefix,
            members,
            compression=compression,
            wildcards=wildcards,
            identities=identities,
            passphrase=passphrase,
        )
    )
    async for member in _in_batches(listed):
        yield member


async def extract(
    prefix: StrPath,
    members: Sequence[str],
    output_dir: StrPath,
    *,
    wildcards: bool = False,
    progress_callback: ProgressCallback | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> ExtractResult:
    """Async twin of ``sync.extract`` (same keyword options), off the loop."""
    return await _off_the_loop(
        progress_callback,
        progress,
        lambda bridge: sync.extract(
            prefix, members, output_dir, wildcards=wildcards, progress=bridge, **options
        ),
    )


async def rebuild_index(
    prefix: StrPath,
    *,
    content_digests: bool = False,
    progress_callback: ProgressCallback | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Async twin of ``sync.rebuild_index``, off the loop."""
    return await _off_the_loop(
        progress_callback,
        progress,
        lambda bridge: sync.rebuild_index(prefix, content_digests=content_digests, progress=bridge),
    )


class MemberStream:
    """One member's content read off the loop (``open_member``): ``await read(size)``,
    b"" at its end; ``async with`` closes it."""

    def __init__(self, worker: _Worker, reader: io.BufferedReader) -> None:
        self._worker, self._reader = worker, reader

    async def read(self, size: int = READ_SIZE) -> bytes:
        return await self._worker.run(self._reader.read, size)

    async def close(self) -> None:
        try:
            await self._worker.run(self._reader.close)
        finally:
            self._worker.close()

    async def __aenter__(self) -> MemberStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def open_member(prefix: StrPath, name: str, **options: Any) -> MemberStream:
    """Async twin of ``sync.open_member`` (same keyword options): the index and manifest
    are read off the loop."""
    worker = _Worker(LoopBridge(asyncio.get_running_loop(), None, None))
    try:
        reader = await worker.run(lambda: sync.open_member(prefix, name, **options))
    except BaseException:
        worker.close()
        raise
    return MemberStream(worker, reader)


async def diff(
    prefix: StrPath,
    sources: StrPath | Sequence[StrPath] = (),
    *,
    directory: StrPath | None = None,
    **options: Any,
) -> AsyncIterator[Difference]:
    """Async twin of ``sync.diff`` (same keyword options): read off the loop,
    LIST_BATCH differences a step."""
    differences = _made_on_first_step(
        lambda: sync.diff(prefix, sources, directory=directory, **options)
    )
    async for difference in _in_batches(differences):
        yield difference


def _made_on_first_step(make: Callable[[], Iterator[T]]) -> Generator[T, None, None]:
    """The items of ``make()``, called when first advanced, so in the worker thread that
    _in_batches steps it in: making it reads identity files, which the loop must not wait on."""
    yield from make()


async def _in_batches(items: Generator[T, None, None]) -> AsyncIterator[T]:
    """A sync generator (not started yet) run in a worker thread, LIST_BATCH items a step;
    leaving early closes it in that thread."""
    worker = _Worker(LoopBridge(asyncio.get_running_loop(), None, None))
    try:
        while batch := await worker.run(_take, items, LIST_BATCH):
            for item in batch:
                yield item
    finally:
        await worker.settle(worker.submit(items.close))
        worker.close()


def _take(iterator: Iterator[T], count: int) -> list[T]:
    return list(itertools.islice(iterator, count))


_END = object()


def _next_or_end(iterator: Iterator[T]) -> T | object:
    return next(iterator, _END)


class StreamingTarCompressor:
    """Packs to chunks you consume as they are made; unpacks chunks as they arrive.

    ``compression`` is the codec to pack with (gzip when left out) and, when given, the codec
    an unpacked stream must have; left out, unpacking detects it from the first bytes.
    ``recipients`` or ``passphrase`` encrypt what it packs; ``identities`` or ``passphrase``
    open an encrypted archive it unpacks (given its manifest), once its age header arrived.
    """

    def __init__(
        self,
        compression: CompressionType | str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        level: int | None = None,
        *,
        block_size: int | None = None,
        workers: int | None = None,
        reorder_window: int = DEFAULT_REORDER_WINDOW,
        progress: Progress | None = None,
        recipients: Sequence[RecipientSpec] = (),
        identities: Sequence[IdentitySpec] = (),
        passphrase: str | None = None,
    ) -> None:
        self.recipients = recipients_from(recipients, passphrase)
        self.identities = identities_from(identities, passphrase)
        self.compression = None if compression is None else CompressionType.parse(compression)
        self.chunk_size = chunk_size
        self.level = level
        self.block_size = block_size
        self.workers = workers
        self.reorder_window = reorder_window
        self.progress = progress
        self.manifest: Manifest | None = None

    # -- packing ----------------------------------------------------------------------------

    def iter_chunks(
        self,
        sources: StrPath | Sequence[StrPath],
        progress: Progress | None = None,
        *,
        name: str = "chunks",
    ) -> Generator[tuple[int, bytes], None, None]:
        """Sync twin of ``compress_to_chunks``: ``(index, bytes)`` per chunk, in order."""
        stream = sync.iter_chunks(
            sources,
            compression=self.compression or CompressionType.GZIP,
            level=self.level,
            chunk_size=self.chunk_size,
            block_size=self.block_size,
            workers=self.workers,
            progress=progress or self.progress,
            name=name,
            recipients=self.recipients,
        )
        yield from stream
        self.manifest = stream.manifest

    async def compress_to_chunks(
        self,
        sources: StrPath | Sequence[StrPath],
        progress_callback: ProgressCallback | None = None,
        *,
        name: str = "chunks",
    ) -> AsyncIterator[tuple[int, bytes]]:
        """Yields ``(index, bytes)`` per chunk from 0 up; the next chunk is made meanwhile.

        At most two chunks exist at once (the one you hold and the next); afterwards
        ``self.manifest`` describes the archive, its chunks named ``NAME.part0000``….
        """
        bridge = LoopBridge(asyncio.get_running_loop(), progress_callback, self.progress)
        worker = _Worker(bridge)
        chunks = self.iter_chunks(sources, progress=bridge, name=name)
        pending: asyncio.Future[Any] | None = worker.submit(_next_or_end, chunks)
        try:
            while True:
                assert pending is not None
                item = await worker.result(pending)
                pending = None
                if item is _END:
                    bridge.raise_callback_error()
                    return
                pending = worker.submit(_next_or_end, chunks)
                yield item
        finally:
            bridge.cancel()
            try:
                await worker.settle(pending)
                await worker.settle(worker.submit(chunks.close))
            finally:
                worker.close()

    # -- unpacking --------------------------------------------------------------------------

    def unpack_chunks(
        self,
        chunks: Iterable[ChunkItem],
        output_dir: StrPath,
        *,
        manifest: ManifestLike | None = None,
        verify_checksum: bool = True,
        progress: Progress | None = None,
        max_output_bytes: int | None = None,
        max_members: int | None = None,
        same_permissions: bool = False,
    ) -> UnpackResult:
        """Sync twin of ``decompress_from_chunks``."""
        unpacker = self._unpacker(
            output_dir,
            manifest,
            verify_checksum,
            progress,
            max_output_bytes=max_output_bytes,
            max_members=max_members,
            same_permissions=same_permissions,
        )
        try:
            for item in chunks:
                unpacker.push(item)
            return unpacker.finish()
        except BaseException:
            unpacker.abort()
            raise

    async def decompress_from_chunks(
        self,
        chunks: AsyncIterable[ChunkItem] | Iterable[ChunkItem],
        output_dir: StrPath,
        *,
        manifest: ManifestLike | None = None,
        verify_checksum: bool = True,
        progress_callback: ProgressCallback | None = None,
        max_output_bytes: int | None = None,
        max_members: int | None = None,
        same_permissions: bool = False,
    ) -> UnpackResult:
        """Unpacks bytes as they arrive: pieces of any size in order, or ``(index, bytes)``
        chunks in any order (put back in order within ``reorder_window`` chunks).

        Files appear as soon as their bytes have arrived (with a manifest: as soon as the
        chunk that holds their end has verified). The caps are ``decompress_from_chunks``'s.
        """
        bridge = LoopBridge(asyncio.get_running_loop(), progress_callback, self.progress)
        worker = _Worker(bridge)
        make = functools.partial(
            self._unpacker,
            output_dir,
            manifest,
            verify_checksum,
            bridge,
            max_output_bytes=max_output_bytes,
            max_members=max_members,
            same_permissions=same_permissions,
        )
        try:
            # Loading a manifest from a store takes requests: not on the event loop.
            unpacker = await worker.run(make)
        except BaseException:
            worker.close()
            raise
        pending: asyncio.Future[None] | None = None
        try:
            async for item in _as_async(chunks):
                if pending is not None:
                    await worker.result(pending)
                pending = worker.submit(unpacker.push, item)
            if pending is not None:
                await worker.result(pending)
            pending = None
            result = await worker.run(unpacker.finish)
            bridge.raise_callback_error()
            return result
        except BaseException:
            bridge.cancel()
            await worker.settle(pending)
            await worker.settle(worker.submit(unpacker.abort))
            raise
        finally:
            worker.close()

    def _unpacker(
        self,
        output_dir: StrPath,
        manifest: ManifestLike | None,
        verify_checksum: bool,
        progress: Progress | None,
        *,
        max_output_bytes: int | None,
        max_members: int | None,
        same_permissions: bool,
    ) -> StreamUnpacker:
        return StreamUnpacker(
            os.fspath(output_dir),
            manifest=load_manifest(manifest) if manifest is not None else None,
            compression=self.compression,
            verify_checksum=verify_checksum,
            reorder_window=self.reorder_window,
            progress=progress or self.progress,
            max_output_bytes=max_output_bytes,
            max_members=max_members,
            same_permissions=same_permissions,
            identities=self.identities,
        )


def load_manifest(manifest: ManifestLike) -> Manifest:
    """A Manifest from itself, its JSON as a dict, its file path, or the archive prefix."""
    if isinstance(manifest, Manifest):
        return manifest
    if isinstance(manifest, dict):
        return Manifest.from_json(json.dumps(manifest), source="the manifest given")
    path = os.fspath(manifest)
    if not path.endswith(".json"):
        return sync.read_manifest(path)
    if path.endswith(MANIFEST_SUFFIX):
        return sync.read_manifest(path[: -len(MANIFEST_SUFFIX)])
    try:
        return read_manifest_file(path)
    except FileNotFoundError:
        raise ManifestError(f"{path} does not exist") from None


async def _as_async(items: AsyncIterable[T] | Iterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
