"""Checks a byte stream against the manifest's chunk list, whatever sizes the bytes come in.

Bytes pass through unchanged; after the last byte of each chunk a ``ChunkVerified`` event says
that everything before it is proven good, so a caller can make files visible then — and not
before. A wrong chunk raises ChecksumMismatchError naming it; a short stream, MissingChunkError.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ChecksumMismatchError, MissingChunkError
from ..models import ChunkInfo


@dataclass(frozen=True, slots=True)
class ChunkVerified:
    """Chunk ``info`` arrived whole and its SHA-256 matched."""

    info: ChunkInfo


VerifierEvent = memoryview | ChunkVerified


class StreamVerifier:
    """Cuts the stream at the manifest's chunk boundaries and checks each chunk's SHA-256.

    ``hashed=False``: every byte was checked against the manifest before it came (block by
    block, by the source), so hashing it twice more proves nothing: only the chunk
    boundaries and sizes are kept (a third of the reading thread's work on small files)."""

    def __init__(
        self,
        chunks: Sequence[ChunkInfo],
        stream_sha256: str | None = None,
        location: str = "",
        *,
        hashed: bool = True,
    ) -> None:
        self._chunks = list(chunks)
        self._hashed = hashed
        self._stream_sha256 = stream_sha256 if hashed else None
        self._location = location or "the input"
        self._index = 0
        self._filled = 0
        self._hash = hashlib.sha256()
        self._stream_hash = hashlib.sha256()
        self._done = False

    @property
    def next_index(self) -> int:
        """The chunk the next byte belongs to."""
        return self._index

    def feed(self, data: bytes | bytearray | memoryview) -> list[VerifierEvent]:
        if self._done:
            raise RuntimeError("StreamVerifier.feed() after finish()")
        events: list[VerifierEvent] = []
        view = memoryview(data)
        if self._hashed:
            self._stream_hash.update(view)
        events.extend(self._close_empty_chunks())
        while len(view):
            if self._index >= len(self._chunks):
                raise ChecksumMismatchError(
                    "the whole stream", f"{self._total()} bytes", "more bytes than that"
                )
            chunk = self._chunks[self._index]
            piece = view[: chunk.size - self._filled]
            view = view[len(piece) :]
            if self._hashed:
                self._hash.update(piece)
            self._filled += len(piece)
            events.append(piece)
            events.extend(self._close_empty_chunks())
        return events

    def finish(self) -> list[VerifierEvent]:
        """Every listed chunk must have come, and the whole stream must match its SHA-256."""
        if self._done:
            raise RuntimeError("StreamVerifier.finish() called twice")
        self._done = True
        events: list[VerifierEvent] = list(self._close_empty_chunks())
        if self._index < len(self._chunks):
            raise MissingChunkError(self._index, self._location, "send every chunk")
        actual = self._stream_hash.hexdigest()
        if self._stream_sha256 is not None and actual != self._stream_sha256:
            raise ChecksumMismatchError("the whole stream", self._stream_sha256, actual)
        return events

    def _close_empty_chunks(self) -> list[ChunkVerified]:
        """Close every chunk that is now complete (several when some are empty)."""
        closed: list[ChunkVerified] = []
        while self._index < len(self._chunks) and self._filled == self._chunks[self._index].size:
            chunk = self._chunks[self._index]
            actual = self._hash.hexdigest() if self._hashed else chunk.checksum
            if actual != chunk.checksum:
                raise ChecksumMismatchError(
                    chunk.label, f"sha256 {chunk.checksum}", f"sha256 {actual}"
                )
            closed.append(ChunkVerified(chunk))
            self._index += 1
            self._filled = 0
            self._hash = hashlib.sha256()
        return closed

    def _total(self) -> int:
        return sum(c.size for c in self._chunks)
