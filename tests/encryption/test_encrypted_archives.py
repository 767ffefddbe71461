"""Encrypted archives end to end: packed to age recipients or a passphrase, restored by stc
and by `age -d | tar -x`; the public manifest hides the stream's structure and is
authenticated; no key, a wrong key, an edited manifest, damaged, swapped or missing parts
are each a clear error, and no unverified file is left looking complete."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pyrage
import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.encryption import ScryptIdentity, ScryptRecipient
from streaming_tar_compressor.encryption import archive as archive_module
from streaming_tar_compressor.encryption import keys as keys_module
from tests.helpers import snapshot, tool

CODECS = ["gzip", "zstd", "xz", "bzip2", "lz4", "none"]


@pytest.fixture
def tree(make_tree):
    return make_tree(
        {
            **{f"d{i}/f{j}": os.urandom(j * 997) for i in range(3) for j in range(40)},
            "big": os.urandom(700_000),
            "text": b"abc\n" * 50_000,
        }
    )


def sealed_zstd(tree: Path, prefix: Path, identity: stc.X25519Identity) -> stc.PackResult:
    """The archive most tests here start from: zstd, 100 kB chunks, sealed to ``identity``."""
    return stc.pack(
        tree, prefix, compression="zstd", chunk_size=100_000, recipients=[identity.recipient]
    )


def restored(out: Path, tree: Path) -> Path:
    return out / tree.relative_to("/")


@pytest.mark.parametrize("codec", CODECS)
def test_an_encrypted_archive_round_trips_and_any_recipient_opens_it(tree, tmp_path, codec) -> None:
    mine, theirs = stc.X25519Identity.generate(), stc.X25519Identity.generate()
    result = stc.pack(
        tree,
        tmp_path / "a",
        compression=codec,
        chunk_size=200_000,
        block_size=100_000,
        recipients=[str(mine.recipient), theirs.recipient],
    )
    assert result.manifest.total_chunks > 3
    done = stc.unpack(tmp_path / "a", tmp_path / "out", identities=[theirs])
    assert done.verified and snapshot(restored(tmp_path / "out", tree)) == snapshot(tree)
    report = stc.verify(tmp_path / "a", identities=[str(mine)], deep=True)
    stc.pack(tree, tmp_path / "plain", compression=codec, chunk_size=200_000, block_size=100_000)
    plain = stc.verify(tmp_path / "plain", deep=True)
    assert report.ok and report.members_checked == plain.members_checked > 122
    assert report.blocks_checked == plain.blocks_checked > 3


@pytest.mark.parametrize("codec", CODECS)
def test_a_passphrase_archive_round_trips_for_every_codec(tree, tmp_path, codec) -> None:
    """With a low scrypt work factor (2^10, what the API's ``passphrase=`` does at 2^18):
    the same stanza, seconds fewer."""
    secret = b"correct horse battery"
    stc.pack(
        tree,
        tmp_path / "a",
        compression=codec,
        chunk_size=200_000,
        block_size=100_000,
        recipients=[ScryptRecipient(secret, log_n=10)],
    )
    header = (tmp_path / "a.part0000").read_bytes()[:200]
    assert b"\n-> scrypt " in header and b"X25519" not in header
    stc.unpack(tmp_path / "a", tmp_path / "out", identities=[ScryptIdentity(secret)])
    assert snapshot(restored(tmp_path / "out", tree)) == snapshot(tree)
    with pytest.raises(stc.DecryptionError):
        stc.verify(tmp_path / "a", identities=[ScryptIdentity(b"wrong")])


def test_the_public_manifest_shows_no_structure_and_no_key(tree, tmp_path) -> None:
    identity = stc.X25519Identity.generate()
    sealed_zstd(tree, tmp_path / "a", identity)
    text = (tmp_path / "a.manifest.json").read_text()
    document = json.loads(text)
    assert document["blocks"] == [] and "block_sha256" not in document and "index" not in document
    assert document["uncompressed_size"] is None and document["trailer_offset"] is None
    assert document["encryption"]["recipient_types"] == ["X25519"]
    assert str(identity.recipient) not in text and str(identity) not in text
    # The member index is an age file of its own; in public only its size and digest.
    index = (tmp_path / "a.index").read_bytes()
    assert index.startswith(b"age-encryption.org/v1\n-> X25519 ") and b"f39" not in index
    stored = document["encryption"]["index"]
    assert stored == {
        "name": "a.index",
        "size": len(index),
        "sha256": hashlib.sha256(index).hexdigest(),
    }
    joined = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("a.part*")))
    assert joined.startswith(b"age-encryption.org/v1\n-> X25519 ")
    assert document["compressed_size"] == len(joined)
    # Without a key: the ciphertext's digests, as sha256sum checks them.
    assert stc.verify(tmp_path / "a").ok
    done = subprocess.run([tool("sha256sum"), "-c", "a.sha256"], cwd=tmp_path, capture_output=True)
    assert done.returncode == 0


@pytest.mark.parametrize("codec", ["gzip", "zstd", "xz", "bzip2", "none"])
def test_age_and_tar_alone_restore_it_with_the_printed_recipe(tree, tmp_path, codec) -> None:
    identity = stc.X25519Identity.generate()
    (tmp_path / "key.txt").write_text(f"{identity}\n")
    packed = stc.pack(
        tree, tmp_path / "a", compression=codec, chunk_size=150_000, recipients=[identity.recipient]
    )
    recipe = packed.manifest.restore_command
    assert recipe.startswith("set -o pipefail; cat a.part* | age -d -i key.txt | tar")
    (tmp_path / "tar-out").mkdir()
    for needed in ("age", "tar"):
        tool(needed)  # the recipe runs them from PATH
    subprocess.run(["bash", "-c", f"{recipe} -C tar-out"], cwd=tmp_path, check=True)
    assert snapshot(restored(tmp_path / "tar-out", tree)) == snapshot(tree)


def test_a_passphrase_opens_what_it_sealed_and_age_reads_the_format(tree, tmp_path) -> None:
    stc.pack(tree, tmp_path / "a", compression="gzip", passphrase="correct horse")
    with pytest.raises(stc.DecryptionError) as caught:
        stc.unpack(tmp_path / "a", tmp_path / "wrong", passphrase="battery staple")
    assert caught.value.kind == "no match" and not (tmp_path / "wrong").exists()
    stc.unpack(tmp_path / "a", tmp_path / "out", passphrase="correct horse")
    assert snapshot(restored(tmp_path / "out", tree)) == snapshot(tree)
    head = (tmp_path / "a.part0000").read_bytes()[:200]
    assert b"-> scrypt " in head and head.count(b"-> ") == 1  # alone, as age requires


def test_no_key_or_a_wrong_key_is_exit_14_before_anything_is_written(
    tree, tmp_path, capsys
) -> None:
    identity = stc.X25519Identity.generate()
    stc.pack(tree, tmp_path / "a", compression="zstd", recipients=[identity.recipient])
    assert main(["unpack", str(tmp_path / "a"), "-C", str(tmp_path / "out")]) == 14
    assert "encrypted: give its key (-i) or passphrase" in capsys.readouterr().err
    (tmp_path / "other.txt").write_text(f"{stc.X25519Identity.generate()}\n")
    assert (
        main(
            [
                "unpack",
                str(tmp_path / "a"),
                "-C",
                str(tmp_path / "out"),
                "-i",
                str(tmp_path / "other.txt"),
            ]
        )
        == 14
    )
    assert "none of the keys" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert main(["verify", str(tmp_path / "a"), "--deep"]) == 14


@pytest.mark.parametrize("edit", ["created", "level", "recipient_types", "sealed"])
def test_an_edited_manifest_is_refused_by_its_mac(tree, tmp_path, edit) -> None:
    identity = stc.X25519Identity.generate()
    sealed_zstd(tree, tmp_path / "a", identity)
    other = stc.X25519Identity.generate()
    sealed_zstd(tree, tmp_path / "b", identity)
    path = tmp_path / "a.manifest.json"
    document = json.loads(path.read_text())
    if edit == "created":
        document["created"] = "2020-01-01T00:00:00Z"
    elif edit == "level":
        document["level"] += 1
    elif edit == "recipient_types":
        document["encryption"]["recipient_types"] = ["X25519", str(other.recipient)]
    else:  # another archive's sealed part, to the same key
        document["encryption"]["sealed"] = json.loads((tmp_path / "b.manifest.json").read_text())[
            "encryption"
        ]["sealed"]
    path.write_text(json.dumps(document))
    with pytest.raises(stc.DecryptionError) as caught:
        stc.unpack(tmp_path / "a", tmp_path / "out", identities=[identity])
    assert caught.value.kind == "hmac" and "manifest was altered" in str(caught.value)


@pytest.mark.parametrize("damage", ["flip", "flip-end", "swap", "drop-last", "truncate-last"])
def test_damaged_swapped_or_missing_parts_stop_the_unpack_leaving_only_verified_files(
    tree, tmp_path, damage
) -> None:
    identity = stc.X25519Identity.generate()
    packed = stc.pack(
        tree,
        tmp_path / "a",
        compression="zstd",
        chunk_size=100_000,
        block_size=65536,
        recipients=[identity.recipient],
    )
    parts = [tmp_path / c.name for c in packed.manifest.chunks]
    if damage == "flip":
        data = bytearray(parts[3].read_bytes())
        data[500] ^= 1
        parts[3].write_bytes(bytes(data))
    elif damage == "flip-end":  # decryption lags the chunk sizes: still this chunk is named
        data = bytearray(parts[2].read_bytes())
        data[-3] ^= 1
        parts[2].write_bytes(bytes(data))
    elif damage == "swap":
        first, second = parts[2].read_bytes(), parts[3].read_bytes()
        parts[2].write_bytes(second)
        parts[3].write_bytes(first)
    elif damage == "drop-last":
        parts[-1].unlink()
    else:
        parts[-1].write_bytes(parts[-1].read_bytes()[:-1])
    with pytest.raises((stc.ChecksumMismatchError, stc.MissingChunkError)) as caught:
        stc.unpack(tmp_path / "a", tmp_path / "out", identities=[identity])
    if damage.startswith("flip"):
        assert parts[3 if damage == "flip" else 2].name in str(caught.value)
    made = restored(tmp_path / "out", tree)
    for path in made.rglob("*") if made.exists() else ():
        assert not path.name.startswith(".stc-"), "a temporary file was left"
        if path.is_file():
            assert path.read_bytes() == (tree / path.relative_to(made)).read_bytes()
    report = stc.verify(tmp_path / "a", identities=[identity])
    assert not report.ok


def test_the_cli_makes_keys_packs_to_them_and_restores(tree, tmp_path, capsys, monkeypatch) -> None:
    key = tmp_path / "key.txt"
    assert main(["keygen", "-o", str(key)]) == 0
    recipient = capsys.readouterr().out.strip().splitlines()[-1]
    assert recipient.startswith("age1") and key.stat().st_mode & 0o777 == 0o600
    assert main(["keygen", "-o", str(key)]) == 10  # never over an existing key
    assert main(["pack", str(tree), "-o", str(tmp_path / "s"), "-r", recipient]) == 0
    said = capsys.readouterr().out
    assert "packed into " in said and "(gzip, encrypted with age)" in said and "0 B" not in said
    (tmp_path / "recipients").write_text(f"# ours\n{recipient}\n")
    assert (
        main(
            [
                "pack",
                str(tree),
                "-o",
                str(tmp_path / "a"),
                "-c",
                "zstd",
                "-R",
                str(tmp_path / "recipients"),
                "-q",
            ]
        )
        == 0
    )
    assert main(["verify", str(tmp_path / "a"), "-i", str(key), "--deep", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert (
        main(["unpack", str(tmp_path / "a"), "-C", str(tmp_path / "out"), "-i", str(key), "-q"])
        == 0
    )
    assert snapshot(restored(tmp_path / "out", tree)) == snapshot(tree)
    (tmp_path / "pass").write_text("s3cret\n")
    monkeypatch.setenv("STC_PASSPHRASE_FILE", str(tmp_path / "pass"))
    assert main(["pack", str(tree), "-o", str(tmp_path / "p"), "--passphrase", "-q"]) == 0
    assert (
        main(["unpack", str(tmp_path / "p"), "-C", str(tmp_path / "pout"), "--passphrase", "-q"])
        == 0
    )
    assert snapshot(restored(tmp_path / "pout", tree)) == snapshot(tree)
    assert (
        main(["pack", str(tree), "-o", str(tmp_path / "x"), "--passphrase", "-r", recipient]) == 2
    )


def test_what_an_encrypted_archive_cannot_do_yet_is_refused_up_front(tree, tmp_path) -> None:
    identity = stc.X25519Identity.generate()
    stc.pack(tree, tmp_path / "a", recipients=[identity.recipient])
    with pytest.raises(stc.UsageError, match="encrypted"):
        stc.rebuild_index(tmp_path / "a")


def test_info_says_encrypted_and_readers_without_a_key_refuse_clearly(
    tree, tmp_path, capsys
) -> None:
    identity = stc.X25519Identity.generate()
    stc.pack(
        tree,
        tmp_path / "a",
        recipients=[identity.recipient, stc.X25519Identity.generate().recipient],
    )
    assert main(["info", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "encrypted:    age, 2 recipients (X25519)" in out
    assert "restore:      set -o pipefail; cat a.part* | age -d -i key.txt | tar -z -xf -" in out
    assert main(["index", str(tmp_path / "a")]) == 2
    assert "encrypted archive is not supported yet" in capsys.readouterr().err
    for command in (
        ["list"],
        ["unpack", "x", "-C", str(tmp_path / "o")],
        ["cat", "x"],
        ["diff", str(tree)],
    ):
        assert main([command[0], str(tmp_path / "a"), *command[1:]]) == 14, command
        assert "give its key" in capsys.readouterr().err


def test_list_and_extract_members_of_an_encrypted_archive_with_its_key(
    tree, tmp_path, capsys
) -> None:
    identity = stc.X25519Identity.generate()
    (tmp_path / "key.txt").write_text(f"{identity}\n")
    sealed_zstd(tree, tmp_path / "a", identity)
    stc.pack(tree, tmp_path / "plain", compression="zstd")
    names = [m.name for m in stc.list_members(tmp_path / "a", identities=[identity])]
    assert names == [m.name for m in stc.list_members(tmp_path / "plain")] and len(names) > 120
    wanted = names[-1]  # the last member: every chunk is read and authenticated before it
    assert main(["list", str(tmp_path / "a"), wanted, "-i", str(tmp_path / "key.txt")]) == 0
    assert capsys.readouterr().out.strip().endswith(wanted)
    key = ["-i", str(tmp_path / "key.txt")]
    assert main(["unpack", str(tmp_path / "a"), "-C", str(tmp_path / "o"), wanted, "-q", *key]) == 0
    made = [p for p in (tmp_path / "o").rglob("*") if p.is_file()]
    assert [p.relative_to(tmp_path / "o").as_posix() for p in made] == [wanted]
    assert made[0].read_bytes() == (Path("/") / wanted).read_bytes()
    with pytest.raises(stc.DecryptionError, match="not encrypted"):
        list(stc.list_members(tmp_path / "plain", identities=[identity]))


def test_an_archive_of_tiny_chunks_opens_its_header_across_them(tmp_path) -> None:
    identity = stc.X25519Identity.generate()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"data" * 100)
    stc.pack(tmp_path / "src", tmp_path / "a", chunk_size=64, recipients=[identity.recipient])
    assert stc.verify(tmp_path / "a", identities=[identity], deep=True).ok
    stc.unpack(tmp_path / "a", tmp_path / "out", identities=[identity])
    assert (
        tmp_path / "out" / (tmp_path / "src" / "f").relative_to("/")
    ).read_bytes() == b"data" * 100


def test_chunk_names_leave_room_for_the_age_overhead(tmp_path, monkeypatch) -> None:
    """The tar stream of this file, named "f", is at most 59,906 bytes: in 6-byte chunks,
    9,985 of them (4 digits); sealed, ~200 bytes more: 10,018 (5 digits, or ``cat`` would
    not join them in order)."""
    monkeypatch.chdir(tmp_path)  # the bound grows with the name
    Path("f").write_bytes(b"x" * 37208)
    plain = stc.iter_chunks("f", compression="none", chunk_size=6)
    sealed = stc.iter_chunks(
        "f",
        compression="none",
        chunk_size=6,
        recipients=[stc.X25519Identity.generate().recipient],
    )
    for stream in (plain, sealed):
        for _ in stream:
            pass
    assert plain.manifest is not None and sealed.manifest is not None
    assert plain.manifest.chunks[0].name == "chunks.part0000"
    assert sealed.manifest.chunks[0].name == "chunks.part00000"


def test_a_key_given_for_an_archive_that_is_not_encrypted_is_refused(tree, tmp_path) -> None:
    stc.pack(tree, tmp_path / "a")  # what an attacker could put in the encrypted one's place
    with pytest.raises(stc.DecryptionError, match="not encrypted"):
        stc.unpack(tmp_path / "a", tmp_path / "out", passphrase="my secret")
    with pytest.raises(stc.DecryptionError, match="not encrypted"):
        stc.verify(tmp_path / "a", identities=[stc.X25519Identity.generate()])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("edit", ["version", "chunk key", "encryption key", "complete"])
def test_keys_this_version_ignores_are_under_the_mac_too(tree, tmp_path, edit) -> None:
    identity = stc.X25519Identity.generate()
    stc.pack(tree, tmp_path / "a", recipients=[identity.recipient])
    path = tmp_path / "a.manifest.json"
    document = json.loads(path.read_text())
    if edit == "version":
        document["version"] = "1.9"
    elif edit == "chunk key":
        document["chunks"][0]["note"] = "x"
    elif edit == "encryption key":
        document["encryption"]["note"] = "x"
    else:
        document["complete"] = None
    path.write_text(json.dumps(document))
    with pytest.raises(stc.DecryptionError, match="manifest was altered"):
        stc.unpack(tmp_path / "a", tmp_path / "out", identities=[identity])


def test_a_key_given_twice_in_a_manifest_object_is_refused(tree, tmp_path) -> None:
    stc.pack(tree, tmp_path / "a", recipients=[stc.X25519Identity.generate().recipient])
    path = tmp_path / "a.manifest.json"
    text = path.read_text()
    path.write_text(text.replace('"tool":', '"restore_command": "rm -rf ~",\n "tool":', 1))
    with pytest.raises(stc.ManifestError, match="given twice"):
        stc.read_manifest(tmp_path / "a")


def test_an_absurd_header_length_is_refused_before_anything_is_read(tree, tmp_path) -> None:
    stc.pack(tree, tmp_path / "a", recipients=[stc.X25519Identity.generate().recipient])
    path = tmp_path / "a.manifest.json"
    document = json.loads(path.read_text())
    document["encryption"]["header_length"] = 10**12
    path.write_text(json.dumps(document))
    with pytest.raises(stc.ManifestError, match="beyond any age header"):
        stc.read_manifest(tmp_path / "a")


def test_a_passphrase_archive_prints_a_recipe_age_accepts(tree, tmp_path) -> None:
    packed = stc.pack(tree, tmp_path / "a", passphrase="x y z")
    assert packed.manifest.restore_command == "set -o pipefail; cat a.part* | age -d | tar -z -xf -"


def test_keys_are_never_taken_from_the_command_line_nor_echoed(tree, tmp_path, capsys) -> None:
    identity = stc.X25519Identity.generate()
    stc.pack(tree, tmp_path / "a", recipients=[identity.recipient])
    assert (
        main(["unpack", str(tmp_path / "a"), "-C", str(tmp_path / "o"), "-i", str(identity)]) == 2
    )
    err = capsys.readouterr().err
    assert "visible to every user" in err and str(identity) not in err
    broken = " " + str(identity).lower()[:-1] + "q"
    with pytest.raises(stc.UsageError) as caught:
        stc.unpack(tmp_path / "a", tmp_path / "o", identities=[broken])
    assert broken.strip() not in str(caught.value).lower()


def test_an_age_stream_without_its_manifest_is_named_as_such(
    tree, tmp_path, capsys, monkeypatch
) -> None:
    identity = stc.X25519Identity.generate()
    stc.pack(tree, tmp_path / "a", recipients=[identity.recipient])
    stream = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("a.part*")))
    with pytest.raises(stc.CorruptStreamError, match="age-encrypted"):
        stc.unpack_stream([stream], tmp_path / "out")
    with pytest.raises(stc.UsageError, match="following"):
        stc.unpack(tmp_path / "a", tmp_path / "out", identities=[identity], follow=True)


def test_info_with_the_key_shows_what_is_sealed(tree, tmp_path, capsys) -> None:
    identity = stc.X25519Identity.generate()
    (tmp_path / "key.txt").write_text(f"{identity}\n")
    sealed_zstd(tree, tmp_path / "a", identity)
    assert main(["info", str(tmp_path / "a"), "-i", str(tmp_path / "key.txt")]) == 0
    out = capsys.readouterr().out
    assert (
        "opened:       with the key given; manifest authenticated;" in out and " tar (ratio " in out
    )
    assert main(["info", str(tmp_path / "a"), "-i", str(tmp_path / "key.txt"), "--json"]) == 0
    sealed = json.loads(capsys.readouterr().out)["sealed"]
    assert (
        sealed["uncompressed_size"] > 1_000_000
        and len(sealed["blocks"]) == len(sealed["block_sha256"]) > 0
    )
    (tmp_path / "other.txt").write_text(f"{stc.X25519Identity.generate()}\n")
    assert main(["info", str(tmp_path / "a"), "-i", str(tmp_path / "other.txt")]) == 14


def test_a_passphrase_archive_opens_with_one_scrypt_and_its_sealed_part_is_age(
    tree, tmp_path, monkeypatch
) -> None:
    """The sealed part's file key derives from the archive's: opening it costs no second
    scrypt (~1 s each), and it stays an age file that its passphrase opens (pyrage here)."""
    secret = b"correct horse battery"
    stc.pack(tree, tmp_path / "a", recipients=[ScryptRecipient(secret, log_n=10)])
    derivations = []
    real = keys_module._scrypt
    monkeypatch.setattr(
        keys_module, "_scrypt", lambda *args: derivations.append(args) or real(*args)
    )
    stc.unpack(tmp_path / "a", tmp_path / "out", identities=[ScryptIdentity(secret)])
    assert len(derivations) == 1
    sealed = json.loads((tmp_path / "a.manifest.json").read_text())["encryption"]["sealed"]
    document = json.loads(pyrage.passphrase.decrypt(base64.b64decode(sealed), secret.decode()))
    assert len(document["blocks"]) == len(document["block_sha256"]) > 0


def test_a_sealed_part_of_the_previous_version_opens_through_its_stanza(
    tree, tmp_path, monkeypatch
) -> None:
    """Before its file key was derived, the sealed part had a random one of its own."""
    identity = stc.X25519Identity.generate()
    with monkeypatch.context() as patch:
        patch.setattr(archive_module, "sealed_part_key", lambda file_key: os.urandom(16))
        stc.pack(tree, tmp_path / "a", recipients=[identity.recipient])
    stc.unpack(tmp_path / "a", tmp_path / "out", identities=[identity])
    assert snapshot(restored(tmp_path / "out", tree)) == snapshot(tree)
