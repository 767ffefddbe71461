"""The age v1 header: version line, recipient stanzas, MAC (c2sp.org/age, "Header").

Parsing is strict and canonical, as the spec asks: LF line ends only, base64 without padding
and canonical, stanza bodies wrapped at exactly 64 columns and ending with a shorter line.
Anything else is refused before a key is tried, so a header is either read exactly as its
writer wrote it or not at all (the MAC is computed over the bytes as read).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..core.manifest import MAX_AGE_HEADER
from ..errors import DecryptionError

VERSION_LINE = b"age-encryption.org/v1\n"
_VERSION_PREFIX = b"age-encryption.org/"
_MAC_MARK = b"---"
_COLUMNS = 64
_ARGUMENT = re.compile(rb"[\x21-\x7e]+")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*")
MAX_HEADER = MAX_AGE_HEADER  # a header this long is not one stc or age writes (~100 B each)


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza: its arguments (the first names its type) and its body."""

    arguments: tuple[str, ...]
    body: bytes

    def encoded(self) -> bytes:
        body = b64encode(self.body)
        lines = [body[i : i + _COLUMNS] for i in range(0, len(body), _COLUMNS)]
        if not lines or len(lines[-1]) == _COLUMNS:
            lines.append(b"")  # the body always ends with a line shorter than 64
        arguments = " ".join(self.arguments).encode("ascii")
        return b"-> " + arguments + b"\n" + b"".join(line + b"\n" for line in lines)


@dataclass(frozen=True)
class Header:
    """A parsed header: its stanzas, its MAC, and the bytes the MAC covers."""

    stanzas: tuple[Stanza, ...]
    mac: bytes
    mac_input: bytes
    length: int  # bytes of the header in the file; the payload starts here

    def check_mac(self, file_key: bytes) -> None:
        expected = hmac.new(mac_key(file_key), self.mac_input, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, self.mac):
            raise DecryptionError("hmac", "the age header's MAC does not match: it was altered")


def b64encode(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def b64decode(text: bytes, what: str) -> bytes:
    """Canonical unpadded base64 (RFC 4648 3.5), or a header failure naming ``what``."""
    if not _BASE64.fullmatch(text) or len(text) % 4 == 1:
        raise DecryptionError("header", f"{what} is not unpadded base64")
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise DecryptionError("header", f"{what} is not unpadded base64") from None
    if b64encode(data) != text:
        raise DecryptionError("header", f"{what} is not canonical base64")
    return data


def mac_key(file_key: bytes) -> bytes:
    return hkdf(file_key, b"", b"header")


def hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt, info).derive(key)


def encode_header(stanzas: list[Stanza], file_key: bytes) -> bytes:
    """The whole header for ``stanzas``, MAC included, ending with its LF."""
    if not stanzas:
        raise ValueError("an age header needs at least one stanza")
    covered = VERSION_LINE + b"".join(stanza.encoded() for stanza in stanzas) + _MAC_MARK
    mac = hmac.new(mac_key(file_key), covered, hashlib.sha256).digest()
    return covered + b" " + b64encode(mac) + b"\n"


def parse_header(data: bytes) -> Header:
    """The header at the start of ``data`` (which may go on into the payload). Raises
    DecryptionError("header") for a header that is not exactly canonical v1, or that ends
    before its MAC line (give more bytes: up to MAX_HEADER)."""
    lines = _Lines(data)
    version = lines.next()
    if version != VERSION_LINE:
        if version.startswith(_VERSION_PREFIX):
            raise DecryptionError("header", "not an age v1 file (unsupported version)")
        raise DecryptionError("header", "not an age file (no age-encryption.org/v1 line)")
    stanzas = []
    while True:
        line = lines.next()
        if line.startswith(b"-> "):
            stanzas.append(_stanza(line, lines))
        elif line.startswith(_MAC_MARK):
            break
        else:
            raise DecryptionError("header", "a header line is neither a stanza nor the MAC")
    if not stanzas:
        raise DecryptionError("header", "the age header has no recipient stanza")
    if not line.startswith(b"--- ") or len(line) != 4 + 43 + 1:
        raise DecryptionError("header", "the age header's MAC line is malformed")
    mac = b64decode(line[4:-1], "the header MAC")
    end = lines.position
    return Header(tuple(stanzas), mac, data[: end - len(line) + 3], end)


def _stanza(arguments_line: bytes, lines: _Lines) -> Stanza:
    arguments = arguments_line[3:-1].split(b" ")
    if not all(_ARGUMENT.fullmatch(argument) for argument in arguments):
        raise DecryptionError("header", "a stanza has an empty or invalid argument")
    body = b""
    while True:
        line = lines.next()[:-1]
        if len(line) > _COLUMNS or not _BASE64.fullmatch(line):
            raise DecryptionError("header", "a stanza body line is not base64 of 64 columns")
        body += line
        if len(line) < _COLUMNS:
            break
    decoded = b64decode(body, "a stanza body")
    return Stanza(tuple(argument.decode("ascii") for argument in arguments), decoded)


class _Lines:
    """LF-ended lines of ``data``, each with its LF; a header without its end is refused."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def next(self) -> bytes:
        end = self.data.find(b"\n", self.position, MAX_HEADER)
        if end < 0:
            raise DecryptionError("header", "the age header ends before its MAC line")
        line = self.data[self.position : end + 1]
        self.position = end + 1
        return line
