"""age's payload: a 16-byte nonce, then STREAM chunks of 64 KiB of plaintext, each sealed by
ChaCha20-Poly1305 under a key derived from the file key and that nonce, with the chunk's
counter and a final-chunk flag as its AEAD nonce (c2sp.org/age, "Payload").

A chunk's place is computable, so any chunk can be sealed or opened alone: the pack seals
in parallel, a resumed or ranged unpack opens from any chunk on. ``PayloadDecryptor`` gives
out a chunk's plaintext only once its tag has verified, and fails at the end unless a final
chunk came, and nothing after it.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.ciphers.algorithms import ChaCha20

from ..errors import DecryptionError
from .header import hkdf

CHUNK = 64 * 1024  # plaintext bytes of a chunk
TAG = 16
SEALED_CHUNK = CHUNK + TAG
NONCE_SIZE = 16
_MAX_CHUNKS = 1 << 88  # the 11-byte counter


def payload_key(file_key: bytes, nonce: bytes) -> ChaCha20Poly1305:
    return ChaCha20Poly1305(_payload_key_bytes(file_key, nonce))


def _payload_key_bytes(file_key: bytes, nonce: bytes) -> bytes:
    return hkdf(file_key, nonce, b"payload")


def chunk_nonce(index: int, final: bool) -> bytes:
    if not 0 <= index < _MAX_CHUNKS:
        raise ValueError(f"chunk counter {index} out of range")
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def seal(
    key: ChaCha20Poly1305, index: int, plaintext: bytes | bytearray | memoryview, final: bool
) -> bytes:
    """Chunk ``index`` sealed. Every chunk but the final holds exactly CHUNK bytes; the
    final one holds 1 to CHUNK (0 only when it is the only chunk)."""
    return key.encrypt(chunk_nonce(index, final), plaintext, None)


def open_chunk(key: ChaCha20Poly1305, index: int, sealed: bytes | memoryview, final: bool) -> bytes:
    try:
        return key.decrypt(chunk_nonce(index, final), sealed, None)
    except InvalidTag:
        raise DecryptionError(
            "payload", f"chunk {index} of the age payload does not authenticate (altered?)"
        ) from None


def unseal_prefix(file_key: bytes, nonce: bytes, index: int, sealed: bytes) -> bytes:
    """The plaintext under the first bytes of middle chunk ``index``, without its tag:
    ChaCha20-Poly1305's ciphertext is the plaintext XOR ChaCha20's keystream from block 1.
    Unauthenticated: a resumed pack seals it again and compares with what is stored."""
    if len(sealed) > CHUNK:
        raise ValueError("a chunk prefix holds at most CHUNK bytes")
    counter_and_nonce = (1).to_bytes(4, "little") + chunk_nonce(index, False)
    keystream = Cipher(ChaCha20(_payload_key_bytes(file_key, nonce), counter_and_nonce), mode=None)
    return keystream.decryptor().update(sealed)


def sealed_offset(header_length: int, offset: int) -> int:
    """Where the age file's byte holding payload plaintext ``offset`` is (header included)."""
    return header_length + NONCE_SIZE + offset + offset // CHUNK * TAG


