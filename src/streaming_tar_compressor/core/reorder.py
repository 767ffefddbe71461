"""Whole chunks that arrive in any order (parallel downloads) → bytes in chunk order.

Memory is bounded: at most ``window`` chunks wait for a missing one; a gap that outgrows the
window, a duplicate that differs from the first copy, or a chunk still missing at the end is
an error that names the index.
"""

from __future__ import annotations

import hashlib

from ..errors import ChecksumMismatchError, MissingChunkError, UsageError

STREAM_ADVICE = "send every chunk (or raise reorder_window if they arrive far apart)"


class ChunkReorderer:
    """Push ``(index, data)`` in any order; get back the chunks that are now in order."""

    def __init__(self, window: int, total: int | None = None, location: str = "") -> None:
        if window < 1:
            raise UsageError(f"the reorder window must be at least 1 chunk, not {window}")
        self._window = window
        self._total = total
        self._location = location or "the input"
        self._next = 0
        self._waiting: dict[int, bytes] = {}
        self._delivered: dict[int, bytes] = {}  # index → SHA-256 digest, to judge duplicates

    @property
    def next_index(self) -> int:
        return self._next

    def push(self, index: int, data: bytes) -> list[bytes]:
        if index < 0 or (self._total is not None and index >= self._total):
            limit = "" if self._total is None else f" (the archive has {self._total} chunks)"
            raise UsageError(f"chunk index {index} is out of range{limit}")
        if index < self._next or index in self._waiting:
            self._check_duplicate(index, data)
            return []
        if index >= self._next + self._window:
            raise MissingChunkError(
                self._next,
                f"{self._location}: chunk {index} arrived more than {self._window} chunks "
                f"ahead of it",
                STREAM_ADVICE,
            )
        self._waiting[index] = data
        ready: list[bytes] = []
        while self._next in self._waiting:
            chunk = self._waiting.pop(self._next)
            self._delivered[self._next] = hashlib.sha256(chunk).digest()
            ready.append(chunk)
            self._next += 1
        return ready

    def finish(self) -> None:
        """Raise for the first chunk that never came (with ``total``: up to the last one)."""
        if self._waiting or (self._total is not None and self._next < self._total):
            raise MissingChunkError(self._next, self._location, STREAM_ADVICE)

    def _check_duplicate(self, index: int, data: bytes) -> None:
        if index in self._waiting:
            same = self._waiting[index] == data
        else:
            same = self._delivered[index] == hashlib.sha256(data).digest()
        if not same:
            raise ChecksumMismatchError(
                f"chunk {index}", "the copy that arrived first", "a different duplicate"
            )
