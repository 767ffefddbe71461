"""Archives with the seed's minimal manifest still verify, unpack and list, every chunk checked.

The original ``streaming_tar_compressor`` wrote only ``version``, ``total_chunks`` and
``chunks[{index, size, checksum}]``. The archives here are made without our packer (Python's
``tarfile`` and each codec's own library, cut as ``split -b`` cuts) and given a hand-written
manifest of that shape.
"""

from __future__ import annotations

import asyncio
import bz2
import gzip
import hashlib
import io
import json
import lzma
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lz4.frame
import pytest
import zstandard

import streaming_tar_compressor as stc
from streaming_tar_compressor import StreamingTarCompressor, decompress_from_chunks
from streaming_tar_compressor.core.manifest import Manifest
from streaming_tar_compressor.errors import (
    ChecksumMismatchError,
    CompressionMismatchError,
    ManifestError,
    MissingChunkError,
    UsageError,
)
from tests.helpers import snapshot

COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
    "lz4": lz4.frame.compress,
    "none": lambda data: data,
}
CHUNK = 40_000


def tar_of(tree: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.add(tree, arcname="tree")
    return buffer.getvalue()


def seed_archive(prefix: Path, stream: bytes, *, width: int = 4) -> dict[str, Any]:
    """``stream`` cut into ``PREFIX.partNNNN`` beside the seed's manifest, which is returned."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    chunks = [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]
    for index, data in enumerate(chunks):
        (prefix.parent / f"{prefix.name}.part{index:0{width}d}").write_bytes(data)
    manifest = {
        "version": "1.0",
        "total_chunks": len(chunks),
        "chunks": [
            {"index": i, "size": len(data), "checksum": hashlib.sha256(data).hexdigest()}
            for i, data in enumerate(chunks)
        ],
    }
    write_manifest(prefix, manifest)
    return manifest


def write_manifest(prefix: Path, manifest: dict[str, Any]) -> None:
    Path(f"{prefix}.manifest.json").write_text(json.dumps(manifest))


def stc_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streaming_tar_compressor", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree(make_tree: Callable[..., Path]) -> Path:
    return make_tree()


@pytest.mark.parametrize("codec", list(COMPRESS))
def test_every_way_of_reading_a_seed_archive(codec: str, tree: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "arc" / "b"
    stream = COMPRESS[codec](tar_of(tree))
    manifest = seed_archive(prefix, stream)
    assert manifest["total_chunks"] > 1
    expected = snapshot(tree)

    done = stc_cli("verify", str(prefix), "--deep")
    assert done.returncode == 0, done.stderr
    assert f"{manifest['total_chunks']} chunk(s)" in done.stdout

    done = stc_cli("unpack", str(prefix), "-C", str(tmp_path / "cli"))
    assert done.returncode == 0, done.stderr
    assert "every chunk verified" in done.stdout
    assert snapshot(tmp_path / "cli" / "tree") == expected

    names = [member.name for member in stc.list_members(prefix)]
    assert names[0] == "tree" and "tree/a.txt" in names

    result = asyncio.run(decompress_from_chunks(prefix, tmp_path / "aio"))
    assert result.verified and result.compression is not None
    assert result.compression.value == codec
    assert snapshot(tmp_path / "aio" / "tree") == expected

    async def pieces() -> Any:
        for start in range(0, len(stream), 7_000):
            yield stream[start : start + 7_000]

    receiver = StreamingTarCompressor()
    for given in (manifest, Path(f"{prefix}.manifest.json")):
        out = tmp_path / f"stream-{type(given).__name__}"
        received = asyncio.run(receiver.decompress_from_chunks(pieces(), out, manifest=given))
        assert received.verified
        assert snapshot(out / "tree") == expected


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_wrong_checksum_names_the_chunk(codec: str, tree: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "arc" / "b"
    stream = COMPRESS[codec](tar_of(tree))
    manifest = seed_archive(prefix, stream)
    manifest["chunks"][1]["checksum"] = "0" * 64
    write_manifest(prefix, manifest)

    done = stc_cli("unpack", str(prefix), "-C", str(tmp_path / "out"))
    assert done.returncode == ChecksumMismatchError.exit_code == 6, done.stderr
    assert done.stderr.startswith("stc: error: b.part0001 is damaged"), done.stderr
    assert not (tmp_path / "out" / "tree" / "sub" / "deeper" / "zeros").exists()

    done = stc_cli("verify", str(prefix))
    assert done.returncode == 6
    assert "stc: b.part0001: corrupt, SHA-256 does not match" in done.stderr

    receiver = StreamingTarCompressor()
    with pytest.raises(ChecksumMismatchError, match="chunk 1 is damaged"):
        asyncio.run(receiver.decompress_from_chunks([stream], tmp_path / "s", manifest=manifest))


def test_a_wrong_size_is_a_damaged_chunk(tree: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "arc" / "b"
    manifest = seed_archive(prefix, COMPRESS["xz"](tar_of(tree)))
    manifest["chunks"][0]["size"] += 1
    write_manifest(prefix, manifest)
    with pytest.raises(ChecksumMismatchError, match=r"b\.part0000"):
        stc.unpack(prefix, tmp_path / "out")
    report = stc.verify(prefix)
    assert report.problems and report.problems[0].startswith("b.part0000: short")


def test_parts_with_wider_numbers_are_found(tree: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "arc" / "b"
    seed_archive(prefix, COMPRESS["gzip"](tar_of(tree)), width=6)
    manifest = stc.read_manifest(prefix)
    assert manifest.chunks[0].name == "b.part000000"
    stc.unpack(prefix, tmp_path / "out")
    assert snapshot(tmp_path / "out" / "tree") == snapshot(tree)


def test_a_missing_part_is_named(tree: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "arc" / "b"
    seed_archive(prefix, COMPRESS["lz4"](tar_of(tree)))
    (tmp_path / "arc" / "b.part0001").unlink()
    with pytest.raises(MissingChunkError, match="chunk 1"):
        stc.unpack(prefix, tmp_path / "out")
    assert stc.verify(prefix).problems == ["b.part0001: missing"]


def test_a_stated_codec_must_match_the_bytes(tree: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "arc" / "b"
    manifest = seed_archive(prefix, COMPRESS["zstd"](tar_of(tree)))
    write_manifest(prefix, {**manifest, "compression": "gzip"})
    with pytest.raises(CompressionMismatchError):
        stc.unpack(prefix, tmp_path / "out")


SEED = {"version": "1.0", "total_chunks": 2, "chunks": [
    {"index": 0, "size": 10, "checksum": "ab" * 32},
    {"index": 1, "size": 3, "checksum": "cd" * 32},
]}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"compression": "rar"}, "unknown compression"),
        ({"compression": None}, "'compression' must be a str"),
        ({"chunk_size": 0}, "'chunk_size' must be at least 1"),
        ({"chunk_size": 4}, "chunk 0 has size 10"),
        ({"total_chunks": 3}, "total_chunks=3"),
        ({"sha256": "xyz"}, "not a SHA-256"),
    ],
)
def test_seed_keys_that_are_present_are_still_checked(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(json.dumps({**SEED, **change}))


@pytest.mark.parametrize(
    ("chunk", "message"),
    [
        ({"name": "../b.part0000"}, "not a bare file name"),
        ({"name": ""}, "not a bare file name"),
        ({"name": "b.part0000"}, "names some chunks but not all"),
        ({"checksum": "AB" * 32}, "not a SHA-256"),
        ({"size": -1}, "'size' must be at least 0"),
    ],
)
def test_seed_chunk_entries_are_still_checked(chunk: dict[str, object], message: str) -> None:
    document = json.loads(json.dumps(SEED))
    document["chunks"][0].update(chunk)
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(json.dumps(document))


def test_a_manifest_that_says_it_is_ours_needs_our_keys() -> None:
    with pytest.raises(ManifestError, match="lacks the key 'compression'"):
        Manifest.from_json(json.dumps({**SEED, "format": "streaming-tar-compressor"}))


def test_a_seed_manifest_stays_one_when_written_back() -> None:
    manifest = Manifest.from_json(json.dumps(SEED))
    assert manifest.seed and manifest.compression is None and manifest.chunk_size is None
    assert [chunk.label for chunk in manifest.chunks] == ["chunk 0", "chunk 1"]
    named = manifest.with_chunk_names("b")
    assert [chunk.name for chunk in named.chunks] == ["b.part0000", "b.part0001"]
    document = json.loads(named.to_json())
    assert "format" not in document and "compression" not in document
    assert Manifest.from_json(named.to_json()) == named


def test_info_shows_what_a_seed_manifest_knows(tree: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "arc" / "b"
    seed_archive(prefix, COMPRESS["bzip2"](tar_of(tree)))
    done = stc_cli("info", str(prefix))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "compression:  bzip2 (detected from the bytes; the manifest does not say)" in lines
    assert "restore:      cat b.part* | tar -j -xf -" in lines
    assert "sha256:" not in done.stdout and "None" not in done.stdout


def test_resume_needs_a_block_index_that_a_seed_manifest_lacks(tree: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "arc" / "b"
    seed_archive(prefix, COMPRESS["gzip"](tar_of(tree)))
    with pytest.raises(UsageError, match="block index"):
        stc.unpack(prefix, tmp_path / "out", resume=True)
