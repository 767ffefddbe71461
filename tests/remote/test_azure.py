"""Pack to and unpack from Azure Blob Storage's emulator (azurite) over the real protocol:
Shared Key signed requests, blob metadata, conditional writes (If-None-Match, If-Match) and
block lists, with the variables a user sets for an Azure-compatible endpoint."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import obstore
import pytest
from obstore.store import AzureStore

import streaming_tar_compressor as stc
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.storage.remote import RemoteChunkSink
from tests.helpers import random_files, snapshot
from tests.remote.conftest import AZURITE_ACCOUNT, AZURITE_KEY, azurite_request
from tests.remote.test_s3_resume import KILLED_PACK, interrupt_after_checkpoints, without_created

SMALL = {"chunk_size": 64 * 1024, "block_size": 32 * 1024}
# What the S3 resume tests' killed pack uses: small enough for a checkpoint every few chunks.
TINY = {"chunk_size": 16 * 1024, "block_size": 8 * 1024}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return random_files(tmp_path / "src", seed=8, count=10, size=30_000)


def blob_store(endpoint: str, container: str) -> AzureStore:
    """The container through obstore, for reading and replacing blobs behind stc's back."""
    return AzureStore(
        container,
        account_name=AZURITE_ACCOUNT,
        account_key=AZURITE_KEY,
        endpoint=endpoint,
        client_options={"allow_http": True},
    )


def blobs(endpoint: str, container: str) -> dict[str, bytes]:
    store = blob_store(endpoint, container)
    return {
        meta["path"]: bytes(obstore.get(store, meta["path"]).bytes())
        for batch in obstore.list(store)
        for meta in batch
    }


def test_the_blobs_are_the_files_a_local_pack_writes(
    src: Path, tmp_path: Path, container: str, azure_endpoint: str
) -> None:
    prefix = f"az://{container}/backups/b"
    result = stc.pack(src, prefix, compression="zstd", **SMALL)
    assert result.chunks[0].path == f"{prefix}.part0000"
    stc.pack(src, tmp_path / "local" / "b", compression="zstd", **SMALL)
    stored = blobs(azure_endpoint, container)
    local = {f"backups/{p.name}": p.read_bytes() for p in (tmp_path / "local").iterdir()}
    assert set(stored) == set(local)  # no lock, no checkpoint left behind
    assert without_created(stored) == without_created(local)
    assert json.loads(stored["backups/b.manifest.json"])["total_chunks"] > 3
    assert stc.unpack(prefix, tmp_path / "out").verified
    assert snapshot(tmp_path / "out" / src.relative_to("/")) == snapshot(src)


