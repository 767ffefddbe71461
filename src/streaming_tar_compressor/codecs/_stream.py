"""What the codec modules share: argument checks and the decode loop over concatenated members.

Every codec's stream may be several members back to back (gzip members, xz streams, zstd and lz4
frames, bzip2 streams); the loop here feeds one member at a time in bounded pieces and restarts
on the bytes after its end, so the codecs only say how to start a member and what may lie
between members.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import CorruptStreamError, TruncatedStreamError, UsageError
from .base import Buffer

# Compressed bytes handed to a member per call: bounds the copies the libraries make of their
# unconsumed input (zlib's unconsumed_tail, lz4's _unconsumed_data) to this size.
INPUT_STEP = 128 * 1024


def check_args(name: str, level: int, min_level: int, max_level: int, block_size: int) -> None:
    """Reject a level or block size the codec cannot use, before any worker starts."""
    if not min_level <= level <= max_level:
        raise UsageError(f"{name} level must be in {min_level}..{max_level}, not {level}")
    if block_size < 1:
        raise UsageError(f"block size must be positive, not {block_size}")


class Member(Protocol):
    """The stdlib decompressor shape (bz2, lzma, lz4.frame): one member, bounded output."""

    @property
    def eof(self) -> bool: ...

    @property
    def needs_input(self) -> bool: ...

    @property
    def unused_data(self) -> bytes | None: ...

    def decompress(self, data: bytes, max_length: int) -> bytes: ...


class MemberStreamDecoder:
    """A StreamDecoder for a sequence of members; subclasses set the codec specifics.

    ``errors`` lists the library exceptions that mean bad data; they become CorruptStreamError.
    """

    name = ""
    errors: tuple[type[Exception], ...] = ()

    def __init__(self) -> None:
        self._pending = bytearray()
        self._member: Member | None = None
        self._flush = False
        self._complete = 0

    def new_member(self) -> Member:
        """Start decoding the member that begins at the head of the pending input."""
        raise NotImplementedError

    def skip_between(self, pending: bytearray, after_member: bool) -> bool:
        """Drop what may lie between members from ``pending``; True when a member starts there.

        ``after_member`` is False before the first member, where nothing may be skipped.
        """
        return True

    def check_end(self) -> None:
        """Raise if what ``skip_between`` dropped after the last member is not a valid end."""

    def feed(self, data: Buffer) -> None:
        self._pending += data

    def read(self, max_size: int) -> bytes:
        if max_size < 1:
            raise UsageError(f"read size must be positive, not {max_size}")
        try:
            return self._read(max_size)
        except self.errors as exc:
            raise CorruptStreamError(f"{self.name} stream is corrupt: {exc}") from exc

    def close(self) -> None:
        if self._member is not None or self._pending:
            raise TruncatedStreamError(f"{self.name} stream ends inside a member")
        self.check_end()
        if not self._complete:
            raise TruncatedStreamError(f"{self.name} stream is empty")

    def _read(self, max_size: int) -> bytes:
        # Each pass returns output, consumes pending input, or returns b"", so the loop ends.
        while True:
            if self._member is None:
                if not self._pending or not self.skip_between(self._pending, self._complete > 0):
                    return b""
                self._member = self.new_member()
                self._flush = False
            member = self._member
            data = b""
            if not self._flush:
                if not self._pending:
                    return b""
                data = bytes(self._pending[:INPUT_STEP])
                del self._pending[:INPUT_STEP]
            out = member.decompress(data, max_size)
            # A full read or unconsumed input means the member may have output without new input.
            self._flush = bool(out) and (len(out) == max_size or not member.needs_input)
            if member.eof:
                self._pending[:0] = member.unused_data or b""
                self._member = None
                self._complete += 1
            if out:
                return out
