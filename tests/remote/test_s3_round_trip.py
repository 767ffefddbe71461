"""Pack to and unpack from a real S3 API server, and memory://: the same objects as on disk."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor import compress_with_chunks, decompress_from_chunks
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.storage.location import RemotePrefix, parse_prefix
from tests.helpers import snapshot

SMALL = {"chunk_size": 64 * 1024, "block_size": 32 * 1024}


@pytest.fixture
def tree(make_tree: Callable[..., Path]) -> Path:
    noise = random.Random(11)
    return make_tree({f"d/f{i}": noise.randbytes(40_000) for i in range(8)} | {"t.txt": b"x" * 9})


def objects(client: object, bucket: str) -> dict[str, bytes]:
    listing = client.list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    return {
        item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()  # type: ignore[attr-defined]
        for item in listing.get("Contents", [])
    }


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_the_objects_are_the_files_a_local_pack_writes(
    codec: str, tree: Path, tmp_path: Path, bucket: str, s3_client: object
) -> None:
    result = stc.pack(tree, f"s3://{bucket}/backups/b", compression=codec, **SMALL)
    assert result.chunks[0].path == f"s3://{bucket}/backups/b.part0000"
    stc.pack(tree, tmp_path / "local" / "b", compression=codec, **SMALL)
    stored = objects(s3_client, bucket)
    local = {f"backups/{p.name}": p.read_bytes() for p in (tmp_path / "local").iterdir()}
    assert set(stored) == set(local)  # no lock, no checkpoint left behind
    for key, data in local.items():
        if key.endswith(".manifest.json"):
            mine, theirs = json.loads(stored[key]), json.loads(data)
            mine.pop("created"), theirs.pop("created")
            assert mine == theirs
        else:
            assert stored[key] == data, key
    manifest = json.loads(stored["backups/b.manifest.json"])
    assert manifest["total_chunks"] > 3 and manifest["complete"] is True


def test_unpack_verify_list_and_info_read_the_store(
    tree: Path, tmp_path: Path, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"s3://{bucket}/b"
    stc.pack(tree, prefix, compression="xz", **SMALL)
    result = stc.unpack(prefix, tmp_path / "out")
    assert result.verified
    assert snapshot(tmp_path / "out" / tree.relative_to("/")) == snapshot(tree)
    report = stc.verify(prefix, deep=True)
    assert report.ok and report.members_checked > 8
    names = [member.name for member in stc.list_members(prefix)]
    assert any(name.endswith("/d/f7") for name in names)
    assert main(["info", prefix]) == 0
    info = capsys.readouterr().out
    assert "compression:  xz level 6" in info and "restore:      cat b.part* | tar -J -xf -" in info


def test_a_damaged_object_is_named(
    tree: Path, tmp_path: Path, bucket: str, s3_client: object
) -> None:
    prefix = f"s3://{bucket}/b"
    stc.pack(tree, prefix, **SMALL)
    key = "b.part0001"
    data = bytearray(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())  # type: ignore[attr-defined]
    data[100] ^= 1
    s3_client.put_object(Bucket=bucket, Key=key, Body=bytes(data))  # type: ignore[attr-defined]
    with pytest.raises(stc.ChecksumMismatchError, match=r"b\.part0001"):
        stc.unpack(prefix, tmp_path / "out")
    assert stc.verify(prefix).problems[0] == "b.part0001: corrupt, SHA-256 does not match"
    s3_client.delete_object(Bucket=bucket, Key=key)  # type: ignore[attr-defined]
    with pytest.raises(stc.MissingChunkError, match="chunk 1"):
        stc.unpack(prefix, tmp_path / "again")


def test_an_archive_is_not_replaced_without_force(
    tree: Path, bucket: str, s3_client: object
) -> None:
    prefix = f"s3://{bucket}/b"
    first = stc.pack(tree, prefix, **SMALL)
    with pytest.raises(stc.OutputError, match="already has an archive"):
        stc.pack(tree, prefix, **SMALL)
    (tree / "t.txt").write_bytes(b"smaller now")
    for path in (tree / "d").iterdir():
        path.unlink()
    second = stc.pack(tree, prefix, force=True, **SMALL)
    assert second.manifest.total_chunks < first.manifest.total_chunks
    keys = set(objects(s3_client, bucket))
    assert keys == {c.name for c in second.chunks} | {"b.manifest.json", "b.sha256", "b.index"}


def test_listings_go_through_every_page(
    tree: Path, bucket: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's listing pages made three keys long: stc still sees every part (verify
    finds a stray part, a replacing pack deletes every old one)."""
    monkeypatch.setenv("MOTO_S3_DEFAULT_MAX_KEYS", "3")  # read by moto at each request
    prefix = f"s3://{bucket}/b"
    first = stc.pack(tree, prefix, **SMALL)
    assert first.manifest.total_chunks >= 4  # with the manifest, .sha256, index: 3 pages
    assert s3_client.list_objects_v2(Bucket=bucket)["IsTruncated"]  # a listing has pages
    s3_client.put_object(Bucket=bucket, Key="b.part0099", Body=b"stray")
    assert "b.part0099: extra chunk, not in the manifest" in stc.verify(prefix).problems
    (tree / "t.txt").write_bytes(b"smaller now")
    for path in (tree / "d").iterdir():
        path.unlink()
    second = stc.pack(tree, prefix, force=True, **SMALL)
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = {item["Key"] for page in pages for item in page.get("Contents", [])}
    assert keys == {c.name for c in second.chunks} | {"b.manifest.json", "b.sha256", "b.index"}


