"""Compressed bytes → tar member events: detection, decoding and tar parsing chained.

Shared by unpack, list and deep verify. Events are handed to ``on_event`` as they happen, so
memory holds one decoded piece at a time, whatever the archive expands to.
"""

from __future__ import annotations

from collections.abc import Callable

from ..codecs import codec_for
from ..codecs.base import Buffer, StreamDecoder
from ..core.detect import HEAD_SIZE, resolve_compression
from ..core.tar_reader import TarEvent, TarReader
from ..models import CompressionType

DECODED_PIECE = 1 << 20  # bytes of decoded output handled at a time


class TarStreamDecoder:
    """Feeds compressed bytes in any cut; calls ``on_event`` for every tar event."""

    def __init__(
        self, on_event: Callable[[TarEvent], object], stated: CompressionType | None = None
    ) -> None:
        self._on_event = on_event
        self._stated = stated
        self._head = bytearray()
        self._decoder: StreamDecoder | None = None
        self._tar = TarReader()
        self.compression: CompressionType | None = None

    def feed(self, data: Buffer) -> None:
        if self._decoder is None:
            self._head += data
            if len(self._head) < HEAD_SIZE:
                return
            data = self._start()
        self._decoder_feed(data)

    def finish(self) -> None:
        """End of input: raises TruncatedStreamError if the codec or tar stream is incomplete."""
        if self._decoder is None:
            self._decoder_feed(self._start())
        assert self._decoder is not None
        self._decoder.close()
        for event in self._tar.finish():
            self._on_event(event)

    def _start(self) -> bytes:
        head, self._head = bytes(self._head), bytearray()
        self.compression = resolve_compression(self._stated, head)
        self._decoder = codec_for(self.compression).new_decoder()
        return head

    def _decoder_feed(self, data: Buffer) -> None:
        assert self._decoder is not None
        self._decoder.feed(data)
        while piece := self._decoder.read(DECODED_PIECE):
            for event in self._tar.feed(piece):
                self._on_event(event)
