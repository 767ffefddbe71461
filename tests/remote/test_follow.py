"""``unpack --follow``: restore while another machine is still packing to the store."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor import decompress_from_chunks
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.storage import remote
from streaming_tar_compressor.storage.remote import RemoteChunkSink
from tests.helpers import random_files, snapshot
from tests.remote.conftest import Fault, FaultProxy

SMALL = {"chunk_size": 16 * 1024, "block_size": 8 * 1024}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return random_files(tmp_path / "src", seed=8, count=40, size=5000)


def test_files_appear_before_the_pack_is_done(
    src: Path, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pack waits, after its third checkpoint, until the follower has restored a file:
    the order of events proves the restore ran while the pack did, without any sleep."""
    prefix = f"s3://{bucket}/a"
    restored_one, pack_done = threading.Event(), threading.Event()
    put_manifest, written = RemoteChunkSink._put_manifest, [0]

    def waiting(sink: RemoteChunkSink, manifest: stc.Manifest) -> None:
        put_manifest(sink, manifest)
        written[0] += 1
        if written[0] == 3:
            assert restored_one.wait(timeout=120), "the follower restored nothing meanwhile"

    monkeypatch.setattr(RemoteChunkSink, "_put_manifest", waiting)
    # Each chunk waits for the one before to be stored, so every checkpoint is written in turn.
    monkeypatch.setattr(remote, "UPLOAD_BUFFER", 0)
    failures: list[BaseException] = []

    def pack() -> None:
        try:
            stc.pack(src, prefix, **SMALL)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            pack_done.set()

    def restored(path: str, size: int) -> None:
        if size and not pack_done.is_set():
            restored_one.set()

    packer = threading.Thread(target=pack)
    packer.start()
    try:
        result = stc.unpack(
            prefix, tmp_path / "out", follow=True, follow_timeout=120, progress_callback=restored
        )
    finally:
        packer.join(timeout=120)
    assert not failures, failures
    assert restored_one.is_set() and written[0] > 3
    assert result.verified
    assert snapshot(tmp_path / "out" / src.relative_to("/")) == snapshot(src)


def test_following_a_finished_archive_just_unpacks_it(
    src: Path, bucket: str, tmp_path: Path
) -> None:
    stc.pack(src, f"s3://{bucket}/a", **SMALL)
    asyncio.run(decompress_from_chunks(f"s3://{bucket}/a", tmp_path / "out", follow=True))
    assert snapshot(tmp_path / "out" / src.relative_to("/")) == snapshot(src)


def test_nothing_arriving_is_an_error_after_the_timeout(
    bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    argv = [
        "unpack",
        f"s3://{bucket}/never",
        "-C",
        str(tmp_path),
        "--follow",
        "--follow-timeout",
        "1",
    ]
    assert main(argv) == stc.MissingChunkError.exit_code
    assert "nothing new for" in capsys.readouterr().err
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("argv", [["x/local"], ["-"], ["s3://b/x", "--resume"]])
def test_follow_needs_a_store_url_and_a_fresh_start(
    argv: list[str], tmp_path: Path, bucket: str
) -> None:
    assert main(["unpack", *argv, "-C", str(tmp_path), "--follow", "-q"]) == 2


def test_a_followed_chunk_damaged_on_the_way_is_fetched_again(
    src: Path, bucket: str, tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    stc.pack(src, f"s3://{bucket}/a", **SMALL)
    fault_proxy.add(Fault("GET", "/a.part0002", "flip", times=2))
    stc.unpack(f"s3://{bucket}/a", tmp_path / "out", follow=True, follow_timeout=60)
    assert fault_proxy.faults[0].hits == 2
    assert snapshot(tmp_path / "out" / src.relative_to("/")) == snapshot(src)


def test_no_manifest_and_a_pack_at_work_is_not_read_without_one(
    src: Path, bucket: str, tmp_path: Path, s3_client: object
) -> None:
    """During a --force the folder holds a lock and a mix of parts: never decode that."""
    stc.pack(src, f"s3://{bucket}/a", **SMALL)
    s3_client.delete_object(Bucket=bucket, Key="a.manifest.json")  # type: ignore[attr-defined]
    s3_client.put_object(Bucket=bucket, Key=".a.lock", Body=b"{}")  # type: ignore[attr-defined]
    with pytest.raises(stc.ManifestError, match="a pack is writing to it now"):
        stc.unpack(f"s3://{bucket}/a", tmp_path / "out")
    s3_client.delete_object(Bucket=bucket, Key=".a.lock")  # type: ignore[attr-defined]
    result = stc.unpack(f"s3://{bucket}/a", tmp_path / "out")  # parts alone: read, unverified
    assert not result.verified
