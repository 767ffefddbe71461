"""age encryption (age-encryption.org/v1) on ``cryptography``'s primitives: the header and
its stanzas (``header``, ``keys``) and the seekable STREAM payload (``stream``).

Our own module rather than pyrage: pyrage is sequential, holds the GIL and hides the file
key, while an archive needs chunks sealed in parallel, opened from any point, and the same
file key again when a pack resumes. Proven by the C2SP CCTV age test vectors and by the
``age`` CLI and pyrage reading what we write and the reverse (tests/encryption).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .header import Header, encode_header, parse_header
from .keys import (
    FILE_KEY_SIZE,
    Identity,
    Recipient,
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
    X25519Recipient,
    read_identities,
    read_recipients,
    unwrap_file_key,
)
from .stream import NONCE_SIZE, PayloadDecryptor, PayloadEncryptor

__all__ = [
    "Header",
    "Identity",
    "OpenedHeader",
    "PayloadDecryptor",
    "PayloadEncryptor",
    "Recipient",
    "ScryptIdentity",
    "ScryptRecipient",
    "X25519Identity",
    "X25519Recipient",
    "decrypt",
    "decrypt_with_key",
    "encrypt",
    "identities_from",
    "keygen_text",
    "looks_like_a_key",
    "new_header",
    "open_header",
    "read_identities",
    "read_recipients",
    "recipients_from",
]

RecipientSpec = str | Recipient
IdentitySpec = str | os.PathLike[str] | Identity


def new_header(
    recipients: Sequence[Recipient], file_key: bytes | None = None
) -> tuple[bytes, bytes]:
    """(file key, header) for a new age file: a fresh random file key unless one is given (a
    resumed pack's, or a test vector's)."""
    if not recipients:
        raise ValueError("an age file needs at least one recipient")
    if any(r.kind == "scrypt" for r in recipients) and len(recipients) > 1:
        raise ValueError("a passphrase cannot be combined with other recipients")
    file_key = os.urandom(FILE_KEY_SIZE) if file_key is None else file_key
    return file_key, encode_header([r.wrap(file_key) for r in recipients], file_key)


@dataclass(frozen=True)
class OpenedHeader:
    file_key: bytes
    header: Header


def open_header(data: bytes, identities: Sequence[Identity]) -> OpenedHeader:
    """The header at the start of ``data`` parsed, its file key unwrapped by one of
    ``identities`` and its MAC checked (DecryptionError naming the step that failed)."""
    header = parse_header(data)
    file_key = unwrap_file_key(header.stanzas, identities)
    header.check_mac(file_key)
    return OpenedHeader(file_key, header)


def new_nonce() -> bytes:
    return os.urandom(NONCE_SIZE)


def encrypt(data: bytes, recipients: Sequence[Recipient], file_key: bytes | None = None) -> bytes:
    """A whole age file of ``data``, held in memory (small files: a manifest's sealed part),
    under a fresh file key unless one is given."""
    file_key, header = new_header(recipients, file_key)
    encryptor = PayloadEncryptor(file_key, new_nonce())
    return header + encryptor.feed(data) + encryptor.finish()


def decrypt(data: bytes, identities: Sequence[Identity]) -> bytes:
    """The plaintext of a whole age file held in memory; DecryptionError if any of it fails."""
    opened = open_header(data, identities)
    return _payload(data, opened.header.length, opened.file_key)


def decrypt_with_key(data: bytes, file_key: bytes) -> bytes:
    """The same, when the file key is known already (no stanza opened: no scrypt paid)."""
    header = parse_header(data)
    header.check_mac(file_key)
    return _payload(data, header.length, file_key)


def _payload(data: bytes, header_length: int, file_key: bytes) -> bytes:
    decryptor = PayloadDecryptor(file_key)
    return decryptor.feed(memoryview(data)[header_length:]) + decryptor.finish()


def recipients_from(
    recipients: Sequence[RecipientSpec] = (), passphrase: str | None = None
) -> list[Recipient]:
    """What an API caller or the CLI names to encrypt to: ``age1…`` strings or recipient
    objects, or one passphrase (alone, as age requires)."""
    if passphrase is not None:
        if recipients:
            raise UsageError("encrypt to recipients or with a passphrase, not both (age's rule)")
        if not passphrase:
            raise UsageError("the passphrase is empty")
        return [ScryptRecipient(passphrase.encode())]
    return [X25519Recipient.parse(r) if isinstance(r, str) else r for r in recipients]


def identities_from(
    identities: Sequence[IdentitySpec] = (), passphrase: str | None = None
) -> list[Identity]:
    """What opens an archive: ``AGE-SECRET-KEY-1…`` strings, identity files (any other string
    or path: what ``age-keygen`` and ``stc keygen`` write), identity objects, a passphrase."""
    opened: list[Identity] = []
    for item in identities:
        if isinstance(item, str) and looks_like_a_key(item):
            opened.append(X25519Identity.parse(item.strip()))  # its errors never echo it
        elif isinstance(item, (str, os.PathLike)):
            try:
                text = Path(item).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(
                    f"cannot read the identity file {os.fspath(item)!r}: {exc}"
                ) from None
            opened.extend(read_identities(text, os.fspath(item)))
        else:
            opened.append(item)
    if passphrase is not None:
        opened.append(ScryptIdentity(passphrase.encode()))
    return opened


def looks_like_a_key(text: str) -> bool:
    """An ``AGE-SECRET-KEY-…`` string (any case, any blanks around): never a file name, and
    never repeated in a message."""
    return text.strip().upper().startswith("AGE-SECRET-KEY-")


def keygen_text(identity: X25519Identity, created: str) -> str:
    """An identity file as ``age-keygen`` writes it (both tools read the other's)."""
    return f"# created: {created}\n# public key: {identity.recipient}\n{identity}\n"
