"""An archive's encryption: one age stream over the whole compressed stream, cut into
chunks like any other, so ``cat PREFIX.part* | age -d -i key.txt | tar -x`` restores it.

What a reader needs beyond the chunks and may not be public (the block index, the compressed
stream's size and digests) is the manifest's sealed part: an age file of JSON to the same
recipients under its own file key. The rest of the manifest stays readable without a key,
and carries a MAC under a key derived from the archive's file key: a key holder sees any
edit of it before trusting a byte of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..core.manifest import EncryptionInfo, FileRef, IndexRef, Manifest, parse_index
from ..errors import DecryptionError, ManifestError, UsageError
from ..models import ChunkInfo
from . import (
    Identity,
    Recipient,
    decrypt,
    decrypt_with_key,
    encrypt,
    new_header,
    new_nonce,
    open_header,
)
from .header import hkdf
from .keys import FILE_KEY_SIZE
from .ranges import Output, SealedFile, SealingOutput
from .stream import (
    CHUNK,
    NONCE_SIZE,
    PayloadDecryptor,
    PayloadEncryptor,
    age_chunk_start,
    sealed_offset,
)

_MAC_INFO = b"streaming-tar-compressor/manifest-mac/v1"
_SEALED_INFO = b"streaming-tar-compressor/sealed-part/v1"
_SHA256_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class SealedIndex:
    """The member index of an encrypted archive: its record (of the plaintext, as an
    unencrypted manifest holds it) and how to open the age file that holds it."""

    ref: IndexRef
    file_key: bytes
    header_length: int

    def to_json(self) -> dict[str, Any]:
        return {
            **self.ref.to_json(),
            "file_key": base64.b64encode(self.file_key).decode(),
            "header_length": self.header_length,
        }

    @classmethod
    def from_json(cls, doc: Any) -> SealedIndex | None:
        ref = parse_index(doc, "the sealed part's index")
        if ref is None:
            return None
        file_key = base64.b64decode(doc["file_key"], validate=True)
        if len(file_key) != FILE_KEY_SIZE:
            raise ValueError("the index's file key is not 16 bytes")
        return cls(ref, file_key, _count(doc["header_length"]))


@dataclass(frozen=True, slots=True)
class Secret:
    """The manifest keys an encrypted archive keeps sealed, all about the compressed stream
    (the age payload's plaintext). No SHA-256 of that whole stream: age authenticates every
    byte of it, and the block digests check each block as the unencrypted manifest does."""

    compressed_size: int
    uncompressed_size: int
    trailer_offset: int
    blocks: tuple[tuple[int, int], ...]
    block_sha256: tuple[str, ...]
    index: SealedIndex | None = None

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "compressed_size": self.compressed_size,
                "uncompressed_size": self.uncompressed_size,
                "trailer_offset": self.trailer_offset,
                "blocks": [list(pair) for pair in self.blocks],
                "block_sha256": list(self.block_sha256),
                **({"index": self.index.to_json()} if self.index is not None else {}),
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Secret:
        """Strict: it authenticated, so a wrong shape is a bug or another version's."""
        try:
            doc = json.loads(data)
            secret = cls(
                compressed_size=_count(doc["compressed_size"]),
                uncompressed_size=_count(doc["uncompressed_size"]),
                trailer_offset=_count(doc["trailer_offset"]),
                blocks=tuple((_count(raw), _count(at)) for raw, at in doc["blocks"]),
                block_sha256=tuple(_digest(digest) for digest in doc["block_sha256"]),
                index=SealedIndex.from_json(doc["index"]) if "index" in doc else None,
            )
        except (ValueError, KeyError, TypeError, ManifestError, binascii.Error) as exc:
            raise DecryptionError(
                "payload", f"the manifest's sealed part is malformed ({exc})"
            ) from None
        if len(secret.block_sha256) != len(secret.blocks):
            raise DecryptionError("payload", "the manifest's sealed part is malformed")
        return secret


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{value!r} is not a size")
    return value


def _digest(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _SHA256_HEX:
        raise ValueError(f"{value!r} is not a SHA-256 digest")
    return value


def sealing_start(header_length: int, offset: int) -> int:
    """Where a sealer that starts at compressed-stream ``offset`` starts in the archive: at
    the age chunk that holds it, or at the archive's start (header first) from offset 0."""
    return age_chunk_start(header_length, offset) if offset else 0


def sealed_part_key(file_key: bytes) -> bytes:
    """The file key of the manifest's sealed part, derived from the archive's: an age file to
    the same recipients like any other, which a key holder who opened the archive opens with
    no second unwrap (a passphrase's scrypt costs ~1 s)."""
    return hkdf(file_key, b"", _SEALED_INFO)[:FILE_KEY_SIZE]


def key_needed() -> DecryptionError:
    """What an encrypted archive opened with no key or passphrase raises."""
    return DecryptionError("no match", "the archive is encrypted: give its key (-i) or passphrase")


def refuse_encrypted(manifest: Manifest | None, what: str) -> None:
    """What cannot read an encrypted archive yet says so, instead of decoding ciphertext."""
    if manifest is not None and manifest.encryption is not None:
        raise UsageError(
            f"{what} of an encrypted archive is not supported yet: list it, extract members "
            "or restore it whole with its key (-i KEY or --passphrase)"
        )


def refuse_plain_with_keys(manifest: Manifest | None, identities: Sequence[Identity]) -> None:
    """A key or passphrase given for an archive that is not encrypted: someone may have put
    a plain archive in its place, which the key would have caught. Refused."""
    if identities and manifest is None:
        raise UsageError("an encrypted stream opens with its manifest: give it (manifest=)")
    if identities and manifest is not None and manifest.encryption is None:
        raise DecryptionError(
            "header",
            "a key or passphrase was given, but this archive is not encrypted (was it "
            "replaced?): unpack it without one if you trust it",
        )


def manifest_mac(file_key: bytes, manifest: Manifest) -> str:
    """HMAC-SHA-256 of the manifest's every key but the MAC itself, as canonical JSON: the
    object as read from its file (every key, known to this version or not), or as made."""
    document = dict(manifest.source if manifest.source is not None else manifest.document())
    document["encryption"] = {**document["encryption"], "mac": ""}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(hkdf(file_key, b"", _MAC_INFO), canonical, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class SealerKeys:
    """What makes an archive's age stream: kept (privately) while its pack is incomplete,
    so a resumed pack seals on with them, never with a nonce used for other bytes."""

    file_key: bytes
    header: bytes
    nonce: bytes


class ArchiveSealer:
    """Encrypts one pack: a fresh file key and payload nonce, the age header first, then
    the compressed stream fed in any pieces.

    A resumed pack's sealer takes the interrupted one's ``keys`` and starts at compressed
    stream ``offset``, with ``primer``, the bytes of its age chunk before that offset (read
    back from the stored ciphertext); its output starts at ``sealed_start`` of the archive.
    """

    def __init__(
        self,
        recipients: Sequence[Recipient],
        keys: SealerKeys | None = None,
        *,
        offset: int = 0,
        primer: bytes = b"",
    ) -> None:
        self._recipients = list(recipients)
        if keys is None:
            file_key, header = new_header(self._recipients)
            keys = SealerKeys(file_key, header, new_nonce())
        self.keys = keys
        self._file_key, self._header = keys.file_key, keys.header
        number = offset // CHUNK
        if len(primer) != offset - number * CHUNK:
            raise ValueError("the primer is the bytes of the age chunk before the offset")
        self._payload = PayloadEncryptor(
            keys.file_key, keys.nonce, first_chunk=number, nonce_written=offset > 0
        )
        if offset and self._payload.pieces(primer):
            raise AssertionError("less than a chunk seals nothing")
        self._started = offset > 0  # the header is out
        self.sealed_start = sealing_start(len(keys.header), offset)
        self._index: SealingOutput | None = None

    @property
    def header_length(self) -> int:
        return len(self._header)

    def sealed_position(self, offset: int) -> int:
        """Where compressed stream ``offset`` lies in the archive (0 for 0: nothing before)."""
        return sealed_offset(len(self._header), offset) if offset else 0

    @property
    def recipient_types(self) -> tuple[str, ...]:
        return tuple(recipient.kind for recipient in self._recipients)

    @property
    def passphrase(self) -> bool:
        """Sealed under a passphrase (then the header's only stanza)."""
        return any(recipient.kind == "scrypt" for recipient in self._recipients)

    def feed(self, data: bytes | memoryview) -> list[bytes]:
        """The archive's next bytes, a sealed 64 KiB chunk a piece (the header first)."""
        sealed = self._payload.pieces(data)
        if self._started:
            return sealed
        self._started = True
        return [self._header, *sealed]

    def finish(self) -> list[bytes]:
        return [*self.feed(b""), self._payload.finish()]

    def index_output(self, out: Output) -> SealingOutput:
        """Where the member index is written: an age file of its own, to the same recipients."""
        self._index = SealingOutput(out, self._recipients)
        return self._index

    def finish_index(self) -> SealedFile:
        """The member index's final age chunk written, once the index is whole."""
        assert self._index is not None, "no index was written through index_output"
        return self._index.finish()

    def seal(self, manifest: Manifest, secret: Secret, index: FileRef | None = None) -> Manifest:
        """``manifest`` (public keys only) with its encryption key: sealed part, the member
        index's file as stored (``index``), then MAC."""
        info = EncryptionInfo(
            recipient_types=self.recipient_types,
            header_length=len(self._header),
            sealed=base64.b64encode(
                encrypt(secret.to_json(), self._recipients, sealed_part_key(self._file_key))
            ).decode(),
            index=index,
        )
        unsigned = replace(manifest, encryption=info)
        return replace(
            unsigned, encryption=replace(info, mac=manifest_mac(self._file_key, unsigned))
        )


@dataclass(frozen=True, slots=True)
class OpenedArchive:
    """An encrypted archive's keys and secret part, once its header opened and its manifest
    authenticated."""

    file_key: bytes
    header_length: int
    secret: Secret
    nonce: bytes | None = None  # the payload's, when the bytes it was opened from held it

    def inner(self, manifest: Manifest) -> Manifest:
        """The manifest of the compressed stream inside (what decoders read): the public
        one with the sealed keys filled in; its chunks still describe the ciphertext."""
        secret = self.secret
        return replace(
            manifest,
            compressed_size=secret.compressed_size,
            sha256=None,
            uncompressed_size=secret.uncompressed_size,
            trailer_offset=secret.trailer_offset,
            blocks=secret.blocks,
            block_sha256=secret.block_sha256,
            encryption=None,
        )

    def decryptor(self) -> ArchiveDecryptor:
        return ArchiveDecryptor(self.file_key, self.header_length)

    def decryptor_from(
        self, chunks: Sequence[ChunkInfo], offset: int
    ) -> tuple[int, int, ArchiveDecryptor]:
        """To decrypt from compressed-stream ``offset`` on (a resumed unpack): the index of
        the chunk to read from, how many bytes of compressed stream the decryptor gives
        before ``offset`` (those of its first age chunk), and the decryptor, which skips the
        bytes of that chunk before its first age chunk."""
        assert self.nonce is not None, "opened from its header alone: no payload nonce"
        number = offset // CHUNK
        sealed = age_chunk_start(self.header_length, offset)
        start = 0
        for chunk in chunks:
            if sealed < start + chunk.size:
                payload = PayloadDecryptor(self.file_key, nonce=self.nonce, first_chunk=number)
                decryptor = ArchiveDecryptor(self.file_key, sealed - start, payload)
                return chunk.index, offset % CHUNK, decryptor
            start += chunk.size
        raise DecryptionError("payload", f"the archive ends before its age chunk {number}")


def open_archive(manifest: Manifest, head: bytes, identities: Sequence[Identity]) -> OpenedArchive:
    """The archive whose stream starts with ``head`` (at least its age header), opened by one
    of ``identities``: DecryptionError if none opens it, or if the manifest was altered."""
    info = manifest.encryption
    assert info is not None, "open_archive is for encrypted archives"
    if len(head) < info.header_length:
        raise DecryptionError("header", "the first chunk is shorter than the age header")
    opened = open_header(head[: info.header_length], identities)
    if opened.header.length != info.header_length:
        raise DecryptionError("header", "the age header is not as long as the manifest says")
    if not hmac.compare_digest(manifest_mac(opened.file_key, manifest), info.mac):
        raise DecryptionError("hmac", "the manifest was altered after the pack (its MAC differs)")
    try:
        sealed = base64.b64decode(info.sealed, validate=True)
    except binascii.Error:
        raise DecryptionError("header", "the manifest's sealed part is not base64") from None
    try:
        plain = decrypt_with_key(sealed, sealed_part_key(opened.file_key))
    except DecryptionError:  # made by version 0.1.0 before this one: its own random key
        plain = decrypt(sealed, identities)
    secret = Secret.from_json(plain)
    nonce = head[info.header_length : info.header_length + NONCE_SIZE]
    return OpenedArchive(
        opened.file_key, info.header_length, secret, nonce if len(nonce) == NONCE_SIZE else None
    )


class ArchiveDecryptor:
    """The archive's stream (age header included) fed in any pieces, its compressed stream
    given back as each age chunk authenticates."""

    def __init__(self, file_key: bytes, skip: int, payload: PayloadDecryptor | None = None) -> None:
        """``skip``: the bytes before the payload (the header), or before ``payload``'s
        first chunk when it starts in mid-payload."""
        self._skip = skip
        self._payload = payload or PayloadDecryptor(file_key)

    def feed(self, data: bytes | memoryview) -> bytes:
        if self._skip:
            view = memoryview(data)
            data, self._skip = view[self._skip :], max(0, self._skip - len(view))
        return self._payload.feed(data)

    def finish(self) -> bytes:
        if self._skip:
            raise DecryptionError("payload", "the archive ends inside its age header")
        return self._payload.finish()
