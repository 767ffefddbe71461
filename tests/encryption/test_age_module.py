"""Our age module's own rules, beyond the test vectors: the STREAM payload fed in any pieces,
cut, altered or reordered anywhere; chunks opened alone (random access) and sealed from a
chunk on (resume); keys, Bech32 and identity files."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming_tar_compressor.encryption import (
    PayloadDecryptor,
    PayloadEncryptor,
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
    X25519Recipient,
    bech32,
    decrypt,
    encrypt,
    new_header,
    open_header,
    read_identities,
    read_recipients,
)
from streaming_tar_compressor.encryption.header import Stanza, encode_header
from streaming_tar_compressor.encryption.stream import (
    CHUNK,
    SEALED_CHUNK,
    open_chunk,
    payload_key,
    plain_offset_to_sealed,
    sealed_size,
)
from streaming_tar_compressor.errors import DecryptionError, UsageError
from tests.encryption.payloads import fed_in_pieces

FILE_KEY, NONCE = bytes(range(16)), bytes(range(16, 32))
sizes = st.sampled_from(
    [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 7]
) | st.integers(0, 3 * CHUNK)


def seal_all(data: bytes, piece: int = 1 << 30) -> bytes:
    encryptor = PayloadEncryptor(FILE_KEY, NONCE)
    parts = [encryptor.feed(data[i : i + piece]) for i in range(0, len(data), piece)]
    return b"".join(parts) + encryptor.finish()


def open_all(payload: bytes, piece: int) -> tuple[bytes, DecryptionError | None]:
    return fed_in_pieces(PayloadDecryptor(FILE_KEY), payload, piece)


@settings(max_examples=60, deadline=None)
@given(size=sizes, piece=st.integers(1, 3 * CHUNK), seal_piece=st.integers(1, 3 * CHUNK))
def test_a_payload_round_trips_in_any_pieces(size: int, piece: int, seal_piece: int) -> None:
    data = os.urandom(size)
    payload = seal_all(data, seal_piece)
    assert len(payload) == sealed_size(size)
    assert payload == seal_all(data)  # the pieces never change the bytes
    assert open_all(payload, piece) == (data, None)


@settings(max_examples=80, deadline=None)
@given(size=sizes, cut=st.floats(0, 1, exclude_max=True), piece=st.integers(1, 2 * CHUNK))
def test_a_payload_cut_anywhere_fails_having_released_only_a_prefix(
    size: int, cut: float, piece: int
) -> None:
    data = os.urandom(size)
    payload = seal_all(data)
    released, error = open_all(payload[: int(len(payload) * cut)], piece)
    assert error is not None
    assert data.startswith(released) and len(released) < max(1, len(data))
    assert len(released) % CHUNK == 0  # only whole chunks that authenticated


@settings(max_examples=80, deadline=None)
@given(size=sizes.filter(bool), where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_a_payload_altered_anywhere_fails_before_the_altered_chunk(
    size: int, where: float, bit: int
) -> None:
    data = os.urandom(size)
    payload = bytearray(seal_all(data))
    position = int(len(payload) * where)
    payload[position] ^= 1 << bit
    released, error = open_all(bytes(payload), 4096)
    assert error is not None
    assert data.startswith(released)
    if position >= 16:  # an altered nonce changes every chunk's key
        assert len(released) <= (position - 16) // SEALED_CHUNK * CHUNK


def test_chunks_swapped_or_data_appended_fail() -> None:
    data = os.urandom(3 * CHUNK + 5)
    payload = seal_all(data)
    first, second = (
        payload[16 : 16 + SEALED_CHUNK],
        payload[16 + SEALED_CHUNK : 16 + 2 * SEALED_CHUNK],
    )
    swapped = payload[:16] + second + first + payload[16 + 2 * SEALED_CHUNK :]
    assert open_all(swapped, 1 << 30)[1] is not None
    released, error = open_all(payload + b"x", 1 << 30)  # the short final chunk grew
    assert error is not None and "chunk 3" in str(error) and released == data[: 3 * CHUNK]
    full = os.urandom(2 * CHUNK)  # its final chunk is a full one
    payload = seal_all(full)
    released, error = open_all(payload + b"x", 1 << 30)
    assert error is not None and "follows the final chunk" in str(error)
    assert released == full  # every chunk authenticated; the extra byte is the error
    assert open_all(payload[:-SEALED_CHUNK], 1 << 30)[1] is not None  # cut at a chunk edge


@settings(max_examples=30, deadline=None)
@given(size=st.integers(1, 4 * CHUNK), offset=st.floats(0, 1, exclude_max=True))
def test_any_chunk_opens_alone_and_sealing_resumes_from_any_chunk(size: int, offset: float) -> None:
    data = os.urandom(size)
    payload = seal_all(data)
    plain_offset = int(size * offset)
    index, start = plain_offset // CHUNK, plain_offset_to_sealed(plain_offset)
    last = (size - 1) // CHUNK
    sealed = payload[start : start + SEALED_CHUNK]
    plain = open_chunk(payload_key(FILE_KEY, NONCE), index, sealed, final=index == last)
    assert plain == data[index * CHUNK : (index + 1) * CHUNK]
    resumed = PayloadEncryptor(FILE_KEY, NONCE, first_chunk=index)
    tail = resumed.feed(data[index * CHUNK :]) + resumed.finish()
    assert tail == payload[start if index else 0 :]  # from chunk 0, the nonce first


def test_headers_round_trip_for_keys_and_passphrases() -> None:
    identity, other = X25519Identity.generate(), X25519Identity.generate()
    file_key, header = new_header([identity.recipient, other.recipient])
    assert open_header(header + b"payload", [other]).file_key == file_key
    assert open_header(header, [identity]).header.length == len(header)
    with pytest.raises(DecryptionError) as caught:
        open_header(header, [X25519Identity.generate()])
    assert caught.value.kind == "no match"
    sealed = encrypt(b"secret", [ScryptRecipient(b"pass", log_n=10)])
    assert decrypt(sealed, [X25519Identity.generate(), ScryptIdentity(b"pass")]) == b"secret"
    with pytest.raises(DecryptionError) as caught:
        decrypt(sealed, [ScryptIdentity(b"wrong")])
    assert caught.value.kind == "no match" and caught.value.exit_code == 14
    with pytest.raises(ValueError, match="passphrase cannot be combined"):
        new_header([ScryptRecipient(b"pass", log_n=10), identity.recipient])


def test_a_stanza_body_of_the_wrong_length_is_a_header_failure_before_any_decryption() -> None:
    identity = X25519Identity.generate()
    stanza = identity.recipient.wrap(bytes(16))
    for body in (stanza.body[:31], stanza.body + b"\0"):
        header = encode_header([Stanza(stanza.arguments, body)], bytes(16))
        with pytest.raises(DecryptionError) as caught:
            open_header(header, [identity])
        assert caught.value.kind == "header"


def test_the_specs_example_key_gives_the_specs_recipient() -> None:
    identity = X25519Identity.parse(
        "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
    )
    assert (
        str(identity.recipient) == "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"
    )
    assert (
        str(identity)
        == "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
    )


@given(hrp=st.sampled_from(["age", "age-secret-key-", "x"]), data=st.binary(max_size=80))
def test_bech32_round_trips(hrp: str, data: bytes) -> None:
    text = bech32.encode(hrp, data)
    assert bech32.decode(text) == (hrp, data)
    assert bech32.decode(text.upper()) == (hrp, data)


@pytest.mark.parametrize(
    "text",
    [
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwJ",  # mixed case
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwk",  # checksum
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwb",  # "b" is not Bech32
        "zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj",  # no separator
    ],
)
def test_a_damaged_recipient_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="not an age"):
        X25519Recipient.parse(text)


def test_identity_and_recipient_files_name_the_bad_line() -> None:
    identity = X25519Identity.generate()
    assert read_identities(f"# created: now\n# public key: x\n\n{identity}\n", "k") == [identity]
    with pytest.raises(UsageError, match="k, line 2"):
        read_identities(f"{identity}\nAGE-SECRET-KEY-1NOTAKEY\n", "k")
    with pytest.raises(UsageError, match="holds no age identity"):
        read_identities("# nothing\n", "k")
    assert read_recipients(f"# mine\n{identity.recipient}\n", "r") == [identity.recipient]
    with pytest.raises(UsageError, match="r, line 1"):
        read_recipients(str(identity), "r")
