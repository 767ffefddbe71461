"""Compressed bytes → tar member events: detection, decoding and tar parsing chained.

Shared by unpack, list and deep verify. Events come out lazily, one decoded piece at a time,
so memory holds one piece whatever the archive expands to or however many members it packs
into a few bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..codecs import codec_for
from ..codecs.base import Buffer, StreamDecoder
from ..core.detect import HEAD_SIZE, resolve_compression
from ..core.tar_reader import TarEvent, TarReader
from ..models import CompressionType

DECODED_PIECE = 1 << 20  # bytes of decoded output handled at a time


class TarStreamDecoder:
    """Takes compressed bytes in any cut; yields the tar events they complete."""

    def __init__(self, stated: CompressionType | None = None) -> None:
        self._stated = stated
        self._head = bytearray()
        self._decoder: StreamDecoder | None = None
        self._tar = TarReader()
        self.compression: CompressionType | None = None

    def events(self, data: Buffer) -> Iterator[TarEvent]:
        """Consume the iterator before the next call: data events are views into this piece."""
        if self._decoder is None:
            self._head += data
            if len(self._head) < HEAD_SIZE:
                return
            data = self._start()
        yield from self._decode(data)

    def finish(self) -> Iterator[TarEvent]:
        """End of input: raises TruncatedStreamError if the codec or tar stream is incomplete."""
        if self._decoder is None:
            yield from self._decode(self._start())
        assert self._decoder is not None
        self._decoder.close()
        yield from self._tar.finish()

    def _start(self) -> bytes:
        head, self._head = bytes(self._head), bytearray()
        self.compression = resolve_compression(self._stated, head)
        self._decoder = codec_for(self.compression).new_decoder()
        return head

    def _decode(self, data: Buffer) -> Iterator[TarEvent]:
        assert self._decoder is not None
        self._decoder.feed(data)
        while piece := self._decoder.read(DECODED_PIECE):
            yield from self._tar.feed(piece)
