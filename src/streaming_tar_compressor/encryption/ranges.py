"""Age files read and written by range: what random access to an encrypted archive needs.

``SealedReader`` reads any plaintext range of an age file whose file key is known by opening
only the 64 KiB chunks that hold it (each authenticated, the file's last one as the final
chunk), so one member of an encrypted archive costs a few chunk reads, from a folder or by
ranged GETs. ``SealingOutput`` writes an age file through to another output as its
plaintext comes, and tells the ciphertext's size and SHA-256 for the public manifest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ..errors import DecryptionError
from . import Recipient, new_header, new_nonce
from .stream import (
    CHUNK,
    NONCE_SIZE,
    SEALED_CHUNK,
    PayloadEncryptor,
    age_chunk_start,
    chunk_count,
    open_chunk,
    payload_key,
)
from .stream import sealed_size as payload_size

ReadSealed = Callable[[int, int], bytes]
"""``length`` bytes of the age file from ``offset`` (fewer only past its end)."""


class SealedReader:
    """Plaintext ranges of an age file of ``plain_size`` bytes whose header is
    ``header_length`` long and whose file key is ``file_key``. Safe to use from several
    threads (the payload key is made once; making it twice is harmless)."""

    def __init__(
        self,
        read_sealed: ReadSealed,
        file_key: bytes,
        header_length: int,
        plain_size: int,
        nonce: bytes | None = None,
    ) -> None:
        """``nonce``: the payload's, when the caller read it already (else read first use)."""
        self._read_sealed = read_sealed
        self._file_key = file_key
        self._payload_start = header_length
        self.plain_size = plain_size
        self.sealed_size = header_length + payload_size(plain_size)
        self._chunks = chunk_count(plain_size)
        self._key = payload_key(file_key, nonce) if nonce is not None else None

    def read(self, offset: int, length: int) -> bytes:
        """Plaintext ``[offset, offset + length)`` (fewer bytes only past the end), every
        byte of it authenticated first."""
        end = min(offset + length, self.plain_size)
        if offset >= end:
            return b""
        first, last = offset // CHUNK, (end - 1) // CHUNK
        start = age_chunk_start(self._payload_start, offset)
        stop = min(start + (last - first + 1) * SEALED_CHUNK, self.sealed_size)
        sealed = self._read_sealed(start, stop - start)
        if len(sealed) != stop - start:
            raise DecryptionError("payload", f"the age file ends before its chunk {last}")
        key = self._payload_key()
        plain = bytearray()
        with memoryview(sealed) as view:
            for number in range(first, last + 1):
                at = (number - first) * SEALED_CHUNK
                piece = view[at : at + SEALED_CHUNK]
                plain += open_chunk(key, number, piece, final=number == self._chunks - 1)
        skip = offset - first * CHUNK
        return bytes(plain[skip : skip + end - offset])

    def _payload_key(self) -> ChaCha20Poly1305:
        if self._key is None:
            nonce = self._read_sealed(self._payload_start, NONCE_SIZE)
            if len(nonce) != NONCE_SIZE:
                raise DecryptionError("header", "the age file ends inside its payload nonce")
            self._key = payload_key(self._file_key, nonce)
        return self._key


class Output(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True, slots=True)
class SealedFile:
    """An age file written whole: its file key and header length (for the sealed part of
    the manifest) and its ciphertext's size and SHA-256 (for the public part)."""

    file_key: bytes
    header_length: int
    size: int
    sha256: str


class SealingOutput:
    """An output that writes what it is given as an age file to ``recipients`` into ``out``,
    under a fresh file key; ``finish`` seals the final chunk."""

    def __init__(self, out: Output, recipients: Sequence[Recipient]) -> None:
        self._out = out
        self._file_key, header = new_header(recipients)
        self._header_length = len(header)
        self._payload = PayloadEncryptor(self._file_key, new_nonce())
        self._digest = hashlib.sha256()
        self._size = 0
        self._put(header)

    def write(self, data: bytes, /) -> int:
        for piece in self._payload.pieces(data):
            self._put(piece)
        return len(data)

    def finish(self) -> SealedFile:
        self._put(self._payload.finish())
        return SealedFile(self._file_key, self._header_length, self._size, self._digest.hexdigest())

    def _put(self, data: bytes) -> None:
        self._out.write(data)
        self._digest.update(data)
        self._size += len(data)
