"""Each block's SHA-256 in the manifest: what a ranged read of one block is checked against
before it is decoded. It covers the block's compressed bytes exactly, survives a resume, and a
manifest that gets it wrong is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor.core.manifest import Manifest
from streaming_tar_compressor.errors import ManifestError
from tests.safety.test_resume_pack import (
    CODECS,
    SMALL,
    Interrupted,
    interrupt_after,
    make_source,
)


def stream_of(manifest: Manifest, directory: Path) -> bytes:
    return b"".join((directory / chunk.name).read_bytes() for chunk in manifest.chunks)


@pytest.mark.parametrize("codec", CODECS)
def test_each_digest_covers_its_blocks_bytes(tmp_path: Path, codec: str) -> None:
    source = make_source(tmp_path)
    result = stc.pack([str(source)], str(tmp_path / "out" / "a"), compression=codec, **SMALL)
    manifest = result.manifest
    stream = stream_of(manifest, tmp_path / "out")
    assert len(manifest.blocks) > 3 and len(manifest.block_sha256) == len(manifest.blocks)
    assert manifest.trailer_offset is not None
    ends = [position for _, position in manifest.blocks[1:]] + [manifest.trailer_offset]
    for (_, start), end, digest in zip(manifest.blocks, ends, manifest.block_sha256, strict=True):
        assert hashlib.sha256(stream[start:end]).hexdigest() == digest


def test_a_checkpoint_from_before_block_digests_resumes_without_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_source(tmp_path)
    prefix = tmp_path / "out" / "a"
    interrupt_after(monkeypatch, 2)
    with pytest.raises(Interrupted):
        stc.pack([str(source)], str(prefix), compression="zstd", **SMALL)
    monkeypatch.undo()
    checkpoint = tmp_path / "out" / "a.manifest.json"
    document = json.loads(checkpoint.read_text())
    assert len(document.pop("block_sha256")) == len(document["blocks"]) > 0
    checkpoint.write_text(json.dumps(document))
    result = stc.pack([str(source)], str(prefix), compression="zstd", resume=True, **SMALL)
    assert result.manifest.block_sha256 == ()
    assert "block_sha256" not in json.loads(checkpoint.read_text())
    stc.unpack(str(prefix), str(tmp_path / "restored"))
    restored = tmp_path / "restored" / str(source).lstrip("/")
    assert (restored / "z_last").read_bytes() == b"last file\n" * 40


@pytest.mark.parametrize(
    ("digests", "message"),
    [
        (["0" * 64], "lists 1 digests for 2 blocks"),
        (["0" * 63, "0" * 64], "not a list of SHA-256 hex digests"),
        ("0" * 64, "not a list of SHA-256 hex digests"),
    ],
)
def test_a_manifest_with_wrong_block_digests_is_refused(digests: object, message: str) -> None:
    document = {
        "version": "1.0",
        "format": "streaming-tar-compressor",
        "compression": "gzip",
        "chunk_size": 10,
        "total_chunks": 1,
        "chunks": [{"index": 0, "name": "a.part0000", "size": 5, "checksum": "0" * 64}],
        "blocks": [[0, 0], [4, 2]],
        "block_sha256": digests,
    }
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(json.dumps(document))
    document["block_sha256"] = ["a" * 64, "b" * 64]
    assert Manifest.from_json(json.dumps(document)).block_sha256 == ("a" * 64, "b" * 64)


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_deep_verify_checks_every_block_by_its_digest(tmp_path: Path, codec: str) -> None:
    """Chunks intact, one block digest wrong (a manifest edited, or a packer's bug): a ranged
    read of that block would be refused, so the verify that says "ok" must not be."""
    source = make_source(tmp_path)
    prefix = tmp_path / "out" / "a"
    manifest = stc.pack([str(source)], str(prefix), compression=codec, **SMALL).manifest
    report = stc.verify(prefix, deep=True)
    assert report.ok and report.blocks_checked == len(manifest.blocks) > 3
    assert stc.verify(prefix).blocks_checked == 0  # only --deep reads them
    path = tmp_path / "out" / "a.manifest.json"
    doc = json.loads(path.read_text())
    doc["block_sha256"][2] = hashlib.sha256(b"another block").hexdigest()
    path.write_text(json.dumps(doc))
    report = stc.verify(prefix, deep=True)
    (_, start), (_, end) = manifest.blocks[2], manifest.blocks[3]
    assert report.problems == [
        f"block 2 (stream bytes {start}-{end}): corrupt, "
        "SHA-256 does not match the manifest's block_sha256"
    ]
    assert report.blocks_checked == len(manifest.blocks)


def test_a_deep_verify_blames_no_block_for_a_chunk_too_long(tmp_path: Path) -> None:
    """Its extra bytes are not the next chunk's: the blocks after it are not reported."""
    source = make_source(tmp_path)
    prefix = tmp_path / "out" / "a"
    manifest = stc.pack([str(source)], str(prefix), compression="zstd", **SMALL).manifest
    assert manifest.total_chunks > 2
    part = tmp_path / "out" / manifest.chunks[1].name
    part.write_bytes(part.read_bytes() + b"extra" * 1000)
    report = stc.verify(prefix, deep=True)
    assert [p for p in report.problems if "block" in p] == []
    assert any(p.startswith(f"{part.name}: too long") for p in report.problems)
