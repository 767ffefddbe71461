"""A pack to a store runs ahead of its uploads by at most UPLOAD_BUFFER, then waits."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor.storage import remote
from streaming_tar_compressor.storage.remote import RemoteChunkSink
from streaming_tar_compressor.storage.store import ObstoreStore
from tests.helpers import snapshot

CHUNK = 16 * 1024
BUFFER = 8 * CHUNK


def test_the_pack_holds_at_most_the_buffer_while_uploads_wait(
    tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunk uploads are held back until the pack first has to wait for one: by then it must
    have cut chunks up to the buffer (it ran ahead) and not one more (memory is bounded)."""
    source = tmp_path / "src"
    source.mkdir()
    noise = random.Random(5)
    for number in range(12):  # incompressible: 12 x 24 KiB is about 18 chunks
        (source / f"f{number:02d}").write_bytes(noise.randbytes(24 * 1024))
    monkeypatch.setattr(remote, "UPLOAD_BUFFER", BUFFER)
    gate = threading.Event()
    held_when_waiting: list[int] = []
    put, settle = ObstoreStore.put, RemoteChunkSink._settle_oldest

    def gated_put(store: ObstoreStore, key: str, data: Any, **options: Any) -> str | None:
        if ".part" in key:
            assert gate.wait(timeout=120), "the pack never waited for an upload"
        return put(store, key, data, **options)

    def waiting(sink: RemoteChunkSink) -> None:
        if not gate.is_set():
            held_when_waiting.append(sink._held() + sink._filled)
            gate.set()
        settle(sink)

    monkeypatch.setattr(ObstoreStore, "put", gated_put)
    monkeypatch.setattr(RemoteChunkSink, "_settle_oldest", waiting)
    prefix = f"s3://{bucket}/a"
    result = stc.pack(source, prefix, compression="none", chunk_size=CHUNK, block_size=CHUNK)
    assert result.manifest.total_chunks > BUFFER // CHUNK + 2
    # The chunks queued and the one just cut: within the buffer, and the next one's would not be.
    assert len(held_when_waiting) == 1
    assert BUFFER - CHUNK < held_when_waiting[0] <= BUFFER
    stc.unpack(prefix, tmp_path / "out")
    assert snapshot(tmp_path / "out" / source.relative_to("/")) == snapshot(source)


def test_checkpoints_are_written_while_the_pack_runs_ahead_of_its_uploads(
    tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link slower than the compression: chunk k is stored only once chunk k + 4 is cut, and
    the pack cuts chunk k + 1 only once chunk k - 3 is stored. The newest checkpoint then always
    names a chunk still queued; the older ones, covered meanwhile, must be written as the pack
    goes, or a kill would leave nothing to resume."""
    source = tmp_path / "src"
    source.mkdir()
    noise = random.Random(6)
    for number in range(12):
        (source / f"f{number:02d}").write_bytes(noise.randbytes(24 * 1024))
    cut, ended = [0], threading.Event()
    progress = threading.Condition()
    put, finish_chunk = ObstoreStore.put, RemoteChunkSink.finish_chunk
    write_manifest, put_manifest = RemoteChunkSink.write_manifest, RemoteChunkSink._put_manifest
    checkpoints: list[tuple[int, bool]] = []  # (chunks named, written after the last chunk)

    def counted(sink: RemoteChunkSink, info: stc.ChunkInfo) -> stc.ChunkInfo:
        placed = finish_chunk(sink, info)
        with progress:
            cut[0] += 1
            progress.notify_all()
        for queued, upload in list(sink._uploads):
            if queued.index == info.index - 4:
                upload.result(timeout=120)  # stored: the next write() settles it
        return placed

    def last(sink: RemoteChunkSink, manifest: stc.Manifest) -> None:
        with progress:
            ended.set()
            progress.notify_all()
        write_manifest(sink, manifest)

    def slow_link(store: ObstoreStore, key: str, data: Any, **options: Any) -> str | None:
        if ".part" in key:
            number = int(key.rsplit(".part", 1)[1])
            with progress:
                assert progress.wait_for(lambda: cut[0] >= number + 5 or ended.is_set(), 120)
        return put(store, key, data, **options)

    def recorded(sink: RemoteChunkSink, manifest: stc.Manifest) -> None:
        if not manifest.complete:
            checkpoints.append((manifest.total_chunks, ended.is_set()))
        put_manifest(sink, manifest)

    monkeypatch.setattr(RemoteChunkSink, "finish_chunk", counted)
    monkeypatch.setattr(RemoteChunkSink, "write_manifest", last)
    monkeypatch.setattr(RemoteChunkSink, "_put_manifest", recorded)
    monkeypatch.setattr(ObstoreStore, "put", slow_link)
    options = {"compression": "none", "chunk_size": CHUNK, "block_size": CHUNK}
    result = stc.pack(source, f"s3://{bucket}/a", **options)
    assert result.manifest.total_chunks > 10
    during = [chunks for chunks, after in checkpoints if not after]
    assert len(during) >= 3, checkpoints  # one replaced pending checkpoint wrote none here
    assert during == sorted(during)
