"""The member index on a store: uploaded beside the chunks, and ``stc list`` from it with a
few ranged GETs, every chunk deleted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor.storage import random_access
from streaming_tar_compressor.storage.location import RemotePrefix
from streaming_tar_compressor.storage.store import Store, open_store
from tests.remote.test_s3_round_trip import objects


class CountingStore:
    """The real store, every call recorded as (verb, key)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.calls: list[tuple[str, str]] = []

    def __getattr__(self, verb: str) -> Any:
        method = getattr(self._store, verb)

        def call(key: str, *args: Any, **kwargs: Any) -> Any:
            self.calls.append((verb, key))
            return method(key, *args, **kwargs)

        return call


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[CountingStore]:
    made: list[CountingStore] = []

    def opened(prefix: RemotePrefix) -> CountingStore:
        made.append(CountingStore(open_store(prefix)))
        return made[-1]

    monkeypatch.setattr(random_access, "open_store", opened)
    return made


def test_a_listing_from_a_store_reads_the_manifest_and_the_index_pages_only(
    make_tree: Any, bucket: str, s3_client: Any, counted: list[CountingStore]
) -> None:
    tree: Path = make_tree({f"d{i}/f{j}": b"x" * 700 for i in range(3) for j in range(5)})
    prefix = f"s3://{bucket}/a"
    result = stc.pack(tree, prefix, compression="zstd", chunk_size=8 * 2**20)
    for chunk in result.manifest.chunks:
        s3_client.delete_object(Bucket=bucket, Key=chunk.name)
    listed = list(stc.list_members(prefix))
    assert len(listed) == result.manifest.index.members  # type: ignore[union-attr]
    assert [m.name for m in listed][:2] == [str(tree).lstrip("/"), f"{str(tree).lstrip('/')}/d0"]
    assert counted[-1].calls == [
        ("head", "a.manifest.json"),
        ("get", "a.manifest.json"),
        ("get_range", "a.index"),  # the directory
        ("get_range", "a.index"),  # the one page
    ]


def test_one_member_from_a_store_costs_at_most_six_requests(
    make_tree: Any, bucket: str, s3_client: Any, counted: list[CountingStore], tmp_path: Path
) -> None:
    files = {f"d{i}/f{j}": bytes([i, j]) * 40_000 for i in range(4) for j in range(6)}
    tree: Path = make_tree(files)
    prefix = f"s3://{bucket}/a"
    stc.pack(tree, prefix, compression="gzip", chunk_size=8 * 2**20, block_size=2**20)
    name = f"{str(tree).lstrip('/')}/d2/f3"
    result = stc.extract(prefix, [name], tmp_path / "out")
    assert (tmp_path / "out" / name).read_bytes() == files["d2/f3"]
    assert result.blocks_read <= 2
    calls = counted[-1].calls
    assert calls[:4] == [
        ("head", "a.manifest.json"),
        ("get", "a.manifest.json"),
        ("get_range", "a.index"),
        ("get_range", "a.index"),
    ]
    assert all(verb == "get_range" and key.startswith("a.part") for verb, key in calls[4:])
    assert len(calls) <= 6
    with stc.open_member(prefix, name) as handle:
        assert handle.read() == files["d2/f3"]


def test_an_index_rebuilt_on_a_store_is_the_one_the_pack_uploaded(
    make_tree: Any, bucket: str, s3_client: Any
) -> None:
    tree: Path = make_tree({f"f{i}": bytes([i]) * 3000 for i in range(40)})
    prefix = f"s3://{bucket}/a"
    stc.pack(tree, prefix, compression="zstd", chunk_size=8 * 2**20, content_digests=True)
    packed = objects(s3_client, bucket)
    document = json.loads(packed["a.manifest.json"])
    del document["index"]
    s3_client.put_object(
        Bucket=bucket, Key="a.manifest.json", Body=json.dumps(document, indent=1) + "\n"
    )
    s3_client.delete_object(Bucket=bucket, Key="a.index")
    assert stc.verify(prefix).problems == []  # the manifest names no index now
    stc.rebuild_index(prefix, content_digests=True)
    assert objects(s3_client, bucket) == packed
    assert stc.verify(prefix).ok


def test_an_index_over_one_part_is_uploaded_in_parts_with_its_sha256_kept(
    make_tree: Any, bucket: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts made tiny (and moto's minimum with them) so that a small index needs several:
    verify then checks the index by its stored SHA-256, downloading nothing."""
    import moto.s3.models

    from streaming_tar_compressor.storage import remote, store

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 256)
    monkeypatch.setattr(store, "PART_SIZE", 512)
    monkeypatch.setattr(remote, "PART_SIZE", 512)
    tree: Path = make_tree({f"f{i:03d}": b"%d" % i for i in range(300)})
    prefix = f"s3://{bucket}/a"
    manifest = stc.pack(tree, prefix, compression="zstd").manifest
    assert manifest.index is not None and manifest.index.size > 3 * 512
    head = s3_client.head_object(Bucket=bucket, Key="a.index")
    assert "-" in head["ETag"]  # a multipart upload's ETag
    assert head["Metadata"]["stc-sha256"] == manifest.index.sha256
    report = stc.verify(prefix)
    assert report.ok and report.index_checked and report.downloaded == 0
    names = [member.name for member in stc.list_members(prefix)]  # read back from its parts
    assert sum(name.rsplit("/", 1)[-1].startswith("f") for name in names) == 300
