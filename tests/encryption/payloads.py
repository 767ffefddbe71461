"""Feeding an age payload to our decryptor the way a stream arrives, for the tests here."""

from __future__ import annotations

from streaming_tar_compressor.encryption import PayloadDecryptor
from streaming_tar_compressor.errors import DecryptionError


def fed_in_pieces(
    decryptor: PayloadDecryptor, payload: bytes, piece: int
) -> tuple[bytes, DecryptionError | None]:
    """All the plaintext ``decryptor`` gives out, fed ``piece`` bytes at a time, and the error
    it ends with (None: the payload opened whole)."""
    released = []
    try:
        for start in range(0, len(payload), piece):
            released.append(decryptor.feed(payload[start : start + piece]))
        released.append(decryptor.finish())
    except DecryptionError as error:
        return b"".join(released), error
    return b"".join(released), None
