"""The one thread pool pattern: an ordered map over a bounded window of futures."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Executor, Future
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], *, pool: Executor, window: int
) -> Generator[R, None, None]:
    """``pool.map`` in order, but never more than ``window`` items in flight.

    ``Executor.map`` submits all its input first (bpo-32306), which would pull the whole
    archive into memory; here at most ``window`` blocks exist at once.
    """
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            if len(pending) >= window:
                yield pending.popleft().result()
            pending.append(pool.submit(fn, item))
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
