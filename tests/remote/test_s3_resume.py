"""An interrupted pack to a store resumes to the objects an uninterrupted pack writes.

The interruption is raised right after the Nth manifest checkpoint is stored, so the point
where the pack stops never depends on how the upload threads were scheduled.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.fs.journal import UnpackJournal
from streaming_tar_compressor.storage import remote
from streaming_tar_compressor.storage.location import parse_prefix
from streaming_tar_compressor.storage.remote import RemoteChunkSink, RemoteLock, _process_identity
from streaming_tar_compressor.storage.store import open_store
from tests.helpers import interrupt_at_record, snapshot
from tests.remote.test_s3_round_trip import objects

SMALL = {"chunk_size": 16 * 1024, "block_size": 8 * 1024}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    noise = random.Random(21)
    root = tmp_path / "src"
    root.mkdir()
    for number in range(60):
        text = " ".join(noise.choice(["alpha", "beta", "gamma"]) for _ in range(1500))
        data = text.encode() if number % 2 else noise.randbytes(6000)
        (root / f"f{number:02d}").write_bytes(data)
    return root


def without_created(stored: dict[str, bytes]) -> dict[str, object]:
    found: dict[str, object] = {}
    for key, data in stored.items():
        if key.endswith(".manifest.json"):
            document = json.loads(data)
            document.pop("created")
            found[key.rsplit("/", 1)[-1]] = document
        else:
            found[key.rsplit("/", 1)[-1]] = data
    return found


def interrupt_after_checkpoints(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """Ctrl-C right after the ``count``-th manifest write. Each chunk waits for the one before
    to be stored, so every checkpoint is written in turn and the count is reached."""
    monkeypatch.setattr(remote, "UPLOAD_BUFFER", 0)
    put_manifest = RemoteChunkSink._put_manifest
    written = [0]

    def interrupted(sink: RemoteChunkSink, manifest: stc.Manifest) -> None:
        put_manifest(sink, manifest)
        written[0] += 1
        if written[0] == count:
            raise KeyboardInterrupt

    monkeypatch.setattr(RemoteChunkSink, "_put_manifest", interrupted)


@pytest.mark.parametrize("codec", ["gzip", "zstd", "xz"])
@pytest.mark.parametrize("stop_after", [1, 3])
def test_resume_gives_the_objects_of_an_uninterrupted_pack(
    codec: str,
    stop_after: int,
    src: Path,
    bucket: str,
    s3_client: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stc.pack(src, f"s3://{bucket}/ref/a", compression=codec, **SMALL)
    expected = without_created(
        {k: v for k, v in objects(s3_client, bucket).items() if k.startswith("ref/")}
    )
    prefix = f"s3://{bucket}/run/a"
    with monkeypatch.context() as patch:
        interrupt_after_checkpoints(patch, stop_after)
        with pytest.raises(KeyboardInterrupt):
            stc.pack(src, prefix, compression=codec, **SMALL)
    checkpoint = json.loads(objects(s3_client, bucket)["run/a.manifest.json"])
    assert checkpoint["complete"] is False and checkpoint["total_chunks"] >= stop_after
    with pytest.raises(stc.OutputError, match="interrupted pack"):
        stc.pack(src, prefix, compression=codec, **SMALL)
    with pytest.raises(stc.ManifestError, match="interrupted pack"):
        stc.unpack(prefix, "unused")
    result = stc.pack(src, prefix, compression=codec, resume=True, **SMALL)
    assert result.resumed_chunks == checkpoint["total_chunks"]
    stored = {k: v for k, v in objects(s3_client, bucket).items() if k.startswith("run/")}
    assert without_created(stored) == expected
    again = stc.pack(src, prefix, compression=codec, resume=True, **SMALL)
    assert again.resumed_chunks == again.manifest.total_chunks  # complete: nothing to do


def test_the_cli_prints_the_resume_command_for_a_store(
    src: Path,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = f"s3://{bucket}/a"
    with monkeypatch.context() as patch:
        interrupt_after_checkpoints(patch, 2)
        code = main(["pack", str(src), "-o", prefix, "--chunk-size", "16K", "--block-size", "8K"])
    assert code == 130
    err = capsys.readouterr().err
    command = f"stc pack {src} -o {prefix} -c gzip -l 6 --chunk-size 16K --block-size 8K --resume"
    assert err == f"stc: interrupted; to go on from there: {command}\n"
    assert main(["info", prefix]) == 0
    assert f"resume:       {command}" in capsys.readouterr().out.splitlines()
    assert main([*command.split()[1:], "-q"]) == 0
    assert stc.verify(prefix, deep=True).ok


KILLED_PACK = """
import os, signal, sys, threading
from streaming_tar_compressor.storage.store import ObstoreStore
import streaming_tar_compressor as stc
source, prefix, codec, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
put, stored, counting = ObstoreStore.put, [0], threading.Lock()
def dying(store, key, data, **options):
    etag = put(store, key, data, **options)
    with counting:
        stored[0] += ".part" in key
        if stored[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    return etag
ObstoreStore.put = dying
stc.pack(source, prefix, compression=codec, chunk_size=16384, block_size=8192)
"""
KILL_POINTS = random.Random(1204)


@pytest.mark.parametrize(
    ("codec", "kill_at"),
    [
        (codec, KILL_POINTS.randint(1, 10))  # of at least 11 chunks
        for codec in ["gzip", "zstd", "xz", "lz4", "bzip2", "none"]
    ],
)
def test_a_pack_killed_by_sigkill_resumes_to_the_same_objects(
    codec: str, kill_at: int, src: Path, bucket: str, s3_client: object
) -> None:
    """Killed once ``kill_at`` chunks are stored, whatever checkpoint covers them by then:
    the dead pack leaves its lock (younger than 30 min), and resume takes it over at once,
    since its process on this host is gone."""
    stc.pack(src, f"s3://{bucket}/ref/a", compression=codec, **SMALL)
    prefix = f"s3://{bucket}/run/a"
    done = subprocess.run(
        [sys.executable, "-c", KILLED_PACK, str(src), prefix, codec, str(kill_at)],
        env=os.environ.copy(),
        timeout=120,
        capture_output=True,
    )
    assert done.returncode == -9, done.stderr
    assert "run/.a.lock" in objects(s3_client, bucket)
    result = stc.pack(src, prefix, compression=codec, resume=True, **SMALL)
    assert (result.resumed_chunks or 0) <= kill_at  # a checkpoint names only stored chunks
    stored = objects(s3_client, bucket)
    run = without_created({k: v for k, v in stored.items() if k.startswith("run/")})
    assert run == without_created({k: v for k, v in stored.items() if k.startswith("ref/")})


def test_an_unpack_from_a_store_resumes(
    src: Path, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"s3://{bucket}/a"
    stc.pack(src, prefix, **SMALL)
    with monkeypatch.context() as patch:
        patch.setattr(UnpackJournal, "record", interrupt_at_record(3))
        with pytest.raises(KeyboardInterrupt):
            stc.unpack(prefix, tmp_path / "out")
    result = stc.unpack(prefix, tmp_path / "out", resume=True)
    assert result.resumed and result.skipped_members > 0
    assert snapshot(tmp_path / "out" / src.relative_to("/")) == snapshot(src)


def test_unlock_removes_a_dead_packs_lock_and_asks_before_a_fresh_foreign_one(
    src: Path, bucket: str, s3_client: object, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"s3://{bucket}/a"
    assert main(["unlock", prefix]) == 0
    assert "has no lock to remove" in capsys.readouterr().out
    foreign = json.dumps({"host": "elsewhere", "pid": 7, "time": 0}).encode()
    s3_client.put_object(Bucket=bucket, Key=".a.lock", Body=foreign)  # type: ignore[attr-defined]
    with pytest.raises(stc.ArchiveBusyError, match="another pack is writing"):
        stc.pack(src, prefix, **SMALL)
    assert main(["unlock", prefix]) == stc.ArchiveBusyError.exit_code  # may still be running
    assert "unlock with --force" in capsys.readouterr().err
    assert main(["unlock", prefix, "--force"]) == 0
    assert "(process 7 on elsewhere, last refreshed" in capsys.readouterr().out
    stc.pack(src, prefix, **SMALL)  # no lock in the way now
    # This very process holds it: it is running, so even a same-host lock stays.
    live = json.dumps({**_process_identity(os.getpid()), "time": 0}).encode()
    s3_client.put_object(Bucket=bucket, Key=".a.lock", Body=live)  # type: ignore[attr-defined]
    assert main(["unlock", prefix]) == stc.ArchiveBusyError.exit_code
    assert ".a.lock" in objects(s3_client, bucket)
    # A process of this machine that is gone: provably dead, removed without --force.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = {**_process_identity(os.getpid()), "pid": int(gone.stdout), "started": "1"}
    s3_client.put_object(Bucket=bucket, Key=".a.lock", Body=json.dumps(dead).encode())  # type: ignore[attr-defined]
    assert main(["unlock", prefix]) == 0
    assert ".a.lock" not in objects(s3_client, bucket)
    assert stc.unlock(src) is None  # a local prefix has nothing to unlock


def uploads_in_progress(s3_client: Any, bucket: str) -> list[str]:
    return sorted(
        u["Key"] for u in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    )


def test_a_dead_packs_unfinished_uploads_are_aborted_and_no_one_elses(
    src: Path, bucket: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Multipart uploads a pack left when it died (a streamed chunk, its index) are aborted
    by the pack that resumes it, by one that takes over its lock, and by ``stc unlock``;
    those of other archives (``ab``, ``a.part``, ``a.partial``) and folders stay."""
    prefix = f"s3://{bucket}/run/a"
    others = ["other/a.part0002", "run/a.part.part0000", "run/a.partial", "run/ab.part0000"]
    for key in ["run/a.part0002", "run/a.index", *others]:
        s3_client.create_multipart_upload(Bucket=bucket, Key=key)
    with monkeypatch.context() as patch:
        interrupt_after_checkpoints(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            stc.pack(src, prefix, **SMALL)  # a fresh prefix: nothing of ours to clean yet
    assert len(uploads_in_progress(s3_client, bucket)) == 6
    stc.pack(src, prefix, resume=True, **SMALL)
    assert uploads_in_progress(s3_client, bucket) == others
    # A lock whose process is gone, taken over by the next pack (here with --force).
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = {**_process_identity(os.getpid()), "pid": int(gone.stdout), "started": "1"}
    s3_client.create_multipart_upload(Bucket=bucket, Key="run/b.part0000")
    s3_client.put_object(Bucket=bucket, Key="run/.b.lock", Body=json.dumps(dead).encode())
    stc.pack(src, f"s3://{bucket}/run/b", **SMALL)
    assert uploads_in_progress(s3_client, bucket) == others
    s3_client.create_multipart_upload(Bucket=bucket, Key="run/a.part0001")
    s3_client.put_object(Bucket=bucket, Key="run/.a.lock", Body=json.dumps(dead).encode())
    assert "1 unfinished upload(s) of it aborted" in (stc.unlock(prefix) or "")
    assert uploads_in_progress(s3_client, bucket) == others


@pytest.mark.parametrize("setting", ["object_store's endpoint", "a profile and keys"])
def test_unfinished_uploads_are_found_where_obstore_writes(
    setting: str, src: Path, bucket: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clean-up's client sees the store and the account obstore uses: its own
    ``AWS_ENDPOINT``, exported keys before a named profile; and the folder as obstore
    decodes it (``my%20dir`` is ``my dir``, and ``my%2520dir`` another folder)."""
    if setting == "object_store's endpoint":
        monkeypatch.setenv("AWS_ENDPOINT", os.environ.pop("AWS_ENDPOINT_URL"))
        monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    else:
        monkeypatch.setenv("AWS_PROFILE", "no-such-profile")  # obstore takes the keys
    for key in ["my dir/a.part0001", "my%20dir/a.part0001"]:
        s3_client.create_multipart_upload(Bucket=bucket, Key=key)
    prefix = f"s3://{bucket}/my%20dir/a"
    stc.pack(src, prefix, **SMALL)
    stc.pack(src, prefix, force=True, **SMALL)  # replacing: a clean-up
    assert uploads_in_progress(s3_client, bucket) == ["my%20dir/a.part0001"]


def test_a_lock_taken_over_is_not_deleted_by_the_pack_that_lost_it(
    bucket: str, s3_client: object
) -> None:
    location = parse_prefix(f"s3://{bucket}/a")
    assert not isinstance(location, str)
    store = open_store(location)
    with RemoteLock(store, location):
        s3_client.put_object(Bucket=bucket, Key=".a.lock", Body=b'{"host": "b"}')  # type: ignore[attr-defined]
    assert objects(s3_client, bucket)[".a.lock"] == b'{"host": "b"}'


def test_resume_of_a_pack_that_died_before_its_first_checkpoint(
    src: Path, bucket: str, s3_client: object
) -> None:
    stc.pack(src, f"s3://{bucket}/ref/a", **SMALL)
    s3_client.put_object(Bucket=bucket, Key="run/a.part0000", Body=b"half a chunk")  # type: ignore[attr-defined]
    with pytest.raises(stc.OutputError, match="already has an archive"):
        stc.pack(src, f"s3://{bucket}/run/a", **SMALL)
    stc.pack(src, f"s3://{bucket}/run/a", resume=True, **SMALL)
    stored = objects(s3_client, bucket)
    run = without_created({k: v for k, v in stored.items() if k.startswith("run/")})
    assert run == without_created({k: v for k, v in stored.items() if k.startswith("ref/")})


def test_a_missing_bucket_is_named_when_reading_too(
    s3_client: object, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["verify"], ["info"], ["list"], ["unpack", "-C", "unused"]):
        assert main([command[0], "s3://no-such-bucket/a", *command[1:]]) == 13
        err = capsys.readouterr().err
        assert "no such bucket" in err and err.count("\n") == 1, err


def test_endpoint_url_wins_over_the_environment(
    src: Path, bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    argv = ["pack", str(src), "-o", f"s3://{bucket}/a", "--endpoint-url", s3_endpoint, "-q"]
    assert main(argv) == 0
