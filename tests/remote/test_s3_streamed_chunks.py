"""Chunks over 16 MiB stream into multipart uploads: memory does not follow the chunk size."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor.cli.main import main
from tests.helpers import snapshot
from tests.remote.conftest import Fault, FaultProxy
from tests.remote.test_s3_round_trip import objects

BIG = {"compression": "zstd", "chunk_size": 20 * 2**20}


@pytest.fixture(scope="module")
def big_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big") / "src"
    root.mkdir()
    noise = random.Random(3)
    for number in range(3):
        (root / f"f{number}").write_bytes(noise.randbytes(15 * 2**20))
    return root


def test_streamed_chunks_are_the_files_a_local_pack_writes(
    big_src: Path, tmp_path: Path, bucket: str, s3_client: object
) -> None:
    result = stc.pack(big_src, f"s3://{bucket}/b", **BIG)
    assert result.manifest.total_chunks == 3
    stc.pack(big_src, tmp_path / "local" / "b", **BIG)
    stored = objects(s3_client, bucket)
    for part in (tmp_path / "local").glob("b.part*"):
        assert stored[part.name] == part.read_bytes(), part.name
    head = s3_client.head_object(Bucket=bucket, Key="b.part0000")  # type: ignore[attr-defined]
    assert "-" in head["ETag"]  # a multipart upload's ETag
    report = stc.verify(f"s3://{bucket}/b")
    assert report.ok and report.downloaded == 3  # streamed chunks carry no stored hash
    stc.unpack(f"s3://{bucket}/b", tmp_path / "out")
    assert snapshot(tmp_path / "out" / big_src.relative_to("/")) == snapshot(big_src)


def test_a_part_refused_mid_chunk_stops_the_pack_with_one_line(
    big_src: Path,
    bucket: str,
    s3_client: object,
    fault_proxy: FaultProxy,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fault_proxy.add(Fault("PUT", "/b.part0001", "forbidden", times=1000))
    argv = ["pack", str(big_src), "-o", f"s3://{bucket}/b", "-c", "zstd", "--chunk-size", "20M"]
    assert main([*argv, "-q"]) == stc.StoreError.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "access denied" in err, err
    stored = objects(s3_client, bucket)
    assert "b.part0001" not in stored and ".b.lock" not in stored
