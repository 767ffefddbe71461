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
