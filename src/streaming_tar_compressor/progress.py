"""How pipelines report progress: bytes done of a total, and each file as it passes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

FileCallback = Callable[[str, int], object]


class Progress(Protocol):
    """Receives progress from a running pack or unpack, from the thread that drives it."""

    def start(self, total_bytes: int | None) -> None:
        """``total_bytes`` is what ``advance`` will add up to, when known."""

    def advance(self, done_bytes: int) -> None: ...

    def file(self, path: str, size: int) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """The default: report nothing."""

    def start(self, total_bytes: int | None) -> None:
        return None

    def advance(self, done_bytes: int) -> None:
        return None

    def file(self, path: str, size: int) -> None:
        return None

    def finish(self) -> None:
        return None


class FileCallbackProgress(NullProgress):
    """Adapts the seed API's per-file ``callback(path, size)`` to the Progress protocol."""

    def __init__(self, callback: FileCallback) -> None:
        self._callback = callback

    def file(self, path: str, size: int) -> None:
        self._callback(path, size)
