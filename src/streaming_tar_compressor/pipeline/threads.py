"""Running one stage of a pipeline in its own thread, behind a small bounded queue.

Reading files, hashing, compressing and writing all release the GIL, so putting the producer
of a stage in its own thread lets it overlap with the consumer on another core. The queue is
bounded, so a slow consumer stops the producer instead of letting items pile up.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_DONE = object()
_POLL = 0.05  # seconds between checks of the stop flag while a queue is full or empty
CLOSE_WAIT = 5.0  # seconds close() waits for a producer before leaving it behind


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Background(Generic[T]):
    """Iterates ``items`` in a thread; iterate this object to get them, in order.

    Exceptions raised by the producer come out of ``__next__``. ``close`` (also on garbage
    collection of a generator that wraps this) stops the producer at its next item and joins
    the thread, so no thread outlives its consumer.
    """

    def __init__(self, items: Iterable[T], *, depth: int, name: str) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(items),), name=name)
        self._thread.daemon = True
        self._thread.start()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        item = self._queue.get()
        if item is _DONE:
            self._thread.join()
            raise StopIteration
        if isinstance(item, _Failure):
            self._thread.join()
            raise item.error
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the producer and wait for it; a producer stuck in a read that never returns
        (a stalled pipe) is left behind after CLOSE_WAIT seconds: it is a daemon thread."""
        self._stop.set()
        if threading.current_thread() is self._thread:
            return  # finalised from inside the producer itself: it stops at its next put
        deadline = time.monotonic() + CLOSE_WAIT
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:
                self._queue.get(timeout=_POLL)  # make room so a blocked put returns
            except queue.Empty:
                continue
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _run(self, items: Iterator[T]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:
            self._put(_Failure(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False


def in_background(items: Iterable[T], *, depth: int, name: str) -> Generator[T, None, None]:
    """``items`` produced in their own thread; closing the result stops and joins it."""
    producer = Background(items, depth=depth, name=name)
    try:
        yield from producer
    finally:
        producer.close()


class HashInThread:
    """A hashlib object fed in order from a thread of its own, so that hashing one stream
    overlaps the caller's other work (hashlib releases the GIL on large updates): the pack
    hashes each chunk and the whole stream, two passes over every byte, on two cores.

    At most ``depth`` pieces wait (memory stays bounded: a full queue makes ``update`` wait);
    the pieces must not change until hashed, as the encoder's output blocks never do.
    ``hexdigest`` waits for the pieces before it; ``close`` ends the thread.
    """

    def __init__(self, digest: Any, *, depth: int = 8, name: str = "stc-hash") -> None:
        self._digest = digest
        self._queue: queue.Queue[bytes | memoryview | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def update(self, data: bytes | memoryview) -> None:
        if not self._thread.is_alive():
            raise RuntimeError("HashInThread.update() after close()")
        self._queue.put(data)

    def hexdigest(self) -> str:
        self._queue.join()
        return str(self._digest.hexdigest())

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            try:
                if data is None:
                    return
                self._digest.update(data)
            finally:
                self._queue.task_done()
