"""Our age files read by the age CLI (Debian's `age`) and by pyrage (rage's binding), and
theirs read by us: both directions, X25519 keys and passphrases, sizes around the 64 KiB
chunk boundary."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pyrage
import pytest

from streaming_tar_compressor.encryption import (
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
    X25519Recipient,
    decrypt,
    encrypt,
    read_identities,
)
from tests.helpers import tool

SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, 200_001]


def payload(size: int) -> bytes:
    return os.urandom(size)


@pytest.mark.parametrize("size", SIZES)
def test_the_age_cli_decrypts_what_we_encrypt(tmp_path: Path, size: int) -> None:
    identity = X25519Identity.generate()
    (tmp_path / "key.txt").write_text(f"# a comment\n{identity}\n")
    data = payload(size)
    (tmp_path / "file.age").write_bytes(encrypt(data, [identity.recipient]))
    out = subprocess.run(
        [tool("age"), "-d", "-i", str(tmp_path / "key.txt"), str(tmp_path / "file.age")],
        capture_output=True,
        check=True,
    )
    assert out.stdout == data


@pytest.mark.parametrize("size", SIZES)
def test_we_decrypt_what_the_age_cli_encrypts_with_its_own_keys(tmp_path: Path, size: int) -> None:
    subprocess.run(
        [tool("age-keygen"), "-o", str(tmp_path / "key.txt")], check=True, capture_output=True
    )
    identities = read_identities((tmp_path / "key.txt").read_text(), "key.txt")
    (tmp_path / "plain").write_bytes(data := payload(size))
    other = X25519Identity.generate()  # two recipients: either key opens it
    subprocess.run(
        [
            tool("age"),
            "-r",
            str(identities[0].recipient),
            "-r",
            str(other.recipient),
            "-o",
            str(tmp_path / "file.age"),
            str(tmp_path / "plain"),
        ],
        check=True,
    )
    sealed = (tmp_path / "file.age").read_bytes()
    assert decrypt(sealed, identities) == data
    assert decrypt(sealed, [other]) == data


def test_a_recipient_printed_by_age_keygen_is_the_one_we_derive(tmp_path: Path) -> None:
    out = subprocess.run(
        [tool("age-keygen"), "-o", str(tmp_path / "key.txt")],
        check=True,
        capture_output=True,
        text=True,
    )
    identity = read_identities((tmp_path / "key.txt").read_text(), "key.txt")[0]
    assert f"Public key: {identity.recipient}" in out.stderr
    assert str(X25519Recipient.parse(str(identity.recipient))) == str(identity.recipient)


@pytest.mark.parametrize("size", SIZES)
def test_pyrage_reads_ours_and_we_read_pyrages(size: int) -> None:
    data = payload(size)
    identity = X25519Identity.generate()
    theirs = pyrage.x25519.Identity.from_str(str(identity))
    assert pyrage.decrypt(encrypt(data, [identity.recipient]), [theirs]) == data
    assert decrypt(pyrage.encrypt(data, [theirs.to_public()]), [identity]) == data


@pytest.mark.parametrize("size", [0, 65536, 100_000])
def test_passphrases_both_ways_with_pyrage(size: int) -> None:
    data = payload(size)
    ours = encrypt(data, [ScryptRecipient(b"correct horse", log_n=12)])
    assert pyrage.passphrase.decrypt(ours, "correct horse") == data
    assert (
        decrypt(
            pyrage.passphrase.encrypt(data, "battery staple"), [ScryptIdentity(b"battery staple")]
        )
        == data
    )