def chunk_count(plain_size: int) -> int:
    """Chunks of a payload of ``plain_size`` bytes (one, empty, for none)."""
    return max(1, -(-plain_size // CHUNK))


def sealed_size(plain_size: int) -> int:
    """Bytes of a payload (nonce included) that holds ``plain_size`` bytes."""
    return NONCE_SIZE + plain_size + chunk_count(plain_size) * TAG


def plain_offset_to_sealed(offset: int) -> int:
    """Where in the payload (nonce included) the chunk holding plaintext ``offset`` starts."""
    return NONCE_SIZE + offset // CHUNK * SEALED_CHUNK


def age_chunk_start(header_length: int, offset: int) -> int:
    """Where in the age file (header included) the chunk holding plaintext ``offset`` starts."""
    return header_length + plain_offset_to_sealed(offset)


class PayloadDecryptor:
    """The payload fed in any pieces, plaintext given back as each chunk authenticates. A
    full-size chunk is opened as soon as it is whole: as a middle chunk, else as the final
    one (age itself does the same), after which any byte more is an error."""

    def __init__(
        self, file_key: bytes, *, nonce: bytes | None = None, first_chunk: int = 0
    ) -> None:
        """Fed from the payload's start (its nonce first), or, given its ``nonce``, from
        the start of chunk ``first_chunk`` (a resumed unpack)."""
        self._file_key = file_key
        self._key = payload_key(file_key, nonce) if nonce is not None else None
        self._pending = bytearray()
        self._index = first_chunk
        self._ended = False
        self._error: DecryptionError | None = None

    def feed(self, data: bytes | memoryview) -> bytes:
        """Plaintext of the chunks that authenticated. A chunk that fails after others
        opened in the same call: those are given back, and the error is raised next call."""
        if self._error is not None:
            raise self._error
        if self._ended:
            if data:
                raise DecryptionError("payload", "data follows the final chunk of the payload")
            return b""
        self._pending += data
        if self._key is None:
            if len(self._pending) < NONCE_SIZE:
                return b""
            self._key = payload_key(self._file_key, bytes(self._pending[:NONCE_SIZE]))
            del self._pending[:NONCE_SIZE]
        out: list[bytes] = []
        try:
            self._open_whole_chunks(out)
            if self._ended and self._pending:
                raise DecryptionError("payload", "data follows the final chunk of the payload")
        except DecryptionError as error:
            if not out:
                raise
            self._error = error
        return b"".join(out)

    def _open_whole_chunks(self, out: list[bytes]) -> None:
        """Every whole sealed chunk pending opened, read in place (no copy of the input)."""
        with memoryview(self._pending) as view:
            start = 0
            while len(view) - start >= SEALED_CHUNK and not self._ended:
                out.append(self._open(view[start : start + SEALED_CHUNK], whole=True))
                start += SEALED_CHUNK
        del self._pending[:start]

    def finish(self) -> bytes:
        """The last plaintext; DecryptionError if the payload ended without its final chunk."""
        if self._error is not None:
            raise self._error
        if self._ended:
            return b""
        if self._key is None:
            raise DecryptionError("header", "the age file ends inside its payload nonce")
        if not self._pending:
            raise DecryptionError("payload", "the age payload is cut short (no final chunk)")
        if self._index and len(self._pending) == TAG:
            raise DecryptionError("payload", "the age payload's final chunk is empty")
        plain = self._open(bytes(self._pending), whole=False)
        self._pending.clear()
        return plain

    def _open(self, sealed: bytes | memoryview, *, whole: bool) -> bytes:
        assert self._key is not None
        if whole:
            try:
                plain = self._key.decrypt(chunk_nonce(self._index, False), sealed, None)
                self._index += 1
                return plain
            except InvalidTag:
                pass  # a full final chunk, or damage: tried as the final one
        plain = open_chunk(self._key, self._index, sealed, final=True)
        self._index += 1
        self._ended = True
        return plain


class PayloadEncryptor:
    """Plaintext fed in any pieces, the payload given back: the nonce first, then each chunk
    once a byte after it shows it is not the final one (``finish`` seals the final one).
    The nonce comes from the caller: a resumed pack seals with the same one again."""

    def __init__(
        self, file_key: bytes, nonce: bytes, *, first_chunk: int = 0, nonce_written: bool = False
    ) -> None:
        """From chunk ``first_chunk`` on (a resumed pack's); the nonce is given back first
        unless it was written already (``nonce_written``, or a later chunk first)."""
        if len(nonce) != NONCE_SIZE:
            raise ValueError("the payload nonce is 16 bytes")
        self._key = payload_key(file_key, nonce)
        self._nonce = nonce
        self._index = first_chunk
        self._pending = bytearray()
        self._started = nonce_written or first_chunk > 0

    def feed(self, data: bytes | memoryview) -> bytes:
        return b"".join(self.pieces(data))

    def pieces(self, data: bytes | memoryview) -> list[bytes]:
        """The sealed chunks that ``data`` completes, one a piece (so a consumer need not
        hold a block's worth at once). Whole chunks are sealed straight from ``data`` (a
        compressed block is not copied first); at most a chunk waits."""
        view = memoryview(data)
        out = [] if self._started else [self._nonce]
        self._started = True
        if self._pending:
            fill = CHUNK - len(self._pending)
            if len(view) <= fill:  # no byte beyond it yet: the chunk may be the final one
                self._pending += view
                return out
            self._pending += view[:fill]
            out.append(self._seal(self._pending))
            self._pending.clear()
            view = view[fill:]
        whole = (len(view) - 1) // CHUNK  # chunks with a byte after them: not the final one
        for start in range(0, whole * CHUNK, CHUNK):
            out.append(self._seal(view[start : start + CHUNK]))
        self._pending += view[whole * CHUNK :]
        return out

    def _seal(self, plaintext: bytes | bytearray | memoryview) -> bytes:
        sealed = seal(self._key, self._index, plaintext, final=False)
        self._index += 1
        return sealed

    def finish(self) -> bytes:
        if not self._pending and self._index:
            raise ValueError("a final chunk after others must hold a byte (age's rule)")
        head = b"" if self._started else self._nonce
        self._started = True
        sealed = seal(self._key, self._index, bytes(self._pending), final=True)
        self._pending.clear()
        return head + sealed
