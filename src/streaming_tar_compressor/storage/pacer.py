"""How many uploads run at once: fewer while the store says to slow down.

A store that answers 503 SlowDown or 429 is overloaded by the requests it gets; retrying them
all as fast as before keeps it so. The pacer lowers the number of uploads in flight by half on
each such answer and raises it by one after as many successes in a row as it allows (additive
increase, multiplicative decrease, as TCP does), between one and ``most``. Retries wait an
exponential back-off with full jitter, so the uploads of many packs do not retry in step.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BACKOFF_FIRST = 0.1  # seconds before the first retry, at most (full jitter)
BACKOFF_LONGEST = 15.0


class Pacer:
    """The slots uploads take; ``limit`` of them at once, adjusted by the store's answers."""

    def __init__(self, most: int) -> None:
        if most < 1:
            raise ValueError("most must be at least 1")
        self.most = most
        self.limit = most
        self.throttles = 0  # answers that said to slow down, for reports
        self.lowest = most  # the lowest limit reached, for reports
        self._running = 0
        self._stopped = False
        self._successes = 0  # in a row, since the limit last changed
        self._changed = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Wait until fewer than ``limit`` uploads run, then run this one; after ``stop``,
        at once (the caller sees its work was stopped, and gives up)."""
        with self._changed:
            self._changed.wait_for(lambda: self._running < self.limit or self._stopped)
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def stop(self) -> None:
        """Let every waiting upload through, so that each can see it is to give up."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def throttled(self) -> None:
        """The store said to slow down: half as many uploads from now on."""
        with self._changed:
            self.throttles += 1
            self.limit = max(1, self.limit // 2)
            self.lowest = min(self.lowest, self.limit)
            self._successes = 0

    def succeeded(self) -> None:
        """One upload went through: after ``limit`` of them in a row, allow one more."""
        with self._changed:
            self._successes += 1
            if self._successes >= self.limit and self.limit < self.most:
                self.limit += 1
                self._successes = 0
                self._changed.notify_all()


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, …): full jitter over a ceiling
    that doubles from BACKOFF_FIRST up to BACKOFF_LONGEST."""
    ceiling = min(BACKOFF_LONGEST, BACKOFF_FIRST * 2 ** (attempt - 1))
    return (rng or random).uniform(0, ceiling)