def test_a_running_pack_holds_a_lock_object(tree: Path, bucket: str, s3_client: object) -> None:
    s3_client.put_object(Bucket=bucket, Key=".b.lock", Body=b"{}")  # type: ignore[attr-defined]
    with pytest.raises(stc.ArchiveBusyError, match="another pack is writing"):
        stc.pack(tree, f"s3://{bucket}/b", **SMALL)
    assert set(objects(s3_client, bucket)) == {".b.lock"}


def test_the_asyncio_api_takes_urls(tree: Path, tmp_path: Path, bucket: str) -> None:
    async def round_trip() -> None:
        chunks = await compress_with_chunks([str(tree)], f"s3://{bucket}/a/b", chunk_size=65536)
        assert [c.index for c in chunks] == list(range(len(chunks)))
        await decompress_from_chunks(f"s3://{bucket}/a/b", tmp_path / "out")

    asyncio.run(round_trip())
    assert snapshot(tmp_path / "out" / tree.relative_to("/")) == snapshot(tree)


def test_memory_urls_round_trip(tree: Path, tmp_path: Path) -> None:
    prefix = f"memory:///t/{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]}/b"
    stc.pack(tree, prefix, compression="lz4", **SMALL)
    stc.unpack(prefix, tmp_path / "out")
    assert snapshot(tmp_path / "out" / tree.relative_to("/")) == snapshot(tree)
    assert stc.verify(prefix).ok


def test_file_urls_are_local_prefixes(tree: Path, tmp_path: Path) -> None:
    stc.pack(tree, f"file://{tmp_path}/arc/b", **SMALL)
    assert (tmp_path / "arc" / "b.part0000").is_file()
    stc.unpack(f"file://{tmp_path}/arc/b", tmp_path / "out")
    assert snapshot(tmp_path / "out" / tree.relative_to("/")) == snapshot(tree)


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("ftp://host/b", "unknown URL scheme ftp://"),
        ("s3://key:secret@bucket/b", "credentials"),
        ("s3://bucket/b?x=1", "no '\\?' or '#'"),
        ("s3:/bucket/b", "without its '//'"),
        ("s3://bucket/", "must end in an archive name"),
        ("https://example.invalid/b", "read-only"),
    ],
)
def test_bad_urls_are_usage_errors(tree: Path, prefix: str, message: str) -> None:
    with pytest.raises(stc.UsageError, match=message):
        stc.pack(tree, prefix)


def test_a_missing_bucket_is_one_clear_line(
    tree: Path, s3_client: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pack", str(tree), "-o", "s3://no-such-bucket/b", "-q"]) == 13
    err = capsys.readouterr().err
    assert err.startswith("stc: error: cannot ") and err.count("\n") == 1, err
    assert "no-such-bucket" in err and "stc-test-secret" not in err


def test_verify_reads_sizes_and_stored_hashes_without_downloading(
    tree: Path, bucket: str, s3_client: object, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"s3://{bucket}/b"
    total = stc.pack(tree, prefix, **SMALL).manifest.total_chunks
    head = s3_client.head_object(Bucket=bucket, Key="b.part0000")  # type: ignore[attr-defined]
    part = objects(s3_client, bucket)["b.part0000"]
    assert head["Metadata"] == {"stc-sha256": hashlib.sha256(part).hexdigest()}
    report = stc.verify(prefix)
    assert report.ok and report.from_metadata and report.downloaded == 0
    assert report.requests == total + 2  # one LIST, one request per chunk and for the index
    assert main(["verify", prefix]) == 0
    assert f"({total + 2} requests, nothing downloaded)" in capsys.readouterr().out
    # Replaced by another tool with other bytes: no stored hash, so it is downloaded and hashed.
    s3_client.put_object(Bucket=bucket, Key="b.part0002", Body=part)  # type: ignore[attr-defined]
    report = stc.verify(prefix)
    assert report.downloaded == 1
    assert report.problems == ["b.part0002: corrupt, SHA-256 does not match"]
    s3_client.put_object(Bucket=bucket, Key="b.part0002", Body=part[:10])  # type: ignore[attr-defined]
    assert stc.verify(prefix).problems == [f"b.part0002: short, 10 of {len(part)} bytes"]


def test_a_chunk_too_big_for_one_object_is_refused_before_packing(tree: Path) -> None:
    with pytest.raises(stc.UsageError, match="at most 10,000 parts"):
        stc.pack(tree, "s3://bucket/b", chunk_size=80 * 2**30)


def test_an_azure_filesystem_at_account_url_is_not_a_credential() -> None:
    url = "abfss://fs@account.dfs.core.windows.net/backups/b"
    location = parse_prefix(url)
    assert isinstance(location, RemotePrefix)
    assert (location.folder, location.name) == (
        "abfss://fs@account.dfs.core.windows.net/backups",
        "b",
    )
    with pytest.raises(stc.UsageError, match="credentials"):
        parse_prefix("abfss://fs:secret@account.dfs.core.windows.net/b")