def test_verify_reads_the_stored_hashes_then_deep_decodes(
    src: Path, container: str, azure_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"az://{container}/b"
    total = stc.pack(src, prefix, **SMALL).manifest.total_chunks
    part = blobs(azure_endpoint, container)["b.part0000"]
    head = azurite_request(azure_endpoint, "HEAD", f"{container}/b.part0000")
    assert head["x-ms-meta-stc_sha256"] == hashlib.sha256(part).hexdigest()
    report = stc.verify(prefix)
    assert report.ok and report.from_metadata and report.downloaded == 0
    assert report.requests == total + 2  # one LIST, one request per chunk and for the index
    assert main(["verify", prefix, "--deep"]) == 0
    deep = stc.verify(prefix, deep=True)
    assert deep.ok and deep.members_checked == 11  # the folder and its ten files
    capsys.readouterr()
    # Replaced by another tool with other bytes and no metadata: downloaded, hashed, named.
    obstore.put(blob_store(azure_endpoint, container), "b.part0002", part)
    report = stc.verify(prefix)
    assert report.downloaded == 1
    assert report.problems == ["b.part0002: corrupt, SHA-256 does not match"]
    assert main(["verify", prefix]) != 0
    assert "b.part0002: corrupt" in capsys.readouterr().err


def test_list_and_info_read_the_container(
    src: Path, container: str, azure_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"az://{container}/b"
    stc.pack(src, prefix, compression="xz", **SMALL)
    names = [member.name for member in stc.list_members(prefix)]
    assert sorted(name.rsplit("/", 1)[-1] for name in names[1:]) == [f"f{n:02d}" for n in range(10)]
    assert main(["list", prefix]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.rsplit(" ", 1)[-1].rstrip("/") for line in lines] == names
    assert main(["info", prefix]) == 0
    info = capsys.readouterr().out
    assert "compression:  xz level 6" in info and "restore:      cat b.part* | tar -J -xf -" in info


def test_a_second_pack_to_the_prefix_fails_while_the_first_runs(
    src: Path, container: str, azure_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second pack starts after the first stored its first checkpoint, and before the
    first goes on: the lock blob, created only if absent, stops it."""
    prefix = f"az://{container}/b"
    put_manifest = RemoteChunkSink._put_manifest
    second: list[BaseException] = []

    def and_another_pack(sink: RemoteChunkSink, manifest: stc.Manifest) -> None:
        put_manifest(sink, manifest)
        if not second:
            with pytest.raises(stc.ArchiveBusyError, match="another pack is writing") as busy:
                stc.pack(src, prefix, **SMALL)
            second.append(busy.value)

    monkeypatch.setattr(RemoteChunkSink, "_put_manifest", and_another_pack)
    stc.pack(src, prefix, **SMALL)
    assert len(second) == 1 and ".b.lock" in str(second[0])
    assert ".b.lock" not in blobs(azure_endpoint, container)  # the first removed its own lock
    assert stc.verify(prefix, deep=True).ok


def test_a_manifest_replaced_by_someone_else_stops_the_pack(
    src: Path, container: str, azure_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each manifest write is If-Match on our last version: one written meanwhile is kept."""
    put_manifest = RemoteChunkSink._put_manifest
    theirs = b'{"written": "by someone else"}'

    def replaced_after_the_first(sink: RemoteChunkSink, manifest: stc.Manifest) -> None:
        put_manifest(sink, manifest)
        obstore.put(blob_store(azure_endpoint, container), "b.manifest.json", theirs)

    monkeypatch.setattr(RemoteChunkSink, "_put_manifest", replaced_after_the_first)
    with pytest.raises(stc.ArchiveBusyError, match="written by someone else meanwhile"):
        stc.pack(src, f"az://{container}/b", **SMALL)
    stored = blobs(azure_endpoint, container)
    assert stored["b.manifest.json"] == theirs and ".b.lock" not in stored


def test_an_interrupted_pack_resumes_to_the_blobs_of_an_uninterrupted_one(
    src: Path, container: str, azure_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stc.pack(src, f"az://{container}/ref/a", **TINY)
    prefix = f"az://{container}/run/a"
    with monkeypatch.context() as patch:
        interrupt_after_checkpoints(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            stc.pack(src, prefix, **TINY)
    checkpoint = json.loads(blobs(azure_endpoint, container)["run/a.manifest.json"])
    assert checkpoint["complete"] is False
    result = stc.pack(src, prefix, resume=True, **TINY)
    assert result.resumed_chunks == checkpoint["total_chunks"] >= 2
    stored = blobs(azure_endpoint, container)
    run = without_created({k: v for k, v in stored.items() if k.startswith("run/")})
    assert run == without_created({k: v for k, v in stored.items() if k.startswith("ref/")})


def test_a_pack_killed_by_sigkill_resumes_and_takes_its_lock_over(
    src: Path, container: str, azure_endpoint: str
) -> None:
    """The dead pack's lock blob stays; resume replaces it (If-Match on its ETag) at once."""
    stc.pack(src, f"az://{container}/ref/a", compression="gzip", **TINY)
    prefix = f"az://{container}/run/a"
    done = subprocess.run(
        [sys.executable, "-c", KILLED_PACK, str(src), prefix, "gzip", "2"],
        env=os.environ.copy(),
        timeout=120,
        capture_output=True,
    )
    assert done.returncode == -9, done.stderr
    assert "run/.a.lock" in blobs(azure_endpoint, container)
    resumed = stc.pack(src, prefix, resume=True, **TINY).resumed_chunks
    assert resumed <= 2  # killed once two chunks were stored: a checkpoint names only those
    stored = blobs(azure_endpoint, container)
    run = without_created({k: v for k, v in stored.items() if k.startswith("run/")})
    assert run == without_created({k: v for k, v in stored.items() if k.startswith("ref/")})


def test_a_chunk_over_16_mib_streams_into_a_block_list(
    tmp_path: Path, container: str, azure_endpoint: str
) -> None:
    big = random_files(tmp_path / "big", seed=9, count=1, size=21 * 2**20)
    options = {"compression": "zstd", "chunk_size": 20 * 2**20}
    prefix = f"az://{container}/b"
    assert stc.pack(big, prefix, **options).manifest.total_chunks == 2
    stc.pack(big, tmp_path / "local" / "b", **options)
    stored = blobs(azure_endpoint, container)
    for part in (tmp_path / "local").glob("b.part*"):
        assert stored[part.name] == part.read_bytes(), part.name
    head = azurite_request(azure_endpoint, "HEAD", f"{container}/b.part0000")
    assert "x-ms-meta-stc_sha256" not in head  # its hash was known only at its end
    report = stc.verify(prefix)
    assert report.ok and report.downloaded == 2  # every chunk streams, the short last one too
    stc.unpack(prefix, tmp_path / "out")
    assert snapshot(tmp_path / "out" / big.relative_to("/")) == snapshot(big)


def test_a_missing_container_is_one_clear_line(
    src: Path, azure_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pack", str(src), "-o", "az://no-such-container/b", "-q"]) == 13
    err = capsys.readouterr().err
    assert err.startswith("stc: error: cannot write az://no-such-container/"), err
    assert err.count("\n") == 1 and "no such bucket" in err and AZURITE_KEY not in err
    for command in (["verify"], ["list"], ["unpack", "-C", "unused"]):
        assert main([command[0], "az://no-such-container/b", *command[1:]]) == 13
        err = capsys.readouterr().err
        assert "no such bucket" in err and err.count("\n") == 1, err
    with pytest.raises(stc.StoreError, match="no-such-container"):
        stc.pack(src, "az://no-such-container/b", **SMALL)


def test_the_emulator_variables_need_no_account_or_key(
    src: Path,
    tmp_path: Path,
    container: str,
    azurite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AZURE_STORAGE_USE_EMULATOR takes azurite's account and key by itself; its URL comes
    from AZURITE_BLOB_STORAGE_URL (http://127.0.0.1:10000 when unset)."""
    for name in ("ACCOUNT_NAME", "ACCOUNT_KEY", "ENDPOINT"):
        monkeypatch.delenv(f"AZURE_STORAGE_{name}")
    monkeypatch.setenv("AZURE_STORAGE_USE_EMULATOR", "true")
    monkeypatch.setenv("AZURITE_BLOB_STORAGE_URL", azurite_url)
    stc.pack(src, f"az://{container}/b", **SMALL)
    assert stc.verify(f"az://{container}/b").ok
    stc.unpack(f"az://{container}/b", tmp_path / "out")
    assert snapshot(tmp_path / "out" / src.relative_to("/")) == snapshot(src)
