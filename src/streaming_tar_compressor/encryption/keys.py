"""age recipients and identities: X25519 keys (``age1…`` / ``AGE-SECRET-KEY-1…``) and
passphrases (the scrypt stanza), each wrapping or unwrapping the file key in one stanza.

An identity ignores stanzas of other types, refuses a malformed stanza of its own type (a
header failure), and reports a stanza it cannot open as not addressed to it: the caller
tries the next one, then says "no match".
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import DecryptionError, UsageError
from . import bech32
from .header import Stanza, b64decode, b64encode, hkdf

FILE_KEY_SIZE = 16
T = TypeVar("T")
_ZERO_NONCE = bytes(12)
_X25519_INFO = b"age-encryption.org/v1/X25519"
_SCRYPT_SALT_LABEL = b"age-encryption.org/v1/scrypt"
_SECRET_HRP = "age-secret-key-"
_PUBLIC_HRP = "age"
SCRYPT_LOG_N = 18  # age's own default: about a second, 256 MiB
MAX_SCRYPT_LOG_N = 22  # what age accepts when decrypting (4 GiB, tens of seconds)
_DECIMAL = re.compile(r"[1-9][0-9]*")


class Recipient(Protocol):
    """Wraps a file key for one reader."""

    @property
    def kind(self) -> str:
        """The stanza type, as the public manifest lists it."""

    def wrap(self, file_key: bytes) -> Stanza: ...


class Identity(Protocol):
    """Unwraps a file key from the stanzas addressed to it."""

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None: ...


@dataclass(frozen=True)
class X25519Recipient:
    public_key: bytes
    kind: str = field(default="X25519", init=False)

    @classmethod
    def parse(cls, text: str) -> X25519Recipient:
        try:
            hrp, data = bech32.decode(text)
        except ValueError as exc:
            raise UsageError(f"not an age recipient ({exc}): {text!r}") from None
        if hrp != _PUBLIC_HRP or len(data) != 32 or text != text.lower():
            raise UsageError(f"not an age X25519 recipient (age1…): {text!r}")
        return cls(data)

    def __str__(self) -> str:
        return bech32.encode(_PUBLIC_HRP, self.public_key)

    def wrap(self, file_key: bytes) -> Stanza:
        ephemeral = X25519PrivateKey.generate()  # from the OS's CSPRNG
        share = ephemeral.public_key().public_bytes_raw()
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(self.public_key))
        wrap_key = hkdf(shared, share + self.public_key, _X25519_INFO)
        body = ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)
        return Stanza(("X25519", b64encode(share).decode("ascii")), body)


@dataclass(frozen=True)
class X25519Identity:
    secret_key: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> X25519Identity:
        return cls(X25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def parse(cls, text: str) -> X25519Identity:
        try:
            hrp, data = bech32.decode(text)
        except ValueError:
            raise UsageError("not an age identity (AGE-SECRET-KEY-1…): bad Bech32") from None
        if hrp != _SECRET_HRP or len(data) != 32 or text != text.upper():
            raise UsageError("not an age X25519 identity (AGE-SECRET-KEY-1…)")
        return cls(data)

    def __str__(self) -> str:
        return bech32.encode(_SECRET_HRP, self.secret_key).upper()

    @property
    def recipient(self) -> X25519Recipient:
        key = X25519PrivateKey.from_private_bytes(self.secret_key)
        return X25519Recipient(key.public_key().public_bytes_raw())

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        private = X25519PrivateKey.from_private_bytes(self.secret_key)
        ours = private.public_key().public_bytes_raw()
        for stanza in stanzas:
            if stanza.arguments[0] != "X25519":
                continue
            if len(stanza.arguments) != 2:
                raise DecryptionError("header", "an X25519 stanza needs exactly one argument")
            share = b64decode(stanza.arguments[1].encode("ascii"), "an X25519 share")
            if len(share) != 32:
                raise DecryptionError("header", "an X25519 share is not 32 bytes")
            _check_body(stanza)
            try:  # cryptography refuses the all-zero secret of a low-order share itself
                shared = private.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError:
                shared = bytes(32)
            if shared == bytes(32):
                raise DecryptionError("header", "an X25519 share gives the all-zero secret")
            wrap_key = hkdf(shared, share + ours, _X25519_INFO)
            file_key = _open(wrap_key, stanza.body)
            if file_key is not None:
                return file_key
        return None


@dataclass(frozen=True)
class ScryptRecipient:
    """A passphrase. Its stanza must be the header's only one (the spec's rule: a passphrase
    implies that whoever knows it wrote the file)."""

    passphrase: bytes = field(repr=False)
    log_n: int = SCRYPT_LOG_N
    kind: str = field(default="scrypt", init=False)

    def wrap(self, file_key: bytes) -> Stanza:
        salt = os.urandom(16)
        body = ChaCha20Poly1305(_scrypt(self.passphrase, salt, self.log_n)).encrypt(
            _ZERO_NONCE, file_key, None
        )
        return Stanza(("scrypt", b64encode(salt).decode("ascii"), str(self.log_n)), body)


@dataclass(frozen=True)
class ScryptIdentity:
    passphrase: bytes = field(repr=False)
    max_log_n: int = MAX_SCRYPT_LOG_N

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.arguments[0] != "scrypt":
                continue
            if len(stanzas) != 1:
                raise DecryptionError("header", "a passphrase stanza must be the only stanza")
            if len(stanza.arguments) != 3:
                raise DecryptionError("header", "a scrypt stanza needs exactly two arguments")
            salt = b64decode(stanza.arguments[1].encode("ascii"), "a scrypt salt")
            if len(salt) != 16:
                raise DecryptionError("header", "a scrypt salt is not 16 bytes")
            if not _DECIMAL.fullmatch(stanza.arguments[2]):
                raise DecryptionError("header", "a scrypt work factor is not a plain number")
            log_n = int(stanza.arguments[2])
            if log_n > self.max_log_n:
                raise DecryptionError(
                    "header", f"the scrypt work factor 2^{log_n} is above 2^{self.max_log_n}"
                )
            _check_body(stanza)
            return _open(_scrypt(self.passphrase, salt, log_n), stanza.body)
        return None


def _scrypt(passphrase: bytes, salt: bytes, log_n: int) -> bytes:
    """cryptography's scrypt: hashlib's caps its memory below 2 GiB (work factor 2^20)."""
    return Scrypt(_SCRYPT_SALT_LABEL + salt, 32, 1 << log_n, 8, 1).derive(passphrase)


def _check_body(stanza: Stanza) -> None:
    """Checked before any decryption, as the spec requires (partitioning oracles)."""
    if len(stanza.body) != 32:
        raise DecryptionError("header", f"a {stanza.arguments[0]} stanza body is not 32 bytes")


def _open(wrap_key: bytes, body: bytes) -> bytes | None:
    try:
        return ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


def unwrap_file_key(stanzas: Sequence[Stanza], identities: Sequence[Identity]) -> bytes:
    """The file key from the first identity that opens a stanza; DecryptionError("no match")
    when none does."""
    if len(stanzas) > 1 and any(stanza.arguments[0] == "scrypt" for stanza in stanzas):
        raise DecryptionError("header", "a passphrase stanza must be the only stanza")
    if not identities:
        raise DecryptionError("no match", "the archive is encrypted; give a key (-i) or passphrase")
    for identity in identities:
        file_key = identity.unwrap(stanzas)
        if file_key is not None:
            if len(file_key) != FILE_KEY_SIZE:
                raise DecryptionError("header", "a stanza wraps a file key of the wrong size")
            return file_key
    raise DecryptionError("no match", "none of the keys or passphrases given opens the archive")


def read_identities(text: str, source: str) -> list[X25519Identity]:
    """The identities of an identity file as ``age-keygen`` writes it: one key a line, ``#``
    comments and blank lines skipped; anything else is refused, naming its line."""
    identities = _key_lines(text, source, X25519Identity.parse)
    if not identities:
        raise UsageError(f"{source} holds no age identity")
    return identities


def read_recipients(text: str, source: str) -> list[X25519Recipient]:
    """The recipients of a recipients file (``age -R``): one ``age1…`` a line, ``#`` comments
    and blank lines skipped."""
    return _key_lines(text, source, X25519Recipient.parse)


def _key_lines(text: str, source: str, parse: Callable[[str], T]) -> list[T]:
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            keys.append(parse(line))
        except UsageError as exc:
            raise UsageError(f"{source}, line {number}: {exc}") from None
    return keys
