"""Cuts the compressed stream into ``chunk_size`` slices, as ``split -b`` does, hashing each."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ..models import ChunkInfo


@dataclass(frozen=True, slots=True)
class ChunkPiece:
    """Bytes that belong to chunk ``index``; a chunk arrives as one or more pieces."""

    index: int
    data: bytes | memoryview
    name: str  # the chunk's file name, as its ChunkEnd will say


@dataclass(frozen=True, slots=True)
class ChunkEnd:
    """Chunk ``info.index`` is complete; ``info`` carries its size and SHA-256."""

    info: ChunkInfo


ChunkEvent = ChunkPiece | ChunkEnd


def chunk_name(prefix_name: str, index: int, width: int) -> str:
    """``backup.part0000``: the name ``split -d -a WIDTH`` gives the same chunk."""
    return f"{prefix_name}.part{index:0{width}d}"


class Chunker:
    """Slices a byte stream into fixed-size chunks; only the last one may be shorter.

    Pieces are never copied: a chunk boundary inside a piece yields two memoryview slices.
    ``resume_at`` = (chunks done, their total size) continues a stream whose first chunks are
    already written (a resumed pack). ``stream_hash`` hashes the whole stream (anything with
    ``update`` and ``hexdigest``, e.g. one that runs in another thread; on resume, already fed
    the chunks done); by default a hashlib sha256 of its own.
    """

    def __init__(
        self,
        chunk_size: int,
        prefix_name: str,
        width: int = 4,
        *,
        resume_at: tuple[int, int] | None = None,
        stream_hash: Any = None,
    ) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self._chunk_size = chunk_size
        self._prefix_name = prefix_name
        self._width = width
        self._index = 0
        self._filled = 0
        self._hash = hashlib.sha256()
        self._stream_hash = hashlib.sha256() if stream_hash is None else stream_hash
        self._total = 0
        self._finished = False
        if resume_at is not None:
            self._index, self._total = resume_at
            if self._total != self._index * chunk_size:
                raise ValueError("resumed chunks must all be full-size")
        self._name = self.name_of(self._index)  # of the chunk being filled: once, not per piece

    @property
    def stream_sha256(self) -> str:
        """SHA-256 hex of everything fed so far (the whole stream once finished)."""
        return self._stream_hash.hexdigest()

    @property
    def total_size(self) -> int:
        return self._total

    def feed(self, data: bytes | memoryview) -> list[ChunkEvent]:
        if self._finished:
            raise RuntimeError("Chunker.feed() after finish()")
        events: list[ChunkEvent] = []
        view = memoryview(data)
        self._stream_hash.update(view)
        self._total += len(view)
        while len(view):
            room = self._chunk_size - self._filled
            piece = view[:room]
            view = view[len(piece) :]
            self._hash.update(piece)
            self._filled += len(piece)
            events.append(ChunkPiece(self._index, piece, self._name))
            if self._filled == self._chunk_size:
                events.append(self._close_chunk())
        return events

    def finish(self) -> list[ChunkEvent]:
        """Closes the short last chunk; an empty stream still gets one (empty) chunk."""
        if self._finished:
            raise RuntimeError("Chunker.finish() called twice")
        self._finished = True
        if self._filled or self._index == 0:
            return [self._close_chunk()]
        return []

    def name_of(self, index: int) -> str:
        return chunk_name(self._prefix_name, index, self._width)

    def _close_chunk(self) -> ChunkEnd:
        info = ChunkInfo(
            index=self._index, name=self._name, size=self._filled, checksum=self._hash.hexdigest()
        )
        self._index += 1
        self._name = self.name_of(self._index)
        self._filled = 0
        self._hash = hashlib.sha256()
        return ChunkEnd(info)
