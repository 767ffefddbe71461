"""Encrypted archives through the asyncio API and the streaming receive: the stream cut into
pieces at any points opens once its age header has arrived and restores the tree; cut short
anywhere, it fails, leaving only whole files that are the archive's."""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streaming_tar_compressor as stc
from tests.helpers import build_tree, snapshot

IDENTITY = stc.X25519Identity.generate()


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, stc.Manifest]:
    """A tree and its encrypted stream, packed in memory (chunks of 50 kB)."""
    root = tmp_path_factory.mktemp("streams")
    tree = build_tree(
        root / "tree",
        {f"d{i}/f{j}": os.urandom(j * 1500) for i in range(3) for j in range(25)}
        | {"big": os.urandom(300_000)},
    )
    packer = stc.StreamingTarCompressor("zstd", chunk_size=50_000, recipients=[IDENTITY.recipient])
    chunks = list(packer.iter_chunks(tree))
    assert packer.manifest is not None and packer.manifest.encryption is not None
    assert [index for index, _ in chunks] == list(range(len(chunks))) and len(chunks) > 5
    return tree, b"".join(data for _, data in chunks), packer.manifest


def receive(stream: bytes, cuts: list[int], manifest: stc.Manifest, out: Path) -> stc.UnpackResult:
    bounds = [0, *sorted(cuts), len(stream)]
    pieces = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    receiver = stc.StreamingTarCompressor(identities=[IDENTITY])
    return asyncio.run(receiver.decompress_from_chunks(pieces, out, manifest=manifest))


@settings(max_examples=12, deadline=None)
@given(cuts=st.lists(st.floats(0, 1), max_size=10))
def test_the_stream_cut_into_pieces_anywhere_restores(packed, cuts: list[float]) -> None:
    tree, stream, manifest = packed
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        result = receive(stream, [int(len(stream) * c) for c in cuts], manifest, out)
        assert result.verified and snapshot(out / tree.relative_to("/")) == snapshot(tree)


@settings(max_examples=12, deadline=None)
@given(end=st.floats(0, 1, exclude_max=True), cuts=st.lists(st.floats(0, 1), max_size=4))
def test_the_stream_cut_short_anywhere_fails_leaving_only_whole_files(packed, end, cuts) -> None:
    tree, stream, manifest = packed
    short = stream[: int(len(stream) * end)]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        with pytest.raises(stc.StcError):
            receive(short, [int(len(short) * c) for c in cuts], manifest, out)
        made = out / tree.relative_to("/")
        for path in made.rglob("*") if made.exists() else ():
            assert not path.name.startswith(".stc-")
            if path.is_file():
                assert path.read_bytes() == (tree / path.relative_to(made)).read_bytes()


def test_the_receive_without_a_key_is_refused_before_any_byte(packed, tmp_path) -> None:
    _, stream, manifest = packed
    receiver = stc.StreamingTarCompressor()
    with pytest.raises(stc.DecryptionError):
        asyncio.run(receiver.decompress_from_chunks([stream], tmp_path / "out", manifest=manifest))


def test_the_asyncio_functions_pack_and_restore_encrypted(packed, tmp_path) -> None:
    tree, _, _ = packed
    chunks = asyncio.run(
        stc.compress_with_chunks(tree, tmp_path / "a", "gzip", passphrase="pass phrase")
    )
    assert chunks[0].path is not None
    assert (tmp_path / "a.part0000").read_bytes().startswith(b"age-encryption.org/v1\n-> scrypt")
    asyncio.run(
        stc.decompress_from_chunks(tmp_path / "a", tmp_path / "out", passphrase="pass phrase")
    )
    assert snapshot(tmp_path / "out" / tree.relative_to("/")) == snapshot(tree)
