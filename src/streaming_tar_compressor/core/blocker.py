"""Cuts the tar stream into blocks of ``block_size`` bytes, the unit the codecs compress alone."""

from __future__ import annotations


class Blocker:
    """Collects tar bytes and hands out whole blocks; only the last one may be shorter."""

    def __init__(self, block_size: int) -> None:
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        self._block_size = block_size
        self._buffer = bytearray()
        self._finished = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add tar bytes; returns the blocks they complete ([] means "need more")."""
        if self._finished:
            raise RuntimeError("Blocker.feed() after finish()")
        self._buffer += data
        size = self._block_size
        if len(self._buffer) < size:
            return []
        count = len(self._buffer) // size
        view = memoryview(self._buffer)
        blocks = [bytes(view[i * size : (i + 1) * size]) for i in range(count)]
        view.release()
        del self._buffer[: count * size]
        return blocks

    def finish(self) -> list[bytes]:
        """The last, possibly short, block; none when the stream ended on a block boundary."""
        if self._finished:
            raise RuntimeError("Blocker.finish() called twice")
        self._finished = True
        rest, self._buffer = bytes(self._buffer), bytearray()
        return [rest] if rest else []
