"""The C2SP CCTV age test vectors (testkit/README.md says where they come from), run through
our age module: every vector's expected outcome and released-plaintext hash, the header
encoded again byte for byte, and every success vector's payload sealed again byte for byte
from its file key and nonce (the STREAM encryption direction)."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streaming_tar_compressor.encryption import (
    PayloadDecryptor,
    PayloadEncryptor,
    ScryptIdentity,
    X25519Identity,
    open_header,
)
from streaming_tar_compressor.encryption.header import encode_header, parse_header
from streaming_tar_compressor.errors import DecryptionError, UsageError
from tests.encryption.payloads import fed_in_pieces

TESTKIT = Path(__file__).parent / "testkit"


@dataclass
class Vector:
    name: str
    expect: str
    body: bytes
    payload_sha256: str | None = None
    identities: list[str] = field(default_factory=list)
    passphrases: list[str] = field(default_factory=list)
    armored: bool = False
    file_key: bytes | None = None


def load(path: Path) -> Vector:
    raw = path.read_bytes()
    head, _, body = raw.partition(b"\n\n")
    vector = Vector(path.name, "", body)
    compressed = False
    for line in head.decode().splitlines():
        key, _, value = line.partition(": ")
        if key == "expect":
            vector.expect = value
        elif key == "payload":
            vector.payload_sha256 = value
        elif key == "identity":
            vector.identities.append(value)
        elif key == "passphrase":
            vector.passphrases.append(value)
        elif key == "armored":
            vector.armored = value == "yes"
        elif key == "compressed":
            compressed = value == "zlib"
        elif key == "file key":
            vector.file_key = bytes.fromhex(value)
    if compressed:
        vector.body = zlib.decompress(body)
    return vector


VECTORS = sorted(
    (load(p) for p in TESTKIT.iterdir() if p.name != "README.md"), key=lambda v: v.name
)
# What stc supports: binary age files to X25519 identities and passphrases. The armored and
# post-quantum (hybrid, AGE-SECRET-KEY-PQ-1…) vectors test that they are refused instead.
SUPPORTED = [
    v
    for v in VECTORS
    if not v.armored and all(i.startswith("AGE-SECRET-KEY-1") for i in v.identities)
]
ARMORED = [v for v in VECTORS if v.armored]
POST_QUANTUM = [v for v in VECTORS if v not in SUPPORTED and v not in ARMORED]


def test_the_testkit_is_all_there() -> None:
    assert len(VECTORS) == 143
    assert (len(SUPPORTED), len(ARMORED), len(POST_QUANTUM)) == (92, 33, 18)
    assert {v.expect for v in SUPPORTED} == {
        "success",
        "no match",
        "HMAC failure",
        "header failure",
        "payload failure",
    }


KINDS = {"no match": "no match", "HMAC failure": "hmac", "header failure": "header"}


def decrypt(vector: Vector, piece: int) -> tuple[bytes, DecryptionError | None]:
    """What our reader releases, fed ``piece`` bytes at a time, and the error it ends with."""
    identities = [X25519Identity.parse(i) for i in vector.identities]
    identities += [ScryptIdentity(p.encode()) for p in vector.passphrases]
    try:
        opened = open_header(vector.body, identities)
    except DecryptionError as error:
        return b"", error
    payload = vector.body[opened.header.length :]
    return fed_in_pieces(PayloadDecryptor(opened.file_key), payload, piece)


@pytest.mark.parametrize("piece", [1 << 30, 4099])
@pytest.mark.parametrize("vector", SUPPORTED, ids=lambda v: v.name)
def test_a_vector_decrypts_as_expected(vector: Vector, piece: int) -> None:
    released, error = decrypt(vector, piece)
    if vector.expect == "success":
        assert error is None, f"{vector.name}: {error}"
    elif vector.expect == "payload failure":
        assert error is not None and error.kind == "payload", f"{vector.name}: {error}"
    else:
        assert error is not None and error.kind == KINDS[vector.expect], f"{vector.name}: {error}"
        assert released == b""
    if vector.payload_sha256 is not None:
        assert hashlib.sha256(released).hexdigest() == vector.payload_sha256


@pytest.mark.parametrize(
    "vector", [v for v in SUPPORTED if v.expect != "header failure"], ids=lambda v: v.name
)
def test_a_header_encodes_again_byte_for_byte(vector: Vector) -> None:
    header = parse_header(vector.body)
    assert vector.file_key is not None
    assert encode_header(list(header.stanzas), vector.file_key) == vector.body[: header.length] or (
        vector.expect == "HMAC failure"  # its MAC is the altered part
    )
    assert encode_header(list(header.stanzas), vector.file_key)[: len(header.mac_input)] == (
        header.mac_input
    )


@pytest.mark.parametrize(
    "vector", [v for v in SUPPORTED if v.expect == "success"], ids=lambda v: v.name
)
def test_a_payload_seals_again_byte_for_byte(vector: Vector) -> None:
    released, _ = decrypt(vector, 1 << 30)
    assert vector.file_key is not None
    header = parse_header(vector.body)
    payload = vector.body[header.length :]
    encryptor = PayloadEncryptor(vector.file_key, payload[:16])
    sealed = b"".join(
        encryptor.feed(released[i : i + 10_000]) for i in range(0, len(released), 10_000)
    )
    assert sealed + encryptor.finish() == payload


@pytest.mark.parametrize("vector", ARMORED, ids=lambda v: v.name)
def test_an_armored_file_is_refused_as_not_binary_age(vector: Vector) -> None:
    with pytest.raises(DecryptionError) as caught:
        open_header(vector.body, [ScryptIdentity(b"unused")])
    assert caught.value.kind == "header"


@pytest.mark.parametrize("vector", POST_QUANTUM, ids=lambda v: v.name)
def test_a_post_quantum_identity_is_refused_as_unsupported(vector: Vector) -> None:
    pq = [i for i in vector.identities if not i.startswith("AGE-SECRET-KEY-1")]
    with pytest.raises(UsageError, match="X25519 identity"):
        X25519Identity.parse(pq[0])
