"""Faults between stc and the S3 server, injected by a proxy: each run ends byte-identical or
with a clear error, and never with a manifest that claims an archive that is not whole."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.storage import remote
from streaming_tar_compressor.storage.pacer import Pacer
from streaming_tar_compressor.storage.remote import RemoteChunkSink
from tests.helpers import random_files, snapshot
from tests.remote.conftest import Fault, FaultProxy
from tests.remote.test_s3_resume import without_created
from tests.remote.test_s3_round_trip import objects

SMALL = {"chunk_size": 64 * 1024, "block_size": 32 * 1024}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return random_files(tmp_path / "src", seed=4, count=10, size=30_000)


def packed_alike(s3_client: object, bucket: str) -> None:
    """The objects under run/ are those under ref/ (manifests but for their creation time)."""
    stored = objects(s3_client, bucket)
    ref = without_created({k: v for k, v in stored.items() if k.startswith("ref/")})
    run = without_created({k: v for k, v in stored.items() if k.startswith("run/")})
    assert run == ref and len(run) > 4


def test_slowdown_bursts_and_answers_lost_after_a_store_are_retried(
    src: Path, bucket: str, s3_client: object, fault_proxy: FaultProxy
) -> None:
    stc.pack(src, f"s3://{bucket}/ref/a", **SMALL)
    fault_proxy.add(
        Fault("PUT", "/run/a.part", "slowdown", times=4),
        Fault("PUT", "/run/a.part0002", "stored-then-dropped"),
        Fault("PUT", "/run/.a.lock", "stored-then-dropped"),  # a create that was stored
        Fault("PUT", "/run/a.manifest.json", "stored-then-dropped", times=2),  # create, If-Match
        Fault("PUT", "/run/a.sha256", "slowdown"),
    )
    stc.pack(src, f"s3://{bucket}/run/a", **SMALL)
    assert all(fault.hits == fault.times for fault in fault_proxy.faults), fault_proxy.faults
    packed_alike(s3_client, bucket)


def test_cut_and_flipped_downloads_are_fetched_again(
    src: Path, bucket: str, tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    prefix = f"s3://{bucket}/a"
    stc.pack(src, prefix, **SMALL)
    fault_proxy.add(
        Fault("GET", "/a.part0000", "cut"),
        Fault("GET", "/a.part0001", "flip", times=2),  # the third download is good
        Fault("GET", "/a.manifest.json", "cut"),
    )
    result = stc.unpack(prefix, tmp_path / "out")
    assert result.verified
    assert all(fault.hits == fault.times for fault in fault_proxy.faults), fault_proxy.faults
    assert snapshot(tmp_path / "out" / src.relative_to("/")) == snapshot(src)


def test_a_chunk_that_arrives_damaged_every_time_is_named(
    src: Path, bucket: str, tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    prefix = f"s3://{bucket}/a"
    stc.pack(src, prefix, **SMALL)
    fault_proxy.add(Fault("GET", "/a.part0001", "flip", times=1000))
    with pytest.raises(stc.ChecksumMismatchError, match=r"a\.part0001"):
        stc.unpack(prefix, tmp_path / "out")
    assert fault_proxy.faults[0].hits == 3  # fetched three times, then given up
    left = [p.name for p in (tmp_path / "out").rglob("*")]
    assert not [name for name in left if name.endswith(".tmp")], left  # nothing unverified


def test_a_forbidden_upload_is_one_line_and_leaves_no_complete_manifest(
    src: Path,
    bucket: str,
    s3_client: object,
    fault_proxy: FaultProxy,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fault_proxy.add(Fault("PUT", "/a.part0003", "forbidden"))
    code = main(["pack", str(src), "-o", f"s3://{bucket}/a", "--chunk-size", "64K", "-q"])
    assert code == stc.StoreError.exit_code == 13
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a.part0003" in err and "access denied" in err, err
    assert "stc-test-secret" not in err
    stored = objects(s3_client, bucket)
    manifest = stored.get("a.manifest.json")
    assert manifest is None or json.loads(manifest)["complete"] is False
    assert ".a.lock" not in stored


@pytest.mark.parametrize("kind", ["full", "quota"])
def test_a_full_store_is_one_line_at_once_and_the_pack_resumes_once_there_is_room(
    kind: str,
    src: Path,
    bucket: str,
    s3_client: object,
    fault_proxy: FaultProxy,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """507 (a MinIO out of disk) or a 403 QuotaExceeded (Ceph) is said plainly, with no
    minutes of retries of the chunk; the pack stops resumable, and resumes to the objects of
    a pack that never met it."""
    stc.pack(src, f"s3://{bucket}/ref/a", **SMALL)
    full = Fault("PUT", "/run/a.part0003", kind, times=1000)
    fault_proxy.add(full)
    argv = ["pack", str(src), "-o", f"s3://{bucket}/run/a", "--chunk-size", "64K"]
    started = time.monotonic()
    assert main([*argv, "--block-size", "32K", "-q"]) == stc.StoreError.exit_code
    assert time.monotonic() - started < 30 and full.hits == 1  # asked once
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the store is full" in err and "a.part0003" in err, err
    stored = objects(s3_client, bucket)
    manifest = stored.get("run/a.manifest.json")
    assert manifest is None or json.loads(manifest)["complete"] is False
    assert "run/.a.lock" not in stored
    fault_proxy.faults.clear()
    stc.pack(src, f"s3://{bucket}/run/a", resume=True, **SMALL)
    packed_alike(s3_client, bucket)


class RecordedPacer(Pacer):
    """The pacer of the last pack, kept for the test to read."""

    last: RecordedPacer | None = None

    def __init__(self, most: int) -> None:
        super().__init__(most)
        RecordedPacer.last = self


def test_uploads_in_flight_fall_while_the_store_throttles(
    src: Path,
    bucket: str,
    s3_client: object,
    fault_proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stc.pack(src, f"s3://{bucket}/ref/a", **SMALL)
    monkeypatch.setattr(remote, "Pacer", RecordedPacer)
    fault_proxy.add(
        Fault("PUT", "/run/a.part", "slowdown", times=3),
        Fault("PUT", "/run/a.part0002", "stored-then-dropped"),  # retried, not a throttle
    )
    stc.pack(src, f"s3://{bucket}/run/a", **SMALL)
    assert all(fault.hits == fault.times for fault in fault_proxy.faults), fault_proxy.faults
    pacer = RecordedPacer.last
    assert pacer is not None and pacer.most == remote.UPLOADS_IN_FLIGHT == 4
    assert pacer.throttles == 3 and pacer.lowest == 1  # 4, 2, 1, 1
    packed_alike(s3_client, bucket)


def test_a_store_that_keeps_throttling_ends_the_pack_resumably(
    src: Path,
    bucket: str,
    s3_client: object,
    fault_proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stc.pack(src, f"s3://{bucket}/ref/a", **SMALL)
    monkeypatch.setattr(remote, "UPLOAD_ATTEMPTS", 3)
    monkeypatch.setattr(remote, "backoff", lambda attempt: 0.0)
    fault_proxy.add(Fault("PUT", "/run/a.part0004", "slowdown", times=3))
    prefix = f"s3://{bucket}/run/a"
    code = main(["pack", str(src), "-o", prefix, "--chunk-size", "64K", "--block-size", "32K"])
    assert code == stc.TransientStoreError.exit_code == stc.StoreError.exit_code == 13
    err = capsys.readouterr().err
    assert "a.part0004" in err and "503" in err and "tried 3 times" in err, err
    manifest = objects(s3_client, bucket).get("run/a.manifest.json")
    assert manifest is None or json.loads(manifest)["complete"] is False
    stc.pack(src, prefix, resume=True, **SMALL)  # the store answers again
    packed_alike(s3_client, bucket)


def test_stopping_a_pack_does_not_wait_for_an_upload_backing_off(
    src: Path,
    bucket: str,
    s3_client: object,
    fault_proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C while an upload waits to retry a throttled PUT: it gives up at once, not after
    its back-off, and nothing claims the archive."""
    backing_off = threading.Event()

    def long_backoff(attempt: int) -> float:
        backing_off.set()
        return 3600.0

    monkeypatch.setattr(remote, "backoff", long_backoff)
    fault_proxy.add(Fault("PUT", "/a.part0000", "slowdown"))
    write = RemoteChunkSink.write

    def interrupted(sink: RemoteChunkSink, index: int, data: Any, name: str) -> None:
        if index >= 1:  # chunk 0 is with its uploader, which the store told to slow down
            assert backing_off.wait(60), "chunk 0's upload never backed off"
            raise KeyboardInterrupt
        write(sink, index, data, name)

    monkeypatch.setattr(RemoteChunkSink, "write", interrupted)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        stc.pack(src, f"s3://{bucket}/a", **SMALL)
    assert time.monotonic() - started < 120  # the back-off was an hour
    stored = objects(s3_client, bucket)
    assert "a.part0000" not in stored and ".a.lock" not in stored
    manifest = stored.get("a.manifest.json")
    assert manifest is None or json.loads(manifest)["complete"] is False
