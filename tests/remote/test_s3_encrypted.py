"""An encrypted pack straight to a real S3 API server (moto), restored and verified from it."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

import streaming_tar_compressor as stc
from tests.helpers import snapshot


@pytest.fixture
def tree(make_tree: Callable[..., Path]) -> Path:
    noise = random.Random(5)
    return make_tree({f"d/f{i}": noise.randbytes(30_000) for i in range(10)} | {"t": b"y" * 99})


def test_an_encrypted_pack_to_a_store_restores_and_verifies(
    tree: Path, tmp_path: Path, bucket: str
) -> None:
    identity = stc.X25519Identity.generate()
    url = f"s3://{bucket}/backups/enc"
    packed = stc.pack(
        tree,
        url,
        compression="zstd",
        chunk_size=64 * 1024,
        block_size=32 * 1024,
        recipients=[identity.recipient],
    )
    assert packed.manifest.encryption is not None and packed.manifest.total_chunks > 3
    assert stc.verify(url).ok  # by the stored SHA-256s of the ciphertext, no key
    assert stc.verify(url, identities=[identity], deep=True).ok
    with pytest.raises(stc.DecryptionError):
        stc.unpack(url, tmp_path / "nokey")
    stc.unpack(url, tmp_path / "out", identities=[identity])
    assert snapshot(tmp_path / "out" / tree.relative_to("/")) == snapshot(tree)
    # By range: the sealed index from its object, one member's age chunks by ranged GETs.
    report = stc.verify(url)
    assert report.index_checked and report.from_metadata
    names = {m.name for m in stc.list_members(url, identities=[identity])}
    files = {(tree / "d" / f"f{i}").relative_to("/").as_posix() for i in range(10)}
    assert files <= names
    wanted = (tree / "d" / "f7").relative_to("/").as_posix()
    with stc.open_member(url, wanted, identities=[identity]) as member:
        assert member.read() == (tree / "d" / "f7").read_bytes()
    with pytest.raises(stc.UsageError, match="cannot be resumed yet"):
        stc.pack(tree, url, recipients=[identity.recipient], resume=True)
